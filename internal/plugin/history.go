package plugin

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
)

func newHistoryCommand(o *options) *cobra.Command {
	var output dataFormat
	cmd := &cobra.Command{
		Use:     "history NAME",
		Short:   "Print a TrainingJob's metrics epoch by epoch",
		Long:    "Print a TrainingJob's metrics epoch by epoch, from status.history (the last 100 epochs).",
		Example: "  kubectl train history fashion-mnist\n  kubectl train history fashion-mnist -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := output.check(); err != nil {
				return err
			}
			_, tj, err := o.job(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			h := tj.Status.History
			if output != formatTable {
				if h == nil {
					h = []kubetrainv1alpha1.EpochMetrics{}
				}
				return printData(o.streams.Out, output, h)
			}
			if len(h) == 0 {
				fmt.Fprintf(o.streams.ErrOut, "%s has no completed epoch yet (phase %s).\n", jobName(tj), orNone(string(tj.Status.Phase)))
				return nil
			}
			if h[0].Epoch > 1 {
				fmt.Fprintf(o.streams.ErrOut, "status.history keeps the last %d epochs: from epoch %d.\n", len(h), h[0].Epoch)
			}
			return historyTable(h).print(o.streams.Out)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

// historyTable is `kubectl train history`: one row per epoch, with how long the epoch took (the
// time since the previous epoch's report; unknown for the first row).
func historyTable(h []kubetrainv1alpha1.EpochMetrics) table {
	t := table{header: []string{"EPOCH", "LOSS", "TRAIN ACCURACY", "TEST ACCURACY", "IMAGES/S", "DURATION"}}
	for i, m := range h {
		took := none
		if i > 0 && m.Time != nil && h[i-1].Time != nil && h[i-1].Epoch == m.Epoch-1 {
			took = shortDuration(m.Time.Sub(h[i-1].Time.Time))
		}
		t.rows = append(t.rows, []string{strconv.Itoa(int(m.Epoch)), fmt.Sprintf("%.4f", m.Loss),
			fmt.Sprintf("%.4f", m.TrainAccuracy), fmt.Sprintf("%.4f", m.TestAccuracy),
			fmt.Sprintf("%.0f", m.ImagesPerSecond), took})
	}
	return t
}
