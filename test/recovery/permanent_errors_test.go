package recovery

import (
	"context"
	"math"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

// Issue 12, scenario 9: errors no retry can fix end in a condition that names the cause, and are
// retried with capped exponential backoff, not in a hot loop.
//
// What the controller can see of each: a worker pod the API server refuses (invalid, or refused by
// a policy) fails every create; a missing credentials Secret is the kubelet's to find
// (CreateContainerConfigError on the pod: the controller never reads Secrets); a missing dataset is
// the trainer's to find (exit code 65, InvalidData, with the store's message).
var _ = Describe("Permanent errors", func() {
	const (
		// window is how long the spec counts the controller's passes.
		window = 30 * time.Second
		// failureBase is controller-runtime's first retry delay after a pass that returned an
		// error; each further failure doubles it.
		failureBase = 5 * time.Millisecond
		// extraPasses allows for the passes a job's own status writes cause besides its retries:
		// the one its first Stalled write triggers, and those after a write refused with 409
		// Conflict (a pass that read the job before its own last write reached the cache), which
		// requeues at once and restarts the backoff.
		extraPasses = 6
	)

	It("end in a condition naming the cause, retried with capped exponential backoff, not in a hot loop", func(ctx context.Context) {
		ns := newNamespace(ctx)
		refuseGPUsIn(ctx, ns)
		opts := suiteOptions()
		backoffMax := opts.Controller.BackoffMax
		run := startManager(opts)
		DeferCleanup(func() { run.stop() })
		waitIdle()

		before := reconcileCount()
		start := time.Now()
		// Every create of its worker is refused as invalid: a toleration of operator Exists with a
		// value. The CRD accepts it; pod validation does not.
		invalid := createJob(ctx, newJob("untolerated", ns).Template(kubetrainv1alpha1.WorkerTemplate{
			Tolerations: []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists, Value: "yes"}}}))
		// Every create of its worker is refused by the namespace's policy.
		refused := createJob(ctx, newJob("gpu-hungry", ns).GPUs(1))
		nocreds := createJob(ctx, newJob("nocreds", ns).Checkpoint("s3://checkpoints/runs", "missing-creds"))
		nodata := createJob(ctx, newJob("nodata", ns).Dataset("s3://datasets/cifar10-missing", "cifar10"))

		setPodStatus(ctx, waitPods(ctx, nocreds, 0)[0], func(p *testutil.PodWrapper) {
			p.Waiting("CreateContainerConfigError", `secret "missing-creds" not found`)
		})
		setPodStatus(ctx, waitPods(ctx, nodata, 0)[0], func(p *testutil.PodWrapper) {
			p.Exited(65, `{"outcome":"InvalidData","message":"dataset s3://datasets/cifar10-missing: no object train/data_batch_1.bin (NoSuchKey)"}`)
		})

		// Each pass of a job whose worker is refused sends exactly one pod create, so the creates
		// the manager sent for it count its passes. At every moment they stay within what
		// exponential backoff allows: a hot loop would pass thousands of times.
		creates := func(tj *kubetrainv1alpha1.TrainingJob) int { return len(run.log.podCreates(tj)) }
		Consistently(func(g Gomega) {
			elapsed := time.Since(start)
			limit := maxRetries(elapsed, failureBase, backoffMax) + extraPasses
			for _, tj := range []*kubetrainv1alpha1.TrainingJob{invalid, refused} {
				g.Expect(creates(tj)).To(BeNumerically("<=", limit), "passes of %s after %s: %v", tj.Name, elapsed, timeline(run.log.requests(func(r apiRequest) bool { return r.write() && r.namespace == ns }), start))
			}
		}).WithTimeout(window - time.Since(start)).WithPolling(500 * time.Millisecond).Should(Succeed())
		elapsed := time.Since(start)
		passes := reconcileCount() - before
		GinkgoWriter.Printf("in %s: %d passes of %s, %d of %s, %d in all; backoff capped at %s allows %d retries, uncapped %d\n",
			elapsed, creates(invalid), invalid.Name, creates(refused), refused.Name, int(passes), backoffMax,
			maxRetries(elapsed, failureBase, backoffMax), maxRetries(elapsed, failureBase, time.Duration(math.MaxInt64)))

		// The retries go on, at the cap's pace: more than any uncapped exponential backoff
		// allows in the window, so the cap (BackoffMax) bounds the wait after a user's fix.
		uncapped := maxRetries(elapsed, failureBase, time.Duration(math.MaxInt64))
		for _, tj := range []*kubetrainv1alpha1.TrainingJob{invalid, refused} {
			Expect(creates(tj)).To(BeNumerically(">", uncapped+extraPasses),
				"%s: %d creates in %s; an exponential backoff without cap allows %d", tj.Name, creates(tj), elapsed, uncapped)
		}
		// The passes of the other two jobs are the few their own changes cause (a pod seen, a
		// status written): nothing polls them.
		others := passes - float64(creates(invalid)+creates(refused))
		Expect(others).To(BeNumerically("<=", 20), "passes of nocreds and nodata in %s", elapsed)
		Expect(run.log.podCreates(nocreds)).To(HaveLen(1))
		Expect(run.log.podCreates(nodata)).To(HaveLen(1))

		// Each says why, in the condition a user and kstatus read.
		expectStalled := func(tj *kubetrainv1alpha1.TrainingJob, reason string, says ...string) {
			got := getJob(ctx, Default, tj)
			stalled := condition(got, kubetrainv1alpha1.ConditionStalled)
			Expect(stalled).NotTo(BeNil(), "job %s", tj.Name)
			Expect(stalled.Status).To(Equal(metav1.ConditionTrue), "job %s", tj.Name)
			Expect(stalled.Reason).To(Equal(reason), "job %s", tj.Name)
			for _, s := range says {
				Expect(stalled.Message).To(ContainSubstring(s), "job %s", tj.Name)
			}
			Expect(got.Status.Restarts+got.Status.Failures+got.Status.Disruptions).To(BeZero(), "job %s", tj.Name)
		}
		expectStalled(invalid, kubetrainv1alpha1.ReasonPodCreationFailed, "is invalid", "tolerations", "untolerated-w0-a0")
		expectStalled(refused, kubetrainv1alpha1.ReasonPodCreationFailed, "forbidden", "GPUs may not be requested in this namespace")
		expectStalled(nocreds, kubetrainv1alpha1.ReasonContainerConfig, `secret "missing-creds" not found`)
		expectStalled(nodata, kubetrainv1alpha1.ReasonPermanentFailure, "s3://datasets/cifar10-missing", "NoSuchKey")
		Expect(getJob(ctx, Default, nodata).Status.Phase).To(Equal(kubetrainv1alpha1.PhaseFailed))
		Expect(podsIn(ctx, Default, ns)).To(HaveLen(2), "only the workers of nocreds and nodata exist")
	})
})

