package controllers

import (
	"time"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
)

// ttlLeft says how long a finished job is kept before spec.runPolicy.ttlSecondsAfterFinished
// deletes it (its pods go with it, by owner reference). ok is false when no TTL applies.
func ttlLeft(tj *kubetrainv1alpha1.TrainingJob, now time.Time) (left time.Duration, ok bool) {
	ttl := tj.Spec.RunPolicy.TTLSecondsAfterFinished
	if ttl == nil || tj.Status.CompletionTime == nil || !finished(tj.Status.Phase) {
		return 0, false
	}
	end := tj.Status.CompletionTime.Add(time.Duration(*ttl) * time.Second)
	return end.Sub(now), true
}

// finished says whether a phase is terminal: a finished job never starts pods again.
func finished(p kubetrainv1alpha1.Phase) bool {
	return p == kubetrainv1alpha1.PhaseSucceeded || p == kubetrainv1alpha1.PhaseFailed
}
