//go:build !purego

package gemm

import "github.com/kubetrain/kubetrain/trainer/simd"

//go:generate go run ./internal/asmgen/gen

//go:noescape
func kernelAVX512Cols(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int)

//go:noescape
func kernelAVX512Rows(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int)

//go:noescape
func kernelAVX2Cols(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int)

//go:noescape
func kernelAVX2Rows(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int)

// wrap turns an assembly kernel into a kernelFunc; the caller has checked the bounds.
func wrap(f func(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, acc int)) kernelFunc {
	return func(k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, acc bool) {
		f(k, &a[0], lda, &b[0], ldb, &c[0], ldc, b2i(acc))
	}
}

func registerAssembly() {
	if simd.Best() >= simd.AVX2 {
		register(&microKernel{name: AVX2, mr: 6, nr: 16, cols: wrap(kernelAVX2Cols), rows: wrap(kernelAVX2Rows)})
		best = kernels[AVX2]
	}
	if simd.Best() >= simd.AVX512 {
		register(&microKernel{name: AVX512, mr: 12, nr: 32, cols: wrap(kernelAVX512Cols), rows: wrap(kernelAVX512Rows)})
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
