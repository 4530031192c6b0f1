//go:build !purego

package gemm

import "golang.org/x/sys/cpu"

//go:generate go run ./internal/asmgen/gen

//go:noescape
func kernelAVX512(k int, a, b *float32, ldb int, c *float32, ldc int, acc int)

//go:noescape
func kernelAVX2(k int, a, b *float32, ldb int, c *float32, ldc int, acc int)

func registerAssembly() {
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		register(&microKernel{name: AVX2, mr: 6, nr: 16, fn: func(k int, a, b []float32, ldb int, c []float32, ldc int, acc bool) {
			kernelAVX2(k, &a[0], &b[0], ldb, &c[0], ldc, b2i(acc))
		}})
		best = kernels[AVX2]
	}
	if cpu.X86.HasAVX512F {
		register(&microKernel{name: AVX512, mr: 12, nr: 32, fn: func(k int, a, b []float32, ldb int, c []float32, ldc int, acc bool) {
			kernelAVX512(k, &a[0], &b[0], ldb, &c[0], ldc, b2i(acc))
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
