//go:build !amd64 || purego

package vec

const hasAVX512 = false

func reluAVX512(x *float32, n int)                                       { panic("vec: no assembly") }
func reluGradAVX512(dst, dy, y *float32, n int)                          { panic("vec: no assembly") }
func max4AVX512(dst, a, b, c, d *float32, n int)                         { panic("vec: no assembly") }
func max4GradAVX512(da, db, dc, dd, grad, y, a, b, c, d *float32, n int) { panic("vec: no assembly") }

const assemblyBuilt = false

func copyStridedAVX512(dst *float32, dstStride int, src *float32, srcStride, n, seg int) {
	panic("vec: no assembly")
}

func poolRowAVX512(y, xTop, xBot *float32, c, ow int) { panic("vec: no assembly") }

func poolGradRowAVX512(dxTop, dxBot, dy, y, xTop, xBot *float32, c, ow int) {
	panic("vec: no assembly")
}
