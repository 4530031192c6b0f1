// Package plugin is `kubectl train`, the kubectl plugin for TrainingJobs: it lists jobs with their
// progress, follows one epoch by epoch, prints and draws its per-epoch history, lists and verifies
// its checkpoints, and suspends or resumes it. It reads the cluster as the user, through their
// kubeconfig and kubectl's flags (-n, --context, --kubeconfig, ...); it never acts with any other
// identity, and reads a job's storage credentials only where the user may read that Secret.
//
// The commands are thin: each fetches what it needs and hands it to a pure function that renders
// it (rows of a table, a progress line, a chart), which the tests check on fixed inputs.
package plugin

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
)

// FieldManager names the plugin's writes (suspend, resume) in managedFields.
const FieldManager = "kubectl-train"

// Streams are where a command reads and writes, as kubectl's IOStreams.
type Streams struct {
	Out, ErrOut io.Writer
}

// options are the flags every command shares: kubectl's connection flags.
type options struct {
	loading   *clientcmd.ClientConfigLoadingRules
	overrides *clientcmd.ConfigOverrides
	streams   Streams
	// newClient builds the API client; tests leave it to the default.
	newClient func() (client.WithWatch, string, error)
}

// NewCommand is the root command, `kubectl train`.
func NewCommand(streams Streams) *cobra.Command {
	o := &options{
		loading:   clientcmd.NewDefaultClientConfigLoadingRules(),
		overrides: &clientcmd.ConfigOverrides{},
		streams:   streams,
	}
	o.newClient = o.defaultClient
	root := &cobra.Command{
		Use: "train",
		// Help and usage say `kubectl train`, as the user types it.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl train"},
		Short:       "Follow, plot and control kubetrain TrainingJobs",
		Long: "kubectl train follows kubetrain TrainingJobs: their progress, per-epoch history, training curves\n" +
			"and checkpoints, and suspends or resumes them. It uses your kubeconfig and kubectl's flags.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	flags := root.PersistentFlags()
	flags.StringVar(&o.loading.ExplicitPath, clientcmd.RecommendedConfigPathFlag, "",
		"Path to the kubeconfig file to use (default: $KUBECONFIG, then ~/.kube/config).")
	clientcmd.BindOverrideFlags(o.overrides, flags, clientcmd.RecommendedConfigOverrideFlags(""))
	root.AddCommand(newListCommand(o), newWatchCommand(o), newHistoryCommand(o), newPlotCommand(o),
		newCheckpointsCommand(o), newSuspendCommand(o, true), newSuspendCommand(o, false))
	return root
}

// Main runs the plugin with the process's arguments and returns its exit code.
func Main(ctx context.Context, args []string) int {
	cmd := NewCommand(Streams{Out: os.Stdout, ErrOut: os.Stderr})
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	return 0
}

// scheme knows the kinds the plugin reads and writes.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(kubetrainv1alpha1.AddToScheme(s))
	utilruntime.Must(corev1.AddToScheme(s))
	utilruntime.Must(authorizationv1.AddToScheme(s))
	return s
}()

// defaultClient connects as the user's kubeconfig and flags say, and returns the namespace to use.
func (o *options) defaultClient() (client.WithWatch, string, error) {
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(o.loading, o.overrides)
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("reading the namespace from the kubeconfig: %w", err)
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", err
	}
	cfg.UserAgent = "kubectl-train"
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", err
	}
	return c, ns, nil
}

// job connects as the user and fetches the job the command names.
func (o *options) job(ctx context.Context, name string) (client.WithWatch, *kubetrainv1alpha1.TrainingJob, error) {
	c, ns, err := o.newClient()
	if err != nil {
		return nil, nil, err
	}
	tj, err := getJob(ctx, c, ns, name)
	return c, tj, err
}

// getJob fetches one job, with an error that names it and its namespace.
func getJob(ctx context.Context, c client.Client, ns, name string) (*kubetrainv1alpha1.TrainingJob, error) {
	tj := &kubetrainv1alpha1.TrainingJob{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, tj); err != nil {
		return nil, apiError(err, fmt.Sprintf("trainingjob %q in namespace %q", name, ns))
	}
	return tj, nil
}

// apiError turns the API's answer into what a user can act on; what names the object asked for.
func apiError(err error, what string) error {
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s not found", what)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s: you are not allowed: %w", what, err)
	case apimeta.IsNoMatchError(err):
		return fmt.Errorf("the cluster has no TrainingJob API (%s): is kubetrain installed?", kubetrainv1alpha1.GroupVersion)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// jobName is the usual description of a job in messages.
func jobName(tj *kubetrainv1alpha1.TrainingJob) string {
	return fmt.Sprintf("trainingjob %q in namespace %q", tj.Name, tj.Namespace)
}

// finished says whether the job has reached a terminal phase.
func finished(tj *kubetrainv1alpha1.TrainingJob) bool {
	return tj.Status.Phase == kubetrainv1alpha1.PhaseSucceeded || tj.Status.Phase == kubetrainv1alpha1.PhaseFailed
}
