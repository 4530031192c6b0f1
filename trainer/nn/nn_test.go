package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kubetrain/kubetrain/trainer/gemm"
	"github.com/kubetrain/kubetrain/trainer/simd"
	"github.com/kubetrain/kubetrain/trainer/tensor"
	"github.com/kubetrain/kubetrain/trainer/vec"
)

// TestReferenceCNN checks the preset's layers, output and parameter count for both dataset shapes
// (the counts match Keras' model.summary() for the same model).
func TestReferenceCNN(t *testing.T) {
	cases := map[string]struct {
		in         []int
		wantParams int
	}{
		"cifar10 32x32x3":       {[]int{32, 32, 3}, 462410},
		"fashion-mnist 28x28x1": {[]int{28, 28, 1}, 347146},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e := NewEngine(1)
			defer e.Close()
			m := NewModel(ReferenceCNN(10), tc.in, 4, rand.New(rand.NewPCG(1, 1)), e)
			if got := m.ParamCount(); got != tc.wantParams {
				t.Errorf("%d parameters, want %d", got, tc.wantParams)
			}
			if len(m.Out) != 1 || m.Out[0] != 10 {
				t.Errorf("output shape %v, want [10]", m.Out)
			}
			want := "Conv2D(32, 3x3, relu) -> MaxPool2D(2x2) -> Flatten -> Dense(64, relu) -> Dense(10, linear)"
			if m.String() != want {
				t.Errorf("model %q, want %q", m, want)
			}
		})
	}
}

// TestGlorotUniform checks the initialisation: weights within Glorot's limit and spread over it,
// biases zero.
func TestGlorotUniform(t *testing.T) {
	e := NewEngine(1)
	defer e.Close()
	m := NewModel(ReferenceCNN(10), []int{32, 32, 3}, 1, rand.New(rand.NewPCG(1, 1)), e)
	limits := []float64{math.Sqrt(6.0 / (27 + 288)), 0, math.Sqrt(6.0 / (7200 + 64)), 0, math.Sqrt(6.0 / (64 + 10)), 0}
	for i, p := range m.Params() {
		var maxAbs float64
		for _, v := range p.Value {
			maxAbs = math.Max(maxAbs, math.Abs(float64(v)))
		}
		if p.Name == "bias" {
			if maxAbs != 0 {
				t.Errorf("param %d: bias not zero (max |b| = %g)", i, maxAbs)
			}
			continue
		}
		if maxAbs > limits[i] || maxAbs < 0.9*limits[i] {
			t.Errorf("param %d: max |w| = %g, want just under the Glorot limit %g", i, maxAbs, limits[i])
		}
	}
}

func TestShapeMismatchPanics(t *testing.T) {
	e := NewEngine(1)
	defer e.Close()
	d := NewDense(4, Linear)
	d.Build([]int{6}, 2, rand.New(rand.NewPCG(1, 1)), e)
	defer func() {
		r := recover()
		if msg, _ := r.(string); !strings.HasPrefix(msg, "nn: shape mismatch") {
			t.Errorf("Forward on a wrong shape: recovered %v, want a panic starting with \"nn: shape mismatch\"", r)
		}
	}()
	d.Forward(tensor.New(2, 5))
}

func TestLossIsStable(t *testing.T) {
	l := NewSoftmaxCrossEntropy(2, 3)
	logits := &tensor.Tensor{Shape: []int{2, 3}, Data: []float32{1000, 0, -1000, 0, 0, 0}}
	loss, correct := l.Loss(logits, []uint8{0, 0})
	want := math.Log(3) / 2 // example 0 is certain and right (0), example 1 is uniform (log 3)
	if math.Abs(loss-want) > 1e-9 || correct != 2 {
		t.Errorf("loss %v with %d correct, want %v with 2 (the first maximum wins the tie)", loss, correct, want)
	}
}

// gradients runs one forward and backward pass of a model of the given layers on inputs with many
// exact ties and zeros, and returns the output and every parameter's gradient.
func gradients(t *testing.T, layers []Layer, in []int, threads int) (out []float32, grads [][]float32) {
	t.Helper()
	e := NewEngine(threads)
	defer e.Close()
	const batch = 5
	m := NewModel(layers, in, batch, rand.New(rand.NewPCG(1, 1)), e)
	rng := rand.New(rand.NewPCG(2, 2))
	x := tensor.New(append([]int{batch}, in...)...)
	for i := range x.Data {
		x.Data[i] = float32(rng.IntN(5)-2) / 4 // ties, and outputs of exactly zero
	}
	y := m.Forward(x)
	out = append([]float32(nil), y.Data...)
	dy := tensor.New(batch, y.Example())
	for i := range dy.Data {
		dy.Data[i] = float32(rng.IntN(7) - 3)
	}
	m.Backward(dy)
	nonzero := 0
	for _, p := range m.Params() {
		grads = append(grads, append([]float32(nil), p.Grad...))
		for _, v := range p.Grad {
			if v != 0 {
				nonzero++
			}
		}
	}
	if nonzero == 0 {
		t.Fatalf("input %v: every gradient is zero; the test checks nothing", in)
	}
	// Every gradient the backward pass wrote lives in the model's flat buffer, in Params' order.
	off := 0
	for i, p := range m.Params() {
		if &p.Grad[0] != &m.Grads()[off] {
			t.Fatalf("input %v: parameter %d's gradient is not at offset %d of the flat buffer", in, i, off)
		}
		off += len(p.Grad)
	}
	if off != len(m.Grads()) {
		t.Fatalf("input %v: the parameters' gradients take %d values of the flat buffer's %d", in, off, len(m.Grads()))
	}
	return out, grads
}

