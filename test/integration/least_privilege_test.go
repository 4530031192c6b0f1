package integration

import (
	"context"
	"errors"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/controllers"
	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/internal/manager"
	"github.com/kubetrain/kubetrain/internal/progress"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

var _ = Describe("The trainer's credentials", func() {
	var ns string
	var clientset *kubernetes.Clientset

	// trainerConfig is what a worker pod's mounted token gives it: the trainer ServiceAccount,
	// bound to the pod when pod is set.
	trainerConfig := func(ctx context.Context, pod *corev1.Pod) *rest.Config {
		req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}
		if pod != nil {
			req.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
		}
		tok, err := clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, controllers.TrainerServiceAccount, req, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		return &rest.Config{Host: cfg.Host, TLSClientConfig: rest.TLSClientConfig{CAData: cfg.CAData}, BearerToken: tok.Status.Token}
	}
	report := func(ctx context.Context, c *rest.Config, job string) error {
		r, err := progress.NewStatusReporter(ctx, c, ns, job, "")
		if err != nil {
			return err
		}
		var failed error
		r.OnError = func(err error) { failed = err }
		r.Report(contract.Progress{Epoch: 1, Epochs: 10, TestAccuracy: 0.5, Time: time.Now()})
		return failed
	}

	BeforeEach(func(ctx context.Context) {
		ns = newNamespace(ctx)
		var err error
		clientset, err = kubernetes.NewForConfig(cfg)
		Expect(err).NotTo(HaveOccurred())
	})

	It("can write the status of its own job and nothing else", func(ctx context.Context) {
		own := createJob(ctx, newJob("own", ns))
		other := createJob(ctx, newJob("own-w0", ns)) // named like a prefix of own's pods
		pod := waitPod(ctx, own, 0)
		waitPod(ctx, other, 0)
		Expect(pod.Spec.ServiceAccountName).To(Equal(controllers.TrainerServiceAccount))
		trainer := trainerConfig(ctx, pod)

		// Once the controller has recorded the attempt as started (right after creating its pods).
		Eventually(func() error { return report(ctx, trainer, "own") }).WithTimeout(timeout).Should(Succeed())
		Expect(getJob(ctx, Default, own).Status.Progress.EpochText).To(Equal("1/10"))

		Eventually(func() error { return report(ctx, trainer, "own-w0") }).WithTimeout(timeout).
			Should(MatchError(ContainSubstring("may only write the status of its own TrainingJob")))

		// A job of the same name in another namespace is out of reach too.
		elsewhere := newNamespace(ctx)
		createJob(ctx, newJob("own", elsewhere))
		_, err := progress.NewStatusReporter(ctx, trainer, elsewhere, "own", "")
		Expect(apierrors.IsForbidden(errors.Unwrap(err))).To(BeTrue(), "reading another namespace's job: got %v", err)
		forbiddenApply := unstructuredFrom(map[string]any{"apiVersion": kubetrainv1alpha1.GroupVersion.String(), "kind": "TrainingJob",
			"metadata": map[string]any{"name": "own", "namespace": elsewhere},
			"status":   map[string]any{"progress": map[string]any{"epoch": 9, "epochs": 9}}})
		tc, err := client.New(trainer, client.Options{Scheme: manager.Scheme()})
		Expect(err).NotTo(HaveOccurred())
		err = tc.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(forbiddenApply), client.FieldOwner("x"), client.ForceOwnership)
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "writing another namespace's job: got %v", err)

		c, err := client.New(trainer, client.Options{Scheme: manager.Scheme()})
		Expect(err).NotTo(HaveOccurred())
		forbidden := func(err error) { ExpectWithOffset(1, apierrors.IsForbidden(err)).To(BeTrue(), "got %v", err) }
		forbidden(c.List(ctx, &corev1.PodList{}, client.InNamespace(ns)))
		forbidden(c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "any"}, &corev1.Secret{}))
		forbidden(c.List(ctx, &corev1.SecretList{}, client.InNamespace(ns)))
		forbidden(c.Patch(ctx, own, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"image":"evil"}}`))))
		forbidden(c.Delete(ctx, own))
		forbidden(c.Create(ctx, &kubetrainv1alpha1.TrainingJob{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: ns},
			Spec: kubetrainv1alpha1.TrainingJobSpec{Dataset: kubetrainv1alpha1.DatasetSpec{URI: "synthetic://cifar10"}}}))
	})

	It("can write its progress, history and checkpoint, and no other field of status", func(ctx context.Context) {
		own := createJob(ctx, newJob("fields", ns))
		pod := waitPod(ctx, own, 0)
		trainer := trainerConfig(ctx, pod)
		Eventually(func() error { return report(ctx, trainer, "fields") }).WithTimeout(timeout).Should(Succeed())
		c, err := client.New(trainer, client.Options{Scheme: manager.Scheme()})
		Expect(err).NotTo(HaveOccurred())
		for _, patch := range []string{
			`{"status":{"phase":"Succeeded"}}`,
			`{"status":{"failures":0,"restarts":0,"disruptions":0,"attempt":9}}`,
			`{"status":{"modelURI":"s3://elsewhere/model"}}`,
			`{"status":{"conditions":[]}}`,
			`{"status":{"completionTime":"2026-01-01T00:00:00Z"}}`,
		} {
			err := c.Status().Patch(ctx, getJob(ctx, Default, own), client.RawPatch(types.MergePatchType, []byte(patch)))
			Expect(err).To(MatchError(ContainSubstring("may only write status.progress, status.history and status.latestCheckpoint")), "patch %s", patch)
		}
		// Its own fields it may still write.
		Expect(c.Status().Patch(ctx, getJob(ctx, Default, own), client.RawPatch(types.MergePatchType,
			[]byte(`{"status":{"progress":{"epoch":2,"epochs":10}}}`)))).To(Succeed())
	})

	It("cannot write into a new job of the same name, even when the trainer does not check the UID", func(ctx context.Context) {
		old := createJob(ctx, newJob("again", ns))
		oldPod := waitPod(ctx, old, 0)
		trainer := trainerConfig(ctx, oldPod)
		Eventually(func() error { return report(ctx, trainer, "again") }).WithTimeout(timeout).Should(Succeed())

		// kubectl delete; kubectl apply. envtest runs no garbage collector: the old worker stays, as
		// it would during its grace period, and the new job waits for its name.
		Expect(k8sClient.Delete(ctx, old)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(old), &kubetrainv1alpha1.TrainingJob{}))
		}).WithTimeout(timeout).WithPolling(interval).Should(BeTrue())
		fresh := createJob(ctx, newJob("again", ns))
		Eventually(func(g Gomega) {
			ready := condition(getJob(ctx, g, fresh), kubetrainv1alpha1.ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Reason).To(Equal(kubetrainv1alpha1.ReasonPodCreationFailed))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		// A trainer that skips the UID check (a custom image) is refused by the policy.
		Expect(report(ctx, trainer, "again")).To(MatchError(And(
			ContainSubstring("is not a worker of this TrainingJob again"), ContainSubstring("not started yet"))))

		// The garbage collector removes the old worker: the new job's own takes its name and starts
		// from scratch, and the old worker's token no longer authenticates.
		Expect(k8sClient.Delete(ctx, oldPod)).To(Succeed())
		Eventually(func(g Gomega) {
			pod := &corev1.Pod{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(oldPod), pod)).To(Succeed())
			g.Expect(metav1.IsControlledBy(pod, getJob(ctx, g, fresh))).To(BeTrue())
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		got := getJob(ctx, Default, fresh)
		Expect(got.Status.Disruptions + got.Status.Failures + got.Status.Restarts).To(BeZero())
		Expect(got.Status.Progress).To(BeNil())
		// The API server caches a token's authentication for up to 10 s (read-only probe).
		tc, err := client.New(trainer, client.Options{Scheme: manager.Scheme()})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() error {
			return tc.Get(ctx, client.ObjectKeyFromObject(fresh), &kubetrainv1alpha1.TrainingJob{})
		}).WithTimeout(timeout).WithPolling(time.Second).Should(Satisfy(apierrors.IsUnauthorized), "the deleted pod's token")
	})

	It("writes only as rank 0 of an attempt the job has reached, and still as a worker of an earlier attempt", func(ctx context.Context) {
		own := createJob(ctx, newJob("attempts", ns))
		first := waitPod(ctx, own, 0)
		// Pods named like this job's workers, made by anyone: a later attempt and another rank.
		bare := func(name string) *corev1.Pod {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: corev1.PodSpec{
				ServiceAccountName: controllers.TrainerServiceAccount,
				Containers:         []corev1.Container{{Name: "c", Image: "any"}}}}
			Expect(k8sClient.Create(ctx, pod)).To(Succeed())
			return pod
		}
		Expect(report(ctx, trainerConfig(ctx, bare("attempts-w0-a1")), "attempts")).To(MatchError(And(
			ContainSubstring("is not a worker of this TrainingJob attempts"), ContainSubstring("at attempt 0"))))
		Expect(report(ctx, trainerConfig(ctx, bare("attempts-w1-a0")), "attempts")).To(MatchError(
			ContainSubstring("and only as its rank 0")))

		// Attempt 0 ends; its worker may still write (a stopped worker commits its last checkpoint).
		trainer := trainerConfig(ctx, first)
		setPodStatus(ctx, first, func(p *testutil.PodWrapper) { p.Exited(contract.ExitRetriable, "retriable error") })
		Eventually(func(g Gomega) { g.Expect(getJob(ctx, g, own).Status.Attempt).To(BeNumerically(">=", 1)) }).
			WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		Expect(report(ctx, trainer, "attempts")).To(Succeed())
	})

	It("cannot write status with a token that is not bound to its pod", func(ctx context.Context) {
		own := createJob(ctx, newJob("unbound", ns))
		waitPod(ctx, own, 0)
		Eventually(func() error { return report(ctx, trainerConfig(ctx, nil), "unbound") }).WithTimeout(timeout).
			Should(MatchError(ContainSubstring("token bound to its pod")))
	})
})
