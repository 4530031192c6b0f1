// Package chaos breaks things on purpose around the TrainingJob controller, against a real
// kube-apiserver and etcd (envtest): the manager is killed in the middle of its writes and
// restarted, its pod cache is made to lag, and its status writes are refused with conflicts. The
// faults sit in the manager's HTTP transport (faults_test.go), never in the product's code. Each
// spec asserts what users are promised whatever happens: no pod created twice or deleted wrongly,
// no progress lost, no finished job started again, and nothing written when nothing changed.
//
// The suite starts its own API server and its own managers, so no other manager reconciles its
// jobs. envtest has no kubelet: the specs move pod phases themselves.
package chaos

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kubetrain/kubetrain/internal/manager"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

var (
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8sClient client.WithWatch // reads straight from the API server, never from a cache
	repoRoot  string
	// managerCfg authenticates the manager as its own ServiceAccount, with exactly the RBAC
	// config/rbac grants it and under the manager policy, as in a cluster.
	managerCfg *rest.Config
)

// managerNamespace holds the manager's ServiceAccount, as config/default deploys it.
const managerNamespace = "kubetrain-system"

// managerServiceAccount is the manager's ServiceAccount in config/default (namePrefix kubetrain-);
// config/rbac/manager_policy.yaml recognises the manager by it.
const managerServiceAccount = "kubetrain-controller-manager"

func TestChaos(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "TrainingJob chaos suite")
}

var _ = BeforeSuite(func() {
	// Only warnings and errors: a crashed manager logs every refused request, hundreds of lines
	// that say nothing a failing assertion does not.
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true), zap.Level(zapcore.WarnLevel)))
	var err error
	repoRoot, err = filepath.Abs("../..")
	Expect(err).NotTo(HaveOccurred())
	testEnv, err = testutil.Environment(repoRoot)
	Expect(err).NotTo(HaveOccurred())
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.NewWithWatch(cfg, client.Options{Scheme: manager.Scheme()})
	Expect(err).NotTo(HaveOccurred())

	Expect(k8sClient.Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: managerNamespace}})).To(Succeed())
	// What limits the manager's own identity, and what confines each trainer to its job's status.
	for _, file := range []string{"manager_policy.yaml", "trainer_policy.yaml"} {
		Expect(testutil.CreateFromFile(context.Background(), k8sClient, filepath.Join(repoRoot, "config", "rbac", file))).To(Succeed())
	}
	managerCfg, err = testutil.ManagerIdentity(context.Background(), k8sClient, cfg, repoRoot, managerNamespace, false)
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// managerRun is one manager, built as the binary builds it, talking to the API server through
// its own faults.
type managerRun struct {
	faults *faults
	cancel context.CancelFunc
	done   chan error
}

// startManager starts a manager whose every request goes through f. When f crashes, it cancels
// the manager, as the death of its process would end it.
func startManager(f *faults) *managerRun {
	opts := manager.DefaultOptions()
	opts.Controller.TrainerImage = "kubetrain/trainer:test"
	// Short, so that the specs that fail attempts see the next one soon.
	opts.Controller.BackoffBase = 200 * time.Millisecond
	opts.Controller.BackoffMax = time.Second
	// Leader election is off: these managers are killed and restarted dozens of times, and a
	// killed leader does not release its lease, so each next manager would wait out the lease
	// (15 s) before reconciling anything. The suite never runs two managers at once, so nothing
	// needs electing. (Two managers with leader election are another scenario of issue 12.)
	opts.LeaderElection = false
	// No metrics or health endpoints: nothing here reads them, and dozens of restarts would each
	// need free ports.
	opts.MetricsBindAddress, opts.HealthProbeBindAddress = "0", "0"
	opts.SkipControllerNameValidation = true

	ctx, cancel := context.WithCancel(ctrl.LoggerInto(context.Background(), logf.Log))
	f.setOnCrash(cancel)
	c := rest.CopyConfig(managerCfg)
	c.WrapTransport = f.wrap
	mgr, err := manager.New(ctx, c, opts)
	Expect(err).NotTo(HaveOccurred())
	run := &managerRun{faults: f, cancel: cancel, done: make(chan error, 1)}
	go func() {
		defer GinkgoRecover()
		run.done <- mgr.Start(ctx)
	}()
	return run
}

// stop stops a manager that is running normally: it must shut down cleanly.
func (m *managerRun) stop() {
	m.cancel()
	Eventually(m.done).WithTimeout(managerStopTimeout).Should(Receive(BeNil()))
}

// awaitCrash waits until the manager's faults crashed it and it has stopped. A crashed manager may
// end with an error (its requests failed), as a killed process ends with one.
func (m *managerRun) awaitCrash() {
	Eventually(m.faults.hasCrashed).WithTimeout(timeout).WithPolling(interval).Should(BeTrue(),
		"the manager never made the write it was to crash after (%d); it made %v", m.faults.crashAfter, m.faults.writeCounts())
	Eventually(m.done).WithTimeout(managerStopTimeout).Should(Receive())
}
