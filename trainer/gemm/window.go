package gemm

import "fmt"

// windowFunc is a row kernel that runs K in segs segments of seg steps: A's row i, step s·seg+j is
// a[i·lda + s·segStride + j], B's rows follow each other. It overwrites tiles full tiles of C.
type windowFunc func(segs, seg int, a []float32, lda, segStride int, b []float32, ldb int, c []float32, ldc int, tiles int)

// Windows computes C = A·B, C m x n with row stride ldc, for an A that is not stored but read in
// place as windows: row i, column s·seg+j of A is a[i·lda + s·segStride + j], for s < segs and
// j < seg. B is (segs·seg) x n, row-major with row stride ldb. That A is the im2col matrix of a
// stride-1 convolution over a channels-last image: row i is output pixel i of a row of pixels
// (lda the channels of one pixel), segment s the window's row s (segStride one image row, seg the
// window's width times the channels), so the convolution needs no im2col copy.
//
// Rows are cut into tiles of several heights that add up to m; the result depends on m, not on
// how rows are cut. Windows runs on the calling goroutine with s's scratch memory.
func Windows(s *Scratch, m, n, segs, seg int, a []float32, lda, segStride int, b []float32, ldb int, c []float32, ldc int) {
	if m <= 0 || n <= 0 {
		return
	}
	if segs < 1 || seg < 1 || lda < 0 || segStride < 0 {
		panic(fmt.Sprintf("gemm: Windows with %d segments of %d steps, row stride %d, segment stride %d", segs, seg, lda, segStride))
	}
	if need := (m-1)*lda + (segs-1)*segStride + seg; len(a) < need {
		panic(fmt.Sprintf("gemm: Windows: A holds %d floats, its windows reach %d", len(a), need))
	}
	checkOperand("B", false, segs*seg, n, b, ldb)
	checkOperand("C", false, m, n, c, ldc)
	set := windowKernels()
	if set == nil {
		windowsGo(0, m, 0, n, segs, seg, a, lda, segStride, b, ldb, c, ldc)
		return
	}
	nr := set.heights[0].nr
	tiles := n / nr
	i := 0
	if tiles > 0 {
		for _, k := range s.windowPlan(set, m) {
			k.windows(segs, seg, a[i*lda:], lda, segStride, b, ldb, c[i*ldc:], ldc, tiles)
			i += k.mr
		}
	}
	// Rows no tile height covers, and columns right of the last full tile.
	windowsGo(i, m, 0, tiles*nr, segs, seg, a, lda, segStride, b, ldb, c, ldc)
	windowsGo(0, m, tiles*nr, n, segs, seg, a, lda, segStride, b, ldb, c, ldc)
}

// windowKernels is the kernel set Windows uses: the AVX2 one wherever assembly is in use, since only
// it has tiles of several heights (the AVX-512 machines run it too), or nil for Go.
func windowKernels() *kernelSet {
	if current.Load().name == Portable {
		return nil
	}
	return avx2Kernels
}

// windowPlan cuts m rows into tiles of set's heights, as few tiles as possible, the tallest first;
// rows left over (m of 1-3 or 7 rows with heights 6, 5 and 4) are left to Go. The last plan is kept.
func (s *Scratch) windowPlan(set *kernelSet, m int) []*microKernel {
	if s.plan.m == m && s.plan.set == set {
		return s.plan.tiles
	}
	// fewest[r] is the fewest tiles that cover r rows exactly, -1 if none do; last[r] the tile
	// that ends such a cover.
	fewest := make([]int, m+1)
	last := make([]*microKernel, m+1)
	for r := 1; r <= m; r++ {
		fewest[r] = -1
		for _, k := range set.heights {
			if k.mr <= r && fewest[r-k.mr] >= 0 && (fewest[r] < 0 || fewest[r-k.mr]+1 < fewest[r]) {
				fewest[r], last[r] = fewest[r-k.mr]+1, k
			}
		}
	}
	covered := m
	for covered > 0 && fewest[covered] < 0 {
		covered--
	}
	var tiles []*microKernel
	for r := covered; r > 0; r -= last[r].mr {
		tiles = append(tiles, last[r])
	}
	// Tallest first.
	for i, j := 0, len(tiles)-1; i < j; i, j = i+1, j-1 {
		tiles[i], tiles[j] = tiles[j], tiles[i]
	}
	s.plan.m, s.plan.set, s.plan.tiles = m, set, tiles
	return tiles
}

