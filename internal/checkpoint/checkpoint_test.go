package checkpoint

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubetrain/kubetrain/internal/blob"
	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/internal/s3test"
)

const prefix = "ns/job/uid-1/rank-0/"

func open(t *testing.T, uri string) *blob.Bucket {
	t.Helper()
	b, err := blob.Open(context.Background(), uri)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func commit(t *testing.T, b *blob.Bucket, epoch int, acc float64) string {
	t.Helper()
	key, err := Commit(context.Background(), b, prefix, contract.Manifest{Epoch: epoch, TestAccuracy: acc},
		[]Object{{"weights.bin", []byte(fmt.Sprintf("weights after epoch %d", epoch))}, {"optimizer.bin", []byte("adam moments")}})
	if err != nil {
		t.Fatalf("commit epoch %d: %v", epoch, err)
	}
	return key
}

func TestCommitAndReadOnARealS3Server(t *testing.T) {
	srv := s3test.Start(t, "ckpt")
	b := open(t, srv.URI("ckpt", "runs"))
	key := commit(t, b, 3, 0.9)
	if !strings.HasPrefix(key, prefix+"ckpt-000003-") || !strings.HasSuffix(key, "/manifest.json") {
		t.Errorf("key %q does not follow the layout", key)
	}
	m, objects, err := Read(context.Background(), b, key, DefaultMaxBytes)
	if err != nil {
		t.Fatal(err)
	}
	if m.Epoch != 3 || len(objects) != 2 || string(objects[0].Data) != "weights after epoch 3" {
		t.Errorf("read back %+v, %d objects", m, len(objects))
	}

	// A byte flipped on the server's disk is detected and named.
	path := filepath.Join(srv.Root, "ckpt", "runs", strings.TrimSuffix(key, "manifest.json"), "weights.bin")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[0] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = Read(context.Background(), b, key, DefaultMaxBytes)
	var corrupt *CorruptError
	if !errors.As(err, &corrupt) || !strings.Contains(err.Error(), "weights.bin has SHA-256") {
		t.Fatalf("Read of a corrupted checkpoint: %v, want a CorruptError naming weights.bin", err)
	}
}

func TestReadDetectsDamage(t *testing.T) {
	cases := map[string]struct {
		damage func(b *blob.Bucket, dir string)
		want   string
	}{
		"truncated object": {func(b *blob.Bucket, dir string) { write(t, b, dir+"weights.bin", []byte("w")) }, "weights.bin has 1 bytes"},
		"missing object":   {func(b *blob.Bucket, dir string) { _ = b.Delete(context.Background(), dir+"optimizer.bin") }, "optimizer.bin is missing"},
		"garbled manifest": {func(b *blob.Bucket, dir string) { write(t, b, dir+"manifest.json", []byte("{")) }, "not valid JSON"},
		"no manifest":      {func(b *blob.Bucket, dir string) { _ = b.Delete(context.Background(), dir+"manifest.json") }, "no manifest"},
		"grown object": {func(b *blob.Bucket, dir string) {
			write(t, b, dir+"weights.bin", bytes.Repeat([]byte("w"), 1<<20))
		}, "weights.bin is larger than the"},
		"huge manifest": {func(b *blob.Bucket, dir string) {
			write(t, b, dir+"manifest.json", bytes.Repeat([]byte(" "), MaxManifestBytes+1))
		}, "more than the 1048576 it may be"},
		"manifest claims a huge object": {func(b *blob.Bucket, dir string) {
			var m contract.Manifest
			raw, _ := b.ReadAll(context.Background(), dir+"manifest.json")
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			m.Objects[0].Size = 1 << 40
			raw, _ = json.Marshal(m)
			write(t, b, dir+"manifest.json", raw)
		}, "the most a checkpoint may hold"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b := open(t, "mem://")
			key := commit(t, b, 1, 0.5)
			tc.damage(b, strings.TrimSuffix(key, contract.ManifestName))
			_, _, err := Read(context.Background(), b, key, DefaultMaxBytes)
			var corrupt *CorruptError
			if !errors.As(err, &corrupt) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), key) {
				t.Fatalf("Read: %v, want a CorruptError naming %s and saying %q", err, key, tc.want)
			}
		})
	}
}

func TestLatestFallsBackPastACorruptCheckpoint(t *testing.T) {
	b := open(t, "mem://")
	older := commit(t, b, 1, 0.5)
	newer := commit(t, b, 2, 0.6)
	write(t, b, strings.TrimSuffix(newer, contract.ManifestName)+"weights.bin", []byte("bit rot"))
	var skipped []error
	m, _, key, err := Latest(context.Background(), b, prefix, newer, DefaultMaxBytes, func(err error) { skipped = append(skipped, err) })
	if err != nil || key != older || m.Epoch != 1 {
		t.Fatalf("Latest = %v %q %v, want the older checkpoint %q", m, key, err, older)
	}
	if len(skipped) != 1 || !strings.Contains(skipped[0].Error(), newer) {
		t.Errorf("skipped = %v, want the corrupt newer checkpoint reported", skipped)
	}
}

