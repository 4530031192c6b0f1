package controllers

import "time"

// Config is what the manager's flags set for the controller.
type Config struct {
	// TrainerImage runs the workers of jobs that do not name an image of their own.
	TrainerImage string
	// BackoffBase is the wait before the first retry after a failure; it doubles with each further
	// failure up to BackoffMax. Disruptions are retried at once.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// TerminationGracePeriodSeconds gives a stopped worker time to write a checkpoint.
	TerminationGracePeriodSeconds int64
}

// DefaultConfig is the controller's configuration when no flag says otherwise.
func DefaultConfig() Config {
	return Config{
		TrainerImage:                  "kubetrain/trainer:dev",
		BackoffBase:                   10 * time.Second,
		BackoffMax:                    5 * time.Minute,
		TerminationGracePeriodSeconds: 60,
	}
}