// maxRetries is how many retries a backoff that starts at base, doubles after each failure and
// never waits longer than max can make in d after the first failure.
func maxRetries(d, base, max time.Duration) int {
	n := 0
	for wait, spent := base, time.Duration(0); ; n++ {
		if spent += min(wait, max); spent > d {
			return n
		}
		if wait < max {
			wait *= 2
		}
	}
}

// refuseGPUsIn makes a cluster policy refuse pods that request GPUs in namespace ns, and waits
// until the API server enforces it.
func refuseGPUsIn(ctx context.Context, ns string) {
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "no-gpus-" + ns},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
				}}}},
			Validations: []admissionregistrationv1.Validation{{
				Expression: "!object.spec.containers.exists(c, has(c.resources.limits) && 'nvidia.com/gpu' in c.resources.limits)",
				Message:    "GPUs may not be requested in this namespace",
				Reason:     ptr.To(metav1.StatusReasonForbidden),
			}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: policy.Name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName: policy.Name,
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{corev1.LabelMetadataName: ns}}},
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
	for _, obj := range []client.Object{policy, binding} {
		Expect(k8sClient.Create(ctx, obj)).To(Succeed())
		DeferCleanup(func(ctx context.Context) { Expect(k8sClient.Delete(ctx, obj)).To(Succeed()) })
	}
	// The API server compiles a new policy a moment after it is created: try a pod until it is
	// refused (a dry run creates nothing).
	probe := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")}}}}}}
	Eventually(func() error {
		return k8sClient.Create(ctx, probe.DeepCopy(), client.DryRunAll)
	}).WithTimeout(timeout).WithPolling(interval).Should(Satisfy(apierrors.IsForbidden))
}
