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
