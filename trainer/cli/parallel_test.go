package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

// trainParallel runs size trainers at once as the ranks of one data-parallel run on loopback,
// each with args, and returns each one's run, by rank.
func trainParallel(t *testing.T, size int, args ...string) []run {
	t.Helper()
	rendezvous := testutil.FreeAddr(t)
	runs := make([]run, size)
	var wg sync.WaitGroup
	for r := range size {
		log := termLog(t)
		wg.Go(func() {
			env := map[string]string{EnvTerminationLog: log, contract.EnvRank: strconv.Itoa(r),
				contract.EnvWorldSize: strconv.Itoa(size), contract.EnvRendezvous: rendezvous}
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), append([]string{"--threads=1", "--seed=7"}, args...), env, &stdout, &stderr)
			runs[r] = run{code: code, stdout: stdout.String(), stderr: stderr.String()}
		})
		defer func() { runs[r].result = readResult(t, log) }()
	}
	wg.Wait()
	return runs
}

// Two trainers train one model: the same weights at the end, checkpoints from rank 0 alone, and a
// resumed run in which both ranks start from rank 0's checkpoint.
func TestDataParallelRun(t *testing.T) {
	dataset := cifarDir(t, 600, 100)
	ckpt := t.TempDir()
	args := []string{"--dataset=file://" + dataset, "--checkpoint-uri=file://" + ckpt}

	first := trainParallel(t, 2, append(args, "--epochs=2")...)
	for r, run := range first {
		if run.code != contract.ExitSucceeded {
			t.Fatalf("rank %d: exit %d\n%s", r, run.code, run.stderr)
		}
	}
	if a, b := finalHash(t, first[0]), finalHash(t, first[1]); a != b {
		t.Fatalf("the ranks ended with weights %s and %s", a, b)
	}
	if !strings.Contains(first[0].stderr, "checkpoint of epoch 2 committed") || strings.Contains(first[1].stderr, "committed") {
		t.Errorf("rank 0 alone commits checkpoints:\nrank 0: %s\nrank 1: %s", first[0].stderr, first[1].stderr)
	}
	ranks, _ := filepath.Glob(filepath.Join(ckpt, "local", "trainer", "run", "*"))
	if len(ranks) != 1 || filepath.Base(ranks[0]) != "rank-0" {
		t.Errorf("checkpoint directories %v, want rank-0's alone", ranks)
	}

	again := trainParallel(t, 2, append(args, "--epochs=3")...)
	for r, run := range again {
		if run.code != contract.ExitSucceeded || !strings.Contains(run.stderr, "resuming after epoch 2") ||
			strings.Contains(run.stdout, "epoch 1/3") {
			t.Fatalf("rank %d: exit %d, want it to resume after epoch 2:\n%s\n%s", r, run.code, run.stdout, run.stderr)
		}
	}
	if a, b := finalHash(t, again[0]), finalHash(t, again[1]); a != b {
		t.Fatalf("the resumed ranks ended with weights %s and %s", a, b)
	}
}

// A rank outside its world is a configuration error naming the variables.
func TestDataParallelRankOutsideTheWorldIsRefused(t *testing.T) {
	log := termLog(t)
	env := map[string]string{EnvTerminationLog: log, contract.EnvRank: "2", contract.EnvWorldSize: "2",
		contract.EnvRendezvous: "127.0.0.1:1"}
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"--dataset=file://" + cifarDir(t, 10, 10), "--epochs=1"}, env, &stdout, &stderr)
	if msg := readResult(t, log).Message; code != contract.ExitInvalidConfig || !strings.Contains(msg, contract.EnvWorldSize) {
		t.Fatalf("exit %d, %q; want invalid config naming %s", code, msg, contract.EnvWorldSize)
	}
}
