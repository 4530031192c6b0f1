package controllers

import (
	"math"
	"time"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
)

// deadlineLeft says how long a running job has before spec.runPolicy.activeDeadlineSeconds stops
// it, counted from status.startTime. ok is false when no deadline applies.
func deadlineLeft(tj *kubetrainv1alpha1.TrainingJob, now time.Time) (left time.Duration, ok bool) {
	ads := tj.Spec.RunPolicy.ActiveDeadlineSeconds
	if ads == nil || tj.Status.StartTime == nil {
		return 0, false
	}
	// Admission caps the deadline at 68 years; an older object's larger one must not overflow
	// into an immediate failure.
	if *ads > maxDeadlineSeconds {
		return 0, false
	}
	end := tj.Status.StartTime.Add(time.Duration(*ads) * time.Second)
	return end.Sub(now), true
}

// maxDeadlineSeconds is the largest deadline a time.Duration holds with room to spare.
const maxDeadlineSeconds = math.MaxInt64 / int64(time.Second) / 2
