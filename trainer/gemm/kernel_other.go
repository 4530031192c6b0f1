//go:build !amd64 || purego

package gemm

func registerAssembly() {}

const assemblyBuilt = false
