package kueue

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	kueuev1beta2 "sigs.k8s.io/kueue/apis/kueue/v1beta2"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/controllers"
	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/internal/manager"
	"github.com/kubetrain/kubetrain/internal/progress"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

// managerNamespace holds the manager's identity, as config/default deploys it.
const managerNamespace = "kubetrain-system"

// startManager starts kubetrain's manager, as the binary builds it, with the rights config/rbac
// gives it: Kueue's Workload API is served, so the integration turns itself on ("auto").
func startManager(ctx context.Context) (stop func()) {
	Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: managerNamespace}})).To(Succeed())
	managerCfg, err := testutil.ManagerIdentity(ctx, k8sClient, cfg, repoRoot, managerNamespace, false)
	Expect(err).NotTo(HaveOccurred())
	opts := manager.DefaultOptions()
	opts.Controller.TrainerImage = "kubetrain/trainer:test"
	opts.LeaderElection = false
	opts.MetricsBindAddress, opts.HealthProbeBindAddress = "0", "0"
	runCtx, cancel := context.WithCancel(ctrl.LoggerInto(context.Background(), logf.Log))
	mgr, err := manager.New(runCtx, managerCfg, opts)
	Expect(err).NotTo(HaveOccurred())
	done := make(chan error, 1)
	go func() {
		defer GinkgoRecover()
		done <- mgr.Start(runCtx)
	}()
	return func() {
		cancel()
		Eventually(done).WithTimeout(15 * time.Second).Should(Receive(BeNil()))
	}
}