// TestReLUGradientInPooling checks that a ReLU convolution followed by 2x2 pooling further into a
// model, whose pooling applies the ReLU's gradient (see NewModel), computes bit for bit the
// gradients of the same model with the ReLU as a layer of its own.
func TestReLUGradientInPooling(t *testing.T) {
	for _, in := range [][]int{{28, 28, 1}, {9, 7, 3}} {
		// A 1x1 convolution first, so that the pair is not the model's first layers.
		_, fused := gradients(t, []Layer{NewConv2D(2, 1, 1, Linear), NewConv2D(4, 3, 3, ReLU), NewMaxPool2D(2), NewFlatten(), NewDense(3, Linear)}, in, 2)
		_, apart := gradients(t, []Layer{NewConv2D(2, 1, 1, Linear), NewConv2D(4, 3, 3, Linear), NewReLU(), NewMaxPool2D(2), NewFlatten(), NewDense(3, Linear)}, in, 2)
		for p := range fused {
			for i := range fused[p] {
				if math.Float32bits(fused[p][i]) != math.Float32bits(apart[p][i]) {
					t.Fatalf("input %v: parameter %d gradient %d: %v with the ReLU in the pooling, %v apart", in, p, i, fused[p][i], apart[p][i])
				}
			}
		}
	}
}

// TestFusedFirstLayers checks a model's first ReLU convolution and 2x2 pooling, which run as one
// (see convPool), against the same layers run apart: outputs and gradients agree to float32
// rounding, on every kernel level, and bit for bit across thread counts. Shapes cover odd rows and
// columns that the pooling drops, 1 and 3 channels, and filter counts that are not a multiple of
// a tile or of two.
func TestFusedFirstLayers(t *testing.T) {
	defer gemm.Use(gemm.Best())
	defer vec.Use(simd.Best())
	for _, kern := range gemm.Available() {
		if err := gemm.Use(kern); err != nil {
			t.Fatal(err)
		}
		level, err := simd.Parse(kern)
		if err != nil {
			t.Fatal(err)
		}
		vec.Use(level)
		for _, tc := range []struct {
			in      []int
			filters int
		}{{[]int{28, 28, 1}, 32}, {[]int{32, 32, 3}, 32}, {[]int{9, 7, 3}, 4}, {[]int{8, 11, 2}, 33}} {
			layers := func(act Activation) []Layer {
				if act == ReLU {
					return []Layer{NewConv2D(tc.filters, 3, 3, ReLU), NewMaxPool2D(2), NewFlatten(), NewDense(3, Linear)}
				}
				return []Layer{NewConv2D(tc.filters, 3, 3, Linear), NewReLU(), NewMaxPool2D(2), NewFlatten(), NewDense(3, Linear)}
			}
			fusedOut, fused := gradients(t, layers(ReLU), tc.in, 2)
			apartOut, apart := gradients(t, layers(Linear), tc.in, 2)
			_, oneThread := gradients(t, layers(ReLU), tc.in, 1)
			close := func(what string, got, want []float32) {
				scale := 0.0
				for _, v := range want {
					scale = math.Max(scale, math.Abs(float64(v)))
				}
				for i := range want {
					if math.Abs(float64(got[i]-want[i])) > 1e-5*scale {
						t.Fatalf("%s, input %v, %d filters: %s[%d] = %v fused, %v apart", kern, tc.in, tc.filters, what, i, got[i], want[i])
					}
				}
			}
			close("output", fusedOut, apartOut)
			for p := range fused {
				close(fmt.Sprintf("parameter %d gradient", p), fused[p], apart[p])
				for i := range fused[p] {
					if math.Float32bits(fused[p][i]) != math.Float32bits(oneThread[p][i]) {
						t.Fatalf("%s, input %v: parameter %d gradient %d: %v on 2 threads, %v on 1", kern, tc.in, p, i, fused[p][i], oneThread[p][i])
					}
				}
			}
		}
	}
}
