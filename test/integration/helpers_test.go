package integration

import (
	"context"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

// newJob is a job as a user would write it: no status, no UID, the CRD fills in the defaults.
func newJob(name, ns string) *testutil.TrainingJobWrapper {
	w := testutil.MakeTrainingJob(name, ns)
	w.UID, w.ResourceVersion, w.Generation = "", "", 0
	return w
}

func createJob(ctx context.Context, w *testutil.TrainingJobWrapper) *kubetrainv1alpha1.TrainingJob {
	tj := w.Obj()
	Expect(k8sClient.Create(ctx, tj)).To(Succeed())
	return tj
}

func getJob(ctx context.Context, g Gomega, tj *kubetrainv1alpha1.TrainingJob) *kubetrainv1alpha1.TrainingJob {
	got := &kubetrainv1alpha1.TrainingJob{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(tj), got)).To(Succeed())
	return got
}

// waitPod waits for the worker pod of a job's attempt.
func waitPod(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob, attempt int32) *corev1.Pod {
	pod := &corev1.Pod{}
	name := testutil.MakeWorkerPod(tj, 0, attempt).Name
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: tj.Namespace, Name: name}, pod)).To(Succeed())
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed(), "pod %s/%s", tj.Namespace, name)
	return pod
}

// setPodStatus plays the kubelet: it changes a pod's status as mutate says.
func setPodStatus(ctx context.Context, pod *corev1.Pod, mutate func(*testutil.PodWrapper)) {
	Expect(testutil.SetPodStatus(ctx, k8sClient, pod, mutate)).To(Succeed())
}

// expectPhase waits for the job's phase, and returns the job as it then is.
func expectPhase(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob, phase kubetrainv1alpha1.Phase) *kubetrainv1alpha1.TrainingJob {
	var got *kubetrainv1alpha1.TrainingJob
	Eventually(func(g Gomega) {
		got = getJob(ctx, g, tj)
		g.Expect(got.Status.Phase).To(Equal(phase))
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	return got
}

// condition returns the job's condition of a type, or nil.
func condition(tj *kubetrainv1alpha1.TrainingJob, condType string) *metav1.Condition {
	return apimeta.FindStatusCondition(tj.Status.Conditions, condType)
}

// workerPods lists every pod of a job.
func workerPods(ctx context.Context, g Gomega, tj *kubetrainv1alpha1.TrainingJob) []corev1.Pod {
	var pods corev1.PodList
	g.Expect(k8sClient.List(ctx, &pods, client.InNamespace(tj.Namespace),
		client.MatchingLabels{kubetrainv1alpha1.LabelJobName: tj.Name})).To(Succeed())
	return pods.Items
}
