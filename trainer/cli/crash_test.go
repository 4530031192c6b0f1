package cli

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubetrain/kubetrain/internal/blob"
	"github.com/kubetrain/kubetrain/internal/checkpoint"
	"github.com/kubetrain/kubetrain/internal/contract"
)

// envCrashAt makes a trainer process started by trainerCmd SIGKILL itself at an instant of a
// checkpoint commit: "PHASE:N", at the N-th (from 1) occurrence of PHASE.
const envCrashAt = "KUBETRAIN_TEST_CRASH_AT"

// Crash points inside a commit: before and after the state object's PUT, before and after the
// manifest's.
var crashPhases = []string{"before-object", "after-object", "before-manifest", "after-manifest"}

func injectCrash(spec string) {
	phase, nth, ok := strings.Cut(spec, ":")
	n, err := strconv.Atoi(nth)
	if !ok || err != nil {
		return
	}
	count := 0
	hit := func(p, key string) {
		isManifest := strings.HasSuffix(key, contract.ManifestName)
		if (p == "object") == isManifest {
			return
		}
		count++
		if count == n {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // nothing more happens in this process: the signal is on its way
		}
	}
	switch phase {
	case "before-object", "before-manifest":
		checkpoint.TestHooks.BeforeWrite = func(key string) error {
			hit(strings.TrimPrefix(phase, "before-"), key)
			return nil
		}
	case "after-object", "after-manifest":
		checkpoint.TestHooks.AfterWrite = func(key string) { hit(strings.TrimPrefix(phase, "after-"), key) }
	}
}

// TestKilledAtAnyInstantResumesExactly kills trainer processes with SIGKILL at each instant of a
// checkpoint commit and at random points (mostly during training steps), then resumes each run
// and expects it to continue from the last committed checkpoint and end with the weights of an
// uninterrupted run, bit for bit.
func TestKilledAtAnyInstantResumesExactly(t *testing.T) {
	dataset := cifarDir(t, 1000, 100)
	const epochs = 3
	args := func(dir string) []string {
		return []string{"--dataset=file://" + dataset, "--threads=2", "--seed=11", "--epochs=" + strconv.Itoa(epochs),
			"--checkpoint-uri=file://" + dir, "--checkpoint-keep=5"}
	}
	ref, err := trainerCmd(t, args(t.TempDir())...).CombinedOutput()
	if err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, ref)
	}
	want := hashRE.FindStringSubmatch(string(ref))[1]

	kills := map[string]int{}
	// resumeAndCheck resumes a killed run and checks where it resumed and how it ended.
	resumeAndCheck := func(t *testing.T, dir, what string) {
		b, err := blob.Open(context.Background(), "file://"+dir)
		if err != nil {
			t.Fatal(err)
		}
		m, _, _, err := checkpoint.Latest(context.Background(), b, "local/trainer/run/rank-0/", "", checkpoint.DefaultMaxBytes, nil)
		b.Close()
		if err != nil {
			t.Fatal(err)
		}
		out, err := trainerCmd(t, args(dir)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: resumed run: %v\n%s", what, err, out)
		}
		switch {
		case m == nil && strings.Contains(string(out), "resuming"):
			t.Errorf("%s: no checkpoint was committed, yet the run resumed:\n%s", what, out)
		case m != nil && !strings.Contains(string(out), fmt.Sprintf("resuming after epoch %d ", m.Epoch)):
			t.Errorf("%s: the last committed checkpoint is epoch %d, the run says:\n%s", what, m.Epoch, out)
		}
		if got := hashRE.FindStringSubmatch(string(out)); got == nil || got[1] != want {
			t.Errorf("%s: resumed weights %v, want %s", what, got, want)
		}
	}

	// At each instant of each checkpoint's commit.
	for _, phase := range crashPhases {
		for n := 1; n <= epochs; n++ {
			what := fmt.Sprintf("%s of checkpoint %d", phase, n)
			dir := t.TempDir()
			cmd := trainerCmd(t, args(dir)...)
			cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%s:%d", envCrashAt, phase, n))
			if !killedBySIGKILL(cmd.Run()) {
				t.Fatalf("%s: the process was not killed", what)
			}
			kills[phase]++
			resumeAndCheck(t, dir, what)
		}
	}
	// At random instants: mostly during training steps, sometimes during a commit.
	rng := rand.New(rand.NewPCG(1, 2))
	for tries := 0; kills["random"] < 40 && tries < 300; tries++ {
		dir := t.TempDir()
		cmd := trainerCmd(t, args(dir)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(50+rng.IntN(900)) * time.Millisecond
		timer := time.AfterFunc(delay, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
		err := cmd.Wait()
		timer.Stop()
		if !killedBySIGKILL(err) {
			continue // it finished first
		}
		kills["random"]++
		resumeAndCheck(t, dir, fmt.Sprintf("random kill after %s", delay))
	}
	total := 0
	for _, n := range kills {
		total += n
	}
	t.Logf("SIGKILLs by phase: %v (%d in all)", kills, total)
	if total < 50 {
		t.Errorf("only %d kills, want at least 50", total)
	}
}

func killedBySIGKILL(err error) bool {
	ee, ok := err.(*exec.ExitError)
	if !ok {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}
