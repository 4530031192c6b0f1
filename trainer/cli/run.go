package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/kubetrain/kubetrain/internal/blob"
	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/trainer/collective"
	"github.com/kubetrain/kubetrain/trainer/data"
	"github.com/kubetrain/kubetrain/trainer/gemm"
	"github.com/kubetrain/kubetrain/trainer/optim"
	"github.com/kubetrain/kubetrain/trainer/simd"
	"github.com/kubetrain/kubetrain/trainer/train"
	"github.com/kubetrain/kubetrain/trainer/vec"
)

// Run is the trainer binary: Main with the process's signals. SIGTERM (the pod is being stopped)
// and SIGINT stop training before its next step, with contract.ExitTerminated.
//
// The Go runtime is given as many processors as the trainer computes with (unless GOMAXPROCS says
// otherwise): idle processors spin looking for work and take CPU from the compute threads, and from
// the other workers of a data-parallel run on the same node.
func Run(args, environ []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	env := Environ(environ)
	if cfg, err := Parse(args, env); err == nil && env["GOMAXPROCS"] == "" {
		runtime.GOMAXPROCS(cfg.Threads)
	}
	return Main(ctx, args, env, stdout, stderr)
}

// Main runs the trainer with the given arguments and environment, writing progress to stdout and
// diagnostics to stderr, and returns the exit code. Cancelling ctx (SIGTERM, in the binary) stops
// training before the next step with contract.ExitTerminated.
func Main(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	cfg, err := parse(args, env, stderr)
	if errors.Is(err, errHelp) {
		return contract.ExitSucceeded
	}
	termLog := contract.TerminationLogPath
	if p, ok := env[EnvTerminationLog]; ok {
		termLog = p
	}
	var sess *session
	var stopReason string
	finish := func(code int, msg string, last *contract.Progress) int {
		res := contract.Result{Outcome: contract.ExitReason(int32(code)), Message: msg, Last: last, StopReason: stopReason}
		if sess != nil {
			res.Checkpoint = sess.lastURI
		}
		writeTerminationLog(termLog, res, stderr)
		if cfg.LogFormat == contract.LogFormatJSON {
			shown := res // the termination log carries the URI; the log shows it as URIs are shown
			if shown.Checkpoint != "" {
				shown.Checkpoint = contract.ShowURI(shown.Checkpoint)
			}
			line, _ := json.Marshal(shown)
			fmt.Fprintf(stdout, "%s\n", line)
		} else if msg != "" {
			fmt.Fprintf(stderr, "trainer: %s: %s\n", res.Outcome, msg)
		}
		return code
	}
	if err != nil {
		return finish(contract.ExitInvalidConfig, err.Error(), nil)
	}
	if cfg.Kernel != "" {
		if err := gemm.Use(cfg.Kernel); err != nil {
			return finish(contract.ExitInvalidConfig, err.Error(), nil)
		}
		// The kernel names an instruction set for every hot loop, not only the matrix products.
		level, err := simd.Parse(cfg.Kernel)
		if err != nil {
			return finish(contract.ExitInvalidConfig, err.Error(), nil)
		}
		vec.Use(level)
		optim.Use(level)
	}
	// fail maps an error to its exit code: bad configuration and bad data are permanent, anything
	// else (storage or the API unreachable) may pass.
	fail := func(err error, last *contract.Progress) int {
		var ce *ConfigError
		var de *dataError
		switch {
		case errors.As(err, &ce):
			return finish(contract.ExitInvalidConfig, err.Error(), last)
		case blob.CredentialsRefused(err):
			return finish(contract.ExitInvalidConfig, "the object store refused the credentials (not retried: fix the Secret named in credentialsSecretName): "+err.Error(), last)
		case errors.As(err, &de):
			return finish(contract.ExitInvalidData, err.Error(), last)
		default:
			return finish(contract.ExitRetriable, err.Error(), last)
		}
	}
	if sess, err = newSession(ctx, cfg, env, stderr); err != nil {
		return fail(err, nil)
	}
	defer sess.close()

	datasetURI, err := fetchDataset(ctx, cfg, env)
	if err != nil {
		return fail(err, nil)
	}
	ds, err := data.Load(datasetURI, cfg.DatasetFormat, cfg.Seed)
	var ce *data.ConfigError
	switch {
	case errors.As(err, &ce):
		return finish(contract.ExitInvalidConfig, fmt.Sprintf("--%s: %v", contract.FlagDataset, err), nil)
	case err != nil:
		return finish(contract.ExitInvalidData, err.Error(), nil)
	}
	comm, err := joinRun(ctx, sess.job, env)
	if err != nil {
		return fail(err, nil)
	}
	defer comm.Close()
	t, err := train.New(train.Config{
		Model: cfg.Model, Epochs: cfg.Epochs, BatchSize: cfg.BatchSize, LearningRate: cfg.LearningRate,
		Optimizer: cfg.Optimizer, Seed: cfg.Seed, Threads: cfg.Threads, Comm: comm,
	}, ds)
	if err != nil {
		return finish(contract.ExitInvalidConfig, err.Error(), nil)
	}
	defer t.Close()
	if cfg.LogFormat == contract.LogFormatText {
		fmt.Fprintf(stdout, "training %s (%d parameters) on %s (%d training, %d test images of %v), %d threads, %s kernels, on the CPU\n",
			t.Model(), t.Model().ParamCount(), ds.Name, ds.Train.Len(), ds.Test.Len(), ds.Train.Shape(), cfg.Threads, gemm.Kernel())
	}
	resumeCtx, cancelResume := context.WithTimeout(ctx, cfg.ResumeTimeout)
	resumed, err := sess.resume(resumeCtx, t)
	if err != nil && errors.Is(resumeCtx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("reading the checkpoint to resume from did not finish within --%s=%v: %w", FlagResumeTimeout, cfg.ResumeTimeout, err)
	}
	cancelResume()
	if err != nil {
		return fail(err, nil)
	}
	if resumed != "" {
		fmt.Fprintf(stderr, "trainer: resuming after epoch %d from %s\n", t.Epoch(), contract.ShowURI(resumed))
	}
	if err := sameEpoch(comm, t.Epoch()); err != nil {
		return fail(err, nil)
	}
	var saveErr error
	var diverged bool
	// runCtx also ends the run early: on divergence, or once the target accuracy is reached.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	last, err := t.Run(runCtx, train.ReporterFunc(func(p contract.Progress) {
		printProgress(stdout, cfg.LogFormat, p)
		var reached bool
		if diverged, reached = epochVerdict(cfg, p); diverged {
			stopRun() // and no checkpoint of a diverged model
			return
		}
		if err := sess.epochDone(ctx, t, p, reached); err != nil {
			saveErr = err
			sess.warn("checkpoint after epoch %d: %v", p.Epoch, err)
		}
		if reached {
			stopReason = contract.StopTargetReached
			stopRun()
		}
	}))
	if err == nil && last == nil {
		last = sess.resumedProgress(cfg.Epochs) // resumed after the last epoch: nothing left to train
	}
	switch {
	case diverged:
		return finish(contract.ExitDiverged, fmt.Sprintf("the loss is %v after epoch %d: training diverged; lower --%s (now %g)",
			last.Loss, last.Epoch, contract.FlagLearningRate, cfg.LearningRate), last)
	case saveErr != nil && blob.CredentialsRefused(saveErr):
		return fail(saveErr, last)
	case stopReason != "" && ctx.Err() == nil:
		err = nil // stopped on purpose: success
		if saveErr != nil {
			return finish(contract.ExitRetriable, fmt.Sprintf("the final checkpoint could not be written: %v", saveErr), last)
		}
		fmt.Fprintf(stdout, "target test accuracy %g reached after epoch %d of %d\n", cfg.TargetAccuracy, last.Epoch, last.Epochs)
	}
	if err == nil && saveErr != nil && last != nil && last.Epoch == last.Epochs {
		// The final model must not be lost: another attempt resumes from the last good checkpoint.
		return finish(contract.ExitRetriable, fmt.Sprintf("the final checkpoint could not be written: %v", saveErr), last)
	}
	if err != nil {
		if ctx.Err() != nil {
			sess.stopped()
			return finish(contract.ExitTerminated, fmt.Sprintf("stopped by a termination signal after %d of %d epochs", t.Epoch(), cfg.Epochs), last)
		}
		return finish(contract.ExitRetriable, err.Error(), last)
	}
	if cfg.LogFormat == contract.LogFormatText {
		fmt.Fprintf(stdout, "done: %d epochs, loss %.4f, train accuracy %.4f, test accuracy %.4f, %.0f images/s, %.1fs, weights sha256 %s\n",
			last.Epochs, last.Loss, last.TrainAccuracy, last.TestAccuracy, last.ImagesPerSecond, last.ElapsedSeconds, t.WeightsHash())
	}
	return finish(contract.ExitSucceeded, "", last)
}

