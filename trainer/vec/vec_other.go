//go:build !amd64 || purego

package vec

const hasAVX512 = false

func reluAVX512(x *float32, n int)                                       { panic("vec: no assembly") }
func reluGradAVX512(dst, dy, y *float32, n int)                          { panic("vec: no assembly") }
func max4AVX512(dst, a, b, c, d *float32, n int)                         { panic("vec: no assembly") }
func max4GradAVX512(da, db, dc, dd, grad, y, a, b, c, d *float32, n int) { panic("vec: no assembly") }

const assemblyBuilt = false
