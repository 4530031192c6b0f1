//go:build !amd64 || purego

package gemm

func registerAssembly() {}

const assemblyBuilt = false

func windowGradAVX2(dw *float32, ldw, pairs, seg, segStride int, a, grad *float32, arg *int32, ldg, np, limit int) int {
	panic("gemm: no assembly")
}

func windowGrad8AVX2(dw *float32, ldw, quads, seg, segStride int, a, grad *float32, arg *int32, ldg, np, limit int) int {
	panic("gemm: no assembly")
}
