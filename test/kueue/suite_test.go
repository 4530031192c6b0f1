// Package kueue runs a real Kueue (the binary hack/kube-binaries.sh kueue builds, as a separate
// process) against a real kube-apiserver and etcd (envtest), with the TrainingJob CRD installed:
// the suite for TrainingJob as a Kueue workload. envtest has no kubelet and no scheduler: Kueue
// admits workloads by quota alone, and pods never run.
package kueue

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	kueuev1beta2 "sigs.k8s.io/kueue/apis/kueue/v1beta2"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/kueuetest"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

var (
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8sClient client.Client // reads straight from the API server, never from a cache
	repoRoot  string
	kueueRun  *kueuetest.Kueue
	// stopManager stops kubetrain's manager, which the suite starts after Kueue.
	stopManager func()
)

// gpuFlavor is the cluster's one ResourceFlavor, created once like the rest of a cluster's
// infrastructure; each spec makes its own ClusterQueue of it, so quotas do not leak between specs.
const (
	gpuFlavor   = "gpu"
	poolLabel   = "kubetrain.io/test-pool"
	gpuResource = corev1.ResourceName("nvidia.com/gpu")
)

// Timeouts of the suite's waits, in one place.
const (
	// timeout bounds a wait for Kueue or the controller to react to a change.
	timeout  = 20 * time.Second
	interval = 100 * time.Millisecond
)

func TestKueue(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "TrainingJob with Kueue suite")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	assets := kueuetest.Assets(GinkgoT())
	var err error
	repoRoot, err = filepath.Abs("../..")
	Expect(err).NotTo(HaveOccurred())
	testEnv, err = testutil.Environment(repoRoot)
	Expect(err).NotTo(HaveOccurred())
	kueuetest.Install(testEnv, assets)
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme()})
	Expect(err).NotTo(HaveOccurred())

	kueueRun = kueuetest.Start(GinkgoT(), testEnv, assets)
	GinkgoWriter.Printf("Kueue's log: %s\n", kueueRun.LogPath)

	Expect(k8sClient.Create(ctx, kueuetest.ResourceFlavor(gpuFlavor, map[string]string{poolLabel: "gpu"}))).To(Succeed())
	stopManager = startManager(ctx)
})

var _ = AfterSuite(func() {
	if stopManager != nil {
		stopManager()
	}
	// Kueue first: it would otherwise log a page of errors about the API server going away.
	if kueueRun != nil {
		kueueRun.Stop()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// ReportAfterEach points at Kueue's log when a spec fails: most failures here are Kueue's
// decisions, and its log says why it made them.
var _ = ReportAfterEach(func(r SpecReport) {
	if r.Failed() && kueueRun != nil {
		AddReportEntry("Kueue's log", kueueRun.LogPath)
	}
})

func scheme() *runtime.Scheme {
	s := kueuetest.Scheme()
	utilruntime.Must(kubetrainv1alpha1.AddToScheme(s))
	return s
}

// newNamespace gives a spec a namespace of its own.
func newNamespace(ctx context.Context) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "kq-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	DeferCleanup(func(ctx context.Context) {
		Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, ns))).To(Succeed())
	})
	return ns.Name
}

// newQueues gives a spec a ClusterQueue of the gpu flavor with gpus GPUs (and CPU and memory to
// spare), and a LocalQueue named localQueue in namespace that feeds it.
func newQueues(ctx context.Context, namespace, localQueue string, gpus string) *kueuev1beta2.ClusterQueue {
	cq := kueuetest.ClusterQueue(namespace, gpuFlavor,
		kueuetest.Quota("cpu", "64", "memory", "256Gi", string(gpuResource), gpus))
	Expect(k8sClient.Create(ctx, cq)).To(Succeed())
	DeferCleanup(func(ctx context.Context) {
		Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, cq))).To(Succeed())
	})
	lq := kueuetest.LocalQueue(localQueue, namespace, cq.Name)
	Expect(k8sClient.Create(ctx, lq)).To(Succeed())
	return cq
}
