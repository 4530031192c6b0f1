package gemm

import (
	"fmt"
	"sync/atomic"
)

// Names of the micro-kernels.
const (
	Portable = "go"
	AVX2     = "avx2"
	AVX512   = "avx512"
)

// microKernel computes tiles side by side mr x nr tiles of C from k steps of A and a row-major B
// block (row stride ldb, at least tiles·nr readable floats per row): tile t reads B and writes C
// t·nr floats to the right. acc adds the tiles to C instead of overwriting it.
type microKernel struct {
	mr, nr int
	// cols reads A as k groups of mr contiguous floats, lda floats apart: a packed panel (lda = mr)
	// or a transposed A in place.
	cols kernelFunc
	// rows, where not nil, reads mr full rows of a row-major A in place (row stride lda).
	rows kernelFunc
	// windows, where not nil, is rows for an A of windows (see Windows).
	windows windowFunc
}

type kernelFunc func(k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool, tiles int)

// kernelSet is one instruction set's micro-kernels: one per tile height, tallest first, all of the
// same width.
type kernelSet struct {
	name    string
	heights []*microKernel
}

// pick chooses the micro-kernel for a product of m rows. Taller tiles reuse each load of B for more
// rows, and a 4-row tile keeps too few FMAs in flight to hide their latency, so: the tallest
// kernel that divides m, if one of 5 rows or more does; else, when m is large enough for one
// ragged panel not to matter, the tallest; else (a few panels, where a ragged one is packed and
// partly wasted) the one that pads the fewest rows. The choice depends on m alone, so a product's
// result does not depend on the thread count.
func (s *kernelSet) pick(m int) *microKernel {
	for _, k := range s.heights {
		if k.mr >= 5 && m%k.mr == 0 {
			return k
		}
	}
	if m >= 64 {
		return s.heights[0]
	}
	best, waste := s.heights[0], -1
	for _, k := range s.heights {
		if w := (m+k.mr-1)/k.mr*k.mr - m; waste < 0 || w < waste {
			best, waste = k, w
		}
	}
	return best
}

var (
	kernels = map[string]*kernelSet{}
	// best is the fastest kernel set this CPU runs, current the one in use.
	best    *kernelSet
	current atomic.Pointer[kernelSet]
	// avx2Kernels is kernels[AVX2], or nil.
	avx2Kernels *kernelSet
)

func register(k *kernelSet) {
	kernels[k.name] = k
	if k.name == AVX2 {
		avx2Kernels = k
	}
}

func init() {
	register(&kernelSet{name: Portable, heights: []*microKernel{{mr: 4, nr: 16, cols: kernelGo4x16}}})
	best = kernels[Portable]
	registerAssembly()
	current.Store(best)
}

// Kernel is the name of the micro-kernel in use.
func Kernel() string { return current.Load().name }

// Best is the name of the fastest micro-kernel this CPU can run; it is used unless Use says otherwise.
func Best() string { return best.name }

// Available lists the micro-kernels this CPU can run.
func Available() []string {
	var names []string
	for _, n := range []string{Portable, AVX2, AVX512} {
		if kernels[n] != nil {
			names = append(names, n)
		}
	}
	return names
}

// Use selects a micro-kernel by name for every later product. It is not safe to call while a product
// runs; tests and the CLI call it before any work starts.
func Use(name string) error {
	k := kernels[name]
	if k == nil {
		return fmt.Errorf("gemm: kernel %q is not available on this CPU (available: %v)", name, Available())
	}
	current.Store(k)
	return nil
}

// kernelGo4x16 is the portable micro-kernel.
func kernelGo4x16(k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool, tiles int) {
	const mr, nr = 4, 16
	for tile := 0; tile < tiles; tile++ {
		var t [mr][nr]float32
		for p := 0; p < k; p++ {
			brow := b[p*ldb+tile*nr : p*ldb+tile*nr+nr]
			ap := a[p*lda : p*lda+mr]
			for i := 0; i < mr; i++ {
				ai := ap[i]
				ti := &t[i]
				for j := range ti {
					ti[j] += ai * brow[j]
				}
			}
		}
		for i := 0; i < mr; i++ {
			crow := c[i*ldc+tile*nr : i*ldc+tile*nr+nr]
			if acc {
				for j := range crow {
					crow[j] += t[i][j]
				}
			} else {
				copy(crow, t[i][:])
			}
		}
	}
}
