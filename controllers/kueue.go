package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	kueuev1beta2 "sigs.k8s.io/kueue/apis/kueue/v1beta2"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
)

// A TrainingJob is a Kueue workload the way Kueue's job integrations make one of a batch Job: the
// job names a LocalQueue in its kueue.x-k8s.io/queue-name label; the KueueReconciler keeps one
// Workload for it (one pod set, "workers", of spec.workers pods) and suspends the job
// (spec.runPolicy.suspend) until Kueue admits the Workload; the TrainingJob controller then creates
// the workers with the node labels and tolerations of the ResourceFlavors Kueue assigned. An
// eviction suspends the job again: its workers stop, Kueue takes the quota back, and the job
// resumes from its latest checkpoint when Kueue admits it again.
//
// Kueue's own job framework (sigs.k8s.io/kueue/pkg/controller/jobframework) does this for the
// kinds Kueue knows, but it does not build with the Kubernetes modules kubetrain uses (Kueue
// v0.17.0 pulls in the Kubeflow Trainer v2 API, whose generated code names core/v1 types that
// k8s.io/api v0.37 no longer has), so this file speaks the same protocol through Kueue's API types
// alone. The flavors' scheduling is applied to the pods, not written into the job: nothing changes
// in a spec that a GitOps tool keeps, and nothing needs restoring after an eviction.

// Kueue's labels.
const (
	// KueueQueueNameLabel on a TrainingJob names the LocalQueue (in the job's namespace) it waits in.
	KueueQueueNameLabel = "kueue.x-k8s.io/queue-name"
	// kueueJobUIDLabel on a Workload holds the UID of the job it stands for.
	kueueJobUIDLabel = "kueue.x-k8s.io/job-uid"
	// Set on the pods of an admitted workload, as Kueue's integrations set them.
	kueuePodSetLabel       = "kueue.x-k8s.io/podset"
	kueueLocalQueueLabel   = "kueue.x-k8s.io/local-queue-name"
	kueueClusterQueueLabel = "kueue.x-k8s.io/cluster-queue-name"
)

// workersPodSet names the Workload's one pod set: the job's workers.
const workersPodSet = "workers"

// KueueAvailable says whether the cluster serves Kueue's Workload API.
func KueueAvailable(mapper apimeta.RESTMapper) bool {
	_, err := mapper.RESTMapping(kueuev1beta2.GroupVersion.WithKind("Workload").GroupKind(), kueuev1beta2.GroupVersion.Version)
	return err == nil
}

// kueueQueueName is the LocalQueue a job waits in, or "" for a job Kueue does not manage.
func kueueQueueName(tj *kubetrainv1alpha1.TrainingJob) string {
	return tj.Labels[KueueQueueNameLabel]
}

// queueAdmission is what Kueue decided for a job that waits in one of its queues.
type queueAdmission struct {
	admitted bool
	// message says why the job waits, while it is not admitted.
	message string
	// What the assigned flavors and Kueue add to the worker pods.
	nodeSelector map[string]string
	tolerations  []corev1.Toleration
	labels       map[string]string
}

// applyTo adds the admission's scheduling to a worker pod. A flavor's node labels win over the
// job's own node selector: Kueue picked the flavor knowing the job's.
func (a *queueAdmission) applyTo(pod *corev1.Pod) {
	if a == nil {
		return
	}
	if len(a.nodeSelector) > 0 {
		sel := maps.Clone(pod.Spec.NodeSelector)
		if sel == nil {
			sel = map[string]string{}
		}
		maps.Copy(sel, a.nodeSelector)
		pod.Spec.NodeSelector = sel
	}
	pod.Spec.Tolerations = append(pod.Spec.Tolerations, a.tolerations...)
	maps.Copy(pod.Labels, a.labels)
}

// queueAdmission reads what Kueue decided for a job in a queue from the job's Workload.
func (r *TrainingJobReconciler) queueAdmission(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob) (*queueAdmission, error) {
	wl, err := jobWorkload(ctx, r.Client, tj)
	if err != nil || wl == nil {
		return &queueAdmission{message: fmt.Sprintf("waiting for its Kueue Workload in LocalQueue %s", kueueQueueName(tj))}, err
	}
	return admissionOf(ctx, r.Client, wl)
}

