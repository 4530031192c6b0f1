package integration

import (
	"context"
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

var _ = Describe("A TrainingJob of several workers", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	// attemptPods waits for the n worker pods of an attempt and returns them by rank.
	attemptPods := func(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob, attempt int32, n int) []*corev1.Pod {
		pods := make([]*corev1.Pod, n)
		for r := range pods {
			name := testutil.MakeWorkerPod(tj, int32(r), attempt).Name
			pods[r] = &corev1.Pod{}
			Eventually(func(g Gomega) {
				g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, pods[r])).To(Succeed())
			}).WithTimeout(timeout).WithPolling(interval).Should(Succeed(), "pod %s", name)
		}
		return pods
	}
	running := func(ctx context.Context, pods []*corev1.Pod) {
		for _, pod := range pods {
			setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Phase(corev1.PodRunning) })
		}
	}

	It("creates its workers together with a headless Service, and shows how many run", func(ctx context.Context) {
		tj := createJob(ctx, newJob("gang", ns).Workers(3))
		pods := attemptPods(ctx, tj, 0, 3)
		job := getJob(ctx, Default, tj)
		for r, pod := range pods {
			Expect(pod.Spec.Hostname).To(Equal(fmt.Sprintf("gang-w%d", r)))
			Expect(pod.Spec.Subdomain).To(Equal("gang"))
			env := map[string]string{}
			for _, e := range pod.Spec.Containers[0].Env {
				env[e.Name] = e.Value
			}
			Expect(env).To(HaveKeyWithValue(contract.EnvRank, fmt.Sprint(r)))
			Expect(env).To(HaveKeyWithValue(contract.EnvWorldSize, "3"))
			Expect(env).To(HaveKeyWithValue(contract.EnvRendezvous, fmt.Sprintf("gang-w0.gang.%s.svc:%d", ns, contract.RendezvousPort)))
		}
		svc := &corev1.Service{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "gang"}, svc)).To(Succeed())
		Expect(svc.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone))
		Expect(svc.Spec.PublishNotReadyAddresses).To(BeTrue())
		Expect(svc.Spec.Selector).To(HaveKeyWithValue(kubetrainv1alpha1.LabelJobUID, string(job.UID)))
		Expect(metav1.IsControlledBy(svc, job)).To(BeTrue())

		Eventually(func(g Gomega) { g.Expect(getJob(ctx, g, tj).Status.Workers.Ready).To(Equal("0/3")) }).
			WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		running(ctx, pods[:2])
		Eventually(func(g Gomega) {
			got := getJob(ctx, g, tj)
			g.Expect(got.Status.Phase).To(Equal(kubetrainv1alpha1.PhasePending))
			g.Expect(got.Status.Workers.Ready).To(Equal("2/3"))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		// The worker that cannot be placed is named, with the scheduler's reason.
		setPodStatus(ctx, pods[2], func(p *testutil.PodWrapper) {
			p.Unschedulable("0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")
		})
		Eventually(func(g Gomega) {
			ready := condition(getJob(ctx, g, tj), kubetrainv1alpha1.ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Reason).To(Equal(kubetrainv1alpha1.ReasonUnschedulable))
			g.Expect(ready.Message).To(And(ContainSubstring("gang-w2-a0"), ContainSubstring("Insufficient nvidia.com/gpu")))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		running(ctx, pods[2:])
		Eventually(func(g Gomega) { g.Expect(getJob(ctx, g, tj).Status.Workers.Ready).To(Equal("3/3")) }).
			WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		expectPhase(ctx, tj, kubetrainv1alpha1.PhaseRunning)
	})

	It("ends the whole attempt when one worker is lost, and starts the next only once every old worker is gone", func(ctx context.Context) {
		tj := createJob(ctx, newJob("restart", ns).Workers(3))
		pods := attemptPods(ctx, tj, 0, 3)
		running(ctx, pods)
		expectPhase(ctx, tj, kubetrainv1alpha1.PhaseRunning)
		// Rank 2 takes its time to stop (a finalizer stands for its grace period).
		Expect(k8sClient.Patch(ctx, pods[2], client.RawPatch(types.MergePatchType,
			[]byte(`{"metadata":{"finalizers":["kubetrain.io/test-slow-stop"]}}`)))).To(Succeed())

		setPodStatus(ctx, pods[1], func(p *testutil.PodWrapper) { p.Disrupted("PreemptionByScheduler") })
		Eventually(func(g Gomega) {
			stopping := &corev1.Pod{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pods[2]), stopping)).To(Succeed())
			g.Expect(stopping.DeletionTimestamp).NotTo(BeNil())
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pods[0]), &corev1.Pod{})).NotTo(Succeed(), "rank 0 still there")
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		Consistently(func(g Gomega) {
			for _, pod := range workerPods(ctx, g, tj) {
				g.Expect(pod.Labels[kubetrainv1alpha1.LabelAttempt]).To(Equal("0"), "pod %s of the next attempt while rank 2 of attempt 0 stops", pod.Name)
			}
			g.Expect(getJob(ctx, g, tj).Status.Phase).To(Equal(kubetrainv1alpha1.PhaseRestarting))
		}).WithTimeout(consistently).WithPolling(interval).Should(Succeed())

		Expect(k8sClient.Patch(ctx, pods[2], client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`)))).To(Succeed())
		attemptPods(ctx, tj, 1, 3)
		Eventually(func(g Gomega) {
			got := getJob(ctx, g, tj)
			g.Expect(got.Status.Restarts).To(Equal(int32(1)))
			g.Expect(got.Status.Disruptions).To(Equal(int32(1)))
			for _, pod := range workerPods(ctx, g, tj) {
				if pod.Labels[kubetrainv1alpha1.LabelAttempt] != "1" { // only the failed worker is kept
					g.Expect(pod.Name).To(Equal(pods[1].Name))
				}
			}
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	})

	It("does not take a Service of its name that it does not control", func(ctx context.Context) {
		Expect(k8sClient.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "taken", Namespace: ns},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}})).To(Succeed())
		tj := createJob(ctx, newJob("taken", ns).Workers(2))
		Eventually(func(g Gomega) {
			ready := condition(getJob(ctx, g, tj), kubetrainv1alpha1.ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Reason).To(Equal(kubetrainv1alpha1.ReasonPodCreationFailed))
			g.Expect(ready.Message).To(ContainSubstring("service taken already exists and is not this job's"))
			g.Expect(workerPods(ctx, g, tj)).To(BeEmpty())
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	})

	It("suspends all its workers and resumes them all", func(ctx context.Context) {
		tj := createJob(ctx, newJob("pause-gang", ns).Workers(2))
		running(ctx, attemptPods(ctx, tj, 0, 2))
		expectPhase(ctx, tj, kubetrainv1alpha1.PhaseRunning)
		patchSuspend(ctx, tj, true)
		expectPhase(ctx, tj, kubetrainv1alpha1.PhaseSuspended)
		Eventually(func(g Gomega) { g.Expect(workerPods(ctx, g, tj)).To(BeEmpty()) }).
			WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		patchSuspend(ctx, tj, false)
		running(ctx, attemptPods(ctx, tj, 1, 2))
		got := expectPhase(ctx, tj, kubetrainv1alpha1.PhaseRunning)
		Expect(got.Status.Workers.Ready).To(Equal("2/2"))
		Expect(got.Status.Restarts).To(BeZero())
	})
})
