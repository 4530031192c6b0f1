package integration

import (
	"context"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

// newJob is a job as a user would write it: no status, no UID, the CRD fills in the defaults.
func newJob(name, ns string) *testutil.TrainingJobWrapper { return testutil.NewJob(name, ns) }

func createJob(ctx context.Context, w *testutil.TrainingJobWrapper) *kubetrainv1alpha1.TrainingJob {
	return jobs().Create(ctx, w)
}

func getJob(ctx context.Context, g Gomega, tj *kubetrainv1alpha1.TrainingJob) *kubetrainv1alpha1.TrainingJob {
	return jobs().Get(ctx, g, tj)
}

// waitPod waits for the worker pod of a job's attempt.
func waitPod(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob, attempt int32) *corev1.Pod {
	return jobs().WaitPod(ctx, tj, 0, attempt)
}

// setPodStatus plays the kubelet: it changes a pod's status as mutate says.
func setPodStatus(ctx context.Context, pod *corev1.Pod, mutate func(*testutil.PodWrapper)) {
	jobs().SetPodStatus(ctx, pod, mutate)
}

// expectPhase waits for the job's phase, and returns the job as it then is.
func expectPhase(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob, phase kubetrainv1alpha1.Phase) *kubetrainv1alpha1.TrainingJob {
	return jobs().ExpectPhase(ctx, tj, phase)
}

// condition returns the job's condition of a type, or nil.
func condition(tj *kubetrainv1alpha1.TrainingJob, condType string) *metav1.Condition {
	return apimeta.FindStatusCondition(tj.Status.Conditions, condType)
}

// workerPods lists every pod of a job.
func workerPods(ctx context.Context, g Gomega, tj *kubetrainv1alpha1.TrainingJob) []corev1.Pod {
	return jobs().Pods(ctx, g, tj)
}

// jobs reads and waits on the suite's jobs with its administrator's client.
func jobs() testutil.Jobs {
	return testutil.Jobs{Client: k8sClient, Timeout: timeout, Interval: interval}
}
