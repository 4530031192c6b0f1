// Package vec holds the elementwise float32 loops of the layers (ReLU and its gradient, 2x2 max
// pooling and its gradient, im2col copies, transposition), with AVX2 and AVX-512 assembly where the
// CPU has them and a portable Go twin (Use(simd.Portable), or the purego build tag). All give
// bit-identical results: the loops only select, compare and move values, and add no more than one
// term, so nothing can round differently.
//
// Functions write only their first argument(s), the destinations; sources are never modified
// unless a destination is the same slice.
package vec

import (
	"fmt"

	"github.com/kubetrain/kubetrain/trainer/simd"
)

// level is the instruction set in use.
var level = simd.Best()

// Level is the instruction set in use.
func Level() simd.Level { return level }

// Use selects the versions of level l, or of the best level this CPU has when l is beyond it. It is
// not safe to call while the functions run; tests and the CLI call it before any work starts.
func Use(l simd.Level) { level = min(l, simd.Best()) }

// vectorPart is how many of n elements the assembly at the current level takes: a multiple of its
// register width.
func vectorPart(n int) int {
	switch level {
	case simd.AVX512:
		return n &^ 15
	case simd.AVX2:
		return n &^ 7
	}
	return 0
}

func checkLen(name string, n int, s ...[]float32) {
	for _, x := range s {
		if len(x) < n {
			panic(fmt.Sprintf("vec: %s: slice of %d floats, want at least %d", name, len(x), n))
		}
	}
}

// ReLU sets x[i] = max(x[i], 0).
func ReLU(x []float32) {
	n := vectorPart(len(x))
	switch {
	case n == 0:
	case level == simd.AVX512:
		reluAVX512(&x[0], n)
	default:
		reluAVX2(&x[0], n)
	}
	for i := n; i < len(x); i++ {
		if !(x[i] > 0) {
			x[i] = 0
		}
	}
}

// ReLUGrad sets dst[i] = dy[i] where y[i] > 0, else 0: the gradient through a ReLU whose output was y.
func ReLUGrad(dst, dy, y []float32) {
	checkLen("ReLUGrad", len(dst), dy, y)
	n := vectorPart(len(dst))
	switch {
	case n == 0:
	case level == simd.AVX512:
		reluGradAVX512(&dst[0], &dy[0], &y[0], n)
	default:
		reluGradAVX2(&dst[0], &dy[0], &y[0], n)
	}
	for i := n; i < len(dst); i++ {
		if y[i] > 0 {
			dst[i] = dy[i]
		} else {
			dst[i] = 0
		}
	}
}

// Max4 sets dst[i] to the maximum of a[i], b[i], c[i] and d[i], for i < len(dst).
func Max4(dst, a, b, c, d []float32) {
	checkLen("Max4", len(dst), a, b, c, d)
	n := vectorPart(len(dst))
	switch {
	case n == 0:
	case level == simd.AVX512:
		max4AVX512(&dst[0], &a[0], &b[0], &c[0], &d[0], n)
	default:
		max4AVX2(&dst[0], &a[0], &b[0], &c[0], &d[0], n)
	}
	// The same pairing as the assembly's MAXPS, which keeps its first operand only when it is
	// strictly greater, so that both versions agree even on signed zeros.
	for i := n; i < len(dst); i++ {
		dst[i] = maxps(maxps(a[i], b[i]), maxps(c[i], d[i]))
	}
}

func maxps(x, y float32) float32 {
	if x > y {
		return x
	}
	return y
}

// Max4Grad routes the gradient g of y = Max4(a, b, c, d) to the inputs: da[i] = g[i] if a[i] was
// the maximum, else 0, and likewise db, dc, dd, the first maximum in the order a, b, c, d winning
// ties (so exactly one of da[i], db[i], dc[i], dd[i] takes g[i]). x holds a, b, c, d.
func Max4Grad(da, db, dc, dd, g, y, a, b, c, d []float32) {
	n := len(g)
	checkLen("Max4Grad", n, da, db, dc, dd, y, a, b, c, d)
	m := vectorPart(n)
	switch {
	case m == 0:
	case level == simd.AVX512:
		max4GradAVX512(&da[0], &db[0], &dc[0], &dd[0], &g[0], &y[0], &a[0], &b[0], &c[0], &d[0], m)
	default:
		max4GradAVX2(&da[0], &db[0], &dc[0], &dd[0], &g[0], &y[0], &a[0], &b[0], &c[0], &d[0], m)
	}
	for i := m; i < n; i++ {
		da[i], db[i], dc[i], dd[i] = 0, 0, 0, 0
		switch y[i] {
		case a[i]:
			da[i] = g[i]
		case b[i]:
			db[i] = g[i]
		case c[i]:
			dc[i] = g[i]
		default:
			dd[i] = g[i]
		}
	}
}

