package nn

import (
	"fmt"
	"math/rand/v2"

	"github.com/kubetrain/kubetrain/trainer/tensor"
	"github.com/kubetrain/kubetrain/trainer/vec"
)

// MaxPool2D takes the maximum of each Size x Size window, windows not overlapping (stride Size);
// rows and columns left over at the bottom and right edges are dropped, as Keras does.
type MaxPool2D struct {
	Size int

	h, w, c, oh, ow int
	argmax          []int32   // per output element: the index of the maximum within its image
	x               []float32 // the last forward pass's input
	y, dx           *tensor.Tensor
	e               *Engine
	inShape         []int
	outShape        []int
	fwd             poolForward
	bwd             poolBackward
	// reluGrad, when not nil, is per-worker scratch for the incoming gradient masked where the
	// output is not positive: the input came from a ReLU, whose gradient this layer then applies
	// (see NewModel). The first maximum of a window is positive exactly where the output is, so
	// the result is bit-identical to routing first and masking after.
	reluGrad []float32
}

// NewMaxPool2D returns a pooling layer of size x size windows.
func NewMaxPool2D(size int) *MaxPool2D { return &MaxPool2D{Size: size} }

func (l *MaxPool2D) String() string { return fmt.Sprintf("MaxPool2D(%dx%d)", l.Size, l.Size) }

func (l *MaxPool2D) Params() []*Param { return nil }

func (l *MaxPool2D) Build(in []int, maxBatch int, _ *rand.Rand, e *Engine) []int {
	if len(in) != 3 || l.Size < 1 || in[0] < l.Size || in[1] < l.Size {
		panic(fmt.Sprintf("nn: %v cannot take input of shape %v", l, in))
	}
	l.h, l.w, l.c = in[0], in[1], in[2]
	l.oh, l.ow = l.h/l.Size, l.w/l.Size
	out := []int{l.oh, l.ow, l.c}
	l.inShape, l.outShape = append([]int(nil), in...), out
	l.y, l.dx = newBatchTensor(maxBatch, out), newBatchTensor(maxBatch, in)
	if l.Size != 2 {
		l.argmax = make([]int32, maxBatch*l.oh*l.ow*l.c)
	}
	l.e = e
	l.fwd.l, l.bwd.l = l, l
	return out
}

func (l *MaxPool2D) Forward(x *tensor.Tensor) *tensor.Tensor {
	tensor.CheckShape("nn", x, l.inShape)
	l.y.SetBatch(x.Batch())
	l.x = x.Data
	l.fwd.x = x.Data
	l.e.Pool.For(x.Batch(), &l.fwd)
	l.fwd.x = nil
	return l.y
}

type poolForward struct {
	l *MaxPool2D
	x []float32
}

func (t *poolForward) Do(_, i int) {
	l := t.l
	in, out := l.h*l.w*l.c, l.oh*l.ow*l.c
	x := t.x[i*in : (i+1)*in]
	y := l.y.Data[i*out : (i+1)*out]
	if l.Size == 2 {
		// The common case, without the argmax bookkeeping: the backward pass finds the maximum
		// again by comparison, taking the first in the same order.
		c, row := l.c, l.w*l.c
		for oy := 0; oy < l.oh; oy++ {
			vec.MaxPool2Row(y[oy*l.ow*c:], x[2*oy*row:], x[(2*oy+1)*row:], c, l.ow)
		}
		return
	}
	arg := l.argmax[i*out : (i+1)*out]
	for oy := 0; oy < l.oh; oy++ {
		for ox := 0; ox < l.ow; ox++ {
			o := (oy*l.ow + ox) * l.c
			first := (oy*l.Size*l.w + ox*l.Size) * l.c
			copy(y[o:o+l.c], x[first:first+l.c])
			for ch := 0; ch < l.c; ch++ {
				arg[o+ch] = int32(first + ch)
			}
			for dy := 0; dy < l.Size; dy++ {
				for dx := 0; dx < l.Size; dx++ {
					s := ((oy*l.Size+dy)*l.w + ox*l.Size + dx) * l.c
					for ch, v := range x[s : s+l.c] {
						// Strictly greater: the first maximum wins, as in Keras and PyTorch.
						if v > y[o+ch] {
							y[o+ch] = v
							arg[o+ch] = int32(s + ch)
						}
					}
				}
			}
		}
	}
}

func (l *MaxPool2D) Backward(dy *tensor.Tensor, needInput bool) *tensor.Tensor {
	tensor.CheckShape("nn", dy, l.outShape)
	if !needInput {
		return nil
	}
	l.dx.SetBatch(dy.Batch())
	l.bwd.dy, l.bwd.x = dy.Data, l.x
	l.e.Pool.For(dy.Batch(), &l.bwd)
	l.bwd.dy, l.bwd.x = nil, nil
	return l.dx
}

