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

//go:noescape
func copyStridedAVX512(dst *float32, dstStride int, src *float32, srcStride, n, seg int)

//go:noescape
func poolRowAVX512(y, xTop, xBot *float32, c, ow int)

//go:noescape
func poolGradRowAVX512(dxTop, dxBot, dy, y, xTop, xBot *float32, c, ow int)
