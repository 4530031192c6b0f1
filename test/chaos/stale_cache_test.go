package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/internal/progress"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

const (
	// staleJobs is how many jobs the stale-cache spec runs at once.
	staleJobs = 24
	// minStalePasses is the least number of passes the spec must drive for its verdict to mean
	// anything.
	minStalePasses = 200
)

// staleWatch delays each pod watch chunk by 0.5 to 2 s: the manager's pod cache lags behind the
// API server by as much, and in no fixed order relative to its job cache.
func staleWatch(rng *rand.Rand) time.Duration {
	return 500*time.Millisecond + time.Duration(rng.Int64N(int64(1500*time.Millisecond)))
}

var podName = regexp.MustCompile(`^(.+)-w(\d+)-a(\d+)$`)

var _ = Describe("A manager whose pod cache lags", func() {
	It("creates each pod once, duplicates none and deletes only what the test ended", func(ctx context.Context) {
		ns := newNamespace(ctx)
		f := newFaults(2)
		f.podWatchDelay = staleWatch
		passes := reconciles()
		run := startManager(f)
		defer run.stop()
		violations := watchPodInvariants(ctx, ns)

		var jobs []*kubetrainv1alpha1.TrainingJob
		for i := range staleJobs {
			jobs = append(jobs, createJob(ctx, fmt.Sprintf("stale-%02d", i), ns, int32(1+i%2)))
		}
		// ended holds each attempt the test ended, "<job>/<attempt>": its other workers are the
		// only pods the manager may delete. attempts is the attempt each job must be at.
		ended := map[string]bool{}
		attempts := map[string]int32{}
		endAttempt := func(tj *kubetrainv1alpha1.TrainingJob, rank int32, mutate func(*testutil.PodWrapper)) {
			endWorker(ctx, tj, rank, mutate)
			ended[fmt.Sprintf("%s/%d", tj.Name, tj.Status.Attempt)] = true
			attempts[tj.Name] = tj.Status.Attempt + 1
		}
		// runAll plays the kubelet until every job runs its next attempt.
		runAll := func() {
			Eventually(func(g Gomega) {
				runPendingPods(ctx, ns)
				for _, tj := range jobs {
					got := getJob(ctx, g, tj)
					g.Expect(got.Status.Attempt).To(Equal(attempts[tj.Name]), "job %s: %s", tj.Name, describeJob(ctx, got))
					g.Expect(got.Status.Phase).To(Equal(kubetrainv1alpha1.PhaseRunning), "job %s: %s", tj.Name, describeJob(ctx, got))
				}
			}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		}
		runAll()

		for round := range 2 {
			for i, tj := range jobs {
				cur := getJob(ctx, Default, tj)
				switch (i + round) % 4 {
				case 0: // rank 0 fails; the attempt is retried after a backoff
					endAttempt(cur, 0, func(p *testutil.PodWrapper) { p.Exited(contract.ExitRetriable, "storage unreachable") })
				case 1: // the last rank is preempted; the attempt is retried at once
					endAttempt(cur, cur.Spec.Workers-1, func(p *testutil.PodWrapper) { p.Disrupted("PreemptionByScheduler") })
				case 2: // someone annotates the job and its pods
					for n := range 3 {
						touch(ctx, tj, n)
						for _, pod := range listPods(ctx, Default, ns) {
							if pod.Labels[kubetrainv1alpha1.LabelJobName] == tj.Name {
								touch(ctx, &pod, n)
							}
						}
					}
				case 3: // the trainer reports progress
					r, err := progress.NewStatusReporter(ctx, cfg, ns, tj.Name, "")
					Expect(err).NotTo(HaveOccurred())
					for e := 1; e <= 3; e++ {
						r.Report(contract.Progress{Epoch: 3*round + e, Epochs: 10, Time: time.Now()})
					}
				}
			}
			runAll()
		}
		// Half the jobs finish.
		for i, tj := range jobs {
			if i%2 == 0 {
				for rank := range tj.Spec.Workers {
					endWorker(ctx, getJob(ctx, Default, tj), rank, func(p *testutil.PodWrapper) { p.Exited(0, "") })
				}
			}
		}
		for i, tj := range jobs {
			want := kubetrainv1alpha1.PhaseRunning
			if i%2 == 0 {
				want = kubetrainv1alpha1.PhaseSucceeded
			}
			awaitPhase(ctx, []*kubetrainv1alpha1.TrainingJob{tj}, want)
		}
		settle(f)

		Expect(violations()).To(BeEmpty())
		expectPodInvariants(ctx, ns, "at the end")
		Expect(reconciles()-passes).To(BeNumerically(">=", minStalePasses), "the spec drove too few passes to mean anything")

		// Each attempt's workers were created once: the pods that exist, and those the manager
		// deleted because the test ended their attempt, are exactly the workers of every attempt.
		exists := map[string]bool{}
		for _, pod := range listPods(ctx, Default, ns) {
			exists[pod.Name] = true
		}
		deleted := map[string]bool{}
		for _, name := range f.deletedPods() {
			m := podName.FindStringSubmatch(name)
			Expect(m).NotTo(BeNil(), "the manager deleted %s, not a worker", name)
			Expect(ended[m[1]+"/"+m[3]]).To(BeTrue(), "the manager deleted %s, of an attempt the test did not end", name)
			Expect(exists[name]).To(BeFalse(), "the manager deleted %s, which still exists", name)
			Expect(deleted[name]).To(BeFalse(), "the manager deleted %s twice", name)
			deleted[name] = true
		}
		want := 0
		for _, tj := range jobs {
			got := getJob(ctx, Default, tj)
			for attempt := range got.Status.Attempt + 1 {
				for rank := range got.Spec.Workers {
					name := fmt.Sprintf("%s-w%d-a%d", tj.Name, rank, attempt)
					Expect(exists[name] || deleted[name]).To(BeTrue(), "pod %s was never created, or removed by no one", name)
					want++
				}
			}
		}
		writes := f.writeCounts()
		Expect(writes["POST pods"]).To(Equal(want), "pod create requests, for %d pods; writes: %s", want, showWrites(writes))
		AddReportEntry("stale cache", fmt.Sprintf("%d passes; %d pods; %d pod deletions; writes: %s",
			reconciles()-passes, want, len(f.deletedPods()), showWrites(writes)))
	})
})

// watchPodInvariants checks the namespace's pods against podViolations every interval until the
// spec ends, and returns what it found so far.
func watchPodInvariants(ctx context.Context, ns string) func() []string {
	var mu sync.Mutex
	var found []string
	ctx, cancel := context.WithCancel(ctx)
	DeferCleanup(cancel)
	go func() {
		defer GinkgoRecover()
		for ctx.Err() == nil {
			var pods corev1.PodList
			if err := k8sClient.List(ctx, &pods, client.InNamespace(ns)); err == nil {
				if v := podViolations(pods.Items); len(v) > 0 {
					mu.Lock()
					found = append(found, v...)
					mu.Unlock()
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(interval):
			}
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), found...)
	}
}

// awaitPhase waits until every job is in phase.
func awaitPhase(ctx context.Context, jobs []*kubetrainv1alpha1.TrainingJob, phase kubetrainv1alpha1.Phase) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		for _, tj := range jobs {
			got := getJob(ctx, g, tj)
			g.Expect(got.Status.Phase).To(Equal(phase), "job %s: %s", tj.Name, describeJob(ctx, got))
		}
	}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
}

