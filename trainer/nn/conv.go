package nn

import (
	"fmt"
	"math/rand/v2"

	"github.com/kubetrain/kubetrain/trainer/gemm"
	"github.com/kubetrain/kubetrain/trainer/tensor"
	"github.com/kubetrain/kubetrain/trainer/vec"
)

// Conv2D is a 2-D convolution with valid padding and stride 1, bias, and an activation.
// Its kernel is laid out [height, width, in channels, filters] (Keras' layout), followed by the bias,
// in one array: the product P·[W; b] of the image patches P, with a column of ones appended, computes
// the convolution and its bias at once, and P^T·dZ their gradients.
type Conv2D struct {
	Filters, KH, KW int
	Act             Activation

	h, w, c, oh, ow int
	k               int // patch length KH*KW*C, plus one for the bias column
	wb, gwb         []float32
	weight, bias    Param
	patches         []float32 // per image: oh*ow rows of k
	dpatches        []float32 // per worker: oh*ow rows of k-1
	y, dz, dx       *tensor.Tensor
	e               *Engine

	inShape, outShape []int

	fwd convForward
	bwd convBackward
	// gradThroughReLU says that the layer after this one hands back gradients to which the ReLU's
	// gradient is already applied (see NewModel).
	gradThroughReLU bool
}

// NewConv2D returns a convolution of filters kh x kw kernels.
func NewConv2D(filters, kh, kw int, act Activation) *Conv2D {
	return &Conv2D{Filters: filters, KH: kh, KW: kw, Act: act}
}

func (l *Conv2D) String() string {
	return fmt.Sprintf("Conv2D(%d, %dx%d, %s)", l.Filters, l.KH, l.KW, l.Act)
}

func (l *Conv2D) useGrads(flat []float32, off int) int {
	kw := len(l.weight.Grad)
	l.gwb = carve(flat, &off, len(l.gwb))
	l.weight.Grad, l.bias.Grad = l.gwb[:kw], l.gwb[kw:]
	return off
}

func (l *Conv2D) Build(in []int, maxBatch int, rng *rand.Rand, e *Engine) []int {
	if len(in) != 3 || l.Filters < 1 || l.KH < 1 || l.KW < 1 || in[0] < l.KH || in[1] < l.KW {
		panic(fmt.Sprintf("nn: %v cannot take input of shape %v (want [height width channels], at least the kernel's size)", l, in))
	}
	l.h, l.w, l.c = in[0], in[1], in[2]
	l.oh, l.ow = l.h-l.KH+1, l.w-l.KW+1
	l.k = l.KH*l.KW*l.c + 1
	f := l.Filters
	l.wb, l.gwb = make([]float32, l.k*f), make([]float32, l.k*f)
	kw := (l.k - 1) * f
	glorotUniform(l.wb[:kw], l.KH*l.KW*l.c, l.KH*l.KW*f, rng)
	l.weight = Param{Name: "kernel", Value: l.wb[:kw], Grad: l.gwb[:kw]}
	l.bias = Param{Name: "bias", Value: l.wb[kw:], Grad: l.gwb[kw:]}
	rows := l.oh * l.ow
	l.patches = make([]float32, maxBatch*rows*l.k)
	l.dpatches = make([]float32, e.Pool.Threads()*rows*(l.k-1))
	out := []int{l.oh, l.ow, f}
	l.inShape, l.outShape = append([]int(nil), in...), out
	l.y, l.dz = newBatchTensor(maxBatch, out), newBatchTensor(maxBatch, out)
	l.dx = newBatchTensor(maxBatch, in)
	l.e = e
	l.fwd.l, l.bwd.l = l, l
	return out
}

func (l *Conv2D) Params() []*Param { return []*Param{&l.weight, &l.bias} }

func (l *Conv2D) Forward(x *tensor.Tensor) *tensor.Tensor {
	tensor.CheckShape("nn", x, l.inShape)
	n := x.Batch()
	l.y.SetBatch(n)
	l.fwd.x = x.Data
	l.e.Pool.For(n, &l.fwd)
	l.fwd.x = nil
	return l.y
}

