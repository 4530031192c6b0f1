package chaos

import (
	"context"
	"fmt"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

// Timeouts of the suite's waits, in one place.
const (
	// timeout bounds a wait for the controller to react to a change.
	timeout  = 30 * time.Second
	interval = 50 * time.Millisecond
	// managerStopTimeout bounds a manager's shutdown.
	managerStopTimeout = 30 * time.Second
	// quietPeriod is how long a manager must neither reconcile nor write to count as settled.
	quietPeriod = time.Second
)

// newNamespace gives a spec a namespace of its own.
func newNamespace(ctx context.Context) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "chaos-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	DeferCleanup(func(ctx context.Context) {
		// The jobs first: envtest has no namespace controller to remove them, and a later spec's
		// manager would otherwise reconcile them, and count their writes as its own.
		Expect(k8sClient.DeleteAllOf(ctx, &kubetrainv1alpha1.TrainingJob{}, client.InNamespace(ns.Name))).To(Succeed())
		Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, ns))).To(Succeed())
	})
	return ns.Name
}

// createJob creates a job as a user would write it: no status, no UID, the CRD fills in defaults.
// A failed attempt is retried up to ten times.
func createJob(ctx context.Context, name, ns string, workers int32, with ...func(*testutil.TrainingJobWrapper)) *kubetrainv1alpha1.TrainingJob {
	w := testutil.NewJob(name, ns).Workers(workers).BackoffLimit(10)
	for _, f := range with {
		f(w)
	}
	return jobs().Create(ctx, w)
}

func getJob(ctx context.Context, g Gomega, tj *kubetrainv1alpha1.TrainingJob) *kubetrainv1alpha1.TrainingJob {
	return jobs().Get(ctx, g, tj)
}

// listPods lists every pod of a namespace.
func listPods(ctx context.Context, g Gomega, ns string) []corev1.Pod {
	var pods corev1.PodList
	g.Expect(k8sClient.List(ctx, &pods, client.InNamespace(ns))).To(Succeed())
	return pods.Items
}

// setPodStatus plays the kubelet: it changes a pod's status as mutate says.
func setPodStatus(ctx context.Context, pod *corev1.Pod, mutate func(*testutil.PodWrapper)) {
	jobs().SetPodStatus(ctx, pod, mutate)
}

// live says whether a pod still runs or may start: not finished, not being deleted.
func live(pod *corev1.Pod) bool {
	return pod.DeletionTimestamp == nil && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

// workerOf reads a worker pod's job, rank and attempt from its labels.
func workerOf(pod *corev1.Pod) (job string, rank, attempt int, err error) {
	job = pod.Labels[kubetrainv1alpha1.LabelJobName]
	rank, errR := strconv.Atoi(pod.Labels[kubetrainv1alpha1.LabelRank])
	attempt, errA := strconv.Atoi(pod.Labels[kubetrainv1alpha1.LabelAttempt])
	if job == "" || errR != nil || errA != nil {
		return "", 0, 0, fmt.Errorf("pod %s is not labelled as a worker: %v", pod.Name, pod.Labels)
	}
	return job, rank, attempt, nil
}

// podViolations checks the namespace's pods against what must hold whatever fails: each is named
// <job>-w<rank>-a<attempt> after its labels, and no two live pods are the same worker of a job,
// whether of one attempt or of two (two trainers of one rank would write the same checkpoints).
func podViolations(pods []corev1.Pod) []string {
	var out []string
	liveWorker := map[string]string{}
	for i := range pods {
		pod := &pods[i]
		job, rank, attempt, err := workerOf(pod)
		if err != nil {
			out = append(out, err.Error())
			continue
		}
		if want := fmt.Sprintf("%s-w%d-a%d", job, rank, attempt); pod.Name != want {
			out = append(out, fmt.Sprintf("pod %s should be named %s", pod.Name, want))
		}
		if !live(pod) {
			continue
		}
		key := fmt.Sprintf("%s rank %d", job, rank)
		if other, ok := liveWorker[key]; ok {
			out = append(out, fmt.Sprintf("two live pods for %s: %s and %s", key, other, pod.Name))
		}
		liveWorker[key] = pod.Name
	}
	return out
}

// expectPodInvariants fails the spec when the namespace's pods break podViolations' rules.
func expectPodInvariants(ctx context.Context, ns string, when string) {
	GinkgoHelper()
	Expect(podViolations(listPods(ctx, Default, ns))).To(BeEmpty(), when)
}

// runPendingPods marks every live pod of the namespace that is not running yet Running. A pod
// deleted meanwhile is left alone.
func runPendingPods(ctx context.Context, ns string) {
	for _, pod := range listPods(ctx, Default, ns) {
		if !live(&pod) || pod.Status.Phase == corev1.PodRunning {
			continue
		}
		pod.Status.Phase = corev1.PodRunning
		err := k8sClient.Status().Update(ctx, &pod)
		Expect(client.IgnoreNotFound(err)).To(Or(Succeed(), MatchError(apierrors.IsConflict, "IsConflict")))
	}
}

// reconciles is how many passes the TrainingJob controller has made in this process, over every
// manager started so far (they share controller-runtime's metrics registry).
func reconciles() int {
	return int(metricSum("controller_runtime_reconcile_total"))
}

// activeReconciles is how many passes run right now.
func activeReconciles() int {
	return int(metricSum("controller_runtime_active_workers"))
}

func metricSum(name string) float64 {
	families, err := ctrlmetrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	sum := 0.0
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "trainingjob" {
					sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
	}
	return sum
}

// settle waits until the manager has neither reconciled nor written for quietPeriod, and no pass
// is running: the events a pass queued have been sent, and nothing is left to do.
func settle(f *faults) {
	GinkgoHelper()
	last := [2]int{-1, -1}
	Eventually(func() bool {
		now := [2]int{reconciles(), f.totalWrites()}
		quiet := now == last && activeReconciles() == 0
		last = now
		return quiet
	}).WithTimeout(timeout).WithPolling(quietPeriod).Should(BeTrue(), "the manager never settled")
}

// jobs reads and waits on the suite's jobs with its administrator's client.
func jobs() testutil.Jobs {
	return testutil.Jobs{Client: k8sClient, Timeout: timeout, Interval: interval}
}
