package chaos

import (
	"context"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/internal/progress"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

const (
	// conflictRate is the fraction of the manager's status writes refused with 409 Conflict.
	conflictRate = 0.3
	// stormEpochs is how many epochs each trainer reports; it checkpoints every other one.
	stormEpochs = 20
	// epochTime paces the trainers, so that the manager's passes (a checkpoint condition to write
	// after each checkpoint) fall between their reports rather than after all of them.
	epochTime = 40 * time.Millisecond
)

var _ = Describe("A storm of status conflicts", func() {
	It("loses no progress, never moves an epoch back, and never revives a finished job", func(ctx context.Context) {
		ns := newNamespace(ctx)
		seen := recordJobs(ctx, ns)
		f := newFaults(3)
		f.conflictRate = conflictRate
		run := startManager(f)
		defer run.stop()

		checkpointed := func(w *testutil.TrainingJobWrapper) { w.Checkpoint("s3://ckpt/runs", "") }
		// How each job's workers end: all succeed, or rank `failRank` fails permanently.
		type outcome struct {
			tj       *kubetrainv1alpha1.TrainingJob
			phase    kubetrainv1alpha1.Phase
			failRank int
		}
		outcomes := []outcome{
			{createJob(ctx, "storm-a", ns, 1, checkpointed), kubetrainv1alpha1.PhaseSucceeded, -1},
			{createJob(ctx, "storm-b", ns, 2, checkpointed), kubetrainv1alpha1.PhaseSucceeded, -1},
			{createJob(ctx, "storm-c", ns, 1, checkpointed), kubetrainv1alpha1.PhaseFailed, 0},
			{createJob(ctx, "storm-d", ns, 2, checkpointed), kubetrainv1alpha1.PhaseFailed, 1},
		}
		Eventually(func(g Gomega) {
			g.Expect(listPods(ctx, g, ns)).To(HaveLen(6))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		runPendingPods(ctx, ns)

		var wg sync.WaitGroup
		lastURI := map[string]string{}
		for _, o := range outcomes {
			tj := o.tj
			lastURI[tj.Name] = checkpointURI(getJob(ctx, Default, tj), stormEpochs)
			wg.Go(func() {
				defer GinkgoRecover()
				// The trainer, as the bundled one reports: each epoch, and each checkpoint.
				r, err := progress.NewStatusReporter(ctx, cfg, ns, tj.Name, "")
				Expect(err).NotTo(HaveOccurred())
				r.OnError = func(err error) { Fail(fmt.Sprintf("trainer of %s: %v", tj.Name, err)) }
				for e := 1; e <= stormEpochs; e++ {
					r.Report(epochReport(e))
					if e%2 == 0 {
						r.Checkpointed(checkpointURI(getJob(ctx, Default, tj), e), e, 0, 1<<20, time.Now())
					}
					time.Sleep(epochTime)
				}
				// The workers exit, and the job ends.
				for _, pod := range listPods(ctx, Default, ns) {
					if job, rank, _, err := workerOf(&pod); err == nil && job == tj.Name {
						code := int32(contract.ExitSucceeded)
						if rank == o.failRank {
							code = contract.ExitInvalidData
						}
						setPodStatus(ctx, &pod, func(p *testutil.PodWrapper) { p.Exited(code, "") })
					}
				}
				Eventually(func(g Gomega) {
					g.Expect(getJob(ctx, g, tj).Status.Phase).To(Equal(o.phase))
				}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
				// A late write, as from a worker still in its grace period, while the manager's
				// writes still conflict: the job stays finished.
				r.Report(epochReport(stormEpochs))
			})
		}
		wg.Wait()

		for _, o := range outcomes {
			tj := o.tj
			var got *kubetrainv1alpha1.TrainingJob
			// The manager catches up with the trainer's last checkpoint, through the conflicts.
			Eventually(func(g Gomega) {
				got = getJob(ctx, g, tj)
				c := apimeta.FindStatusCondition(got.Status.Conditions, kubetrainv1alpha1.ConditionCheckpointed)
				g.Expect(c).NotTo(BeNil())
				g.Expect(c.Message).To(Equal(fmt.Sprintf("epoch %d: %s", stormEpochs, contract.ShowURI(lastURI[tj.Name]))))
			}).WithTimeout(timeout).WithPolling(interval).Should(Succeed(), "job %s", tj.Name)
			Expect(got.Status.Phase).To(Equal(o.phase), "job %s", tj.Name)

			// The trainer's last report, whole.
			want := epochReport(stormEpochs)
			Expect(got.Status.Progress).NotTo(BeNil(), "job %s", tj.Name)
			Expect(got.Status.Progress.Epoch).To(Equal(int32(want.Epoch)))
			Expect(got.Status.Progress.Epochs).To(Equal(int32(want.Epochs)))
			Expect(got.Status.Progress.EpochText).To(Equal(fmt.Sprintf("%d/%d", want.Epoch, want.Epochs)))
			Expect(got.Status.Progress.Loss).To(Equal(want.Loss))
			Expect(got.Status.Progress.TestAccuracy).To(Equal(want.TestAccuracy))
			Expect(got.Status.History).To(HaveLen(stormEpochs))
			for i, h := range got.Status.History {
				Expect(h.Epoch).To(Equal(int32(i+1)), "job %s: history", tj.Name)
				Expect(h.Loss).To(Equal(epochReport(i+1).Loss), "job %s: history", tj.Name)
			}
			Expect(got.Status.LatestCheckpoint).NotTo(BeNil())
			Expect(got.Status.LatestCheckpoint.URI).To(Equal(lastURI[tj.Name]))
			Expect(got.Status.LatestCheckpoint.Epoch).To(Equal(int32(stormEpochs)))
		}

		// Every version of every job the API server served, in order.
		versions := 0
		for _, o := range outcomes {
			Eventually(func(g Gomega) {
				history := seen.of(o.tj.Name)
				g.Expect(history).NotTo(BeEmpty())
				g.Expect(history[len(history)-1]).To(Equal(jobVersion{phase: o.phase, epoch: stormEpochs}))
			}).WithTimeout(timeout).WithPolling(interval).Should(Succeed(), "job %s: the watch never saw its final version", o.tj.Name)
			history := seen.of(o.tj.Name)
			versions += len(history)
			var epoch int32
			var terminal kubetrainv1alpha1.Phase
			for i, v := range history {
				Expect(v.epoch).To(BeNumerically(">=", epoch), "job %s: the epoch went back at version %d of %v", o.tj.Name, i, history)
				epoch = v.epoch
				if terminal != "" {
					Expect(v.phase).To(Equal(terminal), "job %s: a finished job changed phase at version %d of %v", o.tj.Name, i, history)
				}
				if v.phase == kubetrainv1alpha1.PhaseSucceeded || v.phase == kubetrainv1alpha1.PhaseFailed {
					terminal = v.phase
				}
			}
			Expect(terminal).To(Equal(o.phase), "job %s", o.tj.Name)
		}
		// The storm did happen: the manager's status writes met many conflicts.
		Expect(f.conflicts()).To(BeNumerically(">=", 10), "writes: %s", showWrites(f.writeCounts()))
		AddReportEntry("conflict storm", fmt.Sprintf("%d versions of 4 jobs observed; %d of the manager's status writes refused with 409; writes: %s",
			versions, f.conflicts(), showWrites(f.writeCounts())))
	})
})

var _ = Describe("A conflict on the status write that ends an attempt", func() {
	It("counts the failed attempt once, as a failure", func(ctx context.Context) {
		ns := newNamespace(ctx)
		f := newFaults(5)
		run := startManager(f)
		defer run.stop()
		tj := createJob(ctx, "fails-once", ns, 2)
		Eventually(func(g Gomega) {
			runPendingPods(ctx, ns)
			g.Expect(getJob(ctx, g, tj).Status.Phase).To(Equal(kubetrainv1alpha1.PhaseRunning))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		settle(f)

		// Rank 0 fails; the pass that sees it stops rank 1 and records the failure, and that
		// write meets a conflict (the trainer reported, say): the next pass must come to the
		// same verdict, though it finds rank 1 gone.
		f.conflictOnNext(tj.Name, 1)
		endWorker(ctx, getJob(ctx, Default, tj), 0, func(p *testutil.PodWrapper) { p.Exited(contract.ExitRetriable, "storage unreachable") })
		var got *kubetrainv1alpha1.TrainingJob
		Eventually(func(g Gomega) {
			runPendingPods(ctx, ns)
			got = getJob(ctx, g, tj)
			g.Expect(got.Status.Attempt).To(Equal(int32(1)))
			g.Expect(got.Status.Phase).To(Equal(kubetrainv1alpha1.PhaseRunning))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		Expect(f.pendingConflicts(tj.Name)).To(BeZero(), "the conflict was never injected")
		Expect(got.Status.Failures).To(Equal(int32(1)), "the failed attempt was not counted as a failure")
		Expect(got.Status.Disruptions).To(BeZero(), "the failed attempt was taken for a disruption: %s", describeJob(ctx, got))
	})
})

// epochReport is the trainer's report for an epoch.
func epochReport(e int) contract.Progress {
	return contract.Progress{Epoch: e, Epochs: stormEpochs, Loss: 1 / float64(e), TestAccuracy: float64(e) / 40, Time: time.Now()}
}

// checkpointURI is where the trainer of tj commits its checkpoint of an epoch: under the job's own
// prefix, as the controller requires.
func checkpointURI(tj *kubetrainv1alpha1.TrainingJob, epoch int) string {
	return fmt.Sprintf("s3://ckpt/runs/%s/%s/%s/rank-0/ckpt-%06d-ab/manifest.json", tj.Namespace, tj.Name, tj.UID, epoch)
}

// jobVersion is what one version of a job said.
type jobVersion struct {
	phase kubetrainv1alpha1.Phase
	epoch int32
}

func (v jobVersion) String() string { return fmt.Sprintf("%s@%d", v.phase, v.epoch) }

// jobRecorder keeps every version of the namespace's jobs that a watch delivers.
type jobRecorder struct {
	mu   sync.Mutex
	seen map[string][]jobVersion
}

// recordJobs watches the namespace's jobs until the spec ends.
func recordJobs(ctx context.Context, ns string) *jobRecorder {
	w, err := k8sClient.Watch(ctx, &kubetrainv1alpha1.TrainingJobList{}, client.InNamespace(ns))
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(w.Stop)
	rec := &jobRecorder{seen: map[string][]jobVersion{}}
	go func() {
		for ev := range w.ResultChan() {
			tj, ok := ev.Object.(*kubetrainv1alpha1.TrainingJob)
			if !ok || ev.Type == watch.Bookmark {
				continue
			}
			v := jobVersion{phase: tj.Status.Phase}
			if tj.Status.Progress != nil {
				v.epoch = tj.Status.Progress.Epoch
			}
			rec.mu.Lock()
			rec.seen[tj.Name] = append(rec.seen[tj.Name], v)
			rec.mu.Unlock()
		}
	}()
	return rec
}

func (r *jobRecorder) of(job string) []jobVersion {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]jobVersion(nil), r.seen[job]...)
}
