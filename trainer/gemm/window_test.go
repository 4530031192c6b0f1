package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestWindows compares every kernel's window product with a float64 reference, on the shapes of
// the reference model's convolutions and on heights no tile covers.
func TestWindows(t *testing.T) {
	defer Use(Best())
	rng := rand.New(rand.NewPCG(3, 3))
	type shape struct{ m, n, segs, seg, lda, segStride int }
	shapes := []shape{
		{62, 32, 3, 9, 3, 96},  // a CIFAR-10 pooled row: two rows of 32 pixels, 3x3x3 windows
		{54, 32, 3, 3, 1, 28},  // Fashion-MNIST
		{7, 16, 3, 9, 3, 96},   // a height no tile covers
		{13, 33, 2, 4, 2, 40},  // ragged columns
		{3, 10, 1, 5, 5, 0},    // fewer columns than a tile
		{100, 64, 4, 7, 7, 70}, // plain rows when lda is the window
	}
	for m := 1; m <= 12; m++ {
		shapes = append(shapes, shape{m, 32, 3, 6, 2, 40})
	}
	for _, kern := range Available() {
		if err := Use(kern); err != nil {
			t.Fatal(err)
		}
		s := &Scratch{}
		for _, sh := range shapes {
			k := sh.segs * sh.seg
			a := randSlice(rng, (sh.m-1)*sh.lda+(sh.segs-1)*sh.segStride+sh.seg)
			ldb, ldc := sh.n+3, sh.n+5
			b := randSlice(rng, (k-1)*ldb+sh.n)
			c := randSlice(rng, (sh.m-1)*ldc+sh.n)
			Windows(s, sh.m, sh.n, sh.segs, sh.seg, a, sh.lda, sh.segStride, b, ldb, c, ldc)
			for i := 0; i < sh.m; i++ {
				for j := 0; j < sh.n; j++ {
					var want, scale float64
					for p := 0; p < k; p++ {
						av := float64(a[i*sh.lda+(p/sh.seg)*sh.segStride+p%sh.seg])
						want += av * float64(b[p*ldb+j])
						scale += math.Abs(av * float64(b[p*ldb+j]))
					}
					if got := float64(c[i*ldc+j]); math.Abs(got-want) > relTol*(scale+1e-30) {
						t.Fatalf("%s %+v: C[%d][%d] = %v, want %v", kern, sh, i, j, got, want)
					}
				}
			}
		}
	}
}

// TestWindowPlan checks that tiles add up to every height they can cover.
func TestWindowPlan(t *testing.T) {
	set := kernels[AVX2]
	if set == nil {
		t.Skip("no AVX2 kernels on this CPU")
	}
	s := &Scratch{}
	for m := 1; m <= 70; m++ {
		sum := 0
		var heights []string
		for _, k := range s.windowPlan(set, m) {
			sum += k.mr
			heights = append(heights, fmt.Sprint(k.mr))
		}
		uncoverable := m < 4 || m == 7
		if (sum == m) == uncoverable || (uncoverable && sum > m) {
			t.Errorf("m = %d: tiles %s", m, strings.Join(heights, "+"))
		}
	}
	if got := len(s.windowPlan(set, 62)); got != 11 {
		t.Errorf("62 rows in %d tiles, want 11 (10 of 6 rows, then 2)", got)
	}
}

// TestWindowGrad compares every kernel's sparse weight gradient with a float64 reference.
func TestWindowGrad(t *testing.T) {
	defer Use(Best())
	rng := rand.New(rand.NewPCG(4, 4))
	type shape struct{ n, segs, seg, segStride, np, aLen int }
	shapes := []shape{
		{32, 3, 9, 96, 225, 3072}, // CIFAR-10
		{32, 3, 3, 28, 169, 784},  // Fashion-MNIST
		{5, 3, 16, 40, 17, 400},   // an odd channel, segments as wide as the slack
		{7, 3, 8, 40, 17, 400},    // four channels, two, then one, segments of one register
		{6, 3, 2, 30, 11, 300},    // four channels, then two
		{4, 2, 6, 30, 9, 200},     // two segments: Go
		{6, 3, 20, 50, 9, 300},    // segments wider than the slack: Go
		{2, 3, 4, 10, 0, 100},     // no outputs
	}
	for _, kern := range Available() {
		if err := Use(kern); err != nil {
			t.Fatal(err)
		}
		for _, sh := range shapes {
			a := randSlice(rng, sh.aLen)
			ldg := sh.n + 2
			ldw := sh.segs*sh.seg + 3
			limit := sh.aLen - (sh.segs-1)*sh.segStride - max(sh.seg, WindowSlack)
			g := randSlice(rng, max(0, sh.np*ldg))
			arg := make([]int32, max(0, sh.np*ldg))
			for i := range arg {
				arg[i] = int32(rng.IntN(limit + 1))
			}
			dw := randSlice(rng, (sh.n-1)*ldw+max(sh.segs*sh.seg+1, (sh.segs-1)*sh.seg+WindowSlack))
			WindowGrad(dw, ldw, sh.n, sh.segs, sh.seg, a, sh.segStride, g, arg, ldg, sh.np)
			for ch := 0; ch < sh.n; ch++ {
				for k := 0; k <= sh.segs*sh.seg; k++ {
					var want, scale float64
					for p := 0; p < sh.np; p++ {
						gv := float64(g[p*ldg+ch])
						v := 1.0
						if k < sh.segs*sh.seg {
							v = float64(a[int(arg[p*ldg+ch])+(k/sh.seg)*sh.segStride+k%sh.seg])
						}
						want += gv * v
						scale += math.Abs(gv * v)
					}
					if got := float64(dw[ch*ldw+k]); math.Abs(got-want) > relTol*(scale+1e-30) {
						t.Fatalf("%s %+v: dw[%d][%d] = %v, want %v", kern, sh, ch, k, got, want)
					}
				}
			}
		}
	}
}

// TestWindowGradRefusesOutsideWindows checks that a window start outside the input panics, on
// every kernel, rather than reading past the input.
func TestWindowGradRefusesOutsideWindows(t *testing.T) {
	defer Use(Best())
	for _, kern := range Available() {
		if err := Use(kern); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []int32{-1, 100 - 2*20 - WindowSlack + 1} {
			func() {
				defer func() {
					if msg, _ := recover().(string); !strings.Contains(msg, "outside") {
						t.Errorf("%s: window at %d: recovered %q, want a panic naming the window", kern, bad, msg)
					}
				}()
				arg := []int32{0, 0, 0, bad}
				WindowGrad(make([]float32, 4*10+WindowSlack), 10, 2, 3, 3, make([]float32, 100), 20, make([]float32, 4), arg, 2, 2)
			}()
		}
	}
}
