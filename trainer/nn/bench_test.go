package nn

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/kubetrain/kubetrain/trainer/tensor"
)

// benchmarkLayer times a forward and a backward pass (with the input gradient when needInput) of a
// layer on a batch of 32, reporting images/s and GFLOP/s for flops of work per image.
func benchmarkLayer(b *testing.B, l Layer, in []int, needInput bool, flops float64, threads int) {
	e := NewEngine(threads)
	defer e.Close()
	const batch = 32
	rng := rand.New(rand.NewPCG(1, 1))
	out := l.Build(in, batch, rng, e)
	x := tensor.New(append([]int{batch}, in...)...)
	for i := range x.Data {
		x.Data[i] = rng.Float32()
	}
	dy := tensor.New(append([]int{batch}, out...)...)
	for i := range dy.Data {
		dy.Data[i] = rng.Float32() - 0.5
	}
	step := func() {
		l.Forward(x)
		l.Backward(dy, needInput)
	}
	step()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		step()
	}
	images := batch * float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(images, "images/s")
	b.ReportMetric(images*flops/1e9, "GFLOP/s")
}

// convFlops is the work of a valid 3x3 convolution's forward pass and weight gradient (the first
// layer of a model computes no input gradient), multiply-adds counted as two.
func convFlops(h, w, c, f int) float64 { return 2 * 2 * float64((h-2)*(w-2)*f*(9*c+1)) }

// BenchmarkConv2D times the reference model's convolution, tiered by input size.
func BenchmarkConv2D(b *testing.B) {
	sizes := []struct {
		name    string
		h, w, c int
	}{
		{"Small-28x28x1", 28, 28, 1},
		{"Med-32x32x3", 32, 32, 3},
		{"Large-64x64x16", 64, 64, 16},
	}
	for _, s := range sizes {
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", s.name, threads), func(b *testing.B) {
				benchmarkLayer(b, NewConv2D(32, 3, 3, ReLU), []int{s.h, s.w, s.c}, false, convFlops(s.h, s.w, s.c, 32), threads)
			})
		}
	}
}

// BenchmarkDense times a dense layer's forward pass, weight gradient and input gradient, tiered by
// input width (7200 is the reference model's 15x15x32 CIFAR-10 features).
func BenchmarkDense(b *testing.B) {
	for _, s := range []struct {
		name string
		in   int
	}{{"Small-1352", 1352}, {"Med-5408", 5408}, {"Large-7200", 7200}} {
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", s.name, threads), func(b *testing.B) {
				benchmarkLayer(b, NewDense(64, ReLU), []int{s.in}, true, 3*2*float64(s.in*64), threads)
			})
		}
	}
}
