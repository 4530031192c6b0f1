package plugin

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
)

func newListCommand(o *options) *cobra.Command {
	var output dataFormat
	var allNamespaces bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List TrainingJobs with their progress",
		Example: "  kubectl train list\n  kubectl train list -A\n  kubectl train list -n team-a -o yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := output.check(); err != nil {
				return err
			}
			c, ns, err := o.newClient()
			if err != nil {
				return err
			}
			var opts []client.ListOption
			where := fmt.Sprintf("namespace %q", ns)
			if allNamespaces {
				where = "any namespace"
			} else {
				opts = append(opts, client.InNamespace(ns))
			}
			list := &kubetrainv1alpha1.TrainingJobList{}
			if err := c.List(cmd.Context(), list, opts...); err != nil {
				return apiError(err, "listing trainingjobs in "+where)
			}
			if output != formatTable {
				list.SetGroupVersionKind(kubetrainv1alpha1.GroupVersion.WithKind("TrainingJobList"))
				for i := range list.Items {
					list.Items[i].SetGroupVersionKind(kubetrainv1alpha1.GroupVersion.WithKind("TrainingJob"))
					// As kubectl get -o yaml: managedFields are noise to a reader.
					list.Items[i].ManagedFields = nil
				}
				return printData(o.streams.Out, output, list)
			}
			if len(list.Items) == 0 {
				fmt.Fprintf(o.streams.ErrOut, "No trainingjobs found in %s.\n", where)
				return nil
			}
			return listTable(list.Items, time.Now(), allNamespaces).print(o.streams.Out)
		},
	}
	addOutputFlag(cmd, &output)
	cmd.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "List the jobs of every namespace.")
	return cmd
}

// listTable is `kubectl train list`: what `kubectl get trainingjobs` shows, with the loss.
func listTable(jobs []kubetrainv1alpha1.TrainingJob, now time.Time, allNamespaces bool) table {
	t := table{header: []string{"NAME", "PHASE", "EPOCH", "TEST ACCURACY", "LOSS", "WORKERS", "AGE"}}
	if allNamespaces {
		t.header = append([]string{"NAMESPACE"}, t.header...)
	}
	for i := range jobs {
		tj := &jobs[i]
		p := tj.Status.Progress
		row := []string{tj.Name, orNone(string(tj.Status.Phase)), epochText(tj),
			fraction(metric(p, func(m kubetrainv1alpha1.EpochMetrics) float64 { return m.TestAccuracy })),
			fraction(metric(p, func(m kubetrainv1alpha1.EpochMetrics) float64 { return m.Loss })),
			orNone(tj.Status.Workers.Ready), age(tj.CreationTimestamp.Time, now)}
		if allNamespaces {
			row = append([]string{tj.Namespace}, row...)
		}
		t.rows = append(t.rows, row)
	}
	return t
}

// epochText is "completed/total": the trainer's report, or 0 of the spec's epochs before one.
func epochText(tj *kubetrainv1alpha1.TrainingJob) string {
	if p := tj.Status.Progress; p != nil {
		return fmt.Sprintf("%d/%d", p.Epoch, p.Epochs)
	}
	return fmt.Sprintf("0/%d", tj.Spec.Hyperparameters.Epochs)
}

// metric reads a metric of the last completed epoch; there is none before the first epoch ends
// (the trainer's first report, as it starts, is epoch 0).
func metric(p *kubetrainv1alpha1.Progress, f func(kubetrainv1alpha1.EpochMetrics) float64) (float64, bool) {
	if p == nil || p.Epoch == 0 {
		return 0, false
	}
	return f(p.EpochMetrics), true
}

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}
