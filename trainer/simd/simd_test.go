package simd

import (
	"testing"

	"golang.org/x/sys/cpu"
)

func TestBestMatchesCPU(t *testing.T) {
	want := Portable
	if Assembly {
		switch {
		case cpu.X86.HasAVX512F:
			want = AVX512
		case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
			want = AVX2
		}
	}
	if Best() != want {
		t.Errorf("Best() = %v, want %v", Best(), want)
	}
	t.Logf("this CPU and build: best level %v, available %v", Best(), Available())
}

func TestParse(t *testing.T) {
	for _, l := range Available() {
		got, err := Parse(l.String())
		if err != nil || got != l {
			t.Errorf("Parse(%q) = %v, %v", l.String(), got, err)
		}
	}
	if _, err := Parse("sse9"); err == nil {
		t.Error("Parse(sse9) succeeded")
	}
	if Best() < AVX512 {
		if _, err := Parse("avx512"); err == nil {
			t.Error("Parse(avx512) succeeded on a CPU without it")
		}
	}
}
