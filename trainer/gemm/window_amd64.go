//go:build !purego

package gemm

// windowGradAVX2 is WindowGrad for pairs·2 channels, 3 segments of at most 16 steps: it reads 16
// floats per segment and writes 16 per segment. It returns 1, having stopped, when an arg is
// outside [0, limit].
//
//go:noescape
func windowGradAVX2(dw *float32, ldw, pairs, seg, segStride int, a, grad *float32, arg *int32, ldg, np, limit int) int

// windowGrad8AVX2 is windowGradAVX2 for quads·4 channels and segments of at most 8 steps, which it
// reads and writes 8 floats wide.
//
//go:noescape
func windowGrad8AVX2(dw *float32, ldw, quads, seg, segStride int, a, grad *float32, arg *int32, ldg, np, limit int) int
