//go:build !purego

package optim

//go:noescape
func adamAVX512(w, grad, m, v *float32, n int, b1, b2, c1, c2, alpha, eps float32)

//go:noescape
func adamAVX2(w, grad, m, v *float32, n int, b1, b2, c1, c2, alpha, eps float32)