// admissionOf turns a Workload's status into the job's queueAdmission.
func admissionOf(ctx context.Context, c client.Reader, wl *kueuev1beta2.Workload) (*queueAdmission, error) {
	if ev := apimeta.FindStatusCondition(wl.Status.Conditions, kueuev1beta2.WorkloadEvicted); ev != nil && ev.Status == metav1.ConditionTrue {
		return &queueAdmission{message: fmt.Sprintf("evicted by Kueue (%s): %s", ev.Reason, ev.Message)}, nil
	}
	if !apimeta.IsStatusConditionTrue(wl.Status.Conditions, kueuev1beta2.WorkloadAdmitted) || wl.Status.Admission == nil {
		msg := fmt.Sprintf("waiting in Kueue LocalQueue %s", wl.Spec.QueueName)
		if qr := apimeta.FindStatusCondition(wl.Status.Conditions, kueuev1beta2.WorkloadQuotaReserved); qr != nil && qr.Message != "" {
			msg += ": " + qr.Message
		}
		return &queueAdmission{message: msg}, nil
	}
	a := &queueAdmission{admitted: true, labels: map[string]string{
		kueuePodSetLabel:     workersPodSet,
		kueueLocalQueueLabel: string(wl.Spec.QueueName),
	}}
	if cq := string(wl.Status.Admission.ClusterQueue); len(cq) <= 63 {
		a.labels[kueueClusterQueueLabel] = cq
	}
	seen := map[kueuev1beta2.ResourceFlavorReference]bool{}
	for _, psa := range wl.Status.Admission.PodSetAssignments {
		if psa.Name != workersPodSet {
			continue
		}
		for _, name := range psa.Flavors {
			if seen[name] {
				continue
			}
			seen[name] = true
			flavor := &kueuev1beta2.ResourceFlavor{}
			if err := c.Get(ctx, client.ObjectKey{Name: string(name)}, flavor); err != nil {
				return nil, fmt.Errorf("reading ResourceFlavor %s that Kueue assigned: %w", name, err)
			}
			if len(flavor.Spec.NodeLabels) > 0 && a.nodeSelector == nil {
				a.nodeSelector = map[string]string{}
			}
			maps.Copy(a.nodeSelector, flavor.Spec.NodeLabels)
			a.tolerations = append(a.tolerations, flavor.Spec.Tolerations...)
		}
	}
	return a, nil
}

// jobWorkload is the job's current Workload: controlled by it and not finished; nil if none.
func jobWorkload(ctx context.Context, c client.Reader, tj *kubetrainv1alpha1.TrainingJob) (*kueuev1beta2.Workload, error) {
	wls, err := jobWorkloads(ctx, c, tj)
	if err != nil {
		return nil, err
	}
	for _, wl := range wls {
		if !apimeta.IsStatusConditionTrue(wl.Status.Conditions, kueuev1beta2.WorkloadFinished) {
			return wl, nil
		}
	}
	return nil, nil
}

// jobWorkloads are the Workloads the job controls.
func jobWorkloads(ctx context.Context, c client.Reader, tj *kubetrainv1alpha1.TrainingJob) ([]*kueuev1beta2.Workload, error) {
	list := &kueuev1beta2.WorkloadList{}
	if err := c.List(ctx, list, client.InNamespace(tj.Namespace), client.MatchingLabels{kueueJobUIDLabel: string(tj.UID)}); err != nil {
		return nil, fmt.Errorf("listing the job's Kueue Workloads: %w", err)
	}
	var wls []*kueuev1beta2.Workload
	for i := range list.Items {
		if metav1.IsControlledBy(&list.Items[i], tj) {
			wls = append(wls, &list.Items[i])
		}
	}
	return wls, nil
}

// workloadName is the Workload's name for a job: kind, name and a hash of the name and UID, so a
// job deleted and created again under its name gets a Workload of its own.
func workloadName(tj *kubetrainv1alpha1.TrainingJob) string {
	sum := sha256.Sum256([]byte(tj.Name + "\n" + string(tj.UID)))
	prefix := "trainingjob-" + tj.Name
	if len(prefix) > 240 {
		prefix = prefix[:240]
	}
	return prefix + "-" + hex.EncodeToString(sum[:])[:5]
}