// epochVerdict says whether training diverged (a NaN or infinite loss: retrying cannot help) or
// reached its target test accuracy after an epoch.
func epochVerdict(cfg Config, p contract.Progress) (diverged, reached bool) {
	if math.IsNaN(p.Loss) || math.IsInf(p.Loss, 0) {
		return true, false
	}
	return false, cfg.TargetAccuracy > 0 && p.TestAccuracy >= cfg.TargetAccuracy
}

func printProgress(w io.Writer, format string, p contract.Progress) {
	if format == contract.LogFormatJSON {
		line, _ := json.Marshal(p)
		fmt.Fprintf(w, "%s\n", line)
		return
	}
	fmt.Fprintf(w, "epoch %d/%d  loss %.4f  train_accuracy %.4f  test_accuracy %.4f  images/s %.0f  elapsed %.1fs\n",
		p.Epoch, p.Epochs, p.Loss, p.TrainAccuracy, p.TestAccuracy, p.ImagesPerSecond, p.ElapsedSeconds)
}

// writeTerminationLog writes the result to path when that file exists (Kubernetes creates it), cut
// to the size Kubernetes keeps.
func writeTerminationLog(path string, res contract.Result, stderr io.Writer) {
	if _, err := os.Stat(path); err != nil {
		return
	}
	b, _ := json.Marshal(res)
	if len(b) > contract.TerminationMessageLimit {
		res.Message = strings.ToValidUTF8(res.Message[:max(0, len(res.Message)-(len(b)-contract.TerminationMessageLimit)-16)], "") + "..."
		b, _ = json.Marshal(res)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		fmt.Fprintf(stderr, "trainer: writing %s: %v\n", path, err)
	}
}

