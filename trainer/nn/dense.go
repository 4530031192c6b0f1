package nn

import (
	"fmt"
	"math/rand/v2"

	"github.com/kubetrain/kubetrain/trainer/gemm"
	"github.com/kubetrain/kubetrain/trainer/tensor"
	"github.com/kubetrain/kubetrain/trainer/vec"
)

// Dense is a fully connected layer y = act(x·W + b), W laid out [inputs, units] (Keras' layout).
type Dense struct {
	Units int
	Act   Activation

	in           int
	w, b, gw, gb []float32
	weight, bias Param
	x            []float32 // the last forward pass's input, for the weight gradient
	y, dz, dx    *tensor.Tensor
	e            *Engine
	inShape      []int
	outShape     []int
	dxT          []float32 // the input gradient, transposed
	tr           denseTranspose
}

// NewDense returns a dense layer of units outputs.
func NewDense(units int, act Activation) *Dense { return &Dense{Units: units, Act: act} }

func (l *Dense) String() string { return fmt.Sprintf("Dense(%d, %s)", l.Units, l.Act) }

func (l *Dense) Params() []*Param { return []*Param{&l.weight, &l.bias} }

func (l *Dense) useGrads(flat []float32, off int) int {
	l.gw, l.gb = carve(flat, &off, len(l.gw)), carve(flat, &off, len(l.gb))
	l.weight.Grad, l.bias.Grad = l.gw, l.gb
	return off
}

func (l *Dense) Build(in []int, maxBatch int, rng *rand.Rand, e *Engine) []int {
	if len(in) != 1 || l.Units < 1 {
		panic(fmt.Sprintf("nn: %v cannot take input of shape %v (flatten it first)", l, in))
	}
	l.in = in[0]
	l.w, l.gw = make([]float32, l.in*l.Units), make([]float32, l.in*l.Units)
	l.b, l.gb = make([]float32, l.Units), make([]float32, l.Units)
	glorotUniform(l.w, l.in, l.Units, rng)
	l.weight = Param{Name: "kernel", Value: l.w, Grad: l.gw}
	l.bias = Param{Name: "bias", Value: l.b, Grad: l.gb}
	out := []int{l.Units}
	l.inShape, l.outShape = []int{l.in}, out
	l.y, l.dz = newBatchTensor(maxBatch, out), newBatchTensor(maxBatch, out)
	l.dx = newBatchTensor(maxBatch, in)
	l.dxT = make([]float32, maxBatch*l.in)
	l.tr.l = l
	l.e = e
	return out
}

func (l *Dense) Forward(x *tensor.Tensor) *tensor.Tensor {
	tensor.CheckShape("nn", x, l.inShape)
	n, u := x.Batch(), l.Units
	l.x = x.Data
	l.y.SetBatch(n)
	y := l.y.Data
	gemm.Sgemm(l.e.WS, false, false, n, u, l.in, x.Data, l.in, l.w, u, 0, y, u)
	for i := 0; i < n; i++ {
		row := y[i*u : (i+1)*u]
		for j, b := range l.b {
			v := row[j] + b
			if l.Act == ReLU && v < 0 {
				v = 0
			}
			row[j] = v
		}
	}
	return l.y
}

func (l *Dense) Backward(dy *tensor.Tensor, needInput bool) *tensor.Tensor {
	tensor.CheckShape("nn", dy, l.outShape)
	n, u := dy.Batch(), l.Units
	if n != l.y.Batch() {
		panic(fmt.Sprintf("nn: %v: gradient for %d examples after a forward pass of %d", l, n, l.y.Batch()))
	}
	l.dz.SetBatch(n)
	dz := l.dz.Data
	for i, g := range dy.Data {
		if l.Act == ReLU && l.y.Data[i] <= 0 {
			g = 0
		}
		dz[i] = g
	}
	gemm.Sgemm(l.e.WS, true, false, l.in, u, n, l.x, l.in, dz, u, 0, l.gw, u)
	clear(l.gb)
	for i := 0; i < n; i++ {
		for j, g := range dz[i*u : (i+1)*u] {
			l.gb[j] += g
		}
	}
	if !needInput {
		return nil
	}
	// dX = dZ·W^T would need W transposed (packed) every step; dX^T = W·dZ^T reads W as it is
	// stored and needs only the small dZ transposed, then dX^T is transposed back.
	l.dx.SetBatch(n)
	dxT := l.dxT[:l.in*n]
	gemm.Sgemm(l.e.WS, false, true, l.in, n, u, l.w, u, dz, u, 0, dxT, n)
	l.tr.src, l.tr.n = dxT, n
	l.e.Pool.For((l.in+transposeBlock-1)/transposeBlock, &l.tr)
	l.tr.src = nil
	return l.dx
}

// transposeBlock is how many rows of dX^T one index of denseTranspose turns into columns of dX.
const transposeBlock = 256

// denseTranspose writes dX from dX^T (in x n), one block of input features per index.
type denseTranspose struct {
	l   *Dense
	src []float32
	n   int
}

func (t *denseTranspose) Do(_, b int) {
	l, n := t.l, t.n
	lo, hi := b*transposeBlock, min((b+1)*transposeBlock, l.in)
	vec.Transpose(l.dx.Data[lo:], l.in, t.src[lo*n:], n, hi-lo, n)
}
