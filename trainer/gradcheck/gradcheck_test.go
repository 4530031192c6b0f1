package gradcheck

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kubetrain/kubetrain/trainer/nn"
	"github.com/kubetrain/kubetrain/trainer/tensor"
)

// TestLayers checks the gradients of every layer of package nn, on shapes with ragged edges.
func TestLayers(t *testing.T) {
	cases := map[string]struct {
		layer func() nn.Layer
		in    []int
		batch int
	}{
		"conv 3x3 relu":          {func() nn.Layer { return nn.NewConv2D(5, 3, 3, nn.ReLU) }, []int{7, 6, 3}, 3},
		"conv 2x4 linear":        {func() nn.Layer { return nn.NewConv2D(33, 2, 4, nn.Linear) }, []int{5, 8, 2}, 2},
		"conv 1x1 one channel":   {func() nn.Layer { return nn.NewConv2D(2, 1, 1, nn.Linear) }, []int{3, 3, 1}, 2},
		"conv reference 28x28x1": {func() nn.Layer { return nn.NewConv2D(32, 3, 3, nn.ReLU) }, []int{28, 28, 1}, 2},
		"maxpool 2x2":            {func() nn.Layer { return nn.NewMaxPool2D(2) }, []int{6, 6, 3}, 2},
		"maxpool 3x3 ragged":     {func() nn.Layer { return nn.NewMaxPool2D(3) }, []int{7, 8, 2}, 2},
		"flatten":                {func() nn.Layer { return nn.NewFlatten() }, []int{3, 2, 2}, 2},
		"relu":                   {func() nn.Layer { return nn.NewReLU() }, []int{5, 4}, 3},
		"dense relu":             {func() nn.Layer { return nn.NewDense(13, nn.ReLU) }, []int{37}, 5},
		"dense linear":           {func() nn.Layer { return nn.NewDense(10, nn.Linear) }, []int{64}, 3},
		"dense wide":             {func() nn.Layer { return nn.NewDense(64, nn.ReLU) }, []int{1200}, 4},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r, err := CheckLayer(tc.layer(), tc.in, tc.batch, rand.New(rand.NewPCG(1, 1)))
			if err != nil {
				t.Fatal(err)
			}
			t.Log(r)
		})
	}
}

// TestLoss checks the softmax cross-entropy gradient with respect to the logits.
func TestLoss(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	const batch, classes = 4, 10
	logits := tensor.New(batch, classes)
	for i := range logits.Data {
		logits.Data[i] = float32(3 * rng.NormFloat64())
	}
	labels := []uint8{0, 9, 3, 3}
	loss := nn.NewSoftmaxCrossEntropy(batch, classes)
	f := func() float64 { l, _ := loss.Loss(logits, labels); return l }
	f()
	grad := append([]float32(nil), loss.Grad().Data...)
	r, err := Check(f, []Var{{Name: "logits", Value: logits.Data, Grad: grad}}, rng)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
}

// TestModel checks a whole small model end to end through the loss.
func TestModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	e := nn.NewEngine(2)
	defer e.Close()
	const batch = 3
	m := nn.NewModel(nn.ReferenceCNN(4), []int{8, 8, 2}, batch, rng, e)
	x := tensor.New(batch, 8, 8, 2)
	for i := range x.Data {
		x.Data[i] = rng.Float32()
	}
	labels := []uint8{1, 3, 0}
	loss := nn.NewSoftmaxCrossEntropy(batch, 4)
	f := func() float64 { l, _ := loss.Loss(m.Forward(x), labels); return l }
	f()
	m.Backward(loss.Grad())
	var vars []Var
	for i, p := range m.Params() {
		vars = append(vars, Var{Name: fmt.Sprintf("param %d %s", i, p.Name), Value: p.Value, Grad: append([]float32(nil), p.Grad...)})
	}
	r, err := Check(f, vars, rng)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
}

// droppedMask is a ReLU whose backward pass forgets the activation's mask: the kind of dropped term
// the gradient check exists to catch.
type droppedMask struct{ *nn.ReLUActivation }

func (l droppedMask) Backward(dy *tensor.Tensor, _ bool) *tensor.Tensor { return dy }

// droppedBiasGrad is a dense layer that forgets the bias's share of the gradient.
type droppedBiasGrad struct{ *nn.Dense }

func (l droppedBiasGrad) Backward(dy *tensor.Tensor, needInput bool) *tensor.Tensor {
	dx := l.Dense.Backward(dy, needInput)
	clear(l.Dense.Params()[1].Grad)
	return dx
}

// TestCheckBites shows that the check fails on deliberately broken backward passes.
func TestCheckBites(t *testing.T) {
	cases := map[string]struct {
		layer nn.Layer
		in    []int
		want  string
	}{
		"relu without its mask":  {droppedMask{nn.NewReLU()}, []int{16}, "input"},
		"dense without its bias": {droppedBiasGrad{nn.NewDense(4, nn.Linear)}, []int{6}, "bias"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := CheckLayer(tc.layer, tc.in, 4, rand.New(rand.NewPCG(1, 1)))
			if err == nil {
				t.Fatal("the gradient check passed a broken backward pass")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name the broken gradient (%q)", err, tc.want)
			}
			t.Log(err)
		})
	}
}
