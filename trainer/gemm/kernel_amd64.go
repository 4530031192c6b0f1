//go:build !purego

package gemm

import "github.com/kubetrain/kubetrain/trainer/simd"

//go:generate go run ./internal/asmgen/gen

//go:noescape
func kernelAVX512Cols(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int, tiles int)

//go:noescape
func kernelAVX512Rows(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int, tiles int, segs int, skip int)

//go:noescape
func kernelAVX2x6Cols(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int, tiles int)

//go:noescape
func kernelAVX2x6Rows(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int, tiles int, segs int, skip int)

//go:noescape
func kernelAVX2x5Cols(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int, tiles int)

//go:noescape
func kernelAVX2x5Rows(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int, tiles int, segs int, skip int)

//go:noescape
func kernelAVX2x4Cols(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int, tiles int)

//go:noescape
func kernelAVX2x4Rows(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int, tiles int, segs int, skip int)

// wrap turns an assembly kernel into a kernelFunc; the caller has checked the bounds.
func wrap(f func(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int, tiles int)) kernelFunc {
	return func(k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool, tiles int) {
		f(k, &a[0], lda, &b[0], ldb, &c[0], ldc, b2i(acc), tiles)
	}
}

type rowsAsm func(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int, tiles int, segs int, skip int)

// wrapRows turns an assembly row kernel into a kernelFunc, one segment long.
func wrapRows(f rowsAsm) kernelFunc {
	return func(k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool, tiles int) {
		f(k, &a[0], lda, &b[0], ldb, &c[0], ldc, b2i(acc), tiles, 1, 0)
	}
}

// wrapWindows turns an assembly row kernel into a windowFunc.
func wrapWindows(f rowsAsm) windowFunc {
	return func(segs, seg int, a []float32, lda, segStride int, b []float32, ldb int, c []float32, ldc int, tiles int) {
		f(seg, &a[0], lda, &b[0], ldb, &c[0], ldc, 0, tiles, segs, 4*(segStride-seg))
	}
}

func registerAssembly() {
	if simd.Best() >= simd.AVX2 {
		register(&kernelSet{name: AVX2, heights: []*microKernel{
			{mr: 6, nr: 16, cols: wrap(kernelAVX2x6Cols), rows: wrapRows(kernelAVX2x6Rows), windows: wrapWindows(kernelAVX2x6Rows)},
			{mr: 5, nr: 16, cols: wrap(kernelAVX2x5Cols), rows: wrapRows(kernelAVX2x5Rows), windows: wrapWindows(kernelAVX2x5Rows)},
			{mr: 4, nr: 16, cols: wrap(kernelAVX2x4Cols), rows: wrapRows(kernelAVX2x4Rows), windows: wrapWindows(kernelAVX2x4Rows)},
		}})
		best = kernels[AVX2]
	}
	if simd.Best() >= simd.AVX512 {
		register(&kernelSet{name: AVX512, heights: []*microKernel{
			{mr: 12, nr: 32, cols: wrap(kernelAVX512Cols), rows: wrapRows(kernelAVX512Rows), windows: wrapWindows(kernelAVX512Rows)},
		}})
		best = kernels[AVX512]
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

const assemblyBuilt = true
