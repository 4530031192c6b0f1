package controllers

import (
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
)

// setCondition is the one way the controller sets a condition: it stamps the job's generation and,
// when the status changes, the transition time.
func setCondition(st *kubetrainv1alpha1.TrainingJobStatus, generation int64, now metav1.Time,
	condType string, status metav1.ConditionStatus, reason, message string) {
	apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type:               condType,
		Status:             status,
		ObservedGeneration: generation,
		LastTransitionTime: now,
		Reason:             reason,
		Message:            message,
	})
}

// health is what the kstatus conditions say about a job in a pass.
type health struct {
	ready, reconciling, stalled bool
	reason, message             string
}

// setHealth sets Ready, Reconciling and Stalled together, so they never contradict each other:
// Reconciling only while an attempt's workers are being replaced, Stalled only when the job needs
// the user, Ready while the workers run and once the job succeeded.
func setHealth(st *kubetrainv1alpha1.TrainingJobStatus, generation int64, now metav1.Time, h health) {
	cond := func(t string, on bool, reason, message string) {
		status := conditionStatus(on)
		if !on && t != kubetrainv1alpha1.ConditionReady {
			reason, message = kubetrainv1alpha1.ReasonAsExpected, ""
		}
		setCondition(st, generation, now, t, status, reason, message)
	}
	cond(kubetrainv1alpha1.ConditionReady, h.ready, h.reason, h.message)
	cond(kubetrainv1alpha1.ConditionReconciling, h.reconciling, h.reason, h.message)
	cond(kubetrainv1alpha1.ConditionStalled, h.stalled, h.reason, h.message)
}

// conditionStatus is a condition's status for b.
func conditionStatus(b bool) metav1.ConditionStatus {
	if b {
		return metav1.ConditionTrue
	}
	return metav1.ConditionFalse
}