// constructWorkload is the Workload Kueue admits for a job: one pod set of spec.workers pods, each
// as the worker pods request and place themselves.
func constructWorkload(tj *kubetrainv1alpha1.TrainingJob, cfg Config) *kueuev1beta2.Workload {
	return &kueuev1beta2.Workload{
		ObjectMeta: metav1.ObjectMeta{
			Name:      workloadName(tj),
			Namespace: tj.Namespace,
			Labels:    map[string]string{kueueJobUIDLabel: string(tj.UID)},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(tj,
				kubetrainv1alpha1.GroupVersion.WithKind("TrainingJob"))},
		},
		Spec: kueuev1beta2.WorkloadSpec{
			QueueName: kueuev1beta2.LocalQueueName(kueueQueueName(tj)),
			PodSets:   workerPodSets(tj, cfg),
		},
	}
}

// workerPodSets describe the job's workers to Kueue: what each requests, and where it may run.
func workerPodSets(tj *kubetrainv1alpha1.TrainingJob, cfg Config) []kueuev1beta2.PodSet {
	pod := constructWorkerPod(tj, 0, cfg)
	c := pod.Spec.Containers[0]
	return []kueuev1beta2.PodSet{{
		Name:  workersPodSet,
		Count: tj.Spec.Workers,
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy:     pod.Spec.RestartPolicy,
			Containers:        []corev1.Container{{Name: c.Name, Image: c.Image, Resources: c.Resources}},
			NodeSelector:      pod.Spec.NodeSelector,
			Tolerations:       pod.Spec.Tolerations,
			Affinity:          pod.Spec.Affinity,
			PriorityClassName: pod.Spec.PriorityClassName,
			RuntimeClassName:  pod.Spec.RuntimeClassName,
		}},
	}}
}

// podSetsMatch says whether a Workload still stands for the job: the same number of workers,
// asking for the same resources, with the same constraints on where they run.
func podSetsMatch(want, have []kueuev1beta2.PodSet) bool {
	if len(want) != len(have) {
		return false
	}
	for i := range want {
		w, h := &want[i], &have[i]
		if w.Name != h.Name || w.Count != h.Count || len(h.Template.Spec.Containers) != 1 {
			return false
		}
		ws, hs := &w.Template.Spec, &h.Template.Spec
		// Semantic equality takes nil and empty as equal (a round trip through the API server drops
		// empty maps and lists) and compares quantities by value.
		eq := equality.Semantic.DeepEqual
		if !eq(ws.Containers[0].Resources.Requests, hs.Containers[0].Resources.Requests) ||
			!eq(ws.Containers[0].Resources.Limits, hs.Containers[0].Resources.Limits) ||
			!eq(ws.NodeSelector, hs.NodeSelector) || !eq(ws.Tolerations, hs.Tolerations) ||
			!eq(ws.Affinity, hs.Affinity) || ws.PriorityClassName != hs.PriorityClassName {
			return false
		}
	}
	return true
}

// KueueReconciler is a TrainingJob's side of Kueue's protocol: it keeps the job's Workload, holds
// the job suspended until Kueue admits the Workload and while Kueue evicts it, hands the quota back
// once an evicted job's workers are gone, and tells Kueue when the job finished.
type KueueReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	Config   Config
	// SkipNameValidation allows a second controller of the same name in one process (tests).
	SkipNameValidation bool
}

// +kubebuilder:rbac:groups=kubetrain.io,resources=trainingjobs,verbs=patch
// +kubebuilder:rbac:groups=kueue.x-k8s.io,resources=workloads,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=kueue.x-k8s.io,resources=workloads/status,verbs=get;patch
// +kubebuilder:rbac:groups=kueue.x-k8s.io,resources=workloads/finalizers,verbs=update
// +kubebuilder:rbac:groups=kueue.x-k8s.io,resources=resourceflavors,verbs=get;list;watch

