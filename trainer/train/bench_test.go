package train

import (
	"fmt"
	"testing"

	"github.com/kubetrain/kubetrain/trainer/data"
)

// flopsPerImage is the training work (forward and backward, multiply-adds counted as two) of the
// reference model for one image of shape h x w x c, as a dense implementation does it: the
// convolution's forward and weight-gradient products, and the dense layers' forward,
// weight-gradient and input-gradient products. The trainer's fused first layers skip part of it
// and compute some pixels the pooling drops, which about cancels out (see README).
func flopsPerImage(h, w, c int) float64 {
	oh, ow := h-2, w-2
	conv := 2 * float64(oh*ow*32*(9*c+1))
	flat := float64((oh / 2) * (ow / 2) * 32)
	dense := 2*flat*64 + 2*64*10
	return 2*conv + 3*dense
}

// benchmarkTrainStep times full training steps (batch 32) of the reference model.
func benchmarkTrainStep(b *testing.B, ds *data.Dataset, threads int) {
	tr, err := New(smallConfig(threads), ds)
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	idx := make([]int, 32)
	for i := range idx {
		idx[i] = i
	}
	tr.Step(idx)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		tr.Step(idx)
	}
	images := float64(32*b.N) / b.Elapsed().Seconds()
	b.ReportMetric(images, "images/s")
	s := ds.Train
	b.ReportMetric(images*flopsPerImage(s.Height, s.Width, s.Channels)/1e9, "GFLOP/s")
}

func BenchmarkTrainStep(b *testing.B) {
	sets := map[string]*data.Dataset{
		"cifar10-shaped":       data.Synthetic(1, 64, 1),
		"fashion-mnist-shaped": {Train: &data.Split{Images: make([]uint8, 64*28*28), Labels: make([]uint8, 64), Height: 28, Width: 28, Channels: 1}},
	}
	for _, name := range []string{"cifar10-shaped", "fashion-mnist-shaped"} {
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", name, threads), func(b *testing.B) {
				benchmarkTrainStep(b, sets[name], threads)
			})
		}
	}
}
