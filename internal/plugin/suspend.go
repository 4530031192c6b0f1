package plugin

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// newSuspendCommand is `suspend` (suspend true) or `resume` (false): both set
// spec.runPolicy.suspend, and the controller does the rest.
func newSuspendCommand(o *options, suspend bool) *cobra.Command {
	use, short, long := "suspend NAME", "Suspend a TrainingJob: stop its workers, keep its checkpoints",
		"Set spec.runPolicy.suspend: the controller stops the job's workers, and the job waits, Suspended,\n"+
			"until it is resumed. Its checkpoints stay."
	if !suspend {
		use, short, long = "resume NAME", "Resume a suspended TrainingJob from its latest checkpoint",
			"Clear spec.runPolicy.suspend: the controller starts a new attempt, which resumes from the\n"+
				"latest checkpoint."
	}
	return &cobra.Command{
		Use:     use,
		Short:   short,
		Long:    long,
		Example: "  kubectl train " + use[:len(use)-len(" NAME")] + " fashion-mnist -n team-a",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, tj, err := o.job(ctx, args[0])
			if err != nil {
				return err
			}
			verb := map[bool]string{true: "suspended", false: "resumed"}[suspend]
			if finished(tj) {
				return fmt.Errorf("%s has %s: it cannot be %s", jobName(tj), tj.Status.Phase, verb)
			}
			if tj.Spec.RunPolicy.Suspend == suspend {
				fmt.Fprintf(o.streams.Out, "%s is already %s\n", jobName(tj), map[bool]string{true: "suspended", false: "not suspended"}[suspend])
				return nil
			}
			patch := fmt.Appendf(nil, `{"spec":{"runPolicy":{"suspend":%t}}}`, suspend)
			if err := c.Patch(ctx, tj, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldManager)); err != nil {
				return apiError(err, fmt.Sprintf("setting spec.runPolicy.suspend of %s", jobName(tj)))
			}
			fmt.Fprintf(o.streams.Out, "%s %s\n", jobName(tj), verb)
			return nil
		},
	}
}
