package controllers

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
)

// suspend stops a job's workers while spec.runPolicy.suspend is set, or while Kueue does not admit
// the job. The stopped attempt is over:
// resuming starts the next one (which resumes from the latest checkpoint), and the active deadline
// counts again from the resumption, as for a batch Job. A suspension is neither a failure nor a
// disruption.
func (p *planner) suspend() {
	st := &p.out.status
	p.stopActivePods()
	if st.AttemptStartTime != nil {
		st.Attempt++
		st.AttemptStartTime = nil
	}
	st.StartTime = nil
	st.RestartAfter = nil
	st.Workers = kubetrainv1alpha1.WorkerCounts{}
	p.out.requeueAfter = 0
	reason, message := kubetrainv1alpha1.ReasonSuspended, "spec.runPolicy.suspend is true"
	if p.queue != nil && !p.queue.admitted {
		reason, message = kubetrainv1alpha1.ReasonQueued, p.queue.message
	}
	if st.Phase != kubetrainv1alpha1.PhaseSuspended {
		p.emit(corev1.EventTypeNormal, reason, "Suspend", "the job is suspended: its workers are stopped; "+message)
	}
	setCondition(st, p.tj.Generation, p.nowMeta, kubetrainv1alpha1.ConditionSuspended, metav1.ConditionTrue, reason, message)
	p.setPhase(kubetrainv1alpha1.PhaseSuspended, health{reason: reason, message: message})
}

// resume records the end of a suspension; startAttempt then creates the next attempt's workers.
func (p *planner) resume() {
	setCondition(&p.out.status, p.tj.Generation, p.nowMeta, kubetrainv1alpha1.ConditionSuspended, metav1.ConditionFalse,
		kubetrainv1alpha1.ReasonResumed, "spec.runPolicy.suspend is false")
	p.emit(corev1.EventTypeNormal, kubetrainv1alpha1.ReasonResumed, "Resume", "the job is resumed")
}
