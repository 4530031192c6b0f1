// Package vec holds the elementwise float32 loops of the layers (ReLU and its gradient, 2x2 max
// pooling and its gradient), with AVX-512 assembly where the CPU has it and a portable Go twin
// (Use(false), or the purego build tag). Both give bit-identical results: the loops only select
// and compare values, they do no arithmetic that could round differently.
//
// Functions write only their first argument(s), the destinations; sources are never modified
// unless a destination is the same slice.
package vec

import "fmt"

// simd reports whether the assembly versions are in use.
var simd = hasAVX512

// Accelerated reports whether the assembly versions are in use.
func Accelerated() bool { return simd }

// Use selects the assembly versions (when the CPU has AVX-512) or the portable ones.
func Use(accelerated bool) { simd = accelerated && hasAVX512 }

func checkLen(name string, n int, s ...[]float32) {
	for _, x := range s {
		if len(x) < n {
			panic(fmt.Sprintf("vec: %s: slice of %d floats, want at least %d", name, len(x), n))
		}
	}
}

// ReLU sets x[i] = max(x[i], 0).
func ReLU(x []float32) {
	n := 0
	if simd {
		n = len(x) &^ 15
		if n > 0 {
			reluAVX512(&x[0], n)
		}
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
	n := 0
	if simd {
		n = len(dst) &^ 15
		if n > 0 {
			reluGradAVX512(&dst[0], &dy[0], &y[0], n)
		}
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
	n := 0
	if simd {
		n = len(dst) &^ 15
		if n > 0 {
			max4AVX512(&dst[0], &a[0], &b[0], &c[0], &d[0], n)
		}
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
	m := 0
	if simd {
		m = n &^ 15
		if m > 0 {
			max4GradAVX512(&da[0], &db[0], &dc[0], &dd[0], &g[0], &y[0], &a[0], &b[0], &c[0], &d[0], m)
		}
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

// CopyStrided copies n segments of seg floats: segment i goes from src[i*srcStride:] to
// dst[i*dstStride:]. It is the im2col of a convolution: one output row's patches, one kernel row.
func CopyStrided(dst []float32, dstStride int, src []float32, srcStride, n, seg int) {
	if n <= 0 || seg <= 0 {
		return
	}
	if (n-1)*dstStride+seg > len(dst) || (n-1)*srcStride+seg > len(src) {
		panic(fmt.Sprintf("vec: CopyStrided: %d segments of %d with strides %d and %d overrun %d and %d floats", n, seg, dstStride, srcStride, len(dst), len(src)))
	}
	if simd && seg <= 16 {
		copyStridedAVX512(&dst[0], dstStride, &src[0], srcStride, n, seg)
		return
	}
	for i := 0; i < n; i++ {
		copy(dst[i*dstStride:i*dstStride+seg], src[i*srcStride:i*srcStride+seg])
	}
}

// MaxPool2Row computes one output row of 2x2 max pooling over channels-last pixels: y holds ow
// pixels of c channels, xTop and xBot the two input rows (at least 2·ow pixels each). Output pixel
// j is Max4 of input pixels 2j and 2j+1 of both rows.
func MaxPool2Row(y, xTop, xBot []float32, c, ow int) {
	checkLen("MaxPool2Row", ow*c, y)
	checkLen("MaxPool2Row", 2*ow*c, xTop, xBot)
	if simd && c%16 == 0 && ow > 0 && c > 0 {
		poolRowAVX512(&y[0], &xTop[0], &xBot[0], c, ow)
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
	if simd && c%16 == 0 && ow > 0 && c > 0 {
		poolGradRowAVX512(&dxTop[0], &dxBot[0], &dy[0], &y[0], &xTop[0], &xBot[0], c, ow)
		return
	}
	for j := 0; j < ow; j++ {
		l, r, o := 2*j*c, (2*j+1)*c, j*c
		Max4Grad(dxTop[l:l+c], dxTop[r:r+c], dxBot[l:l+c], dxBot[r:r+c], dy[o:o+c], y[o:o+c], xTop[l:l+c], xTop[r:r+c], xBot[l:l+c], xBot[r:r+c])
	}
}
