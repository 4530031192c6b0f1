package storagefaults

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubetrain/kubetrain/internal/checkpoint"
	"github.com/kubetrain/kubetrain/internal/contract"
)

// stallArg makes a stalled request fail fast, so a test sees the stall cut and retried; the
// deadlines below are far longer, so a run that ends early was ended by the stall guard.
const stallArg = "--storage-stall-timeout=1s"

// faultCase is a fault injected into one run, and how the run must end.
type faultCase struct {
	rule Rule
	// wantCode is the exit code; a failure must name what each of wantMsg says.
	wantCode int
	wantMsg  []string
}

// checkOutcome checks a run's exit code, the controller's reading of it, its message, and that
// the fault was really injected.
func checkOutcome(t *testing.T, s *store, rule *Rule, tc faultCase, r result) {
	t.Helper()
	if r.code != tc.wantCode {
		t.Fatalf("exit %d, want %d (%s); message %q\nstderr:\n%s\nrequests: %q", r.code, tc.wantCode,
			contract.ExitReason(int32(tc.wantCode)), r.res.Message, r.stderr, s.proxy.Log())
	}
	if hits := s.proxy.Hits(rule); hits == 0 || (tc.rule.Times > 0 && hits != tc.rule.Times) {
		t.Errorf("the fault was injected %d times, want %d (0: at least once); requests: %q", hits, tc.rule.Times, s.proxy.Log())
	}
	if r.res.Outcome != contract.ExitReason(int32(tc.wantCode)) {
		t.Errorf("termination log outcome %q, want %q", r.res.Outcome, contract.ExitReason(int32(tc.wantCode)))
	}
	if tc.wantCode == contract.ExitRetriable && contract.ClassifyExit(int32(r.code)) != contract.ExitClassRetriable {
		t.Errorf("the controller does not retry exit %d", r.code)
	}
	for _, want := range tc.wantMsg {
		if !strings.Contains(r.res.Message, want) {
			t.Errorf("the termination message does not say %q:\n%s", want, r.res.Message)
		}
	}
}

// Faults while the dataset is fetched: transient ones are retried and the run trains; persistent
// ones end it, retriably, naming the dataset and the file, before the fetch deadline.
func TestDatasetFetchFaults(t *testing.T) {
	s := startStore(t)
	const file = "data_batch_2.bin"
	named := []string{"dataset s3://data/cifar", "reading " + file}
	cases := map[string]faultCase{
		"latency on every file": {rule: Rule{Method: "GET", Key: ".bin", Fault: Latency, Delay: 200 * time.Millisecond}},
		"two resets":            {rule: Rule{Method: "GET", Key: file, Fault: Reset, Times: 2}},
		"two 500s":              {rule: Rule{Method: "GET", Key: file, Fault: Status500, Times: 2}},
		"two 503s":              {rule: Rule{Method: "GET", Key: file, Fault: Status503, Times: 2}},
		"two truncated bodies":  {rule: Rule{Method: "GET", Key: file, Fault: Truncate, Times: 2}},
		"a stalled body":        {rule: Rule{Method: "GET", Key: file, Fault: Stall, Times: 1}},
		"resets":                {Rule{Method: "GET", Key: file, Fault: Reset}, contract.ExitRetriable, append(named, "connection reset")},
		"500s":                  {Rule{Method: "GET", Key: file, Fault: Status500}, contract.ExitRetriable, append(named, "StatusCode: 500")},
		"503s":                  {Rule{Method: "GET", Key: file, Fault: Status503}, contract.ExitRetriable, append(named, "StatusCode: 503")},
		"truncated bodies":      {Rule{Method: "GET", Key: file, Fault: Truncate}, contract.ExitRetriable, append(named, "unexpected EOF")},
		"stalled bodies":        {Rule{Method: "GET", Key: file, Fault: Stall}, contract.ExitRetriable, append(named, "stalled")},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s.proxy.Clear()
			rule := s.proxy.Inject(tc.rule)
			r := s.train(t, "--dataset="+s.uri(dataBucket, "cifar"), "--epochs=1", "--fetch-timeout=60s", stallArg)
			checkOutcome(t, s, rule, tc, r)
			if trained := strings.Contains(r.stdout, "epoch 1/1"); trained != (tc.wantCode == contract.ExitSucceeded) {
				t.Errorf("trained: %v, want %v:\n%s", trained, !trained, r.stdout)
			}
		})
	}
}

// committedRE finds the checkpoints a run reported committed, as bucket-relative manifest keys.
var committedRE = regexp.MustCompile(`checkpoint of epoch (\d+) committed in .*: s3://` + ckptBucket + `/(\S+)`)