// endWorker ends a worker of the job's current attempt as mutate says.
func endWorker(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob, rank int32, mutate func(*testutil.PodWrapper)) {
	pod := &corev1.Pod{}
	name := fmt.Sprintf("%s-w%d-a%d", tj.Name, rank, tj.Status.Attempt)
	Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: tj.Namespace, Name: name}, pod)).To(Succeed())
	setPodStatus(ctx, pod, mutate)
}

// touch changes an annotation of obj: an update that asks nothing of the manager.
func touch(ctx context.Context, obj client.Object, n int) {
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{"chaos.kubetrain.io/touch":%q}}}`, strconv.Itoa(n))
	Expect(k8sClient.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch))).To(Succeed())
}

// describeJob is a job's status and pods, for failure messages.
func describeJob(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob) string {
	s := fmt.Sprintf("attempt %d, started %v, workers %+v, conditions:", tj.Status.Attempt, tj.Status.AttemptStartTime, tj.Status.Workers)
	for _, c := range tj.Status.Conditions {
		s += fmt.Sprintf(" %s=%s (%s: %s);", c.Type, c.Status, c.Reason, c.Message)
	}
	s += " pods:"
	for _, pod := range listPods(ctx, Default, tj.Namespace) {
		if pod.Labels[kubetrainv1alpha1.LabelJobName] == tj.Name {
			s += fmt.Sprintf(" %s %s rv %s deleting=%v;", pod.Name, pod.Status.Phase, pod.ResourceVersion, pod.DeletionTimestamp != nil)
		}
	}
	return s
}
