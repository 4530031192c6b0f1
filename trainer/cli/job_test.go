package cli

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/kubetrain/kubetrain/internal/blob"
	"github.com/kubetrain/kubetrain/internal/checkpoint"
	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/internal/s3test"
)

// cancelOn is stdout that cancels the run once a line appears in it: a SIGTERM at a known point.
type cancelOn struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	needle string
	cancel func()
}

func (c *cancelOn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	if c.needle != "" && strings.Contains(c.buf.String(), c.needle) {
		c.needle = ""
		c.cancel()
	}
	return len(p), nil
}

var weightsHash = regexp.MustCompile(`weights sha256 ([0-9a-f]{64})`)

type run struct {
	code           int
	stdout, stderr string
	result         contract.Result
}

// trainRun runs the trainer in-process on a small CIFAR-shaped dataset, cancelling it (as SIGTERM
// does) when stopAt appears on its stdout.
func trainRun(t *testing.T, dataset, stopAt string, args ...string) run {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelOn{needle: stopAt, cancel: cancel}
	var stderr bytes.Buffer
	log := termLog(t)
	// The test S3 server speaks plain HTTP.
	args = append([]string{"--dataset=file://" + dataset, "--threads=2", "--seed=7", "--allow-plain-http"}, args...)
	code := Main(ctx, args, map[string]string{EnvTerminationLog: log}, out, &stderr)
	return run{code, out.buf.String(), stderr.String(), readResult(t, log)}
}

func finalHash(t *testing.T, r run) string {
	t.Helper()
	m := weightsHash.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no weights hash in the output (exit %d):\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	return m[1]
}

// A run stopped by SIGTERM after an epoch and resumed from its checkpoint ends with the same
// weights, bit for bit, as a run that was never stopped.
func TestExactResumeFromS3(t *testing.T) {
	srv := s3test.Start(t, "ckpt")
	dataset := cifarDir(t, 2000, 200)

	whole := trainRun(t, dataset, "", "--epochs=3", "--checkpoint-uri="+srv.URI("ckpt", "whole"))
	if whole.code != contract.ExitSucceeded {
		t.Fatalf("uninterrupted run: exit %d\n%s", whole.code, whole.stderr)
	}
	if !strings.Contains(whole.result.Checkpoint, "ckpt-000003-") {
		t.Errorf("the result names checkpoint %q, want the epoch 3 one", whole.result.Checkpoint)
	}

	uri := srv.URI("ckpt", "stopped")
	stopped := trainRun(t, dataset, "epoch 1/3", "--epochs=3", "--checkpoint-uri="+uri)
	if stopped.code != contract.ExitTerminated {
		t.Fatalf("stopped run: exit %d, want %d\n%s", stopped.code, contract.ExitTerminated, stopped.stderr)
	}
	from := stopped.result.Checkpoint
	if !strings.Contains(from, "ckpt-000001-") || !strings.HasPrefix(from, "s3://ckpt/stopped/local/trainer/run/rank-0/") {
		t.Fatalf("the stopped run's result names checkpoint %q, want its epoch 1 checkpoint", from)
	}

	resumed := trainRun(t, dataset, "", "--epochs=3", "--checkpoint-uri="+uri, "--resume-from="+from)
	if resumed.code != contract.ExitSucceeded {
		t.Fatalf("resumed run: exit %d\n%s", resumed.code, resumed.stderr)
	}
	if !strings.Contains(resumed.stderr, "resuming after epoch 1 from "+contract.ShowURI(from)) || strings.Contains(resumed.stderr, "region=") {
		t.Errorf("the resumed run does not say where it resumed from, as URIs are shown:\n%s", resumed.stderr)
	}
	if strings.Contains(resumed.stdout, "epoch 1/3") {
		t.Errorf("the resumed run trained epoch 1 again:\n%s", resumed.stdout)
	}
	if got, want := finalHash(t, resumed), finalHash(t, whole); got != want {
		t.Errorf("resumed weights %s differ from the uninterrupted run's %s", got, want)
	}
}

