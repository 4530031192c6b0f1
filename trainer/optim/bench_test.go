package optim

import (
	"fmt"
	"testing"

	"github.com/kubetrain/kubetrain/trainer/nn"
	"github.com/kubetrain/kubetrain/trainer/parallel"
)

// BenchmarkAdam times one Adam step over the reference model's 462,410 parameters.
func BenchmarkAdam(b *testing.B) {
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			pool := parallel.New(threads)
			defer pool.Close()
			p := []*nn.Param{{Value: make([]float32, 462410), Grad: make([]float32, 462410)}}
			for i := range p[0].Grad {
				p[0].Grad[i] = float32(i%7) - 3
			}
			a := NewAdam(1e-3, pool)
			b.ReportAllocs()
			for b.Loop() {
				a.Step(p)
			}
			b.ReportMetric(float64(len(p[0].Value))*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mparams/s")
		})
	}
}
