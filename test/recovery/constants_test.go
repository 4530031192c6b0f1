package recovery

import "time"

// Timeouts of the suite's waits, in one place.
const (
	// timeout bounds a wait for the controller to react to a change.
	timeout = 20 * time.Second
	// consistently is how long a spec watches that something does not happen.
	consistently = 2 * time.Second
	interval     = 100 * time.Millisecond
	// managerStopTimeout bounds a manager's shutdown.
	managerStopTimeout = 30 * time.Second
)