// MaxPool2Row computes one output row of 2x2 max pooling over channels-last pixels: y holds ow
// pixels of c channels, xTop and xBot the two input rows (at least 2·ow pixels each). Output pixel
// j is Max4 of input pixels 2j and 2j+1 of both rows.
func MaxPool2Row(y, xTop, xBot []float32, c, ow int) {
	checkLen("MaxPool2Row", ow*c, y)
	checkLen("MaxPool2Row", 2*ow*c, xTop, xBot)
	switch {
	case ow <= 0 || c <= 0:
	case level == simd.AVX512 && c%16 == 0:
		poolRowAVX512(&y[0], &xTop[0], &xBot[0], c, ow)
		return
	case level >= simd.AVX2 && c%8 == 0:
		poolRowAVX2(&y[0], &xTop[0], &xBot[0], c, ow)
		return
	}
	for j := 0; j < ow; j++ {
		l, r := 2*j*c, (2*j+1)*c
		Max4(y[j*c:(j+1)*c], xTop[l:l+c], xTop[r:r+c], xBot[l:l+c], xBot[r:r+c])
	}
}

// MaxPool2RowGrad is the gradient of MaxPool2Row: it writes every element of the first 2·ow
// pixels of dxTop and dxBot, the gradient dy of each output going to the first maximum of its
// window (see Max4Grad).
func MaxPool2RowGrad(dxTop, dxBot, dy, y, xTop, xBot []float32, c, ow int) {
	checkLen("MaxPool2RowGrad", ow*c, dy, y)
	checkLen("MaxPool2RowGrad", 2*ow*c, dxTop, dxBot, xTop, xBot)
	switch {
	case ow <= 0 || c <= 0:
	case level == simd.AVX512 && c%16 == 0:
		poolGradRowAVX512(&dxTop[0], &dxBot[0], &dy[0], &y[0], &xTop[0], &xBot[0], c, ow)
		return
	case level >= simd.AVX2 && c%8 == 0:
		poolGradRowAVX2(&dxTop[0], &dxBot[0], &dy[0], &y[0], &xTop[0], &xBot[0], c, ow)
		return
	}
	for j := 0; j < ow; j++ {
		l, r, o := 2*j*c, (2*j+1)*c, j*c
		Max4Grad(dxTop[l:l+c], dxTop[r:r+c], dxBot[l:l+c], dxBot[r:r+c], dy[o:o+c], y[o:o+c], xTop[l:l+c], xTop[r:r+c], xBot[l:l+c], xBot[r:r+c])
	}
}

// MaxPool2ArgRow is one output row of 2x2 max pooling, then a bias and a ReLU, over two rows of a
// convolution's output whose pixels lie ps floats apart (c ≤ ps channels of each are pooled): output
// pixel j, channel ch is y[j·c+ch] = max(m + bias[ch], 0) for the maximum m of input pixels 2j and
// 2j+1 of top and bot (paired as MaxPool2Row pairs them). arg[j·c+ch] records where the maximum
// was: off[q] + j·step for the first of top-left, top-right, bottom-left (q = 0, 1, 2) equal to m,
// else bottom-right (q = 3). Pooling before the bias picks the same maximum as pooling after it.
func MaxPool2ArgRow(y []float32, arg []int32, top, bot, bias []float32, c, ps, ow int, off [4]int32, step int32) {
	if ow <= 0 || c <= 0 {
		return
	}
	if ps < c {
		panic(fmt.Sprintf("vec: MaxPool2ArgRow: pixels %d floats apart hold %d channels", ps, c))
	}
	checkLen("MaxPool2ArgRow", ow*c, y)
	if len(arg) < ow*c {
		panic(fmt.Sprintf("vec: MaxPool2ArgRow: arg of %d, want at least %d", len(arg), ow*c))
	}
	checkLen("MaxPool2ArgRow", (2*ow-1)*ps+c, top, bot)
	checkLen("MaxPool2ArgRow", c, bias)
	if level >= simd.AVX2 && c%8 == 0 {
		poolArgRowAVX2(&y[0], &arg[0], &top[0], &bot[0], &bias[0], c, ps, ow, &off, step)
		return
	}
	for j := 0; j < ow; j++ {
		l, r := 2*j*ps, (2*j+1)*ps
		for ch := 0; ch < c; ch++ {
			tl, tr, bl, br := top[l+ch], top[r+ch], bot[l+ch], bot[r+ch]
			m := maxps(maxps(tl, tr), maxps(bl, br))
			q := 3
			switch m {
			case tl:
				q = 0
			case tr:
				q = 1
			case bl:
				q = 2
			}
			arg[j*c+ch] = off[q] + int32(j)*step
			v := m + bias[ch]
			if !(v > 0) {
				v = 0
			}
			y[j*c+ch] = v
		}
	}
}

