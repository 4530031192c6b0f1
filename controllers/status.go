package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
)

// controllerOwned is the part of a status the controller writes; the rest is the trainer's.
func controllerOwned(st *kubetrainv1alpha1.TrainingJobStatus) kubetrainv1alpha1.TrainingJobStatus {
	out := *st.DeepCopy()
	out.Progress = nil
	out.History = nil
	out.LatestCheckpoint = nil
	return out
}

// writeStatus writes the controller's part of the status with server-side apply, once per pass and
// only when it changed. The apply carries the resourceVersion the pass read: a pass that planned
// from a stale copy of the job fails with a conflict and is retried, so decisions (a new attempt, a
// counted failure) are never made twice or undone.
func (r *TrainingJobReconciler) writeStatus(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob,
	st *kubetrainv1alpha1.TrainingJobStatus) error {
	want := controllerOwned(st)
	if equality.Semantic.DeepEqual(controllerOwned(&tj.Status), want) {
		return nil
	}
	apply, err := statusApplyConfiguration(tj, &want)
	if err != nil {
		return err
	}
	body, err := apply.MarshalJSON()
	if err != nil {
		return err
	}
	// Sent as a patch of the typed job, which the answer then fills: the client's read-your-writes
	// consistency records the write under the job's own type, so the next pass reads at least this
	// version. Applied as unstructured, it was recorded under another type: the next pass planned
	// from the job as it was before, and its write was refused with a conflict.
	return r.Client.Status().Patch(ctx, tj, client.RawPatch(types.ApplyPatchType, body),
		client.FieldOwner(FieldManager), client.ForceOwnership)
}

// statusApplyConfiguration is the apply request body: the job's identity, the resourceVersion it was
// read at, and the given status; no spec.
func statusApplyConfiguration(tj *kubetrainv1alpha1.TrainingJob, st *kubetrainv1alpha1.TrainingJobStatus) (*unstructured.Unstructured, error) {
	status, err := runtime.DefaultUnstructuredConverter.ToUnstructured(st)
	if err != nil {
		return nil, fmt.Errorf("encoding status of %s/%s: %w", tj.Namespace, tj.Name, err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{"status": status}}
	u.SetAPIVersion(kubetrainv1alpha1.GroupVersion.String())
	u.SetKind("TrainingJob")
	u.SetNamespace(tj.Namespace)
	u.SetName(tj.Name)
	u.SetUID(tj.UID)
	u.SetResourceVersion(tj.ResourceVersion)
	return u, nil
}
