// Package contract is what the controller and the trainer must agree on, in one place: the trainer's
// flag and environment variable names, model presets, dataset formats and the built-in synthetic
// dataset's URI, how a job's identity reaches a worker, the credentials Secret's key names, exit codes
// and what each means to the controller, and the progress record the trainer prints and reports.
//
// Both sides import this package; neither re-declares any of it. A format changed here is changed
// for both, and the tests in this package pin the values that cross process boundaries.
//
// It imports nothing of the Kubernetes API and nothing of the trainer's numeric core.
package contract