// Transpose writes the rows x cols matrix src (row stride lds) transposed into dst, a cols x rows
// matrix with row stride ldd: dst[j*ldd+i] = src[i*lds+j].
func Transpose(dst []float32, ldd int, src []float32, lds int, rows, cols int) {
	if rows <= 0 || cols <= 0 {
		return
	}
	if ldd < rows || lds < cols || (cols-1)*ldd+rows > len(dst) || (rows-1)*lds+cols > len(src) {
		panic(fmt.Sprintf("vec: Transpose: %dx%d with strides %d and %d overruns %d and %d floats", rows, cols, lds, ldd, len(src), len(dst)))
	}
	r8, c8 := 0, 0
	if level >= simd.AVX2 {
		// Whole 8x8 blocks in registers; the ragged right and bottom edges in Go.
		r8, c8 = rows&^7, cols&^7
		if r8 > 0 && c8 > 0 {
			transposeAVX2(&dst[0], ldd, &src[0], lds, r8/8, c8/8)
		}
	}
	transposeGo(dst, ldd, src, lds, 0, r8, c8, cols)
	transposeGo(dst, ldd, src, lds, r8, rows, 0, cols)
}

// transposeGo transposes the block of rows [r0, r1) and columns [c0, c1), in tiles that stay in cache.
func transposeGo(dst []float32, ldd int, src []float32, lds int, r0, r1, c0, c1 int) {
	const tile = 16
	for i0 := r0; i0 < r1; i0 += tile {
		for j0 := c0; j0 < c1; j0 += tile {
			for i := i0; i < min(i0+tile, r1); i++ {
				row := src[i*lds : i*lds+c1]
				for j := j0; j < min(j0+tile, c1); j++ {
					dst[j*ldd+i] = row[j]
				}
			}
		}
	}
}

// Patches writes the im2col matrix of a valid, stride-1 convolution of one channels-last image x
// (h x w x c) with kh x kw kernels: row oy·ow+ox of dst holds the kh segments of kw·c input floats
// under that output pixel's window, one after another, then a 1 (the bias's column), so rows are
// kh·kw·c+1 floats long and follow each other without gaps. It writes nothing past the last row.
func Patches(dst, x []float32, h, w, c, kh, kw int) {
	oh, ow := h-kh+1, w-kw+1
	span := kw * c
	k := kh*span + 1
	if oh <= 0 || ow <= 0 || c <= 0 {
		return
	}
	if len(dst) < oh*ow*k || len(x) < h*w*c {
		panic(fmt.Sprintf("vec: Patches: %dx%dx%d image with %dx%d kernels needs %d and %d floats, have %d and %d", h, w, c, kh, kw, h*w*c, oh*ow*k, len(x), len(dst)))
	}
	done := 0
	if level >= simd.AVX2 && span <= 16 {
		// The AVX-512 level takes these too: they are as fast there. The assembly's last store of
		// a row ends at most 8 or 16 floats after the row's last segment starts; rows whose stores
		// would run past the matrix are left to the loop below.
		store := 8
		if span > 8 {
			store = 16
		}
		if room := oh*ow*k - (kh-1)*span - store; room >= 0 {
			done = min(oh*ow, room/k+1)
		}
		if done > 0 {
			patchesAVX2(&dst[0], &x[0], w, c, span, kh, ow, done)
		}
	}
	for r := done; r < oh*ow; r++ {
		oy, ox := r/ow, r%ow
		row := dst[r*k : (r+1)*k]
		for ky := 0; ky < kh; ky++ {
			copy(row[ky*span:(ky+1)*span], x[((oy+ky)*w+ox)*c:])
		}
		row[k-1] = 1
	}
}
