//go:build !purego

package vec

import "golang.org/x/sys/cpu"

var hasAVX512 = cpu.X86.HasAVX512F

//go:noescape
func reluAVX512(x *float32, n int)

//go:noescape
func reluGradAVX512(dst, dy, y *float32, n int)

//go:noescape
func max4AVX512(dst, a, b, c, d *float32, n int)

//go:noescape
func max4GradAVX512(da, db, dc, dd, grad, y, a, b, c, d *float32, n int)

const assemblyBuilt = true
