package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/trainer/data"
)

// envRunAsTrainer makes the test binary behave as the trainer binary (Run with the process's
// arguments after "--"), so tests can start real trainer processes without building one.
const envRunAsTrainer = "KUBETRAIN_TEST_RUN_AS_TRAINER"

func TestMain(m *testing.M) {
	if os.Getenv(envRunAsTrainer) == "1" {
		args := os.Args[1:]
		for i, a := range args {
			if a == "--" {
				args = args[i+1:]
				break
			}
		}
		injectCrash(os.Getenv(envCrashAt))
		os.Exit(Run(args, os.Environ(), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// cifarDir writes a small synthetic CIFAR-10 directory.
func cifarDir(t *testing.T, train, test int) string {
	t.Helper()
	dir := t.TempDir()
	if err := data.WriteCIFAR10(dir, data.Synthetic(5, train, test)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// termLog creates an empty termination log, as the kubelet does, and returns its path.
func termLog(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "termination-log")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readResult(t *testing.T, path string) contract.Result {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r contract.Result
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("termination log %q is not a contract.Result: %v", b, err)
	}
	return r
}

func TestMainJSON(t *testing.T) {
	dir := cifarDir(t, 96, 20)
	log := termLog(t)
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"--dataset=file://" + dir, "--epochs=2", "--log-format=json", "--threads=2"},
		map[string]string{EnvTerminationLog: log}, &stdout, &stderr)
	if code != contract.ExitSucceeded {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, &stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("stdout has %d lines, want 2 epochs and a result:\n%s", len(lines), &stdout)
	}
	for i, line := range lines[:2] {
		var raw map[string]any
		if err := json.Unmarshal([]byte(line), &raw); err != nil {
			t.Fatalf("epoch line %q: %v", line, err)
		}
		for _, key := range []string{"epoch", "epochs", "loss", "train_accuracy", "test_accuracy", "images_per_second", "elapsed_seconds", "time"} {
			if _, ok := raw[key]; !ok {
				t.Errorf("epoch line %q lacks key %q", line, key)
			}
		}
		if raw["epoch"] != float64(i+1) || raw["epochs"] != float64(2) {
			t.Errorf("epoch line %q, want epoch %d of 2", line, i+1)
		}
	}
	res := readResult(t, log)
	if res.Outcome != "Succeeded" || res.Last == nil || res.Last.Epoch != 2 || res.Message != "" {
		t.Errorf("termination log %+v, want Succeeded after epoch 2", res)
	}
	var final contract.Result
	if err := json.Unmarshal([]byte(lines[2]), &final); err != nil || final.Outcome != "Succeeded" {
		t.Errorf("last line %q is not the result (%v)", lines[2], err)
	}
}

func TestMainText(t *testing.T) {
	dir := cifarDir(t, 64, 10)
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"--dataset=file://" + dir, "--threads=1"},
		map[string]string{EnvTerminationLog: filepath.Join(t.TempDir(), "absent")}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, &stderr)
	}
	for _, want := range []string{"on the CPU", "epoch 1/1  loss ", "train_accuracy", "test_accuracy", "images/s", "elapsed", "done: 1 epochs", "weights sha256"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout does not say %q:\n%s", want, &stdout)
		}
	}
}

