// Package recovery shows that the TrainingJob controller loses no work and leaves nothing stuck when
// its manager crashes, restarts, loses leadership or meets errors that no retry can fix (issue 12,
// scenarios 5, 6, 8 and 9). It runs against a real kube-apiserver and etcd (envtest), with managers
// of its own built by internal/manager.New exactly as the binary builds them, each behind a
// transport that counts what it sends and can cut it off (apiLog). envtest has no kubelet and no
// garbage collector: the tests move pod phases themselves, and say where the garbage collector
// would act.
package recovery

import (
	"context"
	"path/filepath"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
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
	repoRoot  string
	// managerCfg authenticates as the manager's ServiceAccount, with exactly the RBAC config/rbac
	// grants it and under the manager policy, as in a cluster.
	managerCfg *rest.Config
)

const leaderElectionNamespace = "kubetrain-system"

// managerServiceAccount is the manager's ServiceAccount in config/default (namePrefix kubetrain-).
const managerServiceAccount = testutil.ManagerServiceAccount

func TestRecovery(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "TrainingJob recovery suite")
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
	Expect(k8sClient.Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: leaderElectionNamespace}})).To(Succeed())
	// What limits the manager's own identity in a cluster limits it here.
	Expect(testutil.CreateFromFile(context.Background(), k8sClient, filepath.Join(repoRoot, "config", "rbac", "manager_policy.yaml"))).To(Succeed())
	managerCfg, err = testutil.ManagerIdentity(context.Background(), k8sClient, cfg, repoRoot, leaderElectionNamespace, true)
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})
