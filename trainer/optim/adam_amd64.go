//go:build !purego

package optim

import "golang.org/x/sys/cpu"

var hasAVX512 = cpu.X86.HasAVX512F

//go:noescape
func adamAVX512(w, grad, m, v *float32, n int, b1, b2, c1, c2, alpha, eps float32)