// convForward computes one image per index: im2col, one product, the activation.
type convForward struct {
	l *Conv2D
	x []float32
}

func (t *convForward) Do(worker, i int) {
	l := t.l
	rows, f := l.oh*l.ow, l.Filters
	x := t.x[i*l.h*l.w*l.c : (i+1)*l.h*l.w*l.c]
	p := l.patches[i*rows*l.k : (i+1)*rows*l.k]
	vec.Patches(p, x, l.h, l.w, l.c, l.KH, l.KW)
	y := l.y.Data[i*rows*f : (i+1)*rows*f]
	gemm.SgemmSerial(l.e.WS.Scratch(worker), false, false, rows, f, l.k, p, l.k, l.wb, f, 0, y, f)
	if l.Act == ReLU {
		vec.ReLU(y)
	}
}

func (l *Conv2D) Backward(dy *tensor.Tensor, needInput bool) *tensor.Tensor {
	tensor.CheckShape("nn", dy, l.outShape)
	n := dy.Batch()
	if n != l.y.Batch() {
		panic(fmt.Sprintf("nn: %v: gradient for %d examples after a forward pass of %d", l, n, l.y.Batch()))
	}
	l.dz.SetBatch(n)
	dz := l.dz.Data
	if l.gradThroughReLU {
		dz = dy.Data
	}
	l.bwd.dy, l.bwd.dz, l.bwd.needInput = dy.Data, dz, needInput
	if needInput {
		l.dx.SetBatch(n)
	}
	if needInput || !l.gradThroughReLU {
		l.e.Pool.For(n, &l.bwd)
	}
	l.bwd.dy, l.bwd.dz = nil, nil
	// The weight gradient of the whole batch in one product, P^T·dZ over every image's pixels: gemm
	// splits the long inner dimension into fixed chunks and adds them in order.
	rows := n * l.oh * l.ow
	gemm.Sgemm(l.e.WS, true, false, l.k, l.Filters, rows, l.patches[:rows*l.k], l.k, dz, l.Filters, 0, l.gwb, l.Filters)
	if !needInput {
		return nil
	}
	return l.dx
}

// convBackward computes one image per index: the gradient through the activation and, when asked
// for, the input gradient.
type convBackward struct {
	l         *Conv2D
	dy, dz    []float32
	needInput bool
}

func (t *convBackward) Do(worker, i int) {
	l := t.l
	rows, f := l.oh*l.ow, l.Filters
	s := l.e.WS.Scratch(worker)
	dy := t.dy[i*rows*f : (i+1)*rows*f]
	dz := t.dz[i*rows*f : (i+1)*rows*f]
	switch {
	case l.gradThroughReLU:
		// dz is dy, already through the ReLU.
	case l.Act == ReLU:
		vec.ReLUGrad(dz, dy, l.y.Data[i*rows*f:(i+1)*rows*f])
	default:
		copy(dz, dy)
	}
	if !t.needInput {
		return
	}
	kp := l.k - 1
	dp := l.dpatches[worker*rows*kp : (worker+1)*rows*kp]
	gemm.SgemmSerial(s, false, true, rows, kp, f, dz, f, l.wb, f, 0, dp, kp)
	dx := l.dx.Data[i*l.h*l.w*l.c : (i+1)*l.h*l.w*l.c]
	clear(dx)
	span := l.KW * l.c
	for oy := 0; oy < l.oh; oy++ {
		for ox := 0; ox < l.ow; ox++ {
			row := dp[(oy*l.ow+ox)*kp : (oy*l.ow+ox+1)*kp]
			for ky := 0; ky < l.KH; ky++ {
				dst := dx[((oy+ky)*l.w+ox)*l.c : ((oy+ky)*l.w+ox)*l.c+span]
				for j, v := range row[ky*span : (ky+1)*span] {
					dst[j] += v
				}
			}
		}
	}
}
