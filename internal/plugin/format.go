package plugin

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"
)

// none is what a table shows for a value not known yet, as kubectl shows <none>.
const none = "-"

// table is a header and rows of cells, printed as kubectl prints tables.
type table struct {
	header []string
	rows   [][]string
}

func (t table) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	for _, r := range append([][]string{t.header}, t.rows...) {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// dataFormat is the -o of commands whose output is data: a table for people, JSON or YAML for
// programs.
type dataFormat string

const (
	formatTable dataFormat = ""
	formatJSON  dataFormat = "json"
	formatYAML  dataFormat = "yaml"
)

func addOutputFlag(cmd *cobra.Command, f *dataFormat) {
	cmd.Flags().StringVarP((*string)(f), "output", "o", "", "Output format: json or yaml (default: a table).")
}

func (f dataFormat) check() error {
	switch f {
	case formatTable, formatJSON, formatYAML:
		return nil
	}
	return fmt.Errorf("unknown output format %q: want json or yaml, or no -o for a table", string(f))
}

// printData writes v as JSON or YAML.
func printData(w io.Writer, f dataFormat, v any) error {
	var out []byte
	var err error
	if f == formatJSON {
		out, err = json.MarshalIndent(v, "", "    ")
		out = append(out, '\n')
	} else {
		out, err = yaml.Marshal(v)
	}
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

// age is how kubectl prints the age of a thing: 5s, 3m20s, 7h, 12d.
func age(since, now time.Time) string {
	if since.IsZero() {
		return none
	}
	return duration.HumanDuration(now.Sub(since))
}

// fraction prints an accuracy or a loss with four decimals, or none when unknown.
func fraction(v float64, known bool) string {
	if !known {
		return none
	}
	return fmt.Sprintf("%.4f", v)
}

// shortDuration prints a duration rounded to what a person reads: 42s, 3m05s, 2h10m.
func shortDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	default:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
}

// byteSize prints a size in binary units, as kubectl prints quantities: 812Ki, 3.4Mi.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	v, suffix := float64(n), []string{"Ki", "Mi", "Gi", "Ti"}
	i := -1
	for v >= unit && i < len(suffix)-1 {
		v /= unit
		i++
	}
	if v < 10 {
		return fmt.Sprintf("%.1f%s", v, suffix[i])
	}
	return fmt.Sprintf("%.0f%s", v, suffix[i])
}