type poolBackward struct {
	l     *MaxPool2D
	x, dy []float32
}

func (t *poolBackward) Do(worker, i int) {
	l := t.l
	in, out := l.h*l.w*l.c, l.oh*l.ow*l.c
	dx := l.dx.Data[i*in : (i+1)*in]
	if l.Size == 2 {
		c := l.c
		x := t.x[i*in : (i+1)*in]
		y := l.y.Data[i*out : (i+1)*out]
		dy := t.dy[i*out : (i+1)*out]
		if l.reluGrad != nil {
			masked := l.reluGrad[worker*out : (worker+1)*out]
			vec.ReLUGrad(masked, dy, y)
			dy = masked
		}
		row := l.w * c
		for oy := 0; oy < l.oh; oy++ {
			o := oy * l.ow * c
			vec.MaxPool2RowGrad(dx[2*oy*row:], dx[(2*oy+1)*row:], dy[o:o+l.ow*c], y[o:o+l.ow*c], x[2*oy*row:], x[(2*oy+1)*row:], c, l.ow)
			if l.w%2 == 1 {
				// The last column takes no gradient.
				clear(dx[(2*oy*l.w+l.w-1)*c : (2*oy*l.w+l.w)*c])
				clear(dx[((2*oy+1)*l.w+l.w-1)*c : ((2*oy+1)*l.w+l.w)*c])
			}
		}
		if l.h%2 == 1 {
			clear(dx[(l.h-1)*l.w*c:])
		}
		return
	}
	clear(dx)
	for j, g := range t.dy[i*out : (i+1)*out] {
		dx[l.argmax[i*out+j]] = g
	}
}

// Flatten turns each example into a vector; it copies nothing.
type Flatten struct {
	in      []int
	out     []int
	y, dx   tensor.Tensor
	yShape  [2]int
	dxShape []int
}

// NewFlatten returns a flattening layer.
func NewFlatten() *Flatten { return &Flatten{} }

func (l *Flatten) String() string { return "Flatten" }

func (l *Flatten) Params() []*Param { return nil }

func (l *Flatten) Build(in []int, _ int, _ *rand.Rand, _ *Engine) []int {
	l.in = append([]int(nil), in...)
	l.dxShape = append([]int{0}, in...)
	l.out = []int{tensor.Size(in)}
	return l.out
}

func (l *Flatten) Forward(x *tensor.Tensor) *tensor.Tensor {
	tensor.CheckShape("nn", x, l.in)
	l.yShape = [2]int{x.Batch(), x.Example()}
	l.y = tensor.Tensor{Shape: l.yShape[:], Data: x.Data}
	return &l.y
}

func (l *Flatten) Backward(dy *tensor.Tensor, needInput bool) *tensor.Tensor {
	tensor.CheckShape("nn", dy, l.out)
	if !needInput {
		return nil
	}
	l.dxShape[0] = dy.Batch()
	l.dx = tensor.Tensor{Shape: l.dxShape, Data: dy.Data}
	return &l.dx
}

// ReLUActivation is max(0, x) as a layer of its own (Conv2D and Dense can also apply it themselves).
type ReLUActivation struct {
	in    []int
	y, dx *tensor.Tensor
}

// NewReLU returns a ReLU layer.
func NewReLU() *ReLUActivation { return &ReLUActivation{} }

func (l *ReLUActivation) String() string { return "ReLU" }

func (l *ReLUActivation) Params() []*Param { return nil }

func (l *ReLUActivation) Build(in []int, maxBatch int, _ *rand.Rand, _ *Engine) []int {
	l.in = append([]int(nil), in...)
	l.y, l.dx = newBatchTensor(maxBatch, in), newBatchTensor(maxBatch, in)
	return in
}

func (l *ReLUActivation) Forward(x *tensor.Tensor) *tensor.Tensor {
	tensor.CheckShape("nn", x, l.in)
	l.y.SetBatch(x.Batch())
	for i, v := range x.Data {
		l.y.Data[i] = max(v, 0)
	}
	return l.y
}

func (l *ReLUActivation) Backward(dy *tensor.Tensor, needInput bool) *tensor.Tensor {
	tensor.CheckShape("nn", dy, l.in)
	if !needInput {
		return nil
	}
	l.dx.SetBatch(dy.Batch())
	for i, g := range dy.Data {
		if l.y.Data[i] > 0 {
			l.dx.Data[i] = g
		} else {
			l.dx.Data[i] = 0
		}
	}
	return l.dx
}
