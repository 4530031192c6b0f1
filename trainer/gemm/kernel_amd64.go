//go:build !purego

package gemm

import "github.com/kubetrain/kubetrain/trainer/simd"

//go:generate go run ./internal/asmgen/gen

//go:noescape
func kernelAVX512Cols(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int, tiles int)

//go:noescape
func kernelAVX512Rows(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int, tiles int)

//go:noescape
func kernelAVX2x6Cols(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int, tiles int)

//go:noescape
func kernelAVX2x6Rows(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int, tiles int)

//go:noescape
func kernelAVX2x5Cols(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int, tiles int)

//go:noescape
func kernelAVX2x5Rows(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int, tiles int)

//go:noescape
func kernelAVX2x4Cols(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int, tiles int)

//go:noescape
func kernelAVX2x4Rows(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int, tiles int)

// wrap turns an assembly kernel into a kernelFunc; the caller has checked the bounds.
func wrap(f func(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int, tiles int)) kernelFunc {
	return func(k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool, tiles int) {
		f(k, &a[0], lda, &b[0], ldb, &c[0], ldc, b2i(acc), tiles)
	}
}

func registerAssembly() {
	if simd.Best() >= simd.AVX2 {
		register(&kernelSet{name: AVX2, heights: []*microKernel{
			{mr: 6, nr: 16, cols: wrap(kernelAVX2x6Cols), rows: wrap(kernelAVX2x6Rows)},
			{mr: 5, nr: 16, cols: wrap(kernelAVX2x5Cols), rows: wrap(kernelAVX2x5Rows)},
			{mr: 4, nr: 16, cols: wrap(kernelAVX2x4Cols), rows: wrap(kernelAVX2x4Rows)},
		}})
		best = kernels[AVX2]
	}
	if simd.Best() >= simd.AVX512 {
		register(&kernelSet{name: AVX512, heights: []*microKernel{
			{mr: 12, nr: 32, cols: wrap(kernelAVX512Cols), rows: wrap(kernelAVX512Rows)},
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
