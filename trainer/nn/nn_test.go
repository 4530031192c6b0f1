package nn

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kubetrain/kubetrain/trainer/tensor"
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

// TestReLUGradientInPooling checks that a ReLU convolution followed by 2x2 pooling, whose pooling
// applies the ReLU's gradient (see NewModel), computes bit for bit the gradients of the same model
// with the ReLU as a layer of its own, on inputs with many exact ties and zeros.
func TestReLUGradientInPooling(t *testing.T) {
	for _, in := range [][]int{{28, 28, 1}, {9, 7, 3}} {
		grads := func(layers []Layer) [][]float32 {
			e := NewEngine(2)
			defer e.Close()
			const batch = 5
			m := NewModel(layers, in, batch, rand.New(rand.NewPCG(1, 1)), e)
			rng := rand.New(rand.NewPCG(2, 2))
			x := tensor.New(append([]int{batch}, in...)...)
			for i := range x.Data {
				x.Data[i] = float32(rng.IntN(5)-2) / 4 // ties, and outputs of exactly zero
			}
			y := m.Forward(x)
			dy := tensor.New(batch, y.Example())
			for i := range dy.Data {
				dy.Data[i] = float32(rng.IntN(7) - 3)
			}
			m.Backward(dy)
			var g [][]float32
			for _, p := range m.Params() {
				g = append(g, append([]float32(nil), p.Grad...))
			}
			return g
		}
		fused := grads([]Layer{NewConv2D(4, 3, 3, ReLU), NewMaxPool2D(2), NewFlatten(), NewDense(3, Linear)})
		apart := grads([]Layer{NewConv2D(4, 3, 3, Linear), NewReLU(), NewMaxPool2D(2), NewFlatten(), NewDense(3, Linear)})
		nonzero := 0
		for p := range fused {
			for i := range fused[p] {
				if math.Float32bits(fused[p][i]) != math.Float32bits(apart[p][i]) {
					t.Fatalf("input %v: parameter %d gradient %d: %v with the ReLU in the pooling, %v apart", in, p, i, fused[p][i], apart[p][i])
				}
				if fused[p][i] != 0 {
					nonzero++
				}
			}
		}
		if nonzero == 0 {
			t.Fatalf("input %v: every gradient is zero; the test checks nothing", in)
		}
	}
}