// committed lists the manifest keys of the checkpoints a run reported committed.
func committed(r result) []string {
	var keys []string
	for _, m := range committedRE.FindAllStringSubmatch(r.stderr, -1) {
		keys = append(keys, m[2])
	}
	return keys
}

// checkVerifies reads checkpoints past the proxy and checks each against its manifest.
func checkVerifies(t *testing.T, s *store, keys []string) {
	t.Helper()
	b := s.direct(t, ckptBucket, "")
	for _, key := range keys {
		if _, _, err := checkpoint.Read(context.Background(), b, key, checkpoint.DefaultMaxBytes); err != nil {
			t.Errorf("committed checkpoint %s: %v", key, err)
		}
	}
}

// keyOf is the bucket-relative key of a checkpoint URI.
func keyOf(uri string) string {
	return strings.TrimPrefix(strings.SplitN(uri, "?", 2)[0], "s3://"+ckptBucket+"/")
}

// Faults while checkpoints are written: transient ones are retried and every epoch is committed;
// persistent ones end the run retriably, naming the store and object, and every checkpoint
// reported committed before them still verifies.
func TestCheckpointWriteFaults(t *testing.T) {
	s := startStore(t)
	dataset := s.localDataset(t)
	// Persistent faults start after the first commit (its state object and manifest).
	final := []string{"the final checkpoint could not be written", "checkpoints at s3://ckpt/", "state.gob"}
	cases := map[string]faultCase{
		"latency on everything":           {rule: Rule{Fault: Latency, Delay: 50 * time.Millisecond}},
		"a reset on a state upload":       {rule: Rule{Method: "PUT", Key: "state.gob", Fault: Reset, Times: 1, Skip: 1}},
		"two 500s on a manifest":          {rule: Rule{Method: "PUT", Key: "manifest.json", Fault: Status500, Times: 2, Skip: 1}},
		"two 503s on a state upload":      {rule: Rule{Method: "PUT", Key: "state.gob", Fault: Status503, Times: 2}},
		"a stalled manifest upload":       {rule: Rule{Method: "PUT", Key: "manifest.json", Fault: Stall, Times: 1, Skip: 1}},
		"a truncated manifest in pruning": {rule: Rule{Method: "GET", Key: "manifest.json", Fault: Truncate, Times: 1}},
		"resets from epoch 2":             {Rule{Method: "PUT", Fault: Reset, Skip: 2}, contract.ExitRetriable, append(final, "connection reset")},
		"503s from epoch 2":               {Rule{Method: "PUT", Fault: Status503, Skip: 2}, contract.ExitRetriable, append(final, "StatusCode: 503")},
		"stalls from epoch 2":             {Rule{Method: "PUT", Fault: Stall, Skip: 2}, contract.ExitRetriable, append(final, "stalled")},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s.proxy.Clear()
			rule := s.proxy.Inject(tc.rule)
			prefix := strings.NewReplacer(" ", "-").Replace(name)
			r := s.train(t, "--dataset=file://"+dataset, "--epochs=2", "--checkpoint-keep=10",
				"--checkpoint-uri="+s.uri(ckptBucket, prefix), stallArg)
			checkOutcome(t, s, rule, tc, r)
			keys := committed(r)
			wantCommits := 2
			if tc.wantCode != contract.ExitSucceeded {
				wantCommits = 1
			}
			if len(keys) != wantCommits {
				t.Fatalf("%d checkpoints reported committed, want %d:\n%s", len(keys), wantCommits, r.stderr)
			}
			if got := keyOf(r.res.Checkpoint); got != keys[len(keys)-1] {
				t.Errorf("the result names checkpoint %q, want the last one committed, %q", got, keys[len(keys)-1])
			}
			checkVerifies(t, s, keys)
		})
	}
}

