package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"golang.org/x/sys/cpu"

	"github.com/kubetrain/kubetrain/trainer/gemm/internal/asmgen"
	"github.com/kubetrain/kubetrain/trainer/parallel"
)

// relTol bounds the difference between a kernel's product and the float64 reference, relative to
// the sum of |a·b| terms: float32 accumulation over a few thousand terms stays far inside it.
const relTol = 1e-5

// naive computes the product in float64, with the magnitude sum |A|·|B| for scaling errors.
func naive(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) (want, scale []float64) {
	want = make([]float64, m*n)
	scale = make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, abs float64
			for p := 0; p < k; p++ {
				av := a[i*lda+p]
				if transA {
					av = a[p*lda+i]
				}
				bv := b[p*ldb+j]
				if transB {
					bv = b[j*ldb+p]
				}
				s += float64(av) * float64(bv)
				abs += math.Abs(float64(av) * float64(bv))
			}
			if beta == 1 {
				s += float64(c[i*ldc+j])
				abs += math.Abs(float64(c[i*ldc+j]))
			}
			want[i*n+j], scale[i*n+j] = s, abs+1e-30
		}
	}
	return want, scale
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// TestKernelsAgree compares every kernel this CPU runs with a float64 reference on random shapes,
// ragged edges (sizes that are not multiples of any tile) and K-split products included.
func TestKernelsAgree(t *testing.T) {
	defer Use(Best())
	shapes := [][3]int{
		{1, 1, 1}, {12, 32, 28}, {13, 33, 29}, {5, 7, 3}, {32, 64, 7200}, {27, 32, 3000},
		{32, 10, 64}, {100, 37, 1}, {31, 95, 600}, {7, 200, 64},
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < 10; i++ {
		shapes = append(shapes, [3]int{1 + rng.IntN(70), 1 + rng.IntN(70), 1 + rng.IntN(1200)})
	}
	// Threads 0 stands for SgemmSerial.
	pools := map[int]*parallel.Pool{0: nil, 1: parallel.New(1), 2: parallel.New(2)}
	defer pools[1].Close()
	defer pools[2].Close()
	for _, s := range shapes {
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			beta := float32(rng.IntN(2))
			m, n, k := s[0], s[1], s[2]
			lda, ldb, ldc := k+3, n+1, n+2
			if tr[0] {
				lda = m + 3
			}
			if tr[1] {
				ldb = k + 1
			}
			a := randSlice(rng, max(m, k)*lda)
			b := randSlice(rng, max(n, k)*ldb)
			c0 := randSlice(rng, m*ldc)
			want, scale := naive(tr[0], tr[1], m, n, k, a, lda, b, ldb, beta, c0, ldc)
			for _, name := range Available() {
				for threads, pool := range pools {
					t.Run(fmt.Sprintf("%s/t%d/%dx%dx%d/tA=%v,tB=%v,beta=%v", name, threads, m, n, k, tr[0], tr[1], beta), func(t *testing.T) {
						if err := Use(name); err != nil {
							t.Fatal(err)
						}
						c := append([]float32(nil), c0...)
						if pool == nil {
							SgemmSerial(&Scratch{}, tr[0], tr[1], m, n, k, a, lda, b, ldb, beta, c, ldc)
						} else {
							Sgemm(NewWorkspace(pool), tr[0], tr[1], m, n, k, a, lda, b, ldb, beta, c, ldc)
						}
						for i := 0; i < m; i++ {
							for j := 0; j < n; j++ {
								if err := math.Abs(float64(c[i*ldc+j])-want[i*n+j]) / scale[i*n+j]; err > relTol || math.IsNaN(err) {
									t.Fatalf("C[%d,%d] = %v, want %v (relative error %.2g > %g)", i, j, c[i*ldc+j], want[i*n+j], err, relTol)
								}
							}
						}
					})
				}
			}
		}
	}
}

// TestSIMDKernelRuns asserts that on a CPU with AVX-512 (or AVX2 and FMA) the assembly kernel is the
// one products use, so a build or detection mistake cannot silently fall back to the slow path.
func TestSIMDKernelRuns(t *testing.T) {
	want := Portable
	switch {
	case !assemblyBuilt:
		// Built with the purego tag: the portable kernel is the only one.
	case cpu.X86.HasAVX512F:
		want = AVX512
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		want = AVX2
	}
	if got := Kernel(); got != want {
		t.Errorf("kernel in use is %q, want %q on this CPU (AVX-512F %v, AVX2 %v, FMA %v)",
			got, want, cpu.X86.HasAVX512F, cpu.X86.HasAVX2, cpu.X86.HasFMA)
	}
}

// TestSameResultAnyThreads checks that a K-split product is bit-identical with 1 and 3 threads.
func TestSameResultAnyThreads(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	m, n, k := 27, 32, 28800
	a, b := randSlice(rng, k*m), randSlice(rng, k*n)
	var got [][]float32
	for _, threads := range []int{1, 3} {
		ws := NewWorkspace(parallel.New(threads))
		c := make([]float32, m*n)
		Sgemm(ws, true, false, m, n, k, a, m, b, n, 0, c, n)
		got = append(got, c)
		ws.Pool().Close()
	}
	for i := range got[0] {
		if math.Float32bits(got[0][i]) != math.Float32bits(got[1][i]) {
			t.Fatalf("C[%d] = %v with 1 thread, %v with 3", i, got[0][i], got[1][i])
		}
	}
}

func TestSgemmDoesNotAllocate(t *testing.T) {
	ws := NewWorkspace(parallel.New(2))
	defer ws.Pool().Close()
	rng := rand.New(rand.NewPCG(1, 1))
	a, b, c := randSlice(rng, 32*7200), randSlice(rng, 7200*64), make([]float32, 32*64)
	run := func() { Sgemm(ws, false, true, 32, 64, 7200, a, 7200, b, 7200, 0, c, 64) }
	run()
	if allocs := testing.AllocsPerRun(20, run); allocs != 0 {
		t.Errorf("Sgemm allocated %v times per run, want 0", allocs)
	}
}

func TestShapeMismatchPanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil {
			t.Error("Sgemm with a short A did not panic")
		}
	}()
	ws := NewWorkspace(parallel.New(1))
	Sgemm(ws, false, false, 4, 4, 4, make([]float32, 15), 4, make([]float32, 16), 4, 0, make([]float32, 16), 4)
}

// TestAssemblyIsGenerated fails when kernel_amd64.s differs from what internal/asmgen writes.
func TestAssemblyIsGenerated(t *testing.T) {
	got, err := os.ReadFile("kernel_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != asmgen.Generate() {
		t.Error("kernel_amd64.s is stale: run `go generate ./trainer/gemm`")
	}
}

// TestPickHeights pins the AVX2 tile height chosen for the reference model's shapes.
func TestPickHeights(t *testing.T) {
	set := kernels[AVX2]
	if set == nil {
		t.Skipf("no AVX2 kernels on this CPU or build (kernels: %v); the rule is the same code for every set", Available())
	}
	for m, want := range map[int]int{
		10:  5,          // Fashion-MNIST's 3x3x1 weight gradient: exact in two 5-row panels
		28:  4,          // CIFAR-10's 3x3x3 weight gradient: 7 panels of 4, no ragged one to pack
		32:  4,          // a batch of 32 in the dense forward pass
		900: 6, 7200: 6, // exact in 6
		676: 6, 5408: 6, // long: one ragged panel does not matter
	} {
		if got := set.pick(m).mr; got != want {
			t.Errorf("pick(%d) = %d rows, want %d", m, got, want)
		}
	}
}
