package chaos

import (
	"context"
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

// crashRestarts is how many times the manager is killed mid-write and started again.
const crashRestarts = 50

// writesToStart is how many writes a manager makes at the least to start a new job of so many
// workers: the trainer's ServiceAccount, Role and RoleBinding (which every new manager run
// creates again, meeting AlreadyExists), the worker Service of a job of several workers, one pod
// per worker, one status write and one event.
func writesToStart(workers int32) int {
	n := 3 + int(workers) + 2
	if workers > 1 {
		n++
	}
	return n
}

var _ = Describe("A manager killed while it creates pods", func() {
	It("never creates a worker twice, and every job reaches Running", func(ctx context.Context) {
		ns := newNamespace(ctx)
		var jobs []*kubetrainv1alpha1.TrainingJob
		crashedOn := map[string]int{}
		for i := range crashRestarts {
			// A new job for each run, of one worker and of two in turn. Half the runs crash after
			// each k-th write in turn: in the middle of the trainer identity, of the Service,
			// between the pods of a job, before or after its status write, at the event, or in
			// the middle of finishing what the previous run left undone. The other half crash
			// right after creating the first or the second pod.
			workers := int32(1 + i%2)
			f := newFaults(uint64(i))
			if i%4 < 2 {
				f.crashAfter = 1 + (i/4)%writesToStart(workers)
			} else {
				f.crashOn, f.crashAfter = "POST pods", 1+(i/4)%int(workers)
			}
			run := startManager(f)
			jobs = append(jobs, createJob(ctx, fmt.Sprintf("crash-%02d", i), ns, workers))
			run.awaitCrash()
			crashedOn[f.crashedOn]++
			expectPodInvariants(ctx, ns, fmt.Sprintf("after run %d crashed after write %d (writes: %s)",
				i, f.crashAfter, showWrites(f.writeCounts())))
			// The kubelet starts whatever pods there are while no manager runs.
			runPendingPods(ctx, ns)
		}

		AddReportEntry("crashes, by the write crashed after", showWrites(crashedOn))

		f := newFaults(crashRestarts)
		run := startManager(f)
		defer run.stop()
		Eventually(func(g Gomega) {
			runPendingPods(ctx, ns) // the pods the last runs did not get to create
			for _, tj := range jobs {
				got := getJob(ctx, g, tj)
				g.Expect(got.Status.Phase).To(Equal(kubetrainv1alpha1.PhaseRunning), "job %s", tj.Name)
			}
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		expectPodInvariants(ctx, ns, "after the last restart")

		// A crash is not a failure: no job lost its first attempt to one.
		pods := listPods(ctx, Default, ns)
		want := 0
		for _, tj := range jobs {
			got := getJob(ctx, Default, tj)
			Expect(got.Status.Attempt).To(BeZero(), "job %s restarted", tj.Name)
			Expect(got.Status.Restarts).To(BeZero(), "job %s restarted", tj.Name)
			want += int(tj.Spec.Workers)
		}
		Expect(pods).To(HaveLen(want), "every job has exactly its workers of attempt 0")
	})
})

var _ = Describe("A manager killed while it ends a failed attempt", func() {
	// The pass that sees rank 0 fail records the failure and stops rank 1: the manager dies right
	// after the one or the other reached the API server.
	for _, crashAfter := range []string{"PATCH trainingjobs/status", "DELETE pods"} {
		It("counts the failure once and stops every worker of the attempt, dying after "+crashAfter, func(ctx context.Context) {
			ns := newNamespace(ctx)
			f := newFaults(6)
			run := startManager(f)
			tj := createJob(ctx, "ends", ns, 2)
			Eventually(func(g Gomega) {
				runPendingPods(ctx, ns)
				g.Expect(getJob(ctx, g, tj).Status.Phase).To(Equal(kubetrainv1alpha1.PhaseRunning))
			}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
			settle(f)
			run.stop()

			f = newFaults(7)
			f.crashOn, f.crashAfter = crashAfter, 1
			run = startManager(f)
			endWorker(ctx, getJob(ctx, Default, tj), 0, func(p *testutil.PodWrapper) { p.Exited(contract.ExitRetriable, "storage unreachable") })
			run.awaitCrash()

			run = startManager(newFaults(8))
			defer run.stop()
			var got *kubetrainv1alpha1.TrainingJob
			Eventually(func(g Gomega) {
				runPendingPods(ctx, ns)
				got = getJob(ctx, g, tj)
				g.Expect(got.Status.Attempt).To(Equal(int32(1)))
				g.Expect(got.Status.Phase).To(Equal(kubetrainv1alpha1.PhaseRunning), describeJob(ctx, got))
			}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
			Expect(got.Status.Failures).To(Equal(int32(1)), "the failed attempt was not counted as a failure")
			Expect(got.Status.Disruptions).To(BeZero(), "the failed attempt was taken for a disruption: %s", describeJob(ctx, got))
			expectPodInvariants(ctx, ns, "after the restart")
			for _, pod := range listPods(ctx, Default, ns) {
				if _, _, attempt, _ := workerOf(&pod); attempt == 0 {
					Expect(live(&pod)).To(BeFalse(), "pod %s of the failed attempt still runs", pod.Name)
				}
			}
		})
	}
})
