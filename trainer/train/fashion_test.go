package train

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"testing"

	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/trainer/data"
)

// FashionMNISTDir is where Debian's dataset-fashion-mnist package installs the real dataset.
const FashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// EnvSkipDatasetTests skips tests that need a real dataset, for machines that cannot install one.
const EnvSkipDatasetTests = "KUBETRAIN_SKIP_DATASET_TESTS"

// loadFashionMNIST loads the real Fashion-MNIST, failing the test (never skipping silently) when it
// is missing, unless EnvSkipDatasetTests is set.
func loadFashionMNIST(t testing.TB) *data.Dataset {
	t.Helper()
	if os.Getenv(EnvSkipDatasetTests) == "1" {
		t.Skipf("%s=1: skipping a test that needs Fashion-MNIST in %s", EnvSkipDatasetTests, FashionMNISTDir)
	}
	ds, err := data.LoadIDX(FashionMNISTDir)
	if err != nil {
		var de *data.Error
		if errors.As(err, &de) {
			if _, statErr := os.Stat(FashionMNISTDir); errors.Is(statErr, fs.ErrNotExist) {
				t.Fatalf("Fashion-MNIST is not installed in %s: run `apt-get update && apt-get install -y dataset-fashion-mnist` "+
					"(or set %s=1 to skip the tests that need it): %v", FashionMNISTDir, EnvSkipDatasetTests, err)
			}
		}
		t.Fatal(err)
	}
	if ds.Train.Len() != 60000 || ds.Test.Len() != 10000 || ds.Train.Height != 28 || ds.Train.Width != 28 {
		t.Fatalf("Fashion-MNIST in %s holds %d+%d images of %v, want 60000+10000 of 28x28", FashionMNISTDir, ds.Train.Len(), ds.Test.Len(), ds.Train.Shape())
	}
	return ds
}

// TestFashionMNISTOneEpoch trains the reference model for one epoch on the real Fashion-MNIST (batch
// 32, Adam, Keras defaults) and expects at least 0.88 test accuracy, as issue 3 asks.
func TestFashionMNISTOneEpoch(t *testing.T) {
	ds := loadFashionMNIST(t)
	cfg := Config{Model: contract.ModelReferenceCNN, Epochs: 1, BatchSize: 32, LearningRate: 1e-3,
		Optimizer: contract.OptimizerAdam, Seed: 1, Threads: 2}
	tr, err := New(cfg, ds)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	last, err := tr.Run(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after 1 epoch: loss %.4f, train accuracy %.4f, test accuracy %.4f, %.0f images/s",
		last.Loss, last.TrainAccuracy, last.TestAccuracy, last.ImagesPerSecond)
	if last.TestAccuracy < 0.88 {
		t.Errorf("test accuracy %.4f after one epoch, want >= 0.88", last.TestAccuracy)
	}
}
