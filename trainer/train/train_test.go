package train

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/trainer/data"
)

func smallConfig(threads int) Config {
	return Config{Model: contract.ModelReferenceCNN, Epochs: 1, BatchSize: 32, LearningRate: 1e-3,
		Optimizer: contract.OptimizerAdam, Seed: 7, Threads: threads}
}

// TestDeterministic trains three times with the same seed, on two threads twice and on one thread,
// and expects bit-identical weights: every reduction has a fixed order that does not depend on the
// thread count either.
func TestDeterministic(t *testing.T) {
	ds := data.Synthetic(3, 600, 100)
	var hashes []string
	for _, threads := range []int{2, 2, 1} {
		tr, err := New(smallConfig(threads), ds)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Run(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, tr.WeightsHash())
		tr.Close()
	}
	if hashes[0] != hashes[1] {
		t.Errorf("two runs with the same seed and threads ended with weights %s and %s", hashes[0], hashes[1])
	}
	if hashes[0] != hashes[2] {
		t.Errorf("runs on 2 threads and on 1 ended with weights %s and %s", hashes[0], hashes[2])
	}
	// And the hash does move: a different seed gives different weights.
	cfg := smallConfig(2)
	cfg.Seed = 8
	tr, _ := New(cfg, ds)
	defer tr.Close()
	tr.Run(context.Background(), nil)
	if tr.WeightsHash() == hashes[0] {
		t.Error("seeds 7 and 8 gave the same weights")
	}
}

// TestLearnsSynthetic checks that an epoch on the synthetic set reaches a high test accuracy.
func TestLearnsSynthetic(t *testing.T) {
	ds := data.Synthetic(1, 3000, 500)
	tr, err := New(smallConfig(2), ds)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var got []contract.Progress
	last, err := tr.Run(context.Background(), ReporterFunc(func(p contract.Progress) { got = append(got, p) }))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || *last != got[0] || got[0].Epoch != 1 || got[0].Epochs != 1 {
		t.Fatalf("reported %+v, last %+v; want one report of epoch 1/1", got, last)
	}
	if last.TestAccuracy < 0.9 {
		t.Errorf("test accuracy %.3f after an epoch on the synthetic set, want >= 0.9", last.TestAccuracy)
	}
	t.Logf("%+v", *last)
}

// TestResume checks that saving after epoch 1 and resuming in a fresh trainer gives the same
// weights after epoch 2 as training straight through.
func TestResume(t *testing.T) {
	ds := data.Synthetic(3, 300, 50)
	cfg := smallConfig(2)
	cfg.Epochs = 2
	straight, _ := New(cfg, ds)
	defer straight.Close()
	straight.Run(context.Background(), nil)

	first, _ := New(cfg, ds)
	defer first.Close()
	if _, err := first.TrainEpoch(context.Background()); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := first.SaveState(&buf); err != nil {
		t.Fatal(err)
	}
	resumed, _ := New(cfg, ds)
	defer resumed.Close()
	if err := resumed.LoadState(&buf); err != nil {
		t.Fatal(err)
	}
	resumed.Run(context.Background(), nil)
	if resumed.Epoch() != 2 {
		t.Errorf("resumed run ended at epoch %d, want 2", resumed.Epoch())
	}
	if straight.WeightsHash() != resumed.WeightsHash() {
		t.Error("resuming after epoch 1 gave different weights from training straight through")
	}
}

func TestCancelStopsAtNextStep(t *testing.T) {
	ds := data.Synthetic(3, 300, 50)
	tr, _ := New(smallConfig(1), ds)
	defer tr.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := tr.Run(ctx, nil)
	if !errors.Is(err, context.Canceled) || tr.Epoch() != 0 {
		t.Errorf("Run on a cancelled context: error %v at epoch %d, want context.Canceled at 0", err, tr.Epoch())
	}
}

// TestStepDoesNotAllocate: once the first steps have sized every buffer, a training step allocates
// nothing, on one thread and on two.
func TestStepDoesNotAllocate(t *testing.T) {
	ds := data.Synthetic(3, 100, 10)
	for _, threads := range []int{1, 2} {
		tr, _ := New(smallConfig(threads), ds)
		idx := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31}
		tr.Step(idx)
		tr.Step(idx)
		if allocs := testing.AllocsPerRun(5, func() { tr.Step(idx) }); allocs != 0 {
			t.Errorf("threads=%d: a training step allocated %v times, want 0", threads, allocs)
		}
		tr.Close()
	}
}
