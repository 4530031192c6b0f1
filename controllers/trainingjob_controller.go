// Package controllers holds the TrainingJob controller: it turns a TrainingJob into worker pods
// running the trainer, follows them to the end, restarts them with backoff, and cleans up.
//
// Each pass reads the job and its pods, asks the pure planJob what to do, creates the pods it
// needs, writes status once with server-side apply under the controller's own field manager (so
// the trainer's progress fields are never overwritten), and only then stops the pods the plan ends
// and emits the pass's events.
package controllers

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	kueuev1beta2 "sigs.k8s.io/kueue/apis/kueue/v1beta2"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/metrics"
)

// FieldManager is the controller's name in managedFields: it owns every status field but the
// trainer's progress, history and checkpoints.
const FieldManager = "kubetrain-controller"

// ownerIndex indexes pods by the UID of the TrainingJob that controls them.
const ownerIndex = ".metadata.ownerReferences.trainingjob"

// TrainingJobReconciler reconciles TrainingJobs.
type TrainingJobReconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads from the API server directly: a worker pod missing from the cache is only
	// taken as deleted once the server says so.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	Config    Config
	// MaxConcurrentReconciles is how many jobs are reconciled at once.
	MaxConcurrentReconciles int
	// SkipNameValidation allows a second controller of the same name in one process (tests).
	SkipNameValidation bool
	// Kueue says whether the cluster runs Kueue: a job with a kueue.x-k8s.io/queue-name label then
	// runs only while Kueue admits its Workload (see KueueReconciler).
	Kueue bool

	identities trainerIdentities
}

// +kubebuilder:rbac:groups=kubetrain.io,resources=trainingjobs,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=kubetrain.io,resources=trainingjobs/status,verbs=get;update;patch
// Owner references that block the job's deletion need it wherever OwnerReferencesPermissionEnforcement is on:
// +kubebuilder:rbac:groups=kubetrain.io,resources=trainingjobs/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=create
// +kubebuilder:rbac:groups="",resources=services,verbs=get;create
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=create
// The metrics endpoint asks the API server who its callers are and whether they may read it:
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// Reconcile is a thin shell: read, plan, act, write status once, then stop pods and emit events.
func (r *TrainingJobReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	res, err := r.reconcile(ctx, req)
	if err != nil {
		metrics.ReconcileErrors.WithLabelValues(req.Namespace).Inc()
	}
	return res, err
}

func (r *TrainingJobReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	tj := &kubetrainv1alpha1.TrainingJob{}
	if err := r.Client.Get(ctx, req.NamespacedName, tj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !tj.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // the garbage collector removes the pods with the job
	}
	if !tj.ManagedByKubetrain() {
		return ctrl.Result{}, nil // spec.managedBy names another controller: it runs the job
	}
	pods, err := r.workerPods(ctx, tj)
	if err != nil {
		return ctrl.Result{}, err
	}
	var queue *queueAdmission
	if r.Kueue && kueueQueueName(tj) != "" && !finished(tj.Status.Phase) {
		if queue, err = r.queueAdmission(ctx, tj); err != nil {
			return ctrl.Result{}, err
		}
	}
	p := planQueuedJob(tj, pods, queue, r.Clock.Now(), r.Config)
	actErr := r.act(ctx, tj, pods, &p)
	if p.deleteJob {
		return ctrl.Result{}, actErr
	}
	if err := r.writeStatus(ctx, tj, &p.status); err != nil {
		if apierrors.IsConflict(err) {
			// The job changed since it was read (the trainer reported, or another pass wrote):
			// plan again from the new version.
			return ctrl.Result{RequeueAfter: requeueForConflict}, nil
		}
		return ctrl.Result{}, err
	}
	// Workers are stopped only once the status that says why is written: a pass that stopped one
	// and then lost its write (a conflict, a crash) would leave the next pass to find the worker
	// gone, and take a failed attempt for a disrupted one.
	if err := r.stopPods(ctx, pods, &p); err != nil && actErr == nil {
		actErr = err
	}
	for _, e := range p.events {
		r.Recorder.Eventf(tj, nil, e.eventType, e.reason, e.action, "%s", e.note)
	}
	return ctrl.Result{RequeueAfter: p.requeueAfter}, actErr
}

