//go:build !amd64 || purego

package optim

const hasAVX512 = false

func adamAVX512(w, grad, m, v *float32, n int, b1, b2, c1, c2, alpha, eps float32) {
	panic("optim: no assembly")
}
