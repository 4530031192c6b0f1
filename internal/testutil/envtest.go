package testutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
)

// Environment is an envtest environment with the TrainingJob CRD of repoRoot's config/crd, whose
// API server enforces owner-reference permissions as OpenShift and other hardened clusters do
// (the owner references the manager sets need the right to update the job's finalizers).
func Environment(repoRoot string) (*envtest.Environment, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS is not set: run `make test`, which builds etcd, kube-apiserver " +
			"and kubectl with hack/kube-binaries.sh and points KUBEBUILDER_ASSETS at them")
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	env.ControlPlane.GetAPIServer().Configure().Append("enable-admission-plugins", "OwnerReferencesPermissionEnforcement")
	return env, nil
}

// CreateFromFile creates every object of a multi-document YAML file with c.
func CreateFromFile(ctx context.Context, c client.Client, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		obj := &unstructured.Unstructured{}
		err := dec.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("decoding %s: %w", path, err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		if err := c.Create(ctx, obj); err != nil {
			return fmt.Errorf("%s: creating %s %s: %w", path, obj.GetKind(), obj.GetName(), err)
		}
	}
}

// NewJob is a job as a user writes it: no status, no UID; the CRD fills in the defaults.
func NewJob(name, namespace string) *TrainingJobWrapper {
	w := MakeTrainingJob(name, namespace)
	w.UID, w.ResourceVersion, w.Generation = "", "", 0
	return w
}

// Jobs reads TrainingJobs and their pods for an envtest suite, and waits on them. Its Client reads
// straight from the API server, never from a cache.
type Jobs struct {
	Client client.Client
	// Timeout and Interval bound and pace every wait.
	Timeout, Interval time.Duration
}

// Create creates the job w holds, and returns it as the server has it.
func (j Jobs) Create(ctx context.Context, w *TrainingJobWrapper) *kubetrainv1alpha1.TrainingJob {
	tj := w.Obj()
	gomega.Expect(j.Client.Create(ctx, tj)).To(gomega.Succeed())
	return tj
}

// Get reads a job, failing g when it cannot.
func (j Jobs) Get(ctx context.Context, g gomega.Gomega, tj *kubetrainv1alpha1.TrainingJob) *kubetrainv1alpha1.TrainingJob {
	got := &kubetrainv1alpha1.TrainingJob{}
	g.Expect(j.Client.Get(ctx, client.ObjectKeyFromObject(tj), got)).To(gomega.Succeed())
	return got
}

// ExpectPhase waits for the job's phase, and returns the job as it then is.
func (j Jobs) ExpectPhase(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob, phase kubetrainv1alpha1.Phase) *kubetrainv1alpha1.TrainingJob {
	var got *kubetrainv1alpha1.TrainingJob
	gomega.Eventually(func(g gomega.Gomega) {
		got = j.Get(ctx, g, tj)
		g.Expect(got.Status.Phase).To(gomega.Equal(phase))
	}).WithTimeout(j.Timeout).WithPolling(j.Interval).Should(gomega.Succeed(), "job %s/%s", tj.Namespace, tj.Name)
	return got
}

// WaitPod waits for the worker pod of a job's rank and attempt.
func (j Jobs) WaitPod(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob, rank, attempt int32) *corev1.Pod {
	pod := &corev1.Pod{}
	key := types.NamespacedName{Namespace: tj.Namespace, Name: MakeWorkerPod(tj, rank, attempt).Name}
	gomega.Eventually(func() error { return j.Client.Get(ctx, key, pod) }).
		WithTimeout(j.Timeout).WithPolling(j.Interval).Should(gomega.Succeed(), "pod %s", key)
	return pod
}

// SetPodStatus plays the kubelet: it changes a pod's status as mutate says.
func (j Jobs) SetPodStatus(ctx context.Context, pod *corev1.Pod, mutate func(*PodWrapper)) {
	gomega.Expect(SetPodStatus(ctx, j.Client, pod, mutate)).To(gomega.Succeed())
}

// Pods lists every pod of a job, by its name label.
func (j Jobs) Pods(ctx context.Context, g gomega.Gomega, tj *kubetrainv1alpha1.TrainingJob) []corev1.Pod {
	var pods corev1.PodList
	g.Expect(j.Client.List(ctx, &pods, client.InNamespace(tj.Namespace),
		client.MatchingLabels{kubetrainv1alpha1.LabelJobName: tj.Name})).To(gomega.Succeed())
	return pods.Items
}