// KueueFieldManager is the KueueReconciler's name in managedFields.
const KueueFieldManager = "kubetrain-kueue"

// Reconcile moves a job and its Workload one step along Kueue's protocol.
func (r *KueueReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	tj := &kubetrainv1alpha1.TrainingJob{}
	if err := r.Client.Get(ctx, req.NamespacedName, tj); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		tj = nil
	}
	gone := tj == nil || !tj.DeletionTimestamp.IsZero()
	if !gone && kueueQueueName(tj) == "" {
		return ctrl.Result{}, nil // not Kueue's
	}
	// Workloads of a job that is gone (or of an earlier job of the same name) lose Kueue's
	// finalizer, so that the garbage collector can delete them and Kueue frees their quota.
	if err := r.releaseOrphans(ctx, req, tj); err != nil || gone {
		return ctrl.Result{}, err
	}
	wls, err := jobWorkloads(ctx, r.Client, tj)
	if err != nil {
		return ctrl.Result{}, err
	}
	var wl *kueuev1beta2.Workload
	var stale []*kueuev1beta2.Workload
	want := workerPodSets(tj, r.Config)
	for _, w := range wls {
		switch {
		case apimeta.IsStatusConditionTrue(w.Status.Conditions, kueuev1beta2.WorkloadFinished):
			// Kueue keeps its finalizer on a finished Workload until the job's side lets go.
			if err := r.removeFinalizer(ctx, w); err != nil {
				return ctrl.Result{}, err
			}
			if finished(tj.Status.Phase) {
				return ctrl.Result{}, nil
			}
		case wl == nil && podSetsMatch(want, w.Spec.PodSets):
			wl = w
		default:
			stale = append(stale, w)
		}
	}

	if finished(tj.Status.Phase) {
		if wl == nil {
			return ctrl.Result{}, nil
		}
		reason := kueuev1beta2.WorkloadFinishedReasonSucceeded
		if tj.Status.Phase == kubetrainv1alpha1.PhaseFailed {
			reason = kueuev1beta2.WorkloadFinishedReasonFailed
		}
		msg := "the TrainingJob " + string(tj.Status.Phase)
		if c := apimeta.FindStatusCondition(tj.Status.Conditions, kubetrainv1alpha1.ConditionReady); c != nil && c.Message != "" {
			msg += ": " + c.Message
		}
		return ctrl.Result{}, r.patchWorkloadStatus(ctx, wl, func(st *kueuev1beta2.WorkloadStatus) {
			apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: kueuev1beta2.WorkloadFinished,
				Status: metav1.ConditionTrue, Reason: reason, Message: truncate(msg, 32768), ObservedGeneration: wl.Generation})
		})
	}

	if wl != nil && !wl.DeletionTimestamp.IsZero() {
		// Someone deletes the Workload: the job stops, and lets the Workload go.
		if err := r.setSuspend(ctx, tj, true, "its Kueue Workload is being deleted"); err != nil {
			return ctrl.Result{}, err
		}
		return ctrl.Result{}, r.removeFinalizer(ctx, wl)
	}

	if wl == nil && !tj.Spec.RunPolicy.Suspend {
		// No Workload admits the job as it is: a new job, or one whose workers changed.
		why := "it waits in Kueue LocalQueue " + kueueQueueName(tj)
		if len(stale) > 0 {
			why = "its workers changed: its Kueue Workload no longer matches them"
		}
		if err := r.setSuspend(ctx, tj, true, why); err != nil {
			return ctrl.Result{}, err
		}
	}
	for _, w := range stale {
		if err := r.removeFinalizer(ctx, w); err != nil {
			return ctrl.Result{}, err
		}
		if err := r.Client.Delete(ctx, w); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, fmt.Errorf("deleting Workload %s, which no longer matches the job: %w", w.Name, err)
		}
		r.Recorder.Eventf(tj, nil, corev1.EventTypeNormal, "DeletedWorkload", "Delete", "deleted Kueue Workload %s: it no longer matches the job", w.Name)
	}
	active, err := r.activeWorkers(ctx, tj)
	if err != nil {
		return ctrl.Result{}, err
	}
	if wl == nil {
		if active || len(stale) > 0 {
			return ctrl.Result{}, nil // the next pass, when the workers or the old Workloads are gone
		}
		wl = constructWorkload(tj, r.Config)
		if err := r.Client.Create(ctx, wl); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return ctrl.Result{RequeueAfter: time.Second}, nil // the cache has not seen it yet
			}
			return ctrl.Result{}, fmt.Errorf("creating the job's Kueue Workload: %w", err)
		}
		r.Recorder.Eventf(tj, nil, corev1.EventTypeNormal, "CreatedWorkload", "Create",
			"created Kueue Workload %s in LocalQueue %s", wl.Name, wl.Spec.QueueName)
		return ctrl.Result{}, nil
	}

	if ev := apimeta.FindStatusCondition(wl.Status.Conditions, kueuev1beta2.WorkloadEvicted); ev != nil && ev.Status == metav1.ConditionTrue {
		if err := r.setSuspend(ctx, tj, true, fmt.Sprintf("Kueue evicted its Workload (%s): %s", ev.Reason, ev.Message)); err != nil {
			return ctrl.Result{}, err
		}
		if active || !apimeta.IsStatusConditionTrue(wl.Status.Conditions, kueuev1beta2.WorkloadQuotaReserved) {
			return ctrl.Result{}, nil
		}
		// The workers are gone: Kueue may give the quota to another workload, and queues this one
		// again (at once after a preemption or a node failure, as Kueue's integrations do).
		now := metav1.NewTime(r.Clock.Now())
		requeued := ev.Reason == kueuev1beta2.WorkloadEvictedByPreemption || ev.Reason == kueuev1beta2.WorkloadEvictedDueToNodeFailures
		return ctrl.Result{}, r.patchWorkloadStatus(ctx, wl, func(st *kueuev1beta2.WorkloadStatus) {
			st.Admission = nil
			apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: kueuev1beta2.WorkloadRequeued,
				Status: conditionStatus(requeued), Reason: ev.Reason, Message: ev.Message, ObservedGeneration: wl.Generation, LastTransitionTime: now})
			apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: kueuev1beta2.WorkloadQuotaReserved,
				Status: metav1.ConditionFalse, Reason: "Pending", Message: ev.Message, ObservedGeneration: wl.Generation, LastTransitionTime: now})
			apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: kueuev1beta2.WorkloadAdmitted,
				Status: metav1.ConditionFalse, Reason: "NoReservation", Message: "The workload has no reservation", ObservedGeneration: wl.Generation, LastTransitionTime: now})
		})
	}

	admitted := apimeta.IsStatusConditionTrue(wl.Status.Conditions, kueuev1beta2.WorkloadAdmitted) && wl.Status.Admission != nil
	switch {
	case tj.Spec.RunPolicy.Suspend && admitted:
		return ctrl.Result{}, r.setSuspend(ctx, tj, false, "Kueue admitted its Workload in ClusterQueue "+string(wl.Status.Admission.ClusterQueue))
	case tj.Spec.RunPolicy.Suspend && string(wl.Spec.QueueName) != kueueQueueName(tj):
		// The job moved to another LocalQueue while it waited.
		wl.Spec.QueueName = kueuev1beta2.LocalQueueName(kueueQueueName(tj))
		if err := r.Client.Update(ctx, wl); err != nil {
			return ctrl.Result{}, fmt.Errorf("moving Workload %s to LocalQueue %s: %w", wl.Name, wl.Spec.QueueName, err)
		}
	case !tj.Spec.RunPolicy.Suspend && !admitted:
		return ctrl.Result{}, r.setSuspend(ctx, tj, true, "Kueue has not admitted its Workload")
	}
	return ctrl.Result{}, nil
}

