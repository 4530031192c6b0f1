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
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

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
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		Fail("KUBEBUILDER_ASSETS is not set: run `make test`, which builds etcd, kube-apiserver and kubectl " +
			"with hack/kube-binaries.sh and points KUBEBUILDER_ASSETS at them")
	}
	var err error
	repoRoot, err = filepath.Abs("../..")
	Expect(err).NotTo(HaveOccurred())
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	// As on OpenShift and other hardened clusters: setting an owner reference that blocks the
	// owner's deletion needs the right to update the owner's finalizers.
	testEnv.ControlPlane.GetAPIServer().Configure().Append("enable-admission-plugins", "OwnerReferencesPermissionEnforcement")
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
	managerCfg = managerIdentity()
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

// managerIdentity creates the manager's ServiceAccount as config/default names it, binds it to the
// manager's ClusterRole and leader election Role from config/rbac, and returns a client
// configuration with a token of it: the manager runs as that identity, which the manager policy
// (config/rbac/manager_policy.yaml) recognises.
func managerIdentity() *rest.Config {
	ctx := context.Background()
	load := func(file string, obj client.Object) {
		b, err := os.ReadFile(filepath.Join(repoRoot, "config", "rbac", file))
		Expect(err).NotTo(HaveOccurred())
		Expect(yaml.Unmarshal(b, obj)).To(Succeed())
	}
	role := &rbacv1.ClusterRole{}
	load("role.yaml", role)
	leader := &rbacv1.Role{}
	load("leader_election_role.yaml", leader)
	leader.Namespace = leaderElectionNamespace
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: managerServiceAccount, Namespace: leaderElectionNamespace}}
	subjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: sa.Namespace}}
	for _, obj := range []client.Object{sa, role, leader,
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name}, Subjects: subjects,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: leader.Name, Namespace: leaderElectionNamespace}, Subjects: subjects,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: leader.Name}},
	} {
		Expect(k8sClient.Create(ctx, obj)).To(Succeed())
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](24 * 3600)}}
	Expect(k8sClient.SubResource("token").Create(ctx, sa, req)).To(Succeed())
	return &rest.Config{Host: cfg.Host, TLSClientConfig: rest.TLSClientConfig{CAData: cfg.CAData}, BearerToken: req.Status.Token}
}

// managerServiceAccount is the manager's ServiceAccount in config/default (namePrefix kubetrain-).
const managerServiceAccount = "kubetrain-controller-manager"

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