var _ = Describe("A TrainingJob in a Kueue queue", func() {
	It("waits suspended, saying why, while another holds the quota, and runs when that one finishes", func(ctx context.Context) {
		ns := newNamespace(ctx)
		newQueues(ctx, ns, "team-a", "1")
		first := createJob(ctx, queuedJob("first", ns, "team-a"))
		firstPod := waitPod(ctx, first, 0)
		second := createJob(ctx, queuedJob("second", ns, "team-a"))

		By("the first runs where its flavor is, labelled as Kueue labels the pods it admits")
		Expect(firstPod.Spec.NodeSelector).To(HaveKeyWithValue(poolLabel, "gpu"))
		Expect(firstPod.Labels).To(HaveKeyWithValue("kueue.x-k8s.io/podset", "workers"))
		Expect(firstPod.Labels).To(HaveKeyWithValue("kueue.x-k8s.io/local-queue-name", "team-a"))
		Expect(getJob(ctx, Default, first).Spec.Template).To(BeNil(), "Kueue's scheduling went into the job's spec")

		By("the second waits suspended, and its status says why")
		Eventually(func(g Gomega) {
			tj := getJob(ctx, g, second)
			g.Expect(tj.Spec.RunPolicy.Suspend).To(BeTrue())
			g.Expect(tj.Status.Phase).To(Equal(kubetrainv1alpha1.PhaseSuspended))
			c := apimeta.FindStatusCondition(tj.Status.Conditions, kubetrainv1alpha1.ConditionSuspended)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(kubetrainv1alpha1.ReasonQueued))
			g.Expect(c.Message).To(And(ContainSubstring("LocalQueue team-a"), ContainSubstring("nvidia.com/gpu")))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		Consistently(func(g Gomega) { g.Expect(jobPods(ctx, g, second)).To(BeEmpty()) }).
			WithTimeout(2 * time.Second).WithPolling(interval).Should(Succeed())

		By("the first finishes: its Workload is finished and the quota goes to the second")
		setPodStatus(ctx, firstPod, func(p *testutil.PodWrapper) { p.Exited(0, `{"outcome":"Succeeded"}`) })
		expectPhase(ctx, first, kubetrainv1alpha1.PhaseSucceeded)
		Eventually(func(g Gomega) {
			wl := jobWorkload(ctx, g, first)
			g.Expect(apimeta.IsStatusConditionTrue(wl.Status.Conditions, kueuev1beta2.WorkloadFinished)).To(BeTrue())
			g.Expect(wl.Finalizers).To(BeEmpty(), "the job's side keeps Kueue's finalizer on a finished Workload")
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		secondPod := waitPod(ctx, second, 0) // its first attempt: a job that waited never started
		Expect(secondPod.Spec.NodeSelector).To(HaveKeyWithValue(poolLabel, "gpu"))
		Expect(getJob(ctx, Default, second).Spec.RunPolicy.Suspend).To(BeFalse())
	})

	It("is suspended by an eviction and resumes from its checkpoint when admitted again", func(ctx context.Context) {
		ns := newNamespace(ctx)
		newQueues(ctx, ns, "team-a", "1")
		tj := createJob(ctx, queuedJob("evicted", ns, "team-a").Epochs(10).Checkpoint("s3://ckpt/runs", ""))
		pod := waitPod(ctx, tj, 0)
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Phase(corev1.PodRunning) })
		expectPhase(ctx, tj, kubetrainv1alpha1.PhaseRunning)
		tj = getJob(ctx, Default, tj)
		ckpt := "s3://ckpt/runs/" + ns + "/evicted/" + string(tj.UID) + "/rank-0/ckpt-000004-ab/manifest.json"
		r, err := progress.NewStatusReporter(ctx, cfg, ns, tj.Name, "")
		Expect(err).NotTo(HaveOccurred())
		r.Report(contract.Progress{Epoch: 4, Epochs: 10, Loss: 0.5, TestAccuracy: 0.8, Time: time.Now()})
		r.Checkpointed(ckpt, 4, 0, 1<<20, time.Now())

		By("Kueue evicts the workload (here: it is deactivated, as `kubectl` or a policy would)")
		wl := jobWorkload(ctx, Default, tj)
		setWorkloadActive(ctx, wl, false)
		Eventually(func(g Gomega) {
			got := getJob(ctx, g, tj)
			g.Expect(got.Spec.RunPolicy.Suspend).To(BeTrue())
			g.Expect(got.Status.Phase).To(Equal(kubetrainv1alpha1.PhaseSuspended))
			g.Expect(got.Status.Failures).To(BeZero())
			g.Expect(got.Status.Disruptions).To(BeZero())
			g.Expect(jobPods(ctx, g, tj)).To(BeEmpty())
			// The workers are gone: the job's side handed the quota back.
			w := jobWorkload(ctx, g, tj)
			g.Expect(w.Status.Admission).To(BeNil())
			g.Expect(apimeta.IsStatusConditionTrue(w.Status.Conditions, kueuev1beta2.WorkloadQuotaReserved)).To(BeFalse())
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		Consistently(func(g Gomega) { g.Expect(jobPods(ctx, g, tj)).To(BeEmpty()) }).
			WithTimeout(time.Second).WithPolling(interval).Should(Succeed())

		By("admitted again, the next attempt resumes from the checkpoint")
		setWorkloadActive(ctx, wl, true)
		next := waitPod(ctx, tj, 1)
		Expect(next.Spec.Containers[0].Args).To(ContainElement("--" + contract.FlagResumeFrom + "=" + ckpt))
		Expect(next.Spec.NodeSelector).To(HaveKeyWithValue(poolLabel, "gpu"))
		got := getJob(ctx, Default, tj)
		Expect(got.Spec.RunPolicy.Suspend).To(BeFalse())
		Expect(got.Status.Failures).To(BeZero(), "an eviction counted as a failure")
	})

	It("leaves a job that spec.managedBy gives to another controller alone, but queues it", func(ctx context.Context) {
		ns := newNamespace(ctx)
		newQueues(ctx, ns, "team-a", "1")
		w := queuedJob("elsewhere", ns, "team-a")
		w.Spec.ManagedBy = ptr.To(kueuev1beta2.MultiKueueControllerName)
		tj := createJob(ctx, w)
		Eventually(func(g Gomega) {
			wl := jobWorkload(ctx, g, tj)
			g.Expect(apimeta.IsStatusConditionTrue(wl.Status.Conditions, kueuev1beta2.WorkloadAdmitted)).To(BeTrue())
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		Consistently(func(g Gomega) {
			got := getJob(ctx, g, tj)
			g.Expect(got.Status.Phase).To(BeEmpty(), "kubetrain wrote the status of a job another controller runs")
			g.Expect(jobPods(ctx, g, tj)).To(BeEmpty())
		}).WithTimeout(2 * time.Second).WithPolling(interval).Should(Succeed())

		By("spec.managedBy cannot change")
		got := getJob(ctx, Default, tj)
		got.Spec.ManagedBy = ptr.To(kubetrainv1alpha1.ManagedByController)
		Expect(k8sClient.Update(ctx, got)).To(MatchError(ContainSubstring("spec.managedBy is immutable")))
	})
})

// queuedJob is a 1-GPU job as a user writes it, in LocalQueue queue.
func queuedJob(name, ns, queue string) *testutil.TrainingJobWrapper {
	w := testutil.NewJob(name, ns).GPUs(1)
	w.Labels = map[string]string{controllers.KueueQueueNameLabel: queue}
	return w
}

func createJob(ctx context.Context, w *testutil.TrainingJobWrapper) *kubetrainv1alpha1.TrainingJob {
	return jobs().Create(ctx, w)
}

func getJob(ctx context.Context, g Gomega, tj *kubetrainv1alpha1.TrainingJob) *kubetrainv1alpha1.TrainingJob {
	return jobs().Get(ctx, g, tj)
}

func expectPhase(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob, phase kubetrainv1alpha1.Phase) {
	jobs().ExpectPhase(ctx, tj, phase)
}

// waitPod waits for the rank-0 worker of a job's attempt.
func waitPod(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob, attempt int32) *corev1.Pod {
	return jobs().WaitPod(ctx, tj, 0, attempt)
}

// jobPods lists every pod of a job.
func jobPods(ctx context.Context, g Gomega, tj *kubetrainv1alpha1.TrainingJob) []corev1.Pod {
	return jobs().Pods(ctx, g, tj)
}

// setPodStatus plays the kubelet: it changes a pod's status as mutate says.
func setPodStatus(ctx context.Context, pod *corev1.Pod, mutate func(*testutil.PodWrapper)) {
	jobs().SetPodStatus(ctx, pod, mutate)
}

// jobWorkload is the one Workload a job has.
func jobWorkload(ctx context.Context, g Gomega, tj *kubetrainv1alpha1.TrainingJob) *kueuev1beta2.Workload {
	got := getJob(ctx, g, tj)
	var wls kueuev1beta2.WorkloadList
	g.Expect(k8sClient.List(ctx, &wls, client.InNamespace(tj.Namespace),
		client.MatchingLabels{"kueue.x-k8s.io/job-uid": string(got.UID)})).To(Succeed())
	g.Expect(wls.Items).To(HaveLen(1))
	g.Expect(metav1.IsControlledBy(&wls.Items[0], got)).To(BeTrue())
	return &wls.Items[0]
}

func setWorkloadActive(ctx context.Context, wl *kueuev1beta2.Workload, active bool) {
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(wl), wl); err != nil {
			return err
		}
		wl.Spec.Active = ptr.To(active)
		return k8sClient.Update(ctx, wl)
	})).To(Succeed())
}

// jobs reads and waits on the suite's jobs with its administrator's client.
func jobs() testutil.Jobs {
	return testutil.Jobs{Client: k8sClient, Timeout: timeout, Interval: interval}
}