// setSuspend sets spec.runPolicy.suspend, as Kueue's integrations suspend and start a job; the
// TrainingJob controller stops or starts the workers.
func (r *KueueReconciler) setSuspend(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob, suspend bool, why string) error {
	if tj.Spec.RunPolicy.Suspend == suspend {
		return nil
	}
	orig := tj.DeepCopy()
	tj.Spec.RunPolicy.Suspend = suspend
	if err := r.Client.Patch(ctx, tj, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}), client.FieldOwner(KueueFieldManager)); err != nil {
		return fmt.Errorf("setting spec.runPolicy.suspend to %t: %w", suspend, err)
	}
	reason, action := "Stopped", "Suspend"
	if !suspend {
		reason, action = "Started", "Resume"
	}
	r.Recorder.Eventf(tj, nil, corev1.EventTypeNormal, reason, action, "%s", why)
	return nil
}

// activeWorkers says whether any worker pod of the job still runs or stops.
func (r *KueueReconciler) activeWorkers(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob) (bool, error) {
	pods := &corev1.PodList{}
	if err := r.Client.List(ctx, pods, client.InNamespace(tj.Namespace), client.MatchingFields{ownerIndex: string(tj.UID)}); err != nil {
		return false, fmt.Errorf("listing the job's pods: %w", err)
	}
	for i := range pods.Items {
		if !podFinished(&pods.Items[i]) {
			return true, nil
		}
	}
	return false, nil
}

