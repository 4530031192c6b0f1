// Package gradcheck compares analytic gradients with central finite differences. Every layer of
// package nn and the loss are checked with it, with the tolerances below and seeded randomness.
package gradcheck

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/kubetrain/kubetrain/trainer/nn"
	"github.com/kubetrain/kubetrain/trainer/tensor"
)

// Tolerances. The layers compute in float32, so the step cannot be tiny; ReLU and max-pool have
// kinks that a step must rarely straddle, so it cannot be large either. A step of 1e-4 keeps the
// rounding error of a difference of two forward passes (about 1e-6 of f) near 1e-2 of the gradient,
// and makes a kink within a step rare enough to be detected and skipped (KinkTol).
const (
	// Step is the finite-difference step h in (f(x+h) - f(x-h)) / 2h.
	Step = 1e-4
	// AbsTol and RelTol: an element passes when |analytic - numeric| <= AbsTol + RelTol·max(|analytic|, |numeric|).
	AbsTol = 1e-2
	RelTol = 1e-2
	// KinkTol: where the one-sided differences (f(x+h)-f(x))/h and (f(x)-f(x-h))/h disagree by more
	// than KinkTol times the tolerance, x-h and x+h straddle a kink of ReLU or a change of max-pool
	// winner, and the central difference means nothing there: such elements are skipped, not judged.
	// A wrong gradient is wrong on both sides, so skipping cannot hide it.
	KinkTol = 0.5
	// MaxSkippedFraction: more skipped elements than this fail the check, so that a check cannot
	// pass by skipping everything.
	MaxSkippedFraction = 0.2
	// SamplesPerArray bounds how many elements of each array are checked; arrays no larger are
	// checked in full.
	SamplesPerArray = 48
)

// Var is one array of inputs to a function and the analytic gradient of the function with respect to it.
type Var struct {
	Name  string
	Value []float32
	Grad  []float32
}

// Report is the outcome of a check.
type Report struct {
	Checked, Skipped int
	MaxAbsErr        float64
	MaxRelErr        float64
	// Worst names the element with the largest error beyond tolerance, if any.
	Worst string
}

func (r Report) String() string {
	return fmt.Sprintf("%d elements checked, %d skipped at kinks, max abs error %.3g, max rel error %.3g", r.Checked, r.Skipped, r.MaxAbsErr, r.MaxRelErr)
}

// Check perturbs sampled elements of each var by ±Step, evaluates f (which must read the vars'
// current values and be deterministic), and compares the central difference with the var's Grad.
// It returns an error naming the worst element when any is out of tolerance.
func Check(f func() float64, vars []Var, rng *rand.Rand) (Report, error) {
	var r Report
	var failures int
	for _, v := range vars {
		if len(v.Value) != len(v.Grad) {
			panic(fmt.Sprintf("gradcheck: %s has %d values and %d gradients", v.Name, len(v.Value), len(v.Grad)))
		}
		idx := make([]int, len(v.Value))
		for i := range idx {
			idx[i] = i
		}
		if len(idx) > SamplesPerArray {
			rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
			idx = idx[:SamplesPerArray]
		}
		for _, i := range idx {
			orig := v.Value[i]
			v.Value[i] = orig + Step
			plus := f()
			v.Value[i] = orig - Step
			minus := f()
			v.Value[i] = orig
			center := f()
			// The step actually taken, after rounding to float32.
			hUp, hDown := float64(orig+Step)-float64(orig), float64(orig)-float64(orig-Step)
			fwd, bwd := (plus-center)/hUp, (center-minus)/hDown
			if math.Abs(fwd-bwd) > KinkTol*(AbsTol+RelTol*math.Max(math.Abs(fwd), math.Abs(bwd))) {
				r.Skipped++
				continue
			}
			num := (plus - minus) / (hUp + hDown)

			ana := float64(v.Grad[i])
			absErr := math.Abs(ana - num)
			relErr := absErr / math.Max(math.Max(math.Abs(ana), math.Abs(num)), 1e-12)
			r.Checked++
			r.MaxAbsErr = math.Max(r.MaxAbsErr, absErr)
			if math.Abs(ana) > AbsTol || math.Abs(num) > AbsTol {
				r.MaxRelErr = math.Max(r.MaxRelErr, relErr)
			}
			if absErr > AbsTol+RelTol*math.Max(math.Abs(ana), math.Abs(num)) {
				if failures == 0 || absErr > r.MaxAbsErr*0.999 {
					r.Worst = fmt.Sprintf("%s[%d]: analytic %.6g, numeric %.6g", v.Name, i, ana, num)
				}
				failures++
			}
		}
	}
	if total := r.Checked + r.Skipped; total > 0 && float64(r.Skipped) > MaxSkippedFraction*float64(total) {
		return r, fmt.Errorf("gradcheck: %d of %d elements sit at kinks, too many to judge (%v)", r.Skipped, total, r)
	}
	if failures > 0 {
		return r, fmt.Errorf("gradcheck: %d elements out of tolerance, worst %s (%v)", failures, r.Worst, r)
	}
	return r, nil
}

// CheckLayer builds layer for a batch of examples of shape in, draws a random input and a random
// gradient g of the output from rng, and checks the layer's input and parameter gradients of the
// scalar f = sum(Forward(x) · g).
func CheckLayer(layer nn.Layer, in []int, batch int, rng *rand.Rand) (Report, error) {
	e := nn.NewEngine(2)
	defer e.Close()
	out := layer.Build(in, batch, rng, e)
	x := tensor.New(append([]int{batch}, in...)...)
	for i := range x.Data {
		x.Data[i] = float32(rng.NormFloat64())
	}
	// Random non-zero biases, so that a bias gradient is really exercised.
	for _, p := range layer.Params() {
		if p.Name == "bias" {
			for i := range p.Value {
				p.Value[i] = float32(0.1 * rng.NormFloat64())
			}
		}
	}
	g := tensor.New(append([]int{batch}, out...)...)
	for i := range g.Data {
		g.Data[i] = float32(rng.NormFloat64())
	}
	f := func() float64 {
		y := layer.Forward(x)
		var s float64
		for i, v := range y.Data {
			s += float64(v) * float64(g.Data[i])
		}
		return s
	}
	f()
	dx := layer.Backward(g, true)
	vars := []Var{{Name: layer.String() + " input", Value: x.Data, Grad: append([]float32(nil), dx.Data...)}}
	for _, p := range layer.Params() {
		vars = append(vars, Var{Name: layer.String() + " " + p.Name, Value: p.Value, Grad: append([]float32(nil), p.Grad...)})
	}
	return Check(f, vars, rng)
}