// act creates the plan's workers or deletes the job; stopPods stops pods after the status write.
// A failure to create the workers is recorded in the plan's status (which is still written) and
// returned, so the pass is retried with backoff. pods are the job's pods the pass saw.
func (r *TrainingJobReconciler) act(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob, pods []*corev1.Pod, p *plan) error {
	if p.deleteJob {
		log.FromContext(ctx).Info("deleting finished job: its TTL passed")
		uid := tj.UID
		err := r.Client.Delete(ctx, tj, client.Preconditions{UID: &uid},
			client.PropagationPolicy(metav1.DeletePropagationBackground))
		return client.IgnoreNotFound(err)
	}
	if p.createWorkers {
		planned := tj.DeepCopy()
		planned.Status = p.status
		if err := r.createWorkers(ctx, planned, pods, p.admission); err != nil {
			msg := fmt.Sprintf("cannot create worker pods: %v", err)
			p.status.AttemptStartTime = nil
			// A pod the API server finds invalid, or that a policy refuses (Pod Security, the
			// admission policies), needs a change to the job: Stalled, with the server's message.
			// The pass is still retried, with the controller's capped backoff.
			stalled := apierrors.IsInvalid(err) || apierrors.IsForbidden(err)
			setHealth(&p.status, tj.Generation, metav1.NewTime(r.Clock.Now()).Rfc3339Copy(),
				health{stalled: stalled, reason: kubetrainv1alpha1.ReasonPodCreationFailed, message: msg})
			// The plan set the conditions for workers that were created; those set here replace
			// them, and a condition that ends as the job already had it did not transition.
			// Otherwise every retry would move Stalled's transition time, write status, and so
			// cause one more pass.
			keepTransitionTimes(&p.status, tj.Status.Conditions)
			p.events = []event{{corev1.EventTypeWarning, kubetrainv1alpha1.ReasonPodCreationFailed, "Create", msg}}
			return err
		}
	}
	return nil
}

// keepTransitionTimes gives each condition of st whose status is the one it has in was the
// transition time it has there.
func keepTransitionTimes(st *kubetrainv1alpha1.TrainingJobStatus, was []metav1.Condition) {
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if old := apimeta.FindStatusCondition(was, c.Type); old != nil && old.Status == c.Status {
			c.LastTransitionTime = old.LastTransitionTime
		}
	}
}

// createWorkers creates the current attempt's worker pods. Their names are deterministic, so a pod
// created by a pass whose status write was lost (the manager crashed, or lost its lease, in
// between) or is not yet in the cache is not duplicated: a worker among the job's pods the pass saw
// (existing, all controlled by the job) is not sent again, and one the cache does not show yet is
// found again (AlreadyExists). A pod of that name that this job does not control (a worker of a
// deleted job of the same name, still in its grace period, or anyone's pod) is not taken for one:
// the attempt waits until it is gone, and says so.
func (r *TrainingJobReconciler) createWorkers(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob, existing []*corev1.Pod, admission *queueAdmission) error {
	if err := r.identities.ensure(ctx, r.Client, tj.Namespace); err != nil {
		return err
	}
	if tj.Spec.Workers > 1 {
		if err := r.ensureService(ctx, tj); err != nil {
			return err
		}
	}
	have := make(map[string]bool, len(existing))
	for _, pod := range existing {
		have[pod.Name] = true
	}
	for rank := int32(0); rank < tj.Spec.Workers; rank++ {
		pod := constructWorkerPod(tj, rank, r.Config)
		admission.applyTo(pod)
		if have[pod.Name] {
			continue
		}
		err := r.Client.Create(ctx, pod)
		if apierrors.IsAlreadyExists(err) {
			err = r.checkOwned(ctx, tj, &corev1.Pod{}, "pod", pod.Name, "waiting for it to be deleted")
		}
		if err != nil {
			r.identities.forget(tj.Namespace) // in case the pod was refused for a missing ServiceAccount
			return err
		}
	}
	return nil
}

// ensureService creates the job's headless worker Service unless it exists. One of that name that
// the job does not control is not taken for it.
func (r *TrainingJobReconciler) ensureService(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob) error {
	svc := constructWorkerService(tj)
	const remedy = "the workers need it as their subdomain; rename the job or the Service"
	if tj.Status.Attempt > 0 {
		// The first attempt created it: a read, not a create the server would refuse, finds it.
		err := r.checkOwned(ctx, tj, &corev1.Service{}, "service", svc.Name, remedy)
		if !apierrors.IsNotFound(err) {
			return err
		}
	}
	// Nothing reads Services from the cache (the manager neither may nor needs to list them), so
	// nothing waits for the cache to see this write.
	err := r.Client.Create(ctx, svc, client.DisableReadYourWritesConsistency)
	if apierrors.IsAlreadyExists(err) {
		err = r.checkOwned(ctx, tj, &corev1.Service{}, "service", svc.Name, remedy)
	}
	return err
}

