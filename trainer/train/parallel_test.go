package train

import (
	"context"
	"math"
	"sync"
	"testing"

	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/internal/testutil"
	"github.com/kubetrain/kubetrain/trainer/collective"
	"github.com/kubetrain/kubetrain/trainer/data"
)

// runParallel trains one epoch of cfg on ds with size workers joined over loopback (one thread
// each) and returns every worker's final progress and weights hash, by rank.
func runParallel(t *testing.T, cfg Config, ds *data.Dataset, size int) ([]*contract.Progress, []string, []*Trainer) {
	t.Helper()
	rank0 := testutil.FreeAddr(t)
	progress := make([]*contract.Progress, size)
	hashes := make([]string, size)
	trainers := make([]*Trainer, size)
	errs := make([]error, size)
	var wg sync.WaitGroup
	for r := range size {
		wg.Go(func() {
			listen := "127.0.0.1:0"
			if r == 0 {
				listen = rank0
			}
			comm, err := collective.Join(context.Background(), collective.Config{Rank: r, Size: size, Rank0: rank0, Listen: listen, Secret: "test"})
			if err != nil {
				errs[r] = err
				return
			}
			defer comm.Close()
			c := cfg
			c.Threads, c.Comm = 1, comm
			tr, err := New(c, ds)
			if err != nil {
				errs[r] = err
				return
			}
			trainers[r] = tr
			progress[r], errs[r] = tr.Run(context.Background(), nil)
			hashes[r] = tr.WeightsHash()
		})
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	t.Cleanup(func() {
		for _, tr := range trainers {
			tr.Close()
		}
	})
	return progress, hashes, trainers
}

// Workers of a data-parallel run end with the same weights, bit for bit, and a repeated run with
// the same seed and world size ends with them again; the run trains as one worker does on the same
// global batch, up to the order of the gradient's additions.
func TestDataParallelTrainsAsOneWorker(t *testing.T) {
	ds := data.Synthetic(3, 603, 101) // batches and splits that do not divide evenly
	cfg := smallConfig(1)
	alone, err := New(cfg, ds)
	if err != nil {
		t.Fatal(err)
	}
	defer alone.Close()
	want, err := alone.Run(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{2, 3} {
		progress, hashes, trainers := runParallel(t, cfg, ds, size)
		for r := range hashes {
			if hashes[r] != hashes[0] {
				t.Fatalf("%d workers: rank %d ended with weights %s, rank 0 with %s", size, r, hashes[r], hashes[0])
			}
			metrics := func(p *contract.Progress) [4]float64 {
				return [4]float64{float64(p.Epoch), p.Loss, p.TrainAccuracy, p.TestAccuracy} // not the timings
			}
			if metrics(progress[r]) != metrics(progress[0]) {
				t.Errorf("%d workers: rank %d reports %+v, rank 0 %+v", size, r, progress[r], progress[0])
			}
		}
		_, again, _ := runParallel(t, cfg, ds, size)
		if again[0] != hashes[0] {
			t.Errorf("%d workers: a repeated run ended with weights %s, the first with %s", size, again[0], hashes[0])
		}
		got := progress[0]
		if math.Abs(got.Loss-want.Loss) > 1e-3*want.Loss || math.Abs(got.TrainAccuracy-want.TrainAccuracy) > 0.02 ||
			math.Abs(got.TestAccuracy-want.TestAccuracy) > 0.02 {
			t.Errorf("%d workers: loss %.6f, train accuracy %.4f, test accuracy %.4f; one worker: %.6f, %.4f, %.4f",
				size, got.Loss, got.TrainAccuracy, got.TestAccuracy, want.Loss, want.TrainAccuracy, want.TestAccuracy)
		}
		// The weights themselves stay close to one worker's.
		for p, param := range trainers[0].Model().Params() {
			ref := alone.Model().Params()[p].Value
			for i, v := range param.Value {
				if math.Abs(float64(v-ref[i])) > 1e-3 {
					t.Fatalf("%d workers: parameter %d value %d is %v, one worker's %v", size, p, i, v, ref[i])
				}
			}
		}
	}
}