// windowsGo computes rows [i0, i1) and columns [j0, j1) of Windows' product.
func windowsGo(i0, i1, j0, j1, segs, seg int, a []float32, lda, segStride int, b []float32, ldb int, c []float32, ldc int) {
	if j0 >= j1 {
		return
	}
	for i := i0; i < i1; i++ {
		row := c[i*ldc+j0 : i*ldc+j1]
		clear(row)
		for s := 0; s < segs; s++ {
			win := a[i*lda+s*segStride : i*lda+s*segStride+seg]
			for j, v := range win {
				brow := b[(s*seg+j)*ldb+j0 : (s*seg+j)*ldb+j1]
				for col, w := range brow {
					row[col] += v * w
				}
			}
		}
	}
}

// WindowSlack is how many floats past the end of every window WindowGrad may read from a, and
// past the last segment of the last channel's gradient it may write to dw.
const WindowSlack = 16

// WindowGrad is the weight gradient of a convolution whose output gradient is sparse, as after 2x2
// max pooling: each of np outputs p has, per channel ch < n, one window of the input that took its
// gradient g[p·ldg+ch], starting at a[arg[p·ldg+ch]] (segments as in Windows). It sets
//
//	dw[ch·ldw + s·seg + j] = Σ_p g[p·ldg+ch] · a[arg[p·ldg+ch] + s·segStride + j]  (s < segs, j < seg)
//	dw[ch·ldw + segs·seg]  = Σ_p g[p·ldg+ch]                                       (the bias's)
//
// summing over p in order. ldw must be at least segs·seg+1. a must hold max(seg, WindowSlack) floats
// from the start of every window's last segment, dw as many from the last channel's last segment;
// what lies there, and in dw between one channel's bias and the next channel, is not defined.
// Every arg must lie inside a. Results do not depend on anything but the operands.
func WindowGrad(dw []float32, ldw, n, segs, seg int, a []float32, segStride int, g []float32, arg []int32, ldg, np int) {
	if n <= 0 {
		return
	}
	if segs < 1 || seg < 1 || ldw < segs*seg+1 || ldg < n || segStride < 0 {
		panic(fmt.Sprintf("gemm: WindowGrad with %d segments of %d steps, dw row %d, g row %d, %d channels", segs, seg, ldw, ldg, n))
	}
	if need := (n-1)*ldw + max(segs*seg+1, (segs-1)*seg+max(seg, WindowSlack)); len(dw) < need {
		panic(fmt.Sprintf("gemm: WindowGrad: dw holds %d floats, want %d", len(dw), need))
	}
	if np > 0 && (len(g) < (np-1)*ldg+n || len(arg) < (np-1)*ldg+n) {
		panic(fmt.Sprintf("gemm: WindowGrad: %d outputs of %d channels (row %d) but g holds %d floats and arg %d", np, n, ldg, len(g), len(arg)))
	}
	// The largest start of a window that leaves its slack inside a.
	limit := len(a) - (segs-1)*segStride - max(seg, WindowSlack)
	if limit < 0 {
		panic(fmt.Sprintf("gemm: WindowGrad: a holds %d floats, less than one window and its slack", len(a)))
	}
	done := 0
	if windowKernels() != nil && segs == 3 && seg <= WindowSlack && np > 0 {
		// Four channels at a time where a segment fits one register, then two at a time.
		if seg <= 8 && n >= 4 {
			done = n &^ 3
			if windowGrad8AVX2(&dw[0], ldw, done/4, seg, segStride, &a[0], &g[0], &arg[0], ldg, np, limit) != 0 {
				panic(badArg(arg, ldg, np, n, limit))
			}
		}
		if pairs := (n - done) / 2; pairs > 0 {
			if windowGradAVX2(&dw[done*ldw], ldw, pairs, seg, segStride, &a[0], &g[done], &arg[done], ldg, np, limit) != 0 {
				panic(badArg(arg, ldg, np, n, limit))
			}
			done += 2 * pairs
		}
	}
	for ch := done; ch < n; ch++ {
		d := dw[ch*ldw : ch*ldw+segs*seg+1]
		clear(d)
		for p := 0; p < np; p++ {
			gv, at := g[p*ldg+ch], int(arg[p*ldg+ch])
			if at < 0 || at > limit {
				panic(badArg(arg, ldg, np, n, limit))
			}
			for s := 0; s < segs; s++ {
				win := a[at+s*segStride : at+s*segStride+seg]
				ds := d[s*seg : (s+1)*seg]
				for j, v := range win {
					ds[j] += gv * v
				}
			}
			d[segs*seg] += gv
		}
	}
}

func badArg(arg []int32, ldg, np, n, limit int) string {
	for p := 0; p < np; p++ {
		for ch := 0; ch < n; ch++ {
			if at := arg[p*ldg+ch]; at < 0 || int(at) > limit {
				return fmt.Sprintf("gemm: WindowGrad: output %d, channel %d: window at %d, outside [0, %d]", p, ch, at, limit)
			}
		}
	}
	return "gemm: WindowGrad: a window outside its input"
}