// TestMainFailures checks each failure's exit code and that the termination log says what went wrong.
func TestMainFailures(t *testing.T) {
	// S3 credentials come from the process environment, as in a pod.
	t.Setenv(contract.SecretKeyAccessKeyID, "")
	t.Setenv(contract.SecretKeySecretAccessKey, "")
	good := cifarDir(t, 10, 5)
	bad := cifarDir(t, 10, 5)
	f := filepath.Join(bad, "data_batch_4.bin")
	b, _ := os.ReadFile(f)
	os.WriteFile(f, b[:len(b)-1], 0o644)
	cases := map[string]struct {
		args     []string
		env      map[string]string
		wantCode int
		wantMsg  string
	}{
		"bad flag":                       {[]string{"--epochs=0"}, nil, contract.ExitInvalidConfig, "--epochs"},
		"bad env":                        {nil, map[string]string{"KUBETRAIN_THREADS": "lots"}, contract.ExitInvalidConfig, "KUBETRAIN_THREADS"},
		"s3 dataset without credentials": {[]string{"--dataset=s3://bucket/cifar"}, nil, contract.ExitInvalidConfig, "no S3 credentials"},
		"missing dataset":                {[]string{"--dataset=file:///nonexistent", "--dataset-format=idx"}, nil, contract.ExitInvalidData, "train-images-idx3-ubyte"},
		"truncated file":                 {[]string{"--dataset=file://" + bad}, nil, contract.ExitInvalidData, "data_batch_4.bin: record 1: truncated"},
		"wrong format dir":               {[]string{"--dataset=file://" + good, "--dataset-format=idx"}, nil, contract.ExitInvalidData, "missing"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			log := termLog(t)
			env := map[string]string{EnvTerminationLog: log}
			for k, v := range tc.env {
				env[k] = v
			}
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), tc.args, env, &stdout, &stderr)
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.wantCode, &stderr)
			}
			res := readResult(t, log)
			if res.Outcome != contract.ExitReason(int32(tc.wantCode)) || !strings.Contains(res.Message, tc.wantMsg) {
				t.Errorf("termination log %+v, want outcome %s and a message containing %q", res, contract.ExitReason(int32(tc.wantCode)), tc.wantMsg)
			}
			if !strings.Contains(stderr.String(), tc.wantMsg) {
				t.Errorf("stderr does not say %q:\n%s", tc.wantMsg, &stderr)
			}
		})
	}
}

// trainerCmd returns a command running the test binary as the trainer.
func trainerCmd(t *testing.T, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), envRunAsTrainer+"=1")
	return cmd
}

var hashRE = regexp.MustCompile(`weights sha256 ([0-9a-f]{64})`)

// TestDeterministicAcrossProcesses trains in two separate processes with two threads and expects
// bit-identical weights.
func TestDeterministicAcrossProcesses(t *testing.T) {
	dir := cifarDir(t, 320, 10)
	var hashes []string
	for range 2 {
		out, err := trainerCmd(t, "--dataset=file://"+dir, "--threads=2", "--seed=3").CombinedOutput()
		if err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		m := hashRE.FindSubmatch(out)
		if m == nil {
			t.Fatalf("no weights hash in the output:\n%s", out)
		}
		hashes = append(hashes, string(m[1]))
	}
	if hashes[0] != hashes[1] {
		t.Errorf("two processes with the same seed and threads ended with weights %s and %s", hashes[0], hashes[1])
	}
}

// TestSIGTERM starts a long run, sends SIGTERM once the first epoch is reported, and expects the
// trainer to stop at the next step with contract.ExitTerminated and say so in the termination log.
func TestSIGTERM(t *testing.T) {
	dir := cifarDir(t, 2000, 10)
	log := termLog(t)
	cmd := trainerCmd(t, "--dataset=file://"+dir, "--epochs=1000", "--threads=1", "--log-format=json")
	cmd.Env = append(cmd.Env, EnvTerminationLog+"="+log)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		cmd.Process.Kill()
		t.Fatalf("no epoch line before the trainer ended; stderr:\n%s", &stderr)
	}
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
	}
	err = cmd.Wait()
	took := time.Since(sent)
	if code := cmd.ProcessState.ExitCode(); code != contract.ExitTerminated {
		t.Fatalf("exit code %d (%v), want %d; stderr:\n%s", code, err, contract.ExitTerminated, &stderr)
	}
	// One step takes milliseconds: a stop that takes seconds did not happen at the next step.
	if took > 2*time.Second {
		t.Errorf("the trainer took %v to stop after SIGTERM", took)
	}
	res := readResult(t, log)
	if res.Outcome != "Terminated" || res.Last == nil || res.Last.Epoch < 1 {
		t.Errorf("termination log %+v, want Terminated with the last completed epoch", res)
	}
}
