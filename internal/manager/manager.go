// Package manager builds the kubetrain controller manager: the same one the binary runs, the envtest
// suites start, and the scale benchmark measures.
package manager

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	kueuev1beta2 "sigs.k8s.io/kueue/apis/kueue/v1beta2"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/controllers"
	"github.com/kubetrain/kubetrain/internal/metrics"
)

// Options configure the manager; DefaultOptions gives the binary's defaults.
type Options struct {
	Controller controllers.Config

	// QPS and Burst limit the manager's requests to the API server. The defaults are deliberately
	// higher than client-go's (5/10) and controller-runtime's (20/30): a job costs about three writes
	// (its pod, one status write and an event), so 20 QPS would cap the operator at about 7 new jobs
	// a second. The API server protects itself with API Priority and Fairness, which queues a busy
	// client's requests in its own flow instead of letting them starve others, so a client-side limit
	// only needs to stop a runaway loop, not to shield the server.
	QPS   float32
	Burst int
	// MaxConcurrentReconciles: each pass waits on a few API round trips, so several at once keep the
	// server busy; more than this mostly adds contention on a small control plane.
	MaxConcurrentReconciles int

	// MetricsBindAddress is where the metrics are served, over HTTPS (a self-signed certificate)
	// to clients the API server authenticates and authorizes for GET /metrics.
	MetricsBindAddress     string
	HealthProbeBindAddress string

	LeaderElection          bool
	LeaderElectionNamespace string
	LeaderElectionID        string
	// LeaseDuration, RenewDeadline and RetryPeriod time leader election; zero leaves
	// controller-runtime's defaults (15s, 10s, 2s). Tests shorten them to see a takeover quickly.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration

	// Kueue turns the Kueue integration on ("on"), off ("off"), or on when the cluster serves
	// Kueue's Workload API at start ("auto", the default). With it, a job labelled
	// kueue.x-k8s.io/queue-name waits in that LocalQueue until Kueue admits it.
	Kueue string

	// SkipControllerNameValidation lets tests start a second manager in the same process.
	SkipControllerNameValidation bool

	// Clock is injected by tests; nil means the real clock.
	Clock clock.PassiveClock
}

// DefaultOptions are the manager binary's defaults.
func DefaultOptions() Options {
	return Options{
		Controller:              controllers.DefaultConfig(),
		QPS:                     100,
		Burst:                   200,
		MaxConcurrentReconciles: 8,
		MetricsBindAddress:      ":8443",
		HealthProbeBindAddress:  ":8081",
		LeaderElection:          true,
		LeaderElectionID:        "kubetrain-controller.kubetrain.io",
		Kueue:                   "auto",
	}
}

// Scheme knows the built-in types and kubetrain's.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(kubetrainv1alpha1.AddToScheme(s))
	utilruntime.Must(kueuev1beta2.AddToScheme(s))
	return s
}

// New builds a manager with the TrainingJob controller, health and readiness checks registered.
func New(ctx context.Context, cfg *rest.Config, opts Options) (ctrl.Manager, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = opts.QPS, opts.Burst
	managedPods := labels.SelectorFromSet(labels.Set{kubetrainv1alpha1.LabelManagedBy: kubetrainv1alpha1.ManagedByValue})
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: Scheme(),
		// Metrics only to whom the API server says may read them: a TokenReview authenticates the
		// caller's bearer token, a SubjectAccessReview asks whether it may GET /metrics.
		Metrics: metricsserver.Options{
			BindAddress:    opts.MetricsBindAddress,
			SecureServing:  true,
			FilterProvider: filters.WithAuthenticationAndAuthorization,
		},
		HealthProbeBindAddress:  opts.HealthProbeBindAddress,
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        opts.LeaderElectionID,
		LeaderElectionNamespace: opts.LeaderElectionNamespace,
		LeaseDuration:           unlessZero(opts.LeaseDuration),
		RenewDeadline:           unlessZero(opts.RenewDeadline),
		RetryPeriod:             unlessZero(opts.RetryPeriod),
		// A new leader takes over within seconds of the old one's exit.
		LeaderElectionReleaseOnCancel: true,
		Cache: cache.Options{
			// The cache holds only the operator's own pods, without managedFields: memory grows
			// with the jobs, not with the cluster.
			ByObject:         map[client.Object]cache.ByObject{&corev1.Pod{}: {Label: managedPods}},
			DefaultTransform: cache.TransformStripManagedFields(),
		},
		Client: client.Options{Cache: &client.CacheOptions{
			// A pass reads what the previous pass wrote, so it never plans from its own stale past.
			EnableReadYourWritesConsistency: ptr.To(true),
		}},
		GracefulShutdownTimeout: ptr.To(10 * time.Second),
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	clk := opts.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	var useKueue bool
	switch opts.Kueue {
	case "on":
		useKueue = true
	case "auto", "":
		useKueue = controllers.KueueAvailable(mgr.GetRESTMapper())
	case "off":
	default:
		return nil, fmt.Errorf("--kueue is %q: want auto, on or off", opts.Kueue)
	}
	r := &controllers.TrainingJobReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Recorder:                mgr.GetEventRecorder("kubetrain-controller"),
		Clock:                   clk,
		Config:                  opts.Controller,
		MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
		SkipNameValidation:      opts.SkipControllerNameValidation,
		Kueue:                   useKueue,
	}
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		return nil, fmt.Errorf("setting up the TrainingJob controller: %w", err)
	}
	if useKueue {
		k := &controllers.KueueReconciler{
			Client:             mgr.GetClient(),
			Recorder:           mgr.GetEventRecorder("kubetrain-kueue"),
			Clock:              clk,
			Config:             opts.Controller,
			SkipNameValidation: opts.SkipControllerNameValidation,
		}
		if err := k.SetupWithManager(mgr); err != nil {
			return nil, fmt.Errorf("setting up the Kueue integration: %w", err)
		}
		log.FromContext(ctx).Info("Kueue integration on: jobs labelled " + controllers.KueueQueueNameLabel + " wait for Kueue's admission")
	}
	metrics.Serve(mgr.GetCache(), clk)
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, nil
}

// unlessZero is d, or nil (the default) when d is zero.
func unlessZero(d time.Duration) *time.Duration {
	if d == 0 {
		return nil
	}
	return &d
}
