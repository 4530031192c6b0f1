//go:build !purego

package simd

import "golang.org/x/sys/cpu"

var best = detect()

func detect() Level {
	switch {
	case cpu.X86.HasAVX512F:
		return AVX512
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		return AVX2
	}
	return Portable
}

// Assembly reports whether this build has the assembly versions at all.
const Assembly = true
