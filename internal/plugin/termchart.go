package plugin

import (
	"fmt"
	"math"
	"strings"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
)

// chartHeight is the number of rows of each panel of the terminal chart.
const chartHeight = 8

// chartSeries is one curve of a terminal chart, drawn with its mark.
type chartSeries struct {
	name string
	mark rune
	of   func(kubetrainv1alpha1.EpochMetrics) float64
}

// terminalChart draws the accuracy curves above the loss curve in text, width columns wide: each
// panel spans its own curves' range (printed on its axis), and a column between two epochs shows
// the value between their points.
func terminalChart(h []kubetrainv1alpha1.EpochMetrics, width int) string {
	if len(h) == 0 {
		return ""
	}
	width = max(width, 10)
	if len(h) == 1 {
		width = 1
	}
	var b strings.Builder
	b.WriteString(panel(h, width, []chartSeries{
		{"train accuracy", '·', func(m kubetrainv1alpha1.EpochMetrics) float64 { return m.TrainAccuracy }},
		{"test accuracy", '●', func(m kubetrainv1alpha1.EpochMetrics) float64 { return m.TestAccuracy }},
	}))
	b.WriteString(panel(h, width, []chartSeries{
		{"loss", '●', func(m kubetrainv1alpha1.EpochMetrics) float64 { return m.Loss }},
	}))
	first, last := fmt.Sprint(h[0].Epoch), fmt.Sprint(h[len(h)-1].Epoch)
	axis := first
	if len(h) > 1 {
		axis += strings.Repeat(" ", max(width-len(first)-len(last), 1)) + last
	}
	fmt.Fprintf(&b, "%s  %s  epoch\n", strings.Repeat(" ", labelWidth), axis)
	return b.String()
}

// labelWidth is the width of the value labels on a panel's axis.
const labelWidth = 7

// panel draws the given curves in one box, with a legend line above it.
func panel(h []kubetrainv1alpha1.EpochMetrics, width int, series []chartSeries) string {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for _, m := range h {
			lo, hi = min(lo, s.of(m)), max(hi, s.of(m))
		}
	}
	if hi-lo < 1e-9 {
		lo, hi = lo-0.5, hi+0.5
	}
	grid := make([][]rune, chartHeight)
	for r := range grid {
		grid[r] = []rune(strings.Repeat(" ", width))
	}
	for _, s := range series {
		for x := range width {
			v := valueAt(h, s.of, x, width)
			row := chartHeight - 1 - int(math.Round((v-lo)/(hi-lo)*float64(chartHeight-1)))
			grid[row][x] = s.mark
		}
	}
	var b strings.Builder
	legend := make([]string, len(series))
	for i, s := range series {
		legend[i] = fmt.Sprintf("%c %s", s.mark, s.name)
	}
	fmt.Fprintf(&b, "%s  %s\n", strings.Repeat(" ", labelWidth), strings.Join(legend, "   "))
	for r, cells := range grid {
		label, tick := strings.Repeat(" ", labelWidth), '│'
		switch r {
		case 0:
			label, tick = fmt.Sprintf("%*.4f", labelWidth, hi), '┤'
		case chartHeight - 1:
			label, tick = fmt.Sprintf("%*.4f", labelWidth, lo), '┤'
		}
		fmt.Fprintf(&b, "%s %c%s\n", label, tick, strings.TrimRight(string(cells), " "))
	}
	fmt.Fprintf(&b, "%s └%s\n", strings.Repeat(" ", labelWidth), strings.Repeat("─", width))
	return b.String()
}

// valueAt is the value of a curve at column x of width: the history's entries spread evenly over
// the columns (they are consecutive epochs), linearly interpolated between them.
func valueAt(h []kubetrainv1alpha1.EpochMetrics, of func(kubetrainv1alpha1.EpochMetrics) float64, x, width int) float64 {
	if len(h) == 1 || width == 1 {
		return of(h[len(h)-1])
	}
	pos := float64(x) * float64(len(h)-1) / float64(width-1)
	i := min(int(pos), len(h)-2)
	t := pos - float64(i)
	return of(h[i])*(1-t) + of(h[i+1])*t
}
