package plugin

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/utils/ptr"

	"github.com/kubetrain/kubetrain/internal/blob"
	"github.com/kubetrain/kubetrain/internal/checkpoint"
	"github.com/kubetrain/kubetrain/internal/contract"
)

// commitCheckpoints commits checkpoints of epochs 1 to 3 below prefix, each of two objects of
// 1000 and 500 bytes, and damages epoch 2's first object; it returns the manifests' keys by epoch.
func commitCheckpoints(t *testing.T, ctx context.Context, b *blob.Bucket, prefix string) map[int]string {
	t.Helper()
	keys := map[int]string{}
	for epoch := 1; epoch <= 3; epoch++ {
		m := contract.Manifest{Epoch: epoch, Created: t0.Add(time.Duration(epoch) * time.Minute), TestAccuracy: []float64{0, 0.81, 0.82, 0.83}[epoch]}
		key, err := checkpoint.Commit(ctx, b, prefix, m, []checkpoint.Object{
			{Name: "weights", Data: make([]byte, 1000)}, {Name: "optimizer", Data: make([]byte, 500)}})
		if err != nil {
			t.Fatal(err)
		}
		keys[epoch] = key
	}
	damaged := strings.TrimSuffix(keys[2], contract.ManifestName) + "weights"
	if err := b.WriteAll(ctx, damaged, append(make([]byte, 999), 1), nil); err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestInspectCheckpoints(t *testing.T) {
	ctx := context.Background()
	b, err := blob.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	prefix, err := contract.JobPrefix("team-a", "fashion-mnist", "uid-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	keys := commitCheckpoints(t, ctx, b, prefix)
	// Another job's checkpoint is not this one's.
	other, _ := contract.JobPrefix("team-a", "fashion-mnist", "uid-0", 0)
	if _, err := checkpoint.Commit(ctx, b, other, contract.Manifest{Epoch: 9}, nil); err != nil {
		t.Fatal(err)
	}
	uri := func(k string) string { return "s3://ckpt/runs/" + k }
	got, err := inspectCheckpoints(ctx, b, prefix, keys[3], uri)
	if err != nil {
		t.Fatal(err)
	}
	created := func(e int) *time.Time { return ptr.To(t0.Add(time.Duration(e) * time.Minute)) }
	want := []checkpointInfo{
		{Epoch: 3, URI: uri(keys[3]), Size: 1500, Verified: true, Latest: true, TestAccuracy: ptr.To(0.83), Created: created(3)},
		{Epoch: 2, URI: uri(keys[2]), Size: 1500, Problem: "object weights has SHA-256 ", TestAccuracy: ptr.To(0.82), Created: created(2)},
		{Epoch: 1, URI: uri(keys[1]), Size: 1500, Verified: true, TestAccuracy: ptr.To(0.81), Created: created(1)},
	}
	// The reason names the object and both digests; compare its start.
	opt := cmp.Transformer("problemStart", func(c checkpointInfo) checkpointInfo {
		if i := strings.Index(c.Problem, "SHA-256 "); i >= 0 {
			c.Problem = c.Problem[:i+len("SHA-256 ")]
		}
		return c
	})
	if diff := cmp.Diff(want, got, opt); diff != "" {
		t.Errorf("inspectCheckpoints (-want,+got):\n%s", diff)
	}

	tbl, problems := checkpointsTable(got, t0.Add(time.Hour))
	wantRows := [][]string{
		{"3", "1.5Ki", "yes", "0.8300", "57m", "*", checkpointDir(uri(keys[3]))},
		{"2", "1.5Ki", "no", "0.8200", "58m", "", checkpointDir(uri(keys[2]))},
		{"1", "1.5Ki", "yes", "0.8100", "59m", "", checkpointDir(uri(keys[1]))},
	}
	if diff := cmp.Diff(wantRows, tbl.rows); diff != "" {
		t.Errorf("checkpointsTable rows (-want,+got):\n%s", diff)
	}
	if !strings.HasPrefix(checkpointDir(uri(keys[2])), "ckpt-000002-") {
		t.Errorf("checkpointDir = %q, want the checkpoint's directory", checkpointDir(uri(keys[2])))
	}
	if len(problems) != 1 || !strings.HasPrefix(problems[0], "epoch 2 (ckpt-000002-") || !strings.Contains(problems[0], "does not verify: object weights has SHA-256") {
		t.Errorf("problems = %q, want one naming epoch 2 and its damaged object", problems)
	}
}
