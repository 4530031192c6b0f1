package controllers

import (
	"encoding/json"
	"fmt"
	"strings"

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
		fmt.Sprintf("attempt %d resumes from %s (epoch %d)", st.Attempt, contract.ShowURI(from), ref.Epoch))
}

// noteCheckpoint shows the trainer's latest checkpoint in the Checkpointed condition, with an
// event when it is new; one outside the job's own prefix is shown as ignored.
func (p *planner) noteCheckpoint() {
	lc := p.tj.Status.LatestCheckpoint
	if lc == nil || lc.URI == "" {
		return
	}
	status, reason, eventType := metav1.ConditionTrue, kubetrainv1alpha1.ReasonCheckpointed, corev1.EventTypeNormal
	msg := fmt.Sprintf("epoch %d: %s", lc.Epoch, contract.ShowURI(lc.URI))
	if !ownCheckpoint(p.tj, lc.URI) {
		status, reason, eventType = metav1.ConditionFalse, kubetrainv1alpha1.ReasonCheckpointOutsideJob, corev1.EventTypeWarning
		msg = fmt.Sprintf("status.latestCheckpoint %s is not under this job's own checkpoint prefix: ignored, no attempt resumes from it", contract.ShowURI(lc.URI))
	}
	if c := apimeta.FindStatusCondition(p.out.status.Conditions, kubetrainv1alpha1.ConditionCheckpointed); c != nil && c.Message == msg {
		return
	}
	setCondition(&p.out.status, p.tj.Generation, p.nowMeta, kubetrainv1alpha1.ConditionCheckpointed, status, reason, msg)
	if status == metav1.ConditionTrue {
		msg = "checkpoint after " + msg
	}
	p.emit(eventType, reason, "Checkpoint", msg)
}

// ownCheckpoint says whether uri lies under this job's own prefix of spec.checkpoint.uri, the only
// place its trainer writes (see contract.JobPrefix). status.latestCheckpoint and the pod's
// termination message are written by the worker, so the operator takes no checkpoint from them on
// trust: one elsewhere (another job's, another bucket) is never resumed from or named the model.
func ownCheckpoint(tj *kubetrainv1alpha1.TrainingJob, uri string) bool {
	if tj.Spec.Checkpoint == nil {
		return false
	}
	key, ok := contract.CheckpointKey(tj.Spec.Checkpoint.URI, uri)
	jobPrefix, err := contract.JobPrefix(tj.Namespace, tj.Name, string(tj.UID), 0)
	if !ok || err != nil {
		return false
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return strings.HasPrefix(key, jobPrefix)
}

// finalModel is the trained model's location: the checkpoint the trainer named in its result (read
// from the pod's termination message, which holds it even when the trainer could not reach the
// API), else the latest one in status; either only if it is the job's own (see ownCheckpoint).
func finalModel(tj *kubetrainv1alpha1.TrainingJob, result contract.Result) string {
	if result.Checkpoint != "" && ownCheckpoint(tj, result.Checkpoint) {
		return result.Checkpoint
	}
	if lc := tj.Status.LatestCheckpoint; lc != nil && ownCheckpoint(tj, lc.URI) {
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
