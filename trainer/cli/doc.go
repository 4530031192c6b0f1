// Package cli is the trainer binary's outer layer: its flags (each with an environment variable,
// names from package contract), progress lines, final summary, termination log, signal handling
// and exit codes. The controller's tests parse a worker pod's arguments and environment with Parse,
// so the flags the controller writes are checked by the trainer's own flag set.
package cli
