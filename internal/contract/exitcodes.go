package contract

// Exit codes of the trainer and what each means to the controller. The values follow sysexits.h
// where one fits, so they do not collide with a shell's or a signal's (128+n).
const (
	// ExitSucceeded: training finished; the job succeeds.
	ExitSucceeded = 0
	// ExitInvalidConfig: a flag or environment variable is wrong (unknown model, epochs < 1, ...).
	// Permanent: the same spec fails the same way, so the controller must not retry.
	ExitInvalidConfig = 64
	// ExitInvalidData: the dataset is missing, truncated, oversized or mislabelled. Permanent.
	ExitInvalidData = 65
	// ExitDiverged: the loss became NaN or infinite. Permanent: the same hyperparameters diverge
	// again (lower the learning rate).
	ExitDiverged = 66
	// ExitRetriable: a failure another attempt may not meet (storage unreachable, API timeouts).
	ExitRetriable = 75
	// ExitTerminated: the trainer stopped cleanly at a step boundary after SIGTERM (the pod is being
	// deleted, evicted or preempted). Retriable, and a disruption rather than a failure when the
	// pod shows who stopped it (being deleted, or marked disrupted); the controller counts a SIGTERM
	// nobody recorded sending as a failure.
	ExitTerminated = 143
)

// ExitClass is what the controller does with a worker that exited with a code.
type ExitClass int

const (
	// ExitClassSuccess: the worker is done.
	ExitClassSuccess ExitClass = iota
	// ExitClassPermanent: fail the job now, whatever the backoff limit.
	ExitClassPermanent
	// ExitClassRetriable: start a new attempt while the backoff limit allows (counts as a failure).
	ExitClassRetriable
	// ExitClassDisruption: start a new attempt; does not count against the backoff limit.
	ExitClassDisruption
)

// ClassifyExit says what an exit code means. Codes the trainer does not document (a crash, the
// OOM killer's 137, a custom image's own codes) are retriable failures.
func ClassifyExit(code int32) ExitClass {
	switch code {
	case ExitSucceeded:
		return ExitClassSuccess
	case ExitInvalidConfig, ExitInvalidData, ExitDiverged:
		return ExitClassPermanent
	case ExitTerminated:
		return ExitClassDisruption
	default:
		return ExitClassRetriable
	}
}

// ExitReason is a short CamelCase name for an exit code, for condition reasons and events.
func ExitReason(code int32) string {
	switch code {
	case ExitSucceeded:
		return "Succeeded"
	case ExitInvalidConfig:
		return "InvalidConfig"
	case ExitInvalidData:
		return "InvalidData"
	case ExitDiverged:
		return "Diverged"
	case ExitRetriable:
		return "RetriableError"
	case ExitTerminated:
		return "Terminated"
	case 137:
		return "Killed"
	default:
		return "Error"
	}
}
