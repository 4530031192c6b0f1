//go:build !amd64 || purego

package vec

// The assembly versions do not exist in this build; simd.Best() is Portable, so none is called.

func reluAVX512(x *float32, n int)                                       { panic("vec: no assembly") }
func reluGradAVX512(dst, dy, y *float32, n int)                          { panic("vec: no assembly") }
func max4AVX512(dst, a, b, c, d *float32, n int)                         { panic("vec: no assembly") }
func max4GradAVX512(da, db, dc, dd, grad, y, a, b, c, d *float32, n int) { panic("vec: no assembly") }
func poolRowAVX512(y, xTop, xBot *float32, c, ow int)                    { panic("vec: no assembly") }
func poolGradRowAVX512(dxTop, dxBot, dy, y, xTop, xBot *float32, c, ow int) {
	panic("vec: no assembly")
}

func reluAVX2(x *float32, n int)                                       { panic("vec: no assembly") }
func reluGradAVX2(dst, dy, y *float32, n int)                          { panic("vec: no assembly") }
func max4AVX2(dst, a, b, c, d *float32, n int)                         { panic("vec: no assembly") }
func max4GradAVX2(da, db, dc, dd, grad, y, a, b, c, d *float32, n int) { panic("vec: no assembly") }
func poolRowAVX2(y, xTop, xBot *float32, c, ow int)                    { panic("vec: no assembly") }
func poolGradRowAVX2(dxTop, dxBot, dy, y, xTop, xBot *float32, c, ow int) {
	panic("vec: no assembly")
}
func transposeAVX2(dst *float32, ldd int, src *float32, lds int, rowBlocks, colBlocks int) {
	panic("vec: no assembly")
}
func patchesAVX2(dst *float32, x *float32, w, c, span, kh, ow, pixels int) {
	panic("vec: no assembly")
}
func poolArgRowAVX2(y *float32, arg *int32, top, bot, bias *float32, c, ps, ow int, off *[4]int32, step int32) {
	panic("vec: no assembly")
}
