package recovery

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	ctrl "sigs.k8s.io/controller-runtime"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/kubetrain/kubetrain/internal/manager"
)

// managerRun is a manager started by a spec, behind its own apiLog.
type managerRun struct {
	log    *apiLog
	mgr    ctrl.Manager
	cancel context.CancelFunc
	done   chan error
	// ended is set once the manager's Start returned.
	ended bool
}

// suiteOptions are the binary's defaults, with what a test cannot do in a process of its own: no
// served endpoints (several managers share the process), a second controller of the same name
// allowed, and leader election off unless a spec turns it on.
func suiteOptions() manager.Options {
	opts := manager.DefaultOptions()
	opts.Controller.TrainerImage = "kubetrain/trainer:test"
	opts.Controller.BackoffBase = time.Second
	opts.Controller.BackoffMax = 2 * time.Second
	opts.MetricsBindAddress, opts.HealthProbeBindAddress = "0", "0"
	opts.SkipControllerNameValidation = true
	opts.LeaderElection = false
	opts.LeaderElectionNamespace = leaderElectionNamespace
	return opts
}

// startManager builds a manager with manager.New, as the binary does, and starts it.
func startManager(opts manager.Options) *managerRun {
	run := &managerRun{log: &apiLog{}, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(ctrl.LoggerInto(context.Background(), logf.Log))
	run.cancel = cancel
	mgr, err := manager.New(ctx, run.log.config(managerCfg), opts)
	Expect(err).NotTo(HaveOccurred())
	run.mgr = mgr
	go func() {
		defer GinkgoRecover()
		run.done <- mgr.Start(ctx)
	}()
	return run
}

// stop shuts the manager down gracefully and waits for it; it does nothing the second time.
func (m *managerRun) stop() {
	if m.ended {
		return
	}
	m.ended = true
	m.cancel()
	Eventually(m.done).WithTimeout(managerStopTimeout).Should(Receive(BeNil()))
}

// crash kills the manager as a crash would: its connection goes first, so nothing it still tries
// (finishing a pass, releasing its lease) reaches the server; then its goroutines stop.
func (m *managerRun) crash() {
	m.ended = true
	m.log.kill()
	m.cancel()
	// A crashed manager's Start returns whatever its last failed requests made of it.
	Eventually(m.done).WithTimeout(managerStopTimeout).Should(Receive())
}

// reconcileCount is how many passes the TrainingJob controllers of this process have made, from
// controller-runtime's controller_runtime_reconcile_total (whatever the result).
func reconcileCount() float64 {
	return sumMetric("controller_runtime_reconcile_total", "controller", controllerName)
}

// reconcilerIdle says whether no TrainingJob pass is running in this process. (The depth of the
// work queue does not say more: a killed manager's queue keeps its items in the shared gauge.)
func reconcilerIdle() bool {
	return sumMetric("controller_runtime_active_workers", "controller", controllerName) == 0
}

// controllerName is the TrainingJob controller's name in controller-runtime's metrics.
const controllerName = "trainingjob"

func sumMetric(name, label, value string) float64 {
	// Collectors of other metrics may fail (the job metrics read a stopped manager's cache);
	// Gather still returns every family it could collect.
	families, _ := metrics.Registry.Gather()
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
	}
	return sum
}

// waitReconciled waits until the controller has made at least n passes since it had made before,
// and runs none: a manager just started, with n jobs in its first list and nothing else to do,
// has then looked at every one.
func waitReconciled(before float64, n int) {
	Eventually(func(g Gomega) {
		g.Expect(reconcileCount() - before).To(BeNumerically(">=", n))
		g.Expect(reconcilerIdle()).To(BeTrue())
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}

// waitIdle waits until no TrainingJob pass is running.
func waitIdle() { waitReconciled(reconcileCount(), 0) }
