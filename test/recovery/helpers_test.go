package recovery

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

// newNamespace gives a spec a namespace of its own. envtest runs no namespace controller, so a
// deleted namespace keeps its objects: the spec's jobs, pods and Services are deleted one by one
// afterwards, so that no later manager of the suite finds them.
func newNamespace(ctx context.Context) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "rec-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	DeferCleanup(func(ctx context.Context) {
		Expect(k8sClient.DeleteAllOf(ctx, &kubetrainv1alpha1.TrainingJob{}, client.InNamespace(ns.Name))).To(Succeed())
		collectGarbage(ctx, ns.Name)
		Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, ns))).To(Succeed())
	})
	return ns.Name
}

// collectGarbage deletes the pods and Services of namespace ns, as the garbage collector would once
// their jobs are gone.
func collectGarbage(ctx context.Context, ns string) {
	Expect(k8sClient.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(ns), client.GracePeriodSeconds(0))).To(Succeed())
	var svcs corev1.ServiceList
	Expect(k8sClient.List(ctx, &svcs, client.InNamespace(ns))).To(Succeed())
	for i := range svcs.Items {
		Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, &svcs.Items[i]))).To(Succeed())
	}
}

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

// waitPods waits for every worker pod of a job's attempt, and returns them by rank.
func waitPods(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob, attempt int32) []*corev1.Pod {
	pods := make([]*corev1.Pod, tj.Spec.Workers)
	for rank := range pods {
		pod := &corev1.Pod{}
		name := testutil.MakeWorkerPod(tj, int32(rank), attempt).Name
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: tj.Namespace, Name: name}, pod)).To(Succeed())
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed(), "pod %s/%s", tj.Namespace, name)
		pods[rank] = pod
	}
	return pods
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
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed(), "job %s/%s", tj.Namespace, tj.Name)
	return got
}

// condition returns the job's condition of a type, or nil.
func condition(tj *kubetrainv1alpha1.TrainingJob, condType string) *metav1.Condition {
	return apimeta.FindStatusCondition(tj.Status.Conditions, condType)
}

// podsIn lists every pod of namespace ns.
func podsIn(ctx context.Context, g Gomega, ns string) []corev1.Pod {
	var pods corev1.PodList
	g.Expect(k8sClient.List(ctx, &pods, client.InNamespace(ns))).To(Succeed())
	return pods.Items
}

// names are the names and answers of requests, for failure messages.
func names(reqs []apiRequest) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = fmt.Sprintf("%s %s/%s %s: %d", r.verb, r.resource, r.subresource, r.name, r.code)
	}
	return out
}

func timeline(reqs []apiRequest, start time.Time) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = fmt.Sprintf("%.3f %s %s/%s %s: %d", r.at.Sub(start).Seconds(), r.verb, r.resource, r.subresource, r.name, r.code)
	}
	return out
}