// A corrupt checkpoint named for resumption is reported, and the newest older valid one is used.
func TestResumeFallsBackPastACorruptCheckpoint(t *testing.T) {
	srv := s3test.Start(t, "ckpt")
	dataset := cifarDir(t, 1000, 100)
	uri := srv.URI("ckpt", "runs")
	first := trainRun(t, dataset, "", "--epochs=2", "--checkpoint-uri="+uri)
	if first.code != contract.ExitSucceeded {
		t.Fatalf("exit %d\n%s", first.code, first.stderr)
	}
	latest := first.result.Checkpoint
	key := strings.TrimPrefix(strings.SplitN(latest, "?", 2)[0], "s3://")
	state := filepath.Join(srv.Root, filepath.Dir(key), stateObject)
	if err := os.WriteFile(state, []byte("bit rot"), 0o644); err != nil {
		t.Fatal(err)
	}

	again := trainRun(t, dataset, "", "--epochs=3", "--checkpoint-uri="+uri, "--resume-from="+latest)
	if again.code != contract.ExitSucceeded {
		t.Fatalf("exit %d\n%s", again.code, again.stderr)
	}
	if !strings.Contains(again.stderr, "is corrupt") || !strings.Contains(again.stderr, "ckpt-000002-") {
		t.Errorf("the corrupt checkpoint is not reported:\n%s", again.stderr)
	}
	if !strings.Contains(again.stderr, "resuming after epoch 1") {
		t.Errorf("did not fall back to the epoch 1 checkpoint:\n%s", again.stderr)
	}
}

// Checkpoints of another configuration are refused, not silently resumed into.
func TestResumeRefusesAnotherConfiguration(t *testing.T) {
	dataset := cifarDir(t, 500, 100)
	uri := "file://" + t.TempDir()
	first := trainRun(t, dataset, "", "--epochs=1", "--checkpoint-uri="+uri)
	if first.code != contract.ExitSucceeded {
		t.Fatalf("exit %d\n%s", first.code, first.stderr)
	}
	other := trainRun(t, dataset, "", "--epochs=2", "--learning-rate=0.01", "--checkpoint-uri="+uri)
	if other.code != contract.ExitInvalidConfig || !strings.Contains(other.result.Message, "another model, dataset or hyperparameters") {
		t.Fatalf("exit %d, result %+v; want the configuration mismatch refused", other.code, other.result)
	}
}

