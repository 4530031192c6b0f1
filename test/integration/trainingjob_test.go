package integration

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/progress"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

var _ = Describe("TrainingJob lifecycle", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	It("creates a worker pod of the right shape and reports Pending, then Running, then Succeeded", func(ctx context.Context) {
		tj := createJob(ctx, newJob("cifar", ns).GPUs(1).Epochs(3))
		pod := waitPod(ctx, tj, 0)
		Expect(pod.Spec.Containers[0].Image).To(Equal("kubetrain/trainer:test"))
		Expect(pod.Spec.Containers[0].Resources.Limits).To(HaveKey(corev1.ResourceName("nvidia.com/gpu")))
		Expect(pod.Spec.Containers[0].Args).To(ContainElements("--epochs=3", "--dataset=synthetic://cifar10"))
		Expect(metav1.IsControlledBy(pod, getJob(ctx, Default, tj))).To(BeTrue())

		got := expectPhase(ctx, tj, kubetrainv1alpha1.PhasePending)
		Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		Expect(got.Status.StartTime).NotTo(BeNil())
		Expect(condition(got, kubetrainv1alpha1.ConditionReconciling).Status).To(Equal(metav1.ConditionFalse))

		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Phase(corev1.PodRunning) })
		got = expectPhase(ctx, tj, kubetrainv1alpha1.PhaseRunning)
		Expect(condition(got, kubetrainv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
		Expect(got.Status.Workers.Running).To(Equal(int32(1)))

		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Exited(0, `{"outcome":"Succeeded"}`) })
		got = expectPhase(ctx, tj, kubetrainv1alpha1.PhaseSucceeded)
		Expect(got.Status.CompletionTime).NotTo(BeNil())
		Expect(condition(got, kubetrainv1alpha1.ConditionSucceeded).Status).To(Equal(metav1.ConditionTrue))
		Expect(got.Status.Restarts).To(BeZero())
	})

	It("restarts a failed worker after a backoff and fails at the backoff limit", func(ctx context.Context) {
		tj := createJob(ctx, newJob("flaky", ns).BackoffLimit(1))
		pod := waitPod(ctx, tj, 0)
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Exited(1, "boom") })

		var failedAt time.Time
		Eventually(func(g Gomega) {
			got := getJob(ctx, g, tj)
			g.Expect(got.Status.Failures).To(Equal(int32(1)))
			g.Expect(got.Status.Restarts).To(Equal(int32(1)))
			g.Expect(got.Status.Attempt).To(Equal(int32(1)))
			failedAt = time.Now()
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

		// The next attempt waits for its backoff (1s in this suite), then starts.
		pod1 := waitPod(ctx, tj, 1)
		Expect(pod1.CreationTimestamp.Time).To(BeTemporally(">=", failedAt.Add(-time.Second).Truncate(time.Second)))
		got := getJob(ctx, Default, tj)
		Expect(got.Status.StartTime).NotTo(BeNil())

		setPodStatus(ctx, pod1, func(p *testutil.PodWrapper) { p.Exited(2, "boom again") })
		got = expectPhase(ctx, tj, kubetrainv1alpha1.PhaseFailed)
		Expect(got.Status.Failures).To(Equal(int32(2)))
		Expect(condition(got, kubetrainv1alpha1.ConditionFailed).Reason).To(Equal(kubetrainv1alpha1.ReasonBackoffLimit))
		Expect(condition(got, kubetrainv1alpha1.ConditionStalled).Status).To(Equal(metav1.ConditionTrue))
		Consistently(func(g Gomega) {
			g.Expect(workerPods(ctx, g, tj)).To(HaveLen(2))
		}).WithTimeout(consistently).Should(Succeed())
	})

	It("ends the attempt of a worker that runs but never reports progress, at the job's deadline", func(ctx context.Context) {
		tj := createJob(ctx, newJob("silent", ns).Image("example.com/not-a-trainer:1").ProgressDeadlineSeconds(2).BackoffLimit(0))
		pod := waitPod(ctx, tj, 0)
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Phase(corev1.PodRunning) })
		expectPhase(ctx, tj, kubetrainv1alpha1.PhaseRunning)

		got := expectPhase(ctx, tj, kubetrainv1alpha1.PhaseFailed)
		Expect(got.Status.Failures).To(Equal(int32(1)))
		Expect(condition(got, kubetrainv1alpha1.ConditionFailed).Message).To(ContainSubstring("did not report progress within 2s"))
		// Stopped: gone (a pod on no node goes at once) or going.
		Eventually(func(g Gomega) {
			err := k8sClient.Get(ctx, client.ObjectKeyFromObject(pod), pod)
			if !apierrors.IsNotFound(err) {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(pod.DeletionTimestamp).NotTo(BeNil(), "the silent worker still holds its node")
			}
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	})

	It("keeps a worker that reported in this attempt running past the deadline", func(ctx context.Context) {
		tj := createJob(ctx, newJob("reporting", ns).ProgressDeadlineSeconds(2))
		pod := waitPod(ctx, tj, 0)
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Phase(corev1.PodRunning) })
		r, err := progress.NewStatusReporter(ctx, cfg, ns, tj.Name, "")
		Expect(err).NotTo(HaveOccurred())
		r.Started(3) // as the bundled trainer does when it starts
		Consistently(func(g Gomega) {
			got := getJob(ctx, g, tj)
			g.Expect(got.Status.Failures).To(BeZero())
			g.Expect(got.Status.Progress.EpochText).To(Equal("0/3"))
		}).WithTimeout(4 * time.Second).WithPolling(interval).Should(Succeed())
	})

	It("fails at once on a permanent error, without retrying", func(ctx context.Context) {
		tj := createJob(ctx, newJob("badconfig", ns))
		pod := waitPod(ctx, tj, 0)
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) {
			p.Exited(65, `{"outcome":"InvalidData","message":"train-images-idx3-ubyte: truncated at record 17"}`)
		})
		got := expectPhase(ctx, tj, kubetrainv1alpha1.PhaseFailed)
		Expect(got.Status.Failures).To(BeZero())
		Expect(condition(got, kubetrainv1alpha1.ConditionFailed).Message).To(ContainSubstring("truncated at record 17"))
	})

	It("does not count an eviction against the backoff limit", func(ctx context.Context) {
		tj := createJob(ctx, newJob("evicted", ns).BackoffLimit(0))
		pod := waitPod(ctx, tj, 0)
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Phase(corev1.PodRunning) })
		expectPhase(ctx, tj, kubetrainv1alpha1.PhaseRunning)
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Disrupted("EvictionByEvictionAPI") })

		waitPod(ctx, tj, 1)
		Eventually(func(g Gomega) {
			got := getJob(ctx, g, tj)
			g.Expect(got.Status.Disruptions).To(Equal(int32(1)))
			g.Expect(got.Status.Failures).To(BeZero())
			g.Expect(got.Status.Restarts).To(Equal(int32(1)))
			g.Expect(got.Status.Phase).To(Equal(kubetrainv1alpha1.PhasePending))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	})

	It("starts a new attempt when a running worker pod is deleted, counting one restart", func(ctx context.Context) {
		tj := createJob(ctx, newJob("deleted", ns))
		pod := waitPod(ctx, tj, 0)
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Phase(corev1.PodRunning) })
		expectPhase(ctx, tj, kubetrainv1alpha1.PhaseRunning)
		Expect(k8sClient.Delete(ctx, pod)).To(Succeed())

		waitPod(ctx, tj, 1)
		restartedOnce := func(g Gomega) {
			got := getJob(ctx, g, tj)
			g.Expect(got.Status.Restarts).To(Equal(int32(1)))
			g.Expect(got.Status.Disruptions).To(Equal(int32(1)))
		}
		// The new pod is created just before the status write that counts the restart.
		Eventually(restartedOnce).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		Consistently(restartedOnce).WithTimeout(consistently).Should(Succeed())
	})

	It("suspends and resumes", func(ctx context.Context) {
		tj := createJob(ctx, newJob("pausable", ns))
		pod := waitPod(ctx, tj, 0)
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Phase(corev1.PodRunning) })
		expectPhase(ctx, tj, kubetrainv1alpha1.PhaseRunning)

		patchSuspend(ctx, tj, true)
		got := expectPhase(ctx, tj, kubetrainv1alpha1.PhaseSuspended)
		Expect(condition(got, kubetrainv1alpha1.ConditionSuspended).Status).To(Equal(metav1.ConditionTrue))
		Eventually(func(g Gomega) {
			g.Expect(workerPods(ctx, g, tj)).To(BeEmpty())
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

		patchSuspend(ctx, tj, false)
		waitPod(ctx, tj, 1)
		got = expectPhase(ctx, tj, kubetrainv1alpha1.PhasePending)
		Expect(condition(got, kubetrainv1alpha1.ConditionSuspended).Status).To(Equal(metav1.ConditionFalse))
		Expect(got.Status.Restarts).To(BeZero(), "a suspension is not a restart")
	})

	It("creates no pods for a job created suspended", func(ctx context.Context) {
		tj := createJob(ctx, newJob("held", ns).Suspend(true))
		expectPhase(ctx, tj, kubetrainv1alpha1.PhaseSuspended)
		Consistently(func(g Gomega) {
			g.Expect(workerPods(ctx, g, tj)).To(BeEmpty())
		}).WithTimeout(consistently).Should(Succeed())
	})

	It("fails a job past its active deadline and stops its worker", func(ctx context.Context) {
		tj := createJob(ctx, newJob("slow", ns).ActiveDeadlineSeconds(2))
		pod := waitPod(ctx, tj, 0)
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Phase(corev1.PodRunning) })
		got := expectPhase(ctx, tj, kubetrainv1alpha1.PhaseFailed)
		Expect(condition(got, kubetrainv1alpha1.ConditionFailed).Reason).To(Equal(kubetrainv1alpha1.ReasonDeadlineExceeded))
		Eventually(func(g Gomega) {
			g.Expect(workerPods(ctx, g, tj)).To(BeEmpty())
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	})

	It("deletes a finished job after its TTL", func(ctx context.Context) {
		tj := createJob(ctx, newJob("shortlived", ns).TTLSecondsAfterFinished(1))
		pod := waitPod(ctx, tj, 0)
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Exited(0, "") })
		Eventually(func() error {
			return k8sClient.Get(ctx, client.ObjectKeyFromObject(tj), &kubetrainv1alpha1.TrainingJob{})
		}).WithTimeout(timeout).WithPolling(interval).Should(Satisfy(apierrors.IsNotFound))
	})

	It("shows an unschedulable worker as Pending with the scheduler's message", func(ctx context.Context) {
		tj := createJob(ctx, newJob("greedy", ns).GPUs(8))
		pod := waitPod(ctx, tj, 0)
		msg := "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are available"
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Unschedulable(msg) })
		Eventually(func(g Gomega) {
			got := getJob(ctx, g, tj)
			g.Expect(got.Status.Phase).To(Equal(kubetrainv1alpha1.PhasePending))
			ready := condition(got, kubetrainv1alpha1.ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Reason).To(Equal(kubetrainv1alpha1.ReasonUnschedulable))
			g.Expect(ready.Message).To(ContainSubstring("Insufficient nvidia.com/gpu"))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	})

	It("does not take a pod of its worker's name that it does not control for its worker", func(ctx context.Context) {
		// A worker of an earlier job of the same name, still in its grace period: labelled like
		// this job's, controlled by the old job.
		old := newJob("again", ns).Obj()
		old.UID = "uid-of-the-deleted-job"
		squatter := testutil.MakeWorkerPod(old, 0, 0).Obj()
		squatter.UID = ""
		squatter.Labels[kubetrainv1alpha1.LabelManagedBy] = kubetrainv1alpha1.ManagedByValue
		squatter.OwnerReferences = []metav1.OwnerReference{{APIVersion: kubetrainv1alpha1.GroupVersion.String(), Kind: "TrainingJob",
			Name: "again", UID: old.UID, Controller: ptr.To(true)}}
		squatter.Spec.Containers = []corev1.Container{{Name: "trainer", Image: "old"}}
		Expect(k8sClient.Create(ctx, squatter)).To(Succeed())

		tj := createJob(ctx, newJob("again", ns))
		Eventually(func(g Gomega) {
			got := getJob(ctx, g, tj)
			ready := condition(got, kubetrainv1alpha1.ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Reason).To(Equal(kubetrainv1alpha1.ReasonPodCreationFailed))
			g.Expect(ready.Message).To(And(ContainSubstring(squatter.Name), ContainSubstring("is not this job's"), ContainSubstring(string(old.UID))))
			g.Expect(got.Status.Phase).To(Equal(kubetrainv1alpha1.PhasePending))
			g.Expect(got.Status.Disruptions + got.Status.Failures + got.Status.Restarts).To(BeZero())
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

		// Once the old worker is gone, the job's own takes its name.
		Expect(k8sClient.Delete(ctx, squatter)).To(Succeed())
		Eventually(func(g Gomega) {
			pod := &corev1.Pod{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(squatter), pod)).To(Succeed())
			g.Expect(metav1.IsControlledBy(pod, getJob(ctx, g, tj))).To(BeTrue())
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		got := getJob(ctx, Default, tj)
		Expect(got.Status.Disruptions + got.Status.Failures + got.Status.Restarts).To(BeZero())
	})

	It("reports a worker pod the API server refuses as Stalled, with the server's message", func(ctx context.Context) {
		// A mount of a volume the template does not define: every create is refused as invalid.
		tj := createJob(ctx, newJob("unmountable", ns).Template(kubetrainv1alpha1.WorkerTemplate{
			VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}))
		Eventually(func(g Gomega) {
			got := getJob(ctx, g, tj)
			stalled := condition(got, kubetrainv1alpha1.ConditionStalled)
			g.Expect(stalled).NotTo(BeNil())
			g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(stalled.Reason).To(Equal(kubetrainv1alpha1.ReasonPodCreationFailed))
			g.Expect(stalled.Message).To(And(ContainSubstring("is invalid"), ContainSubstring("volumeMounts")))
			g.Expect(workerPods(ctx, g, tj)).To(BeEmpty())
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	})

	It("surfaces a missing credentials Secret as a Stalled condition, not a crash loop", func(ctx context.Context) {
		tj := createJob(ctx, newJob("nocreds", ns).Checkpoint("s3://checkpoints/runs", "missing-creds"))
		pod := waitPod(ctx, tj, 0)
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) {
			p.Waiting("CreateContainerConfigError", `secret "missing-creds" not found`)
		})
		Eventually(func(g Gomega) {
			got := getJob(ctx, g, tj)
			stalled := condition(got, kubetrainv1alpha1.ConditionStalled)
			g.Expect(stalled).NotTo(BeNil())
			g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(stalled.Message).To(ContainSubstring(`secret "missing-creds" not found`))
			g.Expect(got.Status.Restarts).To(BeZero())
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	})

	It("keeps the trainer's progress when the controller writes status", func(ctx context.Context) {
		tj := createJob(ctx, newJob("progress", ns).Epochs(10))
		pod := waitPod(ctx, tj, 0)
		expectPhase(ctx, tj, kubetrainv1alpha1.PhasePending)
		applyProgress(ctx, tj, 4, 10, 0.71)

		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Phase(corev1.PodRunning) })
		got := expectPhase(ctx, tj, kubetrainv1alpha1.PhaseRunning)
		Expect(got.Status.Progress).NotTo(BeNil(), "the controller's status write removed the trainer's progress")
		Expect(got.Status.Progress.EpochText).To(Equal("4/10"))
		Expect(got.Status.Progress.TestAccuracy).To(BeNumerically("~", 0.71, 1e-9))

		out := kubectl("get", "trainingjob", "progress", "-n", ns)
		Expect(out).To(MatchRegexp(`NAME\s+PHASE\s+WORKERS\s+EPOCH\s+ACCURACY\s+RESTARTS\s+CHECKPOINT\s+AGE`))
		Expect(out).To(MatchRegexp(`progress\s+Running\s+1/1\s+4/10\s+0\.71\s+0\s+`))
		Expect(kubectl("get", "tj", "-n", ns, "-o", "name")).To(ContainSubstring("trainingjob.kubetrain.io/progress"))
	})

	It("keeps a finished job finished across a manager restart, even when its pods vanish", func(ctx context.Context) {
		tj := createJob(ctx, newJob("finished", ns))
		pod := waitPod(ctx, tj, 0)
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Exited(0, "") })
		expectPhase(ctx, tj, kubetrainv1alpha1.PhaseSucceeded)

		mgrRun.stop()
		Expect(k8sClient.Delete(ctx, pod)).To(Succeed())
		mgrRun = startManager()
		Consistently(func(g Gomega) {
			g.Expect(workerPods(ctx, g, tj)).To(BeEmpty())
			g.Expect(getJob(ctx, g, tj).Status.Phase).To(Equal(kubetrainv1alpha1.PhaseSucceeded))
		}).WithTimeout(consistently).WithPolling(interval).Should(Succeed())
		// The new manager is reconciling: a new job still gets its pod.
		waitPod(ctx, createJob(ctx, newJob("after-restart", ns)), 0)
	})
})

func patchSuspend(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob, suspend bool) {
	patch := client.MergeFrom(tj.DeepCopy())
	tj.Spec.RunPolicy.Suspend = suspend
	Expect(k8sClient.Patch(ctx, tj, patch)).To(Succeed())
}

// applyProgress plays the trainer: it reports an epoch with server-side apply under a field manager
// of its own, as the trainer will.
func applyProgress(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob, epoch, epochs int32, acc float64) {
	u := map[string]any{
		"apiVersion": kubetrainv1alpha1.GroupVersion.String(), "kind": "TrainingJob",
		"metadata": map[string]any{"name": tj.Name, "namespace": tj.Namespace},
		"status": map[string]any{"progress": map[string]any{
			"epoch": epoch, "epochs": epochs, "epochText": fmtEpoch(epoch, epochs), "testAccuracy": acc, "loss": 0.5,
		}},
	}
	obj := unstructuredFrom(u)
	Expect(k8sClient.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(obj),
		client.FieldOwner("kubetrain-trainer"), client.ForceOwnership)).To(Succeed())
}
