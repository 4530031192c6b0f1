// kubectl-train is the kubectl plugin for kubetrain's TrainingJobs: on the PATH (make
// install-plugin), kubectl runs it as `kubectl train`. See internal/plugin.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kubetrain/kubetrain/internal/plugin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := plugin.Main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