// Environ turns os.Environ's list into the map Parse and Main take.
func Environ(list []string) map[string]string {
	env := make(map[string]string, len(list))
	for _, kv := range list {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// joinRun joins the other workers of a data-parallel run (world size above 1, from the
// environment the controller sets): rank 0 listens on the rendezvous port, the others on any port
// of their pod's address (of the rendezvous host, outside a pod: all ranks on one machine). The
// run's shared value is the job's UID and attempt, so a worker of
// another job or attempt cannot join. Alone, it returns a Comm of one that connects nothing.
func joinRun(ctx context.Context, job contract.CheckpointJob, env map[string]string) (*collective.Comm, error) {
	size := 1
	if v := env[contract.EnvWorldSize]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || job.Rank < 0 || job.Rank >= n {
			return nil, &ConfigError{Msg: fmt.Sprintf("%s=%q with %s=%d: not a world this worker belongs to", contract.EnvWorldSize, v, contract.EnvRank, job.Rank)}
		}
		size = n
	}
	cfg := collective.Config{Rank: job.Rank, Size: size, Rank0: env[contract.EnvRendezvous], Advertise: env[contract.EnvPodIP],
		Secret: fmt.Sprintf("%s/%d", job.UID, job.Attempt)}
	if size > 1 {
		host, port, err := net.SplitHostPort(cfg.Rank0)
		if err != nil {
			return nil, &ConfigError{Msg: fmt.Sprintf("%s=%q: want host:port of rank 0", contract.EnvRendezvous, cfg.Rank0)}
		}
		switch {
		case job.Rank == 0:
			cfg.Listen = ":" + port
		case cfg.Advertise != "":
			cfg.Listen = ":0"
		default:
			cfg.Listen = net.JoinHostPort(host, "0")
		}
	}
	return collective.Join(ctx, cfg)
}

// sameEpoch checks that every worker starts from the same epoch: they resumed from one checkpoint.
func sameEpoch(comm *collective.Comm, epoch int) error {
	sums := []float32{float32(epoch), 1}
	if err := comm.AllReduce(sums); err != nil {
		return err
	}
	if sums[0] != float32(epoch)*sums[1] {
		return fmt.Errorf("the workers resumed after different epochs (this one after %d): they must start from one checkpoint", epoch)
	}
	return nil
}
