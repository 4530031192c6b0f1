package optim

import (
	"math"
	"testing"

	"github.com/kubetrain/kubetrain/trainer/nn"
	"github.com/kubetrain/kubetrain/trainer/parallel"
	"github.com/kubetrain/kubetrain/trainer/simd"
)

// TestAdamMatchesFormula checks two steps of Adam against the update written out in float64.
func TestAdamMatchesFormula(t *testing.T) {
	pool := parallel.New(2)
	defer pool.Close()
	w0 := []float32{0.5, -1, 2, 0}
	grads := [][]float32{{0.1, -0.2, 3, 0}, {-0.3, 0.2, 1, 1e-4}}
	p := &nn.Param{Name: "w", Value: append([]float32(nil), w0...), Grad: make([]float32, 4)}
	a := NewAdam(0.01, pool)
	want := make([]float64, 4)
	m, v := make([]float64, 4), make([]float64, 4)
	for i := range want {
		want[i] = float64(w0[i])
	}
	for step, g := range grads {
		copy(p.Grad, g)
		a.Step([]*nn.Param{p})
		tt := float64(step + 1)
		alpha := 0.01 * math.Sqrt(1-math.Pow(0.999, tt)) / (1 - math.Pow(0.9, tt))
		for i := range want {
			gi := float64(g[i])
			m[i] = 0.9*m[i] + 0.1*gi
			v[i] = 0.999*v[i] + 0.001*gi*gi
			want[i] -= alpha * m[i] / (math.Sqrt(v[i]) + 1e-7)
		}
	}
	for i := range want {
		if math.Abs(float64(p.Value[i])-want[i]) > 1e-6 {
			t.Errorf("w[%d] = %v, want %v", i, p.Value[i], want[i])
		}
	}
	if a.State.Step != 2 {
		t.Errorf("step count %d, want 2", a.State.Step)
	}
}

func TestSGD(t *testing.T) {
	pool := parallel.New(1)
	defer pool.Close()
	p := &nn.Param{Value: []float32{1, 2}, Grad: []float32{10, -10}}
	NewSGD(0.1, pool).Step([]*nn.Param{p})
	if p.Value[0] != 0 || p.Value[1] != 3 {
		t.Errorf("after one SGD step w = %v, want [0 3]", p.Value)
	}
}

func TestAdamDoesNotAllocate(t *testing.T) {
	pool := parallel.New(2)
	defer pool.Close()
	p := []*nn.Param{{Value: make([]float32, 100000), Grad: make([]float32, 100000)}}
	a := NewAdam(1e-3, pool)
	a.Step(p)
	if allocs := testing.AllocsPerRun(10, func() { a.Step(p) }); allocs != 0 {
		t.Errorf("Adam.Step allocated %v times per step, want 0", allocs)
	}
}

// TestAdamAssemblyMatchesPortable checks every assembly update this CPU runs (AVX2, and AVX-512
// where it has it) against the portable one, bit for bit, over ragged lengths.
func TestAdamAssemblyMatchesPortable(t *testing.T) {
	defer Use(simd.Best())
	pool := parallel.New(2)
	defer pool.Close()
	levels := simd.Available()
	got := make([][]float32, len(levels))
	for k, l := range levels {
		Use(l)
		p := &nn.Param{Value: make([]float32, 16411), Grad: make([]float32, 16411)}
		for i := range p.Value {
			p.Value[i] = float32(i%13) - 6
		}
		a := NewAdam(1e-2, pool)
		for step := 0; step < 3; step++ {
			for i := range p.Grad {
				p.Grad[i] = float32((i*7+step)%11-5) * 0.37
			}
			a.Step([]*nn.Param{p})
		}
		got[k] = p.Value
	}
	for k := 1; k < len(levels); k++ {
		for i := range got[0] {
			if math.Float32bits(got[0][i]) != math.Float32bits(got[k][i]) {
				t.Fatalf("w[%d]: portable %v, %v %v", i, got[0][i], levels[k], got[k][i])
			}
		}
	}
}
