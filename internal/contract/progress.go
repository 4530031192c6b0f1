package contract

import "time"

// Progress is the record the trainer emits after each epoch: one JSON object per line on stdout with
// --log-format=json, and the same fields in the TrainingJob's status.
type Progress struct {
	Epoch           int     `json:"epoch"`
	Epochs          int     `json:"epochs"`
	Loss            float64 `json:"loss"`
	TrainAccuracy   float64 `json:"train_accuracy"`
	TestAccuracy    float64 `json:"test_accuracy"`
	ImagesPerSecond float64 `json:"images_per_second"`
	// ElapsedSeconds is the wall time since training started in this attempt.
	ElapsedSeconds float64   `json:"elapsed_seconds"`
	Time           time.Time `json:"time"`
}

// Result is the trainer's final summary: printed last and written to the termination log, so the
// controller can read the outcome from the pod's status even when the API could not be reached.
type Result struct {
	// Outcome is "Succeeded" or ExitReason of the exit code.
	Outcome string `json:"outcome"`
	// Message says what went wrong, naming the flag, file or record; empty on success.
	Message string `json:"message,omitempty"`
	// Last is the last completed epoch's progress, if any.
	Last *Progress `json:"last,omitempty"`
	// Checkpoint is the URI of the last committed checkpoint, if any.
	Checkpoint string `json:"checkpoint,omitempty"`
	// StopReason says why a successful run ended before its last epoch (StopTargetReached).
	StopReason string `json:"stopReason,omitempty"`
}

// StopTargetReached: the test accuracy reached --target-test-accuracy.
const StopTargetReached = "TargetAccuracyReached"

// TerminationMessageLimit is the most bytes Kubernetes keeps of a termination message.
const TerminationMessageLimit = 4096
