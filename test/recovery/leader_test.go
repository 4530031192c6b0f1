package recovery

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

// Issue 12, scenario 8: two managers with leader election; the leader dies in the middle of a burst
// of new jobs.
var _ = Describe("Leader election", func() {
	const (
		jobs = 30
		// killAfter: the leader dies just after its 10th pod was created, before the status write
		// that records that job's attempt: the worst moment for the one that takes over.
		killAfter     = 10
		leaseDuration = 4 * time.Second
		renewDeadline = 3 * time.Second
		retryPeriod   = 500 * time.Millisecond
		// A follower retries every retryPeriod, with up to 1.2 times that as jitter, and takes the
		// lease once it has seen it unrenewed for leaseDuration. The slack is for a loaded machine,
		// and is well below the 15s default lease, which this bound would catch.
		takeoverBound = leaseDuration + 3*retryPeriod + 2*time.Second
	)

	It("hands over to the other manager within the lease when the leader dies mid-burst, doubling no pod and no status write", func(ctx context.Context) {
		ns := newNamespace(ctx)
		opts := suiteOptions()
		opts.LeaderElection = true
		opts.LeaderElectionID = ns + ".recovery.kubetrain.io"
		opts.LeaseDuration, opts.RenewDeadline, opts.RetryPeriod = leaseDuration, renewDeadline, retryPeriod

		leader := startManager(opts)
		DeferCleanup(func() { leader.stop() })
		Eventually(leader.mgr.Elected()).WithTimeout(timeout).Should(BeClosed())
		follower := startManager(opts)
		DeferCleanup(func() { follower.stop() })
		var followerElected atomic.Pointer[time.Time]
		go func() {
			<-follower.mgr.Elected()
			now := time.Now()
			followerElected.Store(&now)
		}()

		killed := make(chan time.Time, 1)
		var podsCreated atomic.Int32
		leader.log.setAfterResponse(func(r apiRequest) {
			if r.verb == "create" && r.resource == "pods" && r.code == 201 && podsCreated.Add(1) == killAfter {
				leader.log.kill()
				killed <- time.Now()
			}
		})

		// Every third job has two workers (and a Service).
		workers := func(i int) int32 {
			if i%3 == 2 {
				return 2
			}
			return 1
		}
		all := make([]*kubetrainv1alpha1.TrainingJob, jobs)
		create := func(from, to int) {
			for i := from; i < to; i++ {
				all[i] = createJob(ctx, newJob(fmt.Sprintf("burst-%02d", i), ns).Workers(workers(i)))
			}
		}
		create(0, jobs/2)
		var killedAt time.Time
		Eventually(killed).WithTimeout(timeout).Should(Receive(&killedAt), "the leader did not create %d pods", killAfter)
		Expect(followerElected.Load()).To(BeNil(), "the follower led while the leader held the lease")
		leader.crash()
		// The burst goes on while nobody leads.
		create(jobs/2, jobs)

		Eventually(func() *time.Time { return followerElected.Load() }).WithTimeout(takeoverBound).ShouldNot(BeNil())
		electedAt := *followerElected.Load()
		GinkgoWriter.Printf("the follower took over %s after the leader died\n", electedAt.Sub(killedAt))
		Expect(electedAt.Sub(killedAt)).To(BeNumerically("<=", takeoverBound), "time from the leader's death to the takeover")
		// Nor sooner than the dead leader's lease ran out: its last renewal held it for leaseDuration.
		renewals := leader.log.requests(func(r apiRequest) bool { return r.resource == "leases" && r.write() && r.code < 300 })
		Expect(renewals).NotTo(BeEmpty())
		lastRenewal := renewals[len(renewals)-1].at
		Expect(electedAt).To(BeTemporally(">=", lastRenewal.Add(leaseDuration-retryPeriod)),
			"the follower took the lease %s after the leader's last renewal", electedAt.Sub(lastRenewal))

		// The new leader brings every job to its first attempt's workers.
		Eventually(func(g Gomega) {
			for _, tj := range all {
				got := getJob(ctx, g, tj)
				g.Expect(got.Status.AttemptStartTime).NotTo(BeNil(), "job %s", tj.Name)
				g.Expect(got.Status.Phase).To(Equal(kubetrainv1alpha1.PhasePending), "job %s", tj.Name)
			}
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		waitIdle()

		var wantPods []string
		for _, tj := range all {
			got := getJob(ctx, Default, tj)
			Expect(got.Status.Attempt+got.Status.Restarts+got.Status.Disruptions+got.Status.Failures).To(BeZero(),
				"job %s restarted: %+v", tj.Name, got.Status)
			for rank := range tj.Spec.Workers {
				wantPods = append(wantPods, testutil.MakeWorkerPod(tj, rank, 0).Name)
			}
		}
		var pods []string
		for _, pod := range podsIn(ctx, Default, ns) {
			Expect(metav1.IsControlledBy(&pod, jobNamed(all, pod.Labels[kubetrainv1alpha1.LabelJobName]))).To(BeTrue(), "pod %s", pod.Name)
			pods = append(pods, pod.Name)
		}
		Expect(pods).To(ConsistOf(wantPods), "one pod per job, rank and attempt")

		// Every pod create either manager sent made a pod: none was sent twice.
		var created []string
		leaderCreates, followerCreates := leader.log.creates("pods", ns), follower.log.creates("pods", ns)
		for _, r := range append(leaderCreates, followerCreates...) {
			created = append(created, r.name)
		}
		Expect(created).To(ConsistOf(wantPods), "pod creates sent: leader %v, follower %v", names(leaderCreates), names(followerCreates))
		Expect(len(leaderCreates)).To(BeNumerically(">=", killAfter))
		Expect(followerCreates).NotTo(BeEmpty())

		// Each job's status was written once, by one of them. A pass of the new leader that
		// planned from a copy of the job older than its own last status write sends a second write
		// that the API server refuses (409 Conflict: it carries the resourceVersion it read), so it
		// changes nothing; see statusWritesAccepted.
		statusWrites := map[string][]apiRequest{}
		for _, r := range append(leader.log.statusWrites(ns), follower.log.statusWrites(ns)...) {
			statusWrites[r.name] = append(statusWrites[r.name], r)
		}
		for _, tj := range all {
			Expect(statusWrites[tj.Name]).To(HaveLen(1), "status writes of %s: %v", tj.Name, names(statusWrites[tj.Name]))
		}

		// A job of two workers has its Service, however often the managers tried to create it.
		var svcs corev1.ServiceList
		Expect(k8sClient.List(ctx, &svcs, client.InNamespace(ns))).To(Succeed())
		var wantSvcs []string
		for _, tj := range all {
			if tj.Spec.Workers > 1 {
				wantSvcs = append(wantSvcs, tj.Name)
			}
		}
		Expect(svcs.Items).To(HaveLen(len(wantSvcs)))
	})
})

func jobNamed(jobs []*kubetrainv1alpha1.TrainingJob, name string) *kubetrainv1alpha1.TrainingJob {
	for _, tj := range jobs {
		if tj.Name == name {
			return tj
		}
	}
	Fail("no job " + name)
	return nil
}