// Faults while the checkpoint to resume from is read: transient ones are retried and the run
// resumes where it stopped; a checkpoint whose objects do not match its manifest is never
// loaded (an older one is, or the run fails clearly); persistent faults end the run retriably;
// the committed checkpoints survive it all.
func TestResumeFaults(t *testing.T) {
	s := startStore(t)
	dataset := s.localDataset(t)
	whole := s.train(t, "--dataset=file://"+dataset, "--epochs=3")
	if whole.code != contract.ExitSucceeded {
		t.Fatalf("uninterrupted run: exit %d\n%s", whole.code, whole.stderr)
	}
	want := weightsHash(t, whole)

	newest, older := "ckpt-000002-", "ckpt-000001-"
	store := []string{"checkpoints at s3://ckpt/", newest, "state.gob"}
	cases := map[string]struct {
		faultCase
		resumeFrom  bool   // pass the newest checkpoint as --resume-from
		resumeAfter string // the epoch resumed after, for a run that succeeds
	}{
		"two resets":                {faultCase: faultCase{rule: Rule{Method: "GET", Key: "state.gob", Fault: Reset, Times: 2}}, resumeAfter: "2"},
		"two 500s":                  {faultCase: faultCase{rule: Rule{Method: "GET", Key: "state.gob", Fault: Status500, Times: 2}}, resumeAfter: "2"},
		"two 503s on the listing":   {faultCase: faultCase{rule: Rule{Method: "GET", Key: "", Fault: Status503, Times: 2}}, resumeAfter: "2"},
		"two truncated bodies":      {faultCase: faultCase{rule: Rule{Method: "GET", Key: "state.gob", Fault: Truncate, Times: 2}}, resumeAfter: "2"},
		"a stalled body":            {faultCase: faultCase{rule: Rule{Method: "GET", Key: "state.gob", Fault: Stall, Times: 1}}, resumeAfter: "2"},
		"newest state corrupted":    {faultCase: faultCase{rule: Rule{Method: "GET", Key: newest + `.*/state\.gob`, Fault: Corrupt}}, resumeAfter: "1"},
		"newest manifest corrupted": {faultCase: faultCase{rule: Rule{Method: "GET", Key: newest + `.*/manifest\.json`, Fault: Corrupt}}, resumeAfter: "1"},
		"named one corrupted":       {faultCase: faultCase{rule: Rule{Method: "GET", Key: newest + `.*/state\.gob`, Fault: Corrupt}}, resumeFrom: true, resumeAfter: "1"},
		"every state corrupted":     {faultCase: faultCase{Rule{Method: "GET", Key: "state.gob", Fault: Corrupt}, contract.ExitInvalidData, []string{"no valid checkpoint to resume from", newest}}, resumeFrom: true},
		"truncated bodies":          {faultCase: faultCase{Rule{Method: "GET", Key: "state.gob", Fault: Truncate}, contract.ExitRetriable, append(store, "unexpected EOF")}},
		"stalled bodies":            {faultCase: faultCase{Rule{Method: "GET", Key: "state.gob", Fault: Stall}, contract.ExitRetriable, append(store, "stalled")}},
		"resets":                    {faultCase: faultCase{Rule{Method: "GET", Key: "state.gob", Fault: Reset}, contract.ExitRetriable, append(store, "connection reset")}},
		"503s on the listing":       {faultCase: faultCase{Rule{Method: "GET", Key: "", Fault: Status503}, contract.ExitRetriable, []string{"checkpoints at s3://ckpt/", "listing checkpoints", "StatusCode: 503"}}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s.proxy.Clear()
			uri := s.uri(ckptBucket, strings.NewReplacer(" ", "-").Replace(name))
			args := []string{"--dataset=file://" + dataset, "--checkpoint-keep=10", "--checkpoint-uri=" + uri, stallArg}
			first := s.train(t, append(args, "--epochs=2")...)
			if first.code != contract.ExitSucceeded {
				t.Fatalf("first run: exit %d\n%s", first.code, first.stderr)
			}
			keys := committed(first)
			rule := s.proxy.Inject(tc.rule)
			args = append(args, "--epochs=3", "--resume-timeout=60s")
			if tc.resumeFrom {
				args = append(args, "--resume-from="+first.res.Checkpoint)
			}
			r := s.train(t, args...)
			checkOutcome(t, s, rule, tc.faultCase, r)
			if tc.wantCode == contract.ExitSucceeded {
				if !strings.Contains(r.stderr, "resuming after epoch "+tc.resumeAfter+" from") {
					t.Errorf("did not resume after epoch %s:\n%s", tc.resumeAfter, r.stderr)
				}
				if tc.resumeAfter != "2" && (!strings.Contains(r.stderr, "is corrupt") || !strings.Contains(r.stderr, newest)) {
					t.Errorf("the corrupt checkpoint is not reported:\n%s", r.stderr)
				}
				// The same weights as a run never interrupted: it trained from verified state only.
				if got := weightsHash(t, r); got != want {
					t.Errorf("resumed run ended with weights %s, the uninterrupted run with %s", got, want)
				}
			} else if strings.Contains(r.stdout, "epoch ") || strings.Contains(r.stderr, "resuming after") {
				t.Errorf("a run that could not read its checkpoint trained:\n%s\n%s", r.stdout, r.stderr)
			}
			if !slices.ContainsFunc(keys, func(k string) bool { return strings.Contains(k, older) }) {
				t.Fatalf("the first run did not commit epoch 1: %q", keys)
			}
			checkVerifies(t, s, keys)
		})
	}
}
