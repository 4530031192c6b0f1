// Package optim updates a model's parameters from their gradients: Adam with Keras' defaults, and
// plain SGD. An optimizer writes only the parameters' values and its own state; gradients are read.
//
// The update of each element depends on that element alone, so splitting the work over threads
// cannot change a result: updates are bit-identical for any thread count.
package optim

import (
	"fmt"
	"math"

	"github.com/kubetrain/kubetrain/trainer/nn"
	"github.com/kubetrain/kubetrain/trainer/parallel"
	"github.com/kubetrain/kubetrain/trainer/simd"
)

// Optimizer applies one update step to params, whose Grad hold the gradient of the batch's loss.
// It must be given the same params, in the same order, at every step.
type Optimizer interface {
	Step(params []*nn.Param)
	String() string
}

// Keras' defaults for Adam.
const (
	DefaultLearningRate = 1e-3
	DefaultBeta1        = 0.9
	DefaultBeta2        = 0.999
	DefaultEpsilon      = 1e-7
)

// chunk is how many elements one task of an update covers.
const chunk = 16384

// span is a range of one parameter's elements.
type span struct{ param, lo, hi int }

// spans splits params into chunk-sized ranges, for the pool.
func spans(params []*nn.Param) []span {
	var s []span
	for i, p := range params {
		for lo := 0; lo < len(p.Value); lo += chunk {
			s = append(s, span{i, lo, min(lo+chunk, len(p.Value))})
		}
	}
	return s
}

// AdamState is what Adam must carry across a restart: its step count and moment estimates, one
// array per parameter in order.
type AdamState struct {
	Step int64
	M, V [][]float32
}

// Adam is the Adam optimizer in Keras' formulation:
// m ← β1·m + (1-β1)·g; v ← β2·v + (1-β2)·g²; w ← w - lr·sqrt(1-β2^t)/(1-β1^t) · m / (sqrt(v) + ε).
type Adam struct {
	LR, Beta1, Beta2, Epsilon float64
	State                     AdamState

	pool   *parallel.Pool
	params []*nn.Param
	spans  []span
	alpha  float32
}

// NewAdam returns Adam with learning rate lr and Keras' other defaults, running on pool.
func NewAdam(lr float64, pool *parallel.Pool) *Adam {
	return &Adam{LR: lr, Beta1: DefaultBeta1, Beta2: DefaultBeta2, Epsilon: DefaultEpsilon, pool: pool}
}

func (a *Adam) String() string {
	return fmt.Sprintf("Adam(lr=%g, beta1=%g, beta2=%g, epsilon=%g)", a.LR, a.Beta1, a.Beta2, a.Epsilon)
}

func (a *Adam) Step(params []*nn.Param) {
	if a.State.M == nil {
		for _, p := range params {
			a.State.M = append(a.State.M, make([]float32, len(p.Value)))
			a.State.V = append(a.State.V, make([]float32, len(p.Value)))
		}
	}
	if len(a.State.M) != len(params) {
		panic(fmt.Sprintf("optim: Adam state holds %d arrays for %d parameters", len(a.State.M), len(params)))
	}
	if a.spans == nil {
		a.spans = spans(params)
	}
	a.State.Step++
	t := float64(a.State.Step)
	a.alpha = float32(a.LR * math.Sqrt(1-math.Pow(a.Beta2, t)) / (1 - math.Pow(a.Beta1, t)))
	a.params = params
	a.pool.For(len(a.spans), a)
	a.params = nil
}

// Do updates one span; it is the pool's loop body.
func (a *Adam) Do(_, i int) {
	s := a.spans[i]
	p := a.params[s.param]
	w, g := p.Value[s.lo:s.hi], p.Grad[s.lo:s.hi]
	m, v := a.State.M[s.param][s.lo:s.hi], a.State.V[s.param][s.lo:s.hi]
	b1, b2 := float32(a.Beta1), float32(a.Beta2)
	c1, c2 := 1-b1, 1-b2
	alpha, eps := a.alpha, float32(a.Epsilon)
	n := 0
	switch level {
	case simd.AVX512:
		n = len(w) &^ 15
		if n > 0 {
			adamAVX512(&w[0], &g[0], &m[0], &v[0], n, b1, b2, c1, c2, alpha, eps)
		}
	case simd.AVX2:
		n = len(w) &^ 7
		if n > 0 {
			adamAVX2(&w[0], &g[0], &m[0], &v[0], n, b1, b2, c1, c2, alpha, eps)
		}
	}
	adamGo(w[n:], g[n:], m[n:], v[n:], b1, b2, c1, c2, alpha, eps)
}

// level is the instruction set of Adam's update. Every version does the same float32 operations in
// the same order, so their results are bit-identical.
var level = simd.Best()

// Use selects the update of level l, or of the best level this CPU has when l is beyond it. It is
// not safe to call while an update runs.
func Use(l simd.Level) { level = min(l, simd.Best()) }

// adamGo is the portable update. The float32 conversions keep the compiler from fusing a multiply
// and an add (which the assembly does not do either).
func adamGo(w, g, m, v []float32, b1, b2, c1, c2, alpha, eps float32) {
	g, m, v = g[:len(w)], m[:len(w)], v[:len(w)]
	for j := range w {
		gj := g[j]
		mj := float32(b1*m[j]) + float32(c1*gj)
		vj := float32(b2*v[j]) + float32(float32(c2*gj)*gj)
		m[j], v[j] = mj, vj
		w[j] -= float32(alpha*mj) / (float32(math.Sqrt(float64(vj))) + eps)
	}
}

// SGD is plain stochastic gradient descent: w ← w - lr·g.
type SGD struct {
	LR     float64
	pool   *parallel.Pool
	params []*nn.Param
	spans  []span
}

// NewSGD returns SGD with learning rate lr, running on pool.
func NewSGD(lr float64, pool *parallel.Pool) *SGD { return &SGD{LR: lr, pool: pool} }

func (s *SGD) String() string { return fmt.Sprintf("SGD(lr=%g)", s.LR) }

func (s *SGD) Step(params []*nn.Param) {
	if s.spans == nil {
		s.spans = spans(params)
	}
	s.params = params
	s.pool.For(len(s.spans), s)
	s.params = nil
}

// Do updates one span; it is the pool's loop body.
func (s *SGD) Do(_, i int) {
	sp := s.spans[i]
	p := s.params[sp.param]
	w, g := p.Value[sp.lo:sp.hi], p.Grad[sp.lo:sp.hi]
	lr := float32(s.LR)
	g = g[:len(w)]
	for j := range w {
		w[j] -= lr * g[j]
	}
}
