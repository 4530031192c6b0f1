package integration

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/internal/progress"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

var _ = Describe("Trainer progress in status", func() {
	It("records epochs and checkpoints, bounded, and the controller never overwrites them", func(ctx context.Context) {
		ns := newNamespace(ctx)
		tj := createJob(ctx, newJob("reported", ns).Epochs(120).Checkpoint("s3://ckpt/runs", ""))
		pod := waitPod(ctx, tj, 0)
		expectPhase(ctx, tj, kubetrainv1alpha1.PhasePending)

		r, err := progress.NewStatusReporter(ctx, cfg, ns, "reported", "")
		Expect(err).NotTo(HaveOccurred())
		var errs []error
		r.OnError = func(err error) { errs = append(errs, err) }
		for e := 1; e <= 105; e++ {
			r.Report(contract.Progress{Epoch: e, Epochs: 120, Loss: 1 / float64(e), TestAccuracy: float64(e) / 200, Time: time.Now()})
		}
		r.Checkpointed("s3://ckpt/runs/"+ns+"/reported/"+string(tj.UID)+"/rank-0/ckpt-000105-ab/manifest.json", 105, 0, 1<<20, time.Now())
		Expect(errs).To(BeEmpty())

		// The controller writes status (the worker starts running) after the trainer did.
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Phase(corev1.PodRunning) })
		got := expectPhase(ctx, tj, kubetrainv1alpha1.PhaseRunning)
		Expect(got.Status.Progress).NotTo(BeNil())
		Expect(got.Status.Progress.EpochText).To(Equal("105/120"))
		Expect(got.Status.History).To(HaveLen(progress.HistoryLimit))
		Expect(got.Status.History[0].Epoch).To(Equal(int32(6)), "the oldest epochs are dropped first")
		Expect(got.Status.LatestCheckpoint.Epoch).To(Equal(int32(105)))

		// The controller shows the checkpoint as a condition and in kubectl get.
		Eventually(func(g Gomega) {
			c := condition(getJob(ctx, g, tj), kubetrainv1alpha1.ConditionCheckpointed)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Message).To(ContainSubstring("epoch 105: s3://ckpt/runs/"))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		Expect(kubectl("get", "tj", "reported", "-n", ns)).To(MatchRegexp(`reported\s+Running\s+1/1\s+105/120\s+0\.525\s+0\s+\d+s\s+`))

		// A resumed attempt continues the history from where it restarted.
		r2, err := progress.NewStatusReporter(ctx, cfg, ns, "reported", "")
		Expect(err).NotTo(HaveOccurred())
		r2.Report(contract.Progress{Epoch: 104, Epochs: 120, Time: time.Now()})
		got = getJob(ctx, Default, tj)
		Expect(got.Status.History[len(got.Status.History)-1].Epoch).To(Equal(int32(104)))
		Expect(got.Status.History).To(HaveLen(progress.HistoryLimit - 1))
		Expect(got.Status.LatestCheckpoint).NotTo(BeNil(), "a progress report removed the checkpoint")
		Expect(got.Status.Phase).To(Equal(kubetrainv1alpha1.PhaseRunning), "the trainer's write touched the controller's fields")
	})

	It("refuses the writes of a worker of a deleted job to a new job of the same name", func(ctx context.Context) {
		ns := newNamespace(ctx)
		old := createJob(ctx, newJob("again", ns))
		waitPod(ctx, old, 0)
		r, err := progress.NewStatusReporter(ctx, cfg, ns, "again", old.UID)
		Expect(err).NotTo(HaveOccurred())
		var errs []error
		r.OnError = func(err error) { errs = append(errs, err) }
		r.Report(contract.Progress{Epoch: 1, Epochs: 10, Time: time.Now()})
		Expect(errs).To(BeEmpty())

		// kubectl delete; kubectl apply: the old worker is still in its grace period.
		Expect(k8sClient.Delete(ctx, old)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(old), &kubetrainv1alpha1.TrainingJob{}))
		}).WithTimeout(timeout).WithPolling(interval).Should(BeTrue())
		fresh := createJob(ctx, newJob("again", ns))
		r.Report(contract.Progress{Epoch: 7, Epochs: 10, Time: time.Now()})
		Expect(errs).To(HaveLen(1))
		Expect(errs[0].Error()).To(ContainSubstring("deleted and created again"))
		Expect(getJob(ctx, Default, fresh).Status.Progress).To(BeNil(), "the old worker's progress reached the new job")

		// A reporter started for the old job refuses to start on the new one.
		_, err = progress.NewStatusReporter(ctx, cfg, ns, "again", old.UID)
		Expect(err).To(MatchError(ContainSubstring("deleted and created again")))
	})
})