// checkOwned returns nil when the existing object named name (read into existing, from the API
// server) is controlled by tj; otherwise an error naming it, its controller and what to do.
func (r *TrainingJobReconciler) checkOwned(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob, existing client.Object,
	kind, name, remedy string) error {
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: tj.Namespace, Name: name}, existing); err != nil {
		return fmt.Errorf("%s %s cannot be read: %w", kind, name, err)
	}
	if metav1.IsControlledBy(existing, tj) {
		return nil
	}
	owner := "nothing"
	if ref := metav1.GetControllerOf(existing); ref != nil {
		owner = fmt.Sprintf("%s %s (uid %s)", ref.Kind, ref.Name, ref.UID)
	}
	return fmt.Errorf("%s %s already exists and is not this job's (it is controlled by %s): %s", kind, name, owner, remedy)
}

// stopPods deletes the pods the plan stops, and the live pods of earlier attempts that nobody is
// stopping: a pass recorded the end of their attempt and then failed, or died, before deleting
// them. The planner waits for those to stop before it starts the next attempt.
func (r *TrainingJobReconciler) stopPods(ctx context.Context, pods []*corev1.Pod, p *plan) error {
	stop := slices.Clone(p.deletePods)
	for _, pod := range pods {
		attempt, _, ok := podAttemptAndRank(pod)
		if ok && attempt < p.status.Attempt && !podFinished(pod) && pod.DeletionTimestamp == nil && !slices.Contains(stop, pod) {
			stop = append(stop, pod)
		}
	}
	for _, pod := range stop {
		if err := r.deletePod(ctx, pod); err != nil {
			return err
		}
	}
	return nil
}

func (r *TrainingJobReconciler) deletePod(ctx context.Context, pod *corev1.Pod) error {
	uid := pod.UID
	err := r.Client.Delete(ctx, pod, client.Preconditions{UID: &uid})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// workerPods lists every pod the job controls. When the cache lacks a worker of the current,
// started attempt, the API server is asked: a pod that was just created may not have reached the
// cache yet, and only a pod the server no longer has counts as deleted.
func (r *TrainingJobReconciler) workerPods(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob) ([]*corev1.Pod, error) {
	var list corev1.PodList
	if err := r.Client.List(ctx, &list, client.InNamespace(tj.Namespace),
		client.MatchingFields{ownerIndex: string(tj.UID)}); err != nil {
		return nil, err
	}
	pods := make([]*corev1.Pod, 0, len(list.Items)+1)
	have := map[string]bool{}
	for i := range list.Items {
		pods = append(pods, &list.Items[i])
		have[list.Items[i].Name] = true
	}
	if tj.Status.AttemptStartTime == nil || finished(tj.Status.Phase) {
		return pods, nil
	}
	for rank := int32(0); rank < tj.Spec.Workers; rank++ {
		name := workerPodName(tj.Name, rank, tj.Status.Attempt)
		if have[name] {
			continue
		}
		pod := &corev1.Pod{}
		err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: tj.Namespace, Name: name}, pod)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, err
		case metav1.IsControlledBy(pod, tj):
			pods = append(pods, pod)
		}
	}
	return pods, nil
}

// SetupWithManager registers the controller: it watches TrainingJobs and the pods they own.
func (r *TrainingJobReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &corev1.Pod{}, ownerIndex, func(o client.Object) []string {
		ref := metav1.GetControllerOf(o)
		if ref == nil || ref.Kind != "TrainingJob" || ref.APIVersion != kubetrainv1alpha1.GroupVersion.String() {
			return nil
		}
		return []string{string(ref.UID)}
	}); err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&kubetrainv1alpha1.TrainingJob{}).
		Owns(&corev1.Pod{})
	if r.Kueue {
		// An admission or an eviction changes what the job's workers may do.
		b = b.Owns(&kueuev1beta2.Workload{})
	}
	return b.
		WithOptions(controller.Options{
			MaxConcurrentReconciles: max(r.MaxConcurrentReconciles, 1),
			SkipNameValidation:      &r.SkipNameValidation,
			// A pass that fails (worker pods the API server refuses, an API error) is retried with
			// controller-runtime's exponential backoff, but never later than BackoffMax (the
			// longest wait between attempts) instead of its default cap of 1000s: a job whose
			// pods a policy refused starts within BackoffMax of the policy's fix.
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](
				failedPassBackoffBase, max(r.Config.BackoffMax, failedPassBackoffBase)),
		}).
		Complete(r)
}

// failedPassBackoffBase is the wait before the first retry of a failed pass, controller-runtime's.
const failedPassBackoffBase = 5 * time.Millisecond

// requeueForConflict is how long to wait before retrying a pass whose status write lost a race.
const requeueForConflict = 100 * time.Millisecond
