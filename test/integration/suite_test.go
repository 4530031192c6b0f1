// Package integration runs the TrainingJob controller against a real kube-apiserver and etcd
// (envtest). envtest has no kubelet: the tests move pod phases themselves.
package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
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
	k8sClient client.Client // reads straight from the API server, never from a cache
	// kubeconfig is a file for kubectl, as an administrator of the test API server.
	kubeconfig string
	repoRoot   string
	mgrRun     *managerRun
	// managerCfg authenticates the manager as a user with exactly the RBAC config/rbac grants it,
	// not as an administrator, so a missing permission fails here as it would in a cluster.
	managerCfg *rest.Config
)

const leaderElectionNamespace = "kubetrain-system"

func TestIntegration(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "TrainingJob integration suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var err error
	repoRoot, err = filepath.Abs("../..")
	Expect(err).NotTo(HaveOccurred())
	testEnv, err = testutil.Environment(repoRoot)
	Expect(err).NotTo(HaveOccurred())
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(cfg, client.Options{Scheme: manager.Scheme()})
	Expect(err).NotTo(HaveOccurred())

	admin, err := testEnv.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	Expect(err).NotTo(HaveOccurred())
	kc, err := admin.KubeConfig()
	Expect(err).NotTo(HaveOccurred())
	kubeconfig = filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(os.WriteFile(kubeconfig, kc, 0o600)).To(Succeed())

	Expect(k8sClient.Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: leaderElectionNamespace}})).To(Succeed())
	// The policy that confines each trainer to its own job's status, as config/ deploys it.
	kubectl("apply", "-f", "config/rbac/trainer_policy.yaml")
	// The policy that gives a job's author no more than their own rights, and the editor role it
	// is tested with.
	kubectl("apply", "-f", "config/rbac/author_policy.yaml", "-f", "config/rbac/trainingjob_editor_role.yaml")
	kubectl("apply", "-f", "config/rbac/metrics_reader_role.yaml")
	// The policy that limits what the manager's own identity may create.
	kubectl("apply", "-f", "config/rbac/manager_policy.yaml")
	managerCfg, err = testutil.ManagerIdentity(context.Background(), k8sClient, cfg, repoRoot, leaderElectionNamespace, true)
	Expect(err).NotTo(HaveOccurred())
	mgrRun = startManager()
})

var _ = AfterSuite(func() {
	if mgrRun != nil {
		mgrRun.stop()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// managerServiceAccount is the manager's ServiceAccount in config/default (namePrefix kubetrain-).
const managerServiceAccount = testutil.ManagerServiceAccount

// managerRun is a manager started by the suite, as the binary would start it.
type managerRun struct {
	cancel                  context.CancelFunc
	done                    chan error
	metricsAddr, healthAddr string
}

func startManager() *managerRun {
	opts := manager.DefaultOptions()
	opts.Controller.TrainerImage = "kubetrain/trainer:test"
	// Long enough that a spec polling every 100 ms sees a backoff even on a loaded machine.
	opts.Controller.BackoffBase = 5 * time.Second
	opts.Controller.BackoffMax = 10 * time.Second
	opts.LeaderElectionNamespace = leaderElectionNamespace
	opts.SkipControllerNameValidation = true
	run := &managerRun{done: make(chan error, 1), metricsAddr: freeAddr(), healthAddr: freeAddr()}
	opts.MetricsBindAddress, opts.HealthProbeBindAddress = run.metricsAddr, run.healthAddr
	ctx, cancel := context.WithCancel(ctrl.LoggerInto(context.Background(), logf.Log))
	run.cancel = cancel
	mgr, err := manager.New(ctx, managerCfg, opts)
	Expect(err).NotTo(HaveOccurred())
	go func() {
		defer GinkgoRecover()
		run.done <- mgr.Start(ctx)
	}()
	return run
}

func (m *managerRun) stop() {
	m.cancel()
	Eventually(m.done).WithTimeout(managerStopTimeout).Should(Receive(BeNil()))
}

// freeAddr is a loopback address with a port nobody listens on right now.
func freeAddr() string { return testutil.FreeAddr(GinkgoT()) }

// newNamespace gives a spec a namespace of its own.
func newNamespace(ctx context.Context) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "tj-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	DeferCleanup(func(ctx context.Context) {
		Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, ns))).To(Succeed())
	})
	return ns.Name
}

func describe(obj client.Object) string {
	return fmt.Sprintf("%s/%s", obj.GetNamespace(), obj.GetName())
}
