package chaos

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

// idleReconciles is how many passes a converged job gets with nothing to do.
const idleReconciles = 100

var _ = Describe("A converged job", Ordered, func() {
	var (
		ns   string
		run  *managerRun
		jobs []*kubetrainv1alpha1.TrainingJob
	)
	BeforeAll(func(ctx context.Context) {
		ns = newNamespace(ctx)
		run = startManager(newFaults(4))
		DeferCleanup(run.stop)
		jobs = []*kubetrainv1alpha1.TrainingJob{createJob(ctx, "idle-one", ns, 1), createJob(ctx, "idle-two", ns, 2)}
		Eventually(func(g Gomega) {
			g.Expect(listPods(ctx, g, ns)).To(HaveLen(3))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	})

	// expectNoWrites makes the manager reconcile the settled jobs idleReconciles times, touching an
	// annotation of a job or of a pod before each pass, and expects not one write: no status
	// write, no pod, no event.
	expectNoWrites := func(ctx context.Context) {
		settle(run.faults)
		before, passes := run.faults.writeCounts(), reconciles()
		pods := listPods(ctx, Default, ns)
		for i := range idleReconciles {
			var obj client.Object
			if i%2 == 0 {
				obj = jobs[i/2%len(jobs)]
			} else {
				obj = &pods[i/2%len(pods)]
			}
			touch(ctx, obj, i)
			// One pass for each touch: the next touch waits for it, so that none are merged.
			Eventually(reconciles).WithTimeout(timeout).WithPolling(interval / 5).Should(BeNumerically(">", passes+i))
		}
		settle(run.faults)
		Expect(reconciles() - passes).To(BeNumerically(">=", idleReconciles))
		Expect(run.faults.writeCounts()).To(Equal(before), "writes before: %s; after: %s",
			showWrites(before), showWrites(run.faults.writeCounts()))
	}

	It("makes no writes while Running", func(ctx context.Context) {
		runPendingPods(ctx, ns)
		for _, tj := range jobs {
			Eventually(func(g Gomega) {
				g.Expect(getJob(ctx, g, tj).Status.Phase).To(Equal(kubetrainv1alpha1.PhaseRunning))
			}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		}
		expectNoWrites(ctx)
	})

	It("makes no writes once Succeeded", func(ctx context.Context) {
		for _, pod := range listPods(ctx, Default, ns) {
			setPodStatus(ctx, &pod, func(p *testutil.PodWrapper) { p.Exited(0, "") })
		}
		for _, tj := range jobs {
			Eventually(func(g Gomega) {
				g.Expect(getJob(ctx, g, tj).Status.Phase).To(Equal(kubetrainv1alpha1.PhaseSucceeded))
			}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		}
		Expect(listPods(ctx, Default, ns)).To(HaveEach(HaveField("Status.Phase", corev1.PodSucceeded)))
		expectNoWrites(ctx)
	})
})

var _ = Describe("A restarted job of several workers", func() {
	It("creates its headless Service once, not on every attempt", func(ctx context.Context) {
		ns := newNamespace(ctx)
		run := startManager(newFaults(5))
		DeferCleanup(run.stop)
		tj := createJob(ctx, "twice", ns, 2)
		for attempt := range 3 {
			Eventually(func(g Gomega) {
				g.Expect(getJob(ctx, g, tj).Status.Attempt).To(Equal(int32(attempt)))
				g.Expect(listPods(ctx, g, ns)).To(ContainElement(HaveField("Name", testutil.MakeWorkerPod(tj, 0, int32(attempt)).Name)))
			}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
			pod := &corev1.Pod{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: testutil.MakeWorkerPod(tj, 0, int32(attempt)).Name}, pod)).To(Succeed())
			setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Exited(75, "") })
		}
		Eventually(func(g Gomega) {
			g.Expect(getJob(ctx, g, tj).Status.Attempt).To(Equal(int32(3)))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		settle(run.faults)
		Expect(run.faults.writeCounts()).To(HaveKeyWithValue("POST services", 1), "%s", showWrites(run.faults.writeCounts()))
	})
})
