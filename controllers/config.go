package controllers

import "time"

// Config is what the manager's flags set for the controller.
type Config struct {
	// TrainerImage runs the workers of jobs that do not name an image of their own.
	TrainerImage string
	// BackoffBase is the wait before the first retry after a failure; it doubles with each further
	// failure up to BackoffMax. A disruption is retried at once; the next ones in a row (no attempt
	// between them ran ten minutes) wait as the failures' backoff does.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// TerminationGracePeriodSeconds gives a stopped worker time to write a checkpoint.
	TerminationGracePeriodSeconds int64
	// ProgressDeadline is how long the bundled trainer's workers may run before the attempt's first
	// progress report, for jobs that set no spec.runPolicy.progressDeadlineSeconds.
	ProgressDeadline time.Duration
	// ImagePullStall is how long a worker's image may keep failing to pull, from when its pod was
	// scheduled, before the job is Stalled with the kubelet's reason.
	ImagePullStall time.Duration
}

// DefaultConfig is the controller's configuration when no flag says otherwise.
func DefaultConfig() Config {
	return Config{
		TrainerImage:                  "kubetrain/trainer:dev",
		BackoffBase:                   10 * time.Second,
		BackoffMax:                    5 * time.Minute,
		TerminationGracePeriodSeconds: 60,
		ProgressDeadline:              5 * time.Minute,
		ImagePullStall:                3 * time.Minute,
	}
}
