package recovery

import (
	"context"

	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

// Issue 12, scenario 5: a finished job is never run again, whatever happens to its pods and however
// often the manager restarts.
var _ = Describe("Terminal stays terminal", func() {
	const restarts = 10

	It("creates no pod for a Succeeded and a Failed job whose pods are gone, across 10 manager restarts", func(ctx context.Context) {
		ns := newNamespace(ctx)
		run := startManager(suiteOptions())
		DeferCleanup(func() { run.stop() })

		succeeded := createJob(ctx, newJob("done", ns).Workers(2))
		failed := createJob(ctx, newJob("broken", ns).BackoffLimit(0))
		for _, pod := range waitPods(ctx, succeeded, 0) {
			setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Exited(0, `{"outcome":"Succeeded"}`) })
		}
		setPodStatus(ctx, waitPods(ctx, failed, 0)[0], func(p *testutil.PodWrapper) { p.Exited(1, "boom") })
		jobs := []*kubetrainv1alpha1.TrainingJob{
			expectPhase(ctx, succeeded, kubetrainv1alpha1.PhaseSucceeded),
			expectPhase(ctx, failed, kubetrainv1alpha1.PhaseFailed),
		}
		Expect(condition(jobs[1], kubetrainv1alpha1.ConditionFailed).Reason).To(Equal(kubetrainv1alpha1.ReasonBackoffLimit))
		waitIdle()
		writesBefore := len(run.log.writesIn(ns))

		// The pods go while the manager watches (a node drained, a user's cleanup)...
		before := reconcileCount()
		Expect(k8sClient.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(ns), client.GracePeriodSeconds(0))).To(Succeed())
		waitReconciled(before, len(jobs))
		expectUnchanged(ctx, ns, jobs)
		Expect(run.log.writesIn(ns)[writesBefore:]).To(BeEmpty(), "writes after the pods were deleted")
		run.stop()

		// ...and every manager after it finds the jobs without pods in its first list.
		for i := range restarts {
			before := reconcileCount()
			run = startManager(suiteOptions())
			waitReconciled(before, jobsInCluster(ctx))
			run.stop()
			Expect(run.log.writesIn(ns)).To(BeEmpty(), "restart %d: writes %v", i+1, run.log.writesIn(ns))
			expectUnchanged(ctx, ns, jobs)
		}
	})
})

// expectUnchanged checks that namespace ns has no pod and that the jobs' status is still exactly
// as given.
func expectUnchanged(ctx context.Context, ns string, jobs []*kubetrainv1alpha1.TrainingJob) {
	Expect(podsIn(ctx, Default, ns)).To(BeEmpty())
	for _, tj := range jobs {
		got := getJob(ctx, Default, tj)
		Expect(cmp.Diff(tj.Status, got.Status)).To(BeEmpty(), "status of %s/%s changed (-was,+now)", tj.Namespace, tj.Name)
	}
}

// jobsInCluster counts the TrainingJobs of every namespace: each is in a new manager's first list.
func jobsInCluster(ctx context.Context) int {
	var list kubetrainv1alpha1.TrainingJobList
	Expect(k8sClient.List(ctx, &list)).To(Succeed())
	return len(list.Items)
}
