package gemm

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/kubetrain/kubetrain/trainer/parallel"
)

// benchmarkSgemm times one product shape of the reference model and reports GFLOP/s.
func benchmarkSgemm(b *testing.B, transA, transB bool, m, n, k, threads int) {
	rng := rand.New(rand.NewPCG(1, 1))
	lda, ldb := k, n
	if transA {
		lda = m
	}
	if transB {
		ldb = k
	}
	a, bb, c := randSlice(rng, m*k), randSlice(rng, k*n), make([]float32, m*n)
	ws := NewWorkspace(parallel.New(threads))
	defer ws.Pool().Close()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		Sgemm(ws, transA, transB, m, n, k, a, lda, bb, ldb, 0, c, n)
	}
	b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// The shapes of one batch of 32 images in the reference model: CIFAR-10 (32x32x3) and
// Fashion-MNIST (28x28x1). The convolution's forward product runs per image.
func BenchmarkSgemm(b *testing.B) {
	cases := []struct {
		name           string
		transA, transB bool
		m, n, k        int
	}{
		{"cifar/conv-forward", false, false, 900, 32, 28},
		{"cifar/conv-weight-grad", true, false, 28, 32, 28800},
		{"cifar/dense-forward", false, false, 32, 64, 7200},
		{"cifar/dense-weight-grad", true, false, 7200, 64, 32},
		{"cifar/dense-input-grad", false, true, 7200, 32, 64}, // dX^T = W·dZ^T
		{"fashion/conv-forward", false, false, 676, 32, 10},
		{"fashion/conv-weight-grad", true, false, 10, 32, 21632},
		{"fashion/dense-forward", false, false, 32, 64, 5408},
		{"fashion/dense-weight-grad", true, false, 5408, 64, 32},
		{"fashion/dense-input-grad", false, true, 5408, 32, 64},
	}
	for _, kern := range Available() {
		for _, c := range cases {
			for _, threads := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/%s/threads=%d", kern, c.name, threads), func(b *testing.B) {
					if err := Use(kern); err != nil {
						b.Fatal(err)
					}
					defer Use(Best())
					benchmarkSgemm(b, c.transA, c.transB, c.m, c.n, c.k, threads)
				})
			}
		}
	}
}