// An s3:// dataset is fetched into scratch and verified like a local one.
func TestDatasetFromS3(t *testing.T) {
	srv := s3test.Start(t, "datasets")
	local := cifarDir(t, 500, 100)
	b, err := blob.Open(context.Background(), srv.URI("datasets", "cifar"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, name := range datasetFiles[contract.FormatCIFAR10][:5] { // test_batch.bin left out
		data, err := os.ReadFile(filepath.Join(local, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.WriteAll(context.Background(), name, data, nil); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"--dataset=" + srv.URI("datasets", "cifar"), "--allow-plain-http", "--epochs=1", "--scratch-dir=" + t.TempDir()}
	var stdout, stderr bytes.Buffer
	log := termLog(t)
	code := Main(context.Background(), args, map[string]string{EnvTerminationLog: log}, &stdout, &stderr)
	if code != contract.ExitInvalidData || !strings.Contains(readResult(t, log).Message, "test_batch.bin is missing") {
		t.Fatalf("exit %d, %s; want invalid data naming test_batch.bin", code, stderr.String())
	}

	data, _ := os.ReadFile(filepath.Join(local, "test_batch.bin"))
	if err := b.WriteAll(context.Background(), "test_batch.bin", data, nil); err != nil {
		t.Fatal(err)
	}

	// A dataset larger than the scratch space allows is refused while it downloads, as configuration.
	log = termLog(t)
	limited := append([]string{"--max-dataset-bytes=1000000"}, args...)
	code = Main(context.Background(), limited, map[string]string{EnvTerminationLog: log}, &stdout, &stderr)
	if msg := readResult(t, log).Message; code != contract.ExitInvalidConfig || !strings.Contains(msg, "data_batch_") ||
		!strings.Contains(msg, "--max-dataset-bytes=1000000") {
		t.Fatalf("exit %d, %q; want invalid config naming the file and --max-dataset-bytes", code, msg)
	}
	stdout.Reset()
	stderr.Reset()
	if code := Main(context.Background(), args, map[string]string{EnvTerminationLog: termLog(t)}, &stdout, &stderr); code != contract.ExitSucceeded {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "epoch 1/1") {
		t.Errorf("no epoch line:\n%s", stdout.String())
	}

	// The dataset's own credentials (its Secret is not the checkpoints') are used for it, whatever
	// the process's are.
	t.Setenv(contract.SecretKeyAccessKeyID, "checkpoint-account")
	t.Setenv(contract.SecretKeySecretAccessKey, "checkpoint-secret")
	env := map[string]string{EnvTerminationLog: termLog(t),
		contract.EnvDatasetCredentials + contract.SecretKeyAccessKeyID:     srv.AccessKey,
		contract.EnvDatasetCredentials + contract.SecretKeySecretAccessKey: srv.SecretKey}
	stdout.Reset()
	stderr.Reset()
	if code := Main(context.Background(), args, env, &stdout, &stderr); code != contract.ExitSucceeded {
		t.Fatalf("with the dataset's own credentials: exit %d\n%s", code, stderr.String())
	}
	delete(env, contract.EnvDatasetCredentials+contract.SecretKeyAccessKeyID)
	env[EnvTerminationLog] = termLog(t)
	if code := Main(context.Background(), args, env, &stdout, &stderr); code == contract.ExitSucceeded {
		t.Fatal("the dataset was read with the checkpoint account's credentials")
	}
}

// Retention keeps the newest checkpoints and the best.
func TestCheckpointRetention(t *testing.T) {
	dataset := cifarDir(t, 500, 100)
	dir := t.TempDir()
	r := trainRun(t, dataset, "", "--epochs=4", "--checkpoint-uri=file://"+dir, "--checkpoint-keep=2")
	if r.code != contract.ExitSucceeded {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	b, err := blob.Open(context.Background(), "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	entries, err := checkpoint.List(context.Background(), b, "local/trainer/run/rank-0/")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 2 || len(entries) > 3 || entries[0].Epoch != 4 || entries[1].Epoch != 3 {
		t.Errorf("kept %+v, want epochs 4 and 3 (and the best, if older)", entries)
	}
}

func TestEpochVerdict(t *testing.T) {
	inf := math.Inf(1)
	cases := map[string]struct {
		target, loss, acc float64
		diverged, reached bool
	}{
		"training":       {0, 0.5, 0.8, false, false},
		"NaN loss":       {0, inf - inf, 0.8, true, false},
		"infinite loss":  {0.5, inf, 0.9, true, false},
		"target reached": {0.85, 0.3, 0.85, false, true},
		"target not yet": {0.9, 0.3, 0.89, false, false},
		"no target set":  {0, 0.1, 1, false, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			d, r := epochVerdict(Config{TargetAccuracy: tc.target}, contract.Progress{Loss: tc.loss, TestAccuracy: tc.acc})
			if d != tc.diverged || r != tc.reached {
				t.Errorf("epochVerdict = %v, %v; want %v, %v", d, r, tc.diverged, tc.reached)
			}
		})
	}
}

// Reaching the target accuracy ends the run successfully, with its checkpoint and the reason.
func TestTargetAccuracyStopsEarly(t *testing.T) {
	dataset := cifarDir(t, 1000, 200)
	r := trainRun(t, dataset, "", "--epochs=20", "--target-test-accuracy=0.5", "--checkpoint-uri=file://"+t.TempDir())
	if r.code != contract.ExitSucceeded || r.result.StopReason != contract.StopTargetReached {
		t.Fatalf("exit %d, result %+v; want success with %s\n%s", r.code, r.result, contract.StopTargetReached, r.stderr)
	}
	if r.result.Last == nil || r.result.Last.Epoch >= 20 || r.result.Last.TestAccuracy < 0.5 {
		t.Errorf("last epoch %+v: want an early stop at test accuracy >= 0.5", r.result.Last)
	}
	if !strings.Contains(r.result.Checkpoint, fmt.Sprintf("ckpt-%06d-", r.result.Last.Epoch)) {
		t.Errorf("checkpoint %q is not the stopping epoch's", r.result.Checkpoint)
	}
}

// stalledEndpoint is an S3 endpoint that accepts connections and never answers.
func stalledEndpoint(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + l.Addr().String()
}

// A store that stops answering ends the run within its deadline, retriably and saying which
// deadline passed, instead of holding the worker for ever.
func TestStalledStoreEndsTheRunAtItsDeadline(t *testing.T) {
	t.Setenv(contract.SecretKeyAccessKeyID, "key")
	t.Setenv(contract.SecretKeySecretAccessKey, "secret")
	stalled := "?endpoint=" + stalledEndpoint(t) + "&use_path_style=true"
	cases := map[string]struct {
		args []string
		want string
	}{
		"dataset download": {[]string{"--dataset=s3://data/cifar" + stalled, "--fetch-timeout=1s"},
			"the download did not finish within --fetch-timeout=1s"},
		"resume": {[]string{"--dataset=file://" + cifarDir(t, 100, 20), "--resume-from=s3://ckpt/x/manifest.json" + stalled, "--resume-timeout=1s"},
			"did not finish within --resume-timeout=1s"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			log := termLog(t)
			var stdout, stderr bytes.Buffer
			args := append([]string{"--allow-plain-http", "--epochs=1", "--scratch-dir=" + t.TempDir()}, tc.args...)
			code := Main(context.Background(), args, map[string]string{EnvTerminationLog: log}, &stdout, &stderr)
			if msg := readResult(t, log).Message; code != contract.ExitRetriable || !strings.Contains(msg, tc.want) {
				t.Fatalf("exit %d, %q; want %d saying %q", code, msg, contract.ExitRetriable, tc.want)
			}
		})
	}
}

// Credentials the store refuses (a wrong secret, a key it does not know) are a configuration
// error: the trainer fails at once with the permanent exit code, naming the store, instead of
// retrying through the job's backoff.
func TestRefusedCredentialsFailAtOnce(t *testing.T) {
	srv := s3test.Start(t, "datasets", "ckpt")
	dataset := cifarDir(t, 100, 20)
	for name, creds := range map[string][2]string{"wrong secret": {srv.AccessKey, "wrong"}, "unknown key": {"nobody", "x"}} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(contract.SecretKeyAccessKeyID, creds[0])
			t.Setenv(contract.SecretKeySecretAccessKey, creds[1])
			for store, args := range map[string][]string{
				"dataset s3://datasets/cifar":   {"--dataset=" + srv.URI("datasets", "cifar")},
				"checkpoints at s3://ckpt/runs": {"--dataset=file://" + dataset, "--checkpoint-uri=" + srv.URI("ckpt", "runs")},
			} {
				log := termLog(t)
				var stdout, stderr bytes.Buffer
				args := append([]string{"--allow-plain-http", "--epochs=1", "--scratch-dir=" + t.TempDir()}, args...)
				code := Main(context.Background(), args, map[string]string{EnvTerminationLog: log}, &stdout, &stderr)
				msg := readResult(t, log).Message
				if code != contract.ExitInvalidConfig || !strings.Contains(msg, "refused the credentials") || !strings.Contains(msg, store) {
					t.Errorf("%s: exit %d, %q; want %d naming %q", store, code, msg, contract.ExitInvalidConfig, store)
				}
			}
		})
	}
}