// releaseOrphans lets go of the Workloads of a job named req.Name that no longer exists.
func (r *KueueReconciler) releaseOrphans(ctx context.Context, req ctrl.Request, tj *kubetrainv1alpha1.TrainingJob) error {
	list := &kueuev1beta2.WorkloadList{}
	if err := r.Client.List(ctx, list, client.InNamespace(req.Namespace)); err != nil {
		return fmt.Errorf("listing Workloads: %w", err)
	}
	for i := range list.Items {
		wl := &list.Items[i]
		ref := metav1.GetControllerOfNoCopy(wl)
		if ref == nil || ref.Kind != "TrainingJob" || ref.Name != req.Name || ref.APIVersion != kubetrainv1alpha1.GroupVersion.String() {
			continue
		}
		if tj != nil && tj.DeletionTimestamp.IsZero() && ref.UID == tj.UID {
			continue
		}
		if err := r.removeFinalizer(ctx, wl); err != nil {
			return err
		}
	}
	return nil
}

func (r *KueueReconciler) removeFinalizer(ctx context.Context, wl *kueuev1beta2.Workload) error {
	if !controllerutil.ContainsFinalizer(wl, kueuev1beta2.ResourceInUseFinalizerName) {
		return nil
	}
	orig := wl.DeepCopy()
	controllerutil.RemoveFinalizer(wl, kueuev1beta2.ResourceInUseFinalizerName)
	err := r.Client.Patch(ctx, wl, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}), client.FieldOwner(KueueFieldManager))
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("removing Kueue's finalizer from Workload %s: %w", wl.Name, err)
	}
	return nil
}

// patchWorkloadStatus changes a Workload's status with a merge patch that fails if Kueue changed
// the Workload since it was read; the pass then runs again on the new version.
func (r *KueueReconciler) patchWorkloadStatus(ctx context.Context, wl *kueuev1beta2.Workload, change func(*kueuev1beta2.WorkloadStatus)) error {
	orig := wl.DeepCopy()
	change(&wl.Status)
	err := r.Client.Status().Patch(ctx, wl, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}), client.FieldOwner(KueueFieldManager))
	if err != nil {
		return fmt.Errorf("updating the status of Workload %s: %w", wl.Name, err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// SetupWithManager registers the controller: it watches TrainingJobs, their Workloads and pods.
// The TrainingJob controller registers the pod index it uses.
func (r *KueueReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("trainingjob-kueue").
		For(&kubetrainv1alpha1.TrainingJob{}).
		// Owns would drop the events of a Workload whose job is gone; its finalizer needs them.
		Watches(&kueuev1beta2.Workload{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []ctrl.Request {
			ref := metav1.GetControllerOfNoCopy(o)
			if ref == nil || ref.Kind != "TrainingJob" || ref.APIVersion != kubetrainv1alpha1.GroupVersion.String() {
				return nil
			}
			return []ctrl.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: ref.Name}}}
		})).
		Owns(&corev1.Pod{}).
		WithOptions(controller.Options{SkipNameValidation: ptr.To(r.SkipNameValidation)}).
		Complete(r)
}
