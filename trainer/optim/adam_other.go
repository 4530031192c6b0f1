//go:build !amd64 || purego

package optim

// The assembly versions do not exist in this build; simd.Best() is Portable, so none is called.

func adamAVX512(w, grad, m, v *float32, n int, b1, b2, c1, c2, alpha, eps float32) {
	panic("optim: no assembly")
}

func adamAVX2(w, grad, m, v *float32, n int, b1, b2, c1, c2, alpha, eps float32) {
	panic("optim: no assembly")
}
