// Command manager runs the kubetrain operator: the TrainingJob controller, with leader election,
// metrics and health probes.
package main

import (
	"flag"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kubetrain/kubetrain/internal/manager"
)

func main() {
	opts := manager.DefaultOptions()
	fs := flag.CommandLine
	fs.StringVar(&opts.Controller.TrainerImage, "trainer-image", opts.Controller.TrainerImage,
		"image of the trainer that runs a job's workers, unless the job names its own")
	fs.DurationVar(&opts.Controller.BackoffBase, "backoff-base", opts.Controller.BackoffBase,
		"wait before retrying a failed attempt; doubles with each further failure")
	fs.DurationVar(&opts.Controller.BackoffMax, "backoff-max", opts.Controller.BackoffMax, "longest wait between attempts")
	fs.Int64Var(&opts.Controller.TerminationGracePeriodSeconds, "worker-termination-grace-period",
		opts.Controller.TerminationGracePeriodSeconds, "seconds a stopped worker has to write a checkpoint")
	fs.DurationVar(&opts.Controller.ProgressDeadline, "progress-deadline", opts.Controller.ProgressDeadline,
		"how long the bundled trainer's workers may run before their first progress report, unless a job says otherwise")
	fs.DurationVar(&opts.Controller.ImagePullStall, "image-pull-stall", opts.Controller.ImagePullStall,
		"how long a worker's image may keep failing to pull before the job is shown Stalled")
	qps := fs.Float64("kube-api-qps", float64(opts.QPS), "requests per second to the API server")
	fs.IntVar(&opts.Burst, "kube-api-burst", opts.Burst, "burst of requests to the API server")
	fs.IntVar(&opts.MaxConcurrentReconciles, "max-concurrent-reconciles", opts.MaxConcurrentReconciles,
		"TrainingJobs reconciled at once")
	fs.StringVar(&opts.MetricsBindAddress, "metrics-bind-address", opts.MetricsBindAddress,
		"address of the Prometheus metrics endpoint (HTTPS, for callers allowed to GET /metrics); 0 disables it")
	fs.StringVar(&opts.HealthProbeBindAddress, "health-probe-bind-address", opts.HealthProbeBindAddress,
		"address of the /healthz and /readyz endpoints")
	fs.BoolVar(&opts.LeaderElection, "leader-elect", opts.LeaderElection,
		"elect a leader, so that only one of several replicas reconciles")
	fs.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "",
		"namespace of the leader election Lease (default: the manager's own)")
	fs.StringVar(&opts.Kueue, "kueue", opts.Kueue,
		"Kueue integration: auto (on if the cluster serves Kueue's Workload API at start), on or off")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	flag.Parse()
	opts.QPS = float32(*qps)

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")
	ctx := ctrl.SetupSignalHandler()
	mgr, err := manager.New(ctx, ctrl.GetConfigOrDie(), opts)
	if err != nil {
		log.Error(err, "cannot build the manager")
		os.Exit(1)
	}
	log.Info("starting manager", "trainerImage", opts.Controller.TrainerImage)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}
