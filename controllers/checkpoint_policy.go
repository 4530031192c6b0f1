package controllers

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/contract"
)

// The rule for "where does a new attempt start": from the latest checkpoint the trainer recorded in
// status, else from the one the spec names (resumeFrom, in worker_pod.go); the controller records
// which, per attempt, and shows each new checkpoint as a condition and an event. It never reads the
// checkpoints themselves: the trainer verifies them and falls back past corrupt ones.

// recordResumption notes, for an attempt about to start, the checkpoint its worker is told to
// resume from.
func (p *planner) recordResumption() {
	st := &p.out.status
	from := resumeFrom(p.tj)
	if from == "" {
		st.ResumedFrom = nil
		return
	}
	ref := kubetrainv1alpha1.CheckpointRef{URI: from, Attempt: st.Attempt}
	if lc := p.tj.Status.LatestCheckpoint; lc != nil && lc.URI == from {
		ref.Epoch, ref.Time = lc.Epoch, lc.Time
	}
	st.ResumedFrom = &ref
	p.emit(corev1.EventTypeNormal, kubetrainv1alpha1.ReasonResuming, "Resume",
		fmt.Sprintf("attempt %d resumes from %s (epoch %d)", st.Attempt, from, ref.Epoch))
}

// noteCheckpoint shows the trainer's latest checkpoint in the Checkpointed condition, with an
// event when it is new.
func (p *planner) noteCheckpoint() {
	lc := p.tj.Status.LatestCheckpoint
	if lc == nil || lc.URI == "" {
		return
	}
	msg := fmt.Sprintf("epoch %d: %s", lc.Epoch, lc.URI)
	if c := apimeta.FindStatusCondition(p.out.status.Conditions, kubetrainv1alpha1.ConditionCheckpointed); c != nil && c.Message == msg {
		return
	}
	setCondition(&p.out.status, p.tj.Generation, p.nowMeta, kubetrainv1alpha1.ConditionCheckpointed, metav1.ConditionTrue,
		kubetrainv1alpha1.ReasonCheckpointed, msg)
	p.emit(corev1.EventTypeNormal, kubetrainv1alpha1.ReasonCheckpointed, "Checkpoint", "checkpoint after "+msg)
}

// finalModel is the trained model's location: the checkpoint the trainer named in its result (read
// from the pod's termination message, which holds it even when the trainer could not reach the
// API), else the latest one in status.
func finalModel(tj *kubetrainv1alpha1.TrainingJob, result contract.Result) string {
	if result.Checkpoint != "" {
		return result.Checkpoint
	}
	if lc := tj.Status.LatestCheckpoint; lc != nil {
		return lc.URI
	}
	return ""
}

// trainerResult is the trainer's final result from a finished pod's termination message; empty for
// a custom image that writes something else.
func trainerResult(pod *corev1.Pod) contract.Result {
	var r contract.Result
	if pod != nil {
		if term := trainerTermination(pod); term != nil {
			_ = json.Unmarshal([]byte(term.Message), &r)
		}
	}
	return r
}
