//go:build !amd64 || purego

package simd

const best = Portable

// Assembly reports whether this build has the assembly versions at all.
const Assembly = false