// A crash at any instant of a commit leaves the previous checkpoint or the new one, never a torn one.
func TestCrashAtAnyInstantOfACommit(t *testing.T) {
	const writes = 3 // two objects and the manifest
	for crashAt := 0; crashAt <= writes; crashAt++ {
		t.Run(fmt.Sprintf("crash before write %d", crashAt), func(t *testing.T) {
			b := open(t, "file://"+t.TempDir())
			good := commit(t, b, 1, 0.5)
			n := 0
			TestHooks.BeforeWrite = func(key string) error {
				n++
				if n > crashAt {
					return errors.New("crash")
				}
				return nil
			}
			_, err := Commit(context.Background(), b, prefix, contract.Manifest{Epoch: 2},
				[]Object{{"weights.bin", []byte("new weights")}, {"optimizer.bin", []byte("new moments")}})
			TestHooks.BeforeWrite = nil
			if crashAt < writes && err == nil {
				t.Fatal("the commit did not fail")
			}
			m, _, key, err := Latest(context.Background(), b, prefix, "", DefaultMaxBytes, func(err error) { t.Errorf("skipped a corrupt checkpoint: %v", err) })
			if err != nil {
				t.Fatal(err)
			}
			wantEpoch := 1
			if crashAt == writes {
				wantEpoch = 2
			}
			if m.Epoch != wantEpoch {
				t.Fatalf("latest checkpoint is epoch %d (%s), want %d", m.Epoch, key, wantEpoch)
			}
			if wantEpoch == 1 && key != good {
				t.Fatalf("latest = %s, want %s", key, good)
			}
			// Pruning removes what a crashed upload left.
			if err := Prune(context.Background(), b, prefix, 5, ""); err != nil {
				t.Fatal(err)
			}
			dirs, err := checkpointDirs(context.Background(), b, prefix)
			if err != nil {
				t.Fatal(err)
			}
			if len(dirs) != wantEpoch {
				t.Errorf("%d checkpoint directories after pruning, want %d", len(dirs), wantEpoch)
			}
		})
	}
}

func TestPruneKeepsTheNewestAndTheBest(t *testing.T) {
	b := open(t, "mem://")
	accs := []float64{0.5, 0.9, 0.6, 0.7, 0.8} // epoch 2 is the best
	for i, acc := range accs {
		commit(t, b, i+1, acc)
	}
	if err := Prune(context.Background(), b, prefix, 2, ""); err != nil {
		t.Fatal(err)
	}
	entries, err := List(context.Background(), b, prefix)
	if err != nil {
		t.Fatal(err)
	}
	var epochs []int
	for _, e := range entries {
		epochs = append(epochs, e.Epoch)
	}
	if fmt.Sprint(epochs) != "[5 4 2]" {
		t.Errorf("kept epochs %v, want [5 4 2]: the newest two and the best", epochs)
	}
}

// A manifest that reads as damaged was still written by a commit (it may only have been read
// badly, by a faulty network): pruning keeps it unless retention drops its epoch.
func TestPruneKeepsADamagedManifestItWouldRetain(t *testing.T) {
	b := open(t, "mem://")
	for epoch := 1; epoch <= 4; epoch++ {
		commit(t, b, epoch, 0.5)
	}
	entries, err := List(context.Background(), b, prefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries[:3] { // the manifests of epochs 4, 3 and 2
		if err := b.WriteAll(context.Background(), e.Key, []byte("{\"version\": 1, \"epo"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := Prune(context.Background(), b, prefix, 2, ""); err != nil {
		t.Fatal(err)
	}
	if entries, err = List(context.Background(), b, prefix); err != nil {
		t.Fatal(err)
	}
	var epochs []int
	for _, e := range entries {
		epochs = append(epochs, e.Epoch)
	}
	if fmt.Sprint(epochs) != "[4 3 1]" {
		t.Errorf("kept epochs %v, want [4 3 1]: the newest two, damaged or not, and the best readable one", epochs)
	}
}

func TestCommitRejectsBadObjectNames(t *testing.T) {
	b := open(t, "mem://")
	for _, name := range []string{"", "manifest.json", "../x", "a/b"} {
		if _, err := Commit(context.Background(), b, prefix, contract.Manifest{}, []Object{{name, nil}}); err == nil {
			t.Errorf("object name %q accepted", name)
		}
	}
}

func write(t *testing.T, b *blob.Bucket, key string, data []byte) {
	t.Helper()
	if err := b.WriteAll(context.Background(), key, data, nil); err != nil {
		t.Fatal(err)
	}
}

// A resumed attempt that could not read epoch 3's checkpoint trains epoch 3 again and commits it:
// with keep 1, pruning keeps the checkpoint just committed, never the older one of the same epoch.
func TestPruneKeepsTheCheckpointJustCommitted(t *testing.T) {
	for range 10 { // ties were once broken by listing order
		b := open(t, "mem://")
		commit(t, b, 2, 0.5)
		commit(t, b, 3, 0.5)
		newest := commit(t, b, 3, 0.5)
		if err := Prune(context.Background(), b, prefix, 1, newest); err != nil {
			t.Fatal(err)
		}
		entries, err := List(context.Background(), b, prefix)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Key != newest {
			t.Fatalf("kept %+v, want only the checkpoint just committed, %s", entries, newest)
		}
	}
}
