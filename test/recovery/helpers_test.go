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
func newJob(name, ns string) *testutil.TrainingJobWrapper { return testutil.NewJob(name, ns) }

func createJob(ctx context.Context, w *testutil.TrainingJobWrapper) *kubetrainv1alpha1.TrainingJob {
	return jobs().Create(ctx, w)
}

func getJob(ctx context.Context, g Gomega, tj *kubetrainv1alpha1.TrainingJob) *kubetrainv1alpha1.TrainingJob {
	return jobs().Get(ctx, g, tj)
}

// waitPods waits for every worker pod of a job's attempt, and returns them by rank.
func waitPods(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob, attempt int32) []*corev1.Pod {
	pods := make([]*corev1.Pod, tj.Spec.Workers)
	for rank := range pods {
		pods[rank] = jobs().WaitPod(ctx, tj, int32(rank), attempt)
	}
	return pods
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

// jobs reads and waits on the suite's jobs with its administrator's client.
func jobs() testutil.Jobs {
	return testutil.Jobs{Client: k8sClient, Timeout: timeout, Interval: interval}
}
