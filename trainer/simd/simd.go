// Package simd names the instruction sets the trainer's kernels are written for and picks the best
// one this CPU runs. Packages gemm, vec and optim each have a version of their hot loops per level
// (portable Go always; AVX2 and AVX-512 assembly on amd64 unless built with the purego tag) and a
// Use function that selects one; results are bit-identical across levels.
package simd

import "fmt"

// Level is an instruction set; a higher level is a superset of the lower ones.
type Level int

const (
	// Portable is plain Go, on every architecture.
	Portable Level = iota
	// AVX2 is AVX2 with FMA: 16 registers of 8 floats.
	AVX2
	// AVX512 is AVX-512F: 32 registers of 16 floats.
	AVX512
)

var names = [...]string{Portable: "go", AVX2: "avx2", AVX512: "avx512"}

// String is the level's name, as the trainer's --kernel flag takes it.
func (l Level) String() string {
	if l < 0 || int(l) >= len(names) {
		return fmt.Sprintf("Level(%d)", int(l))
	}
	return names[l]
}

// Best is the highest level this CPU (and this build) runs.
func Best() Level { return best }

// Available lists the levels this CPU runs, lowest first.
func Available() []Level {
	var ls []Level
	for l := Portable; l <= best; l++ {
		ls = append(ls, l)
	}
	return ls
}

// Parse returns the level named name, which must be available on this CPU.
func Parse(name string) (Level, error) {
	for l, n := range names {
		if n == name {
			if Level(l) > best {
				return 0, fmt.Errorf("kernel %q is not available on this CPU (available: %v)", name, Available())
			}
			return Level(l), nil
		}
	}
	return 0, fmt.Errorf("unknown kernel %q (available: %v)", name, Available())
}
