package nn

import (
	"fmt"
	"math/rand/v2"

	"github.com/kubetrain/kubetrain/trainer/gemm"
	"github.com/kubetrain/kubetrain/trainer/tensor"
	"github.com/kubetrain/kubetrain/trainer/vec"
)

// convPool runs a model's first two layers, a ReLU convolution and 2x2 max pooling, as one: the
// convolution reads its windows in place (no im2col copy), two output rows at a time, and only the
// pooled maximum leaves the core's cache, with the place of the window it came from. The backward
// pass then needs neither the convolution's output nor its gradient: each pooled gradient flows to
// one window, so the weight gradient sums a quarter of the products the dense one would, and no
// input gradient is asked of a first layer. Pixels the pooling drops (an odd last row or column)
// are never computed. The parameters are the convolution's own, so nothing else changes.
type convPool struct {
	conv *Conv2D
	pool *MaxPool2D

	x      []float32 // the last forward pass's input
	fpad   int       // filters, rounded up to a multiple of every kernel's tile width
	wpad   []float32 // the kernel with fpad columns
	arg    []int32   // per image: where each pooled output's window starts in the image
	rows   []float32 // per worker: two rows of convolution output (see Do)
	xpad   []float32 // per worker: one image and room for WindowGrad to read past it
	g      []float32 // per worker: the pooled gradient through the ReLU
	dw     []float32 // per image: the weight gradient, filter by filter (see gemm.WindowGrad)
	ldw    int       // floats per filter in dw
	dwStep int       // floats per image in dw
	e      *Engine
	fwd    convPoolForward
	bwd    convPoolBackward
}

// filterPad is a multiple of every matrix kernel's tile width.
const filterPad = 32

// fuseConvPool returns the fused layer for conv followed by pool, both built, or nil when they are
// not a ReLU convolution and 2x2 pooling.
func fuseConvPool(conv *Conv2D, pool *MaxPool2D, maxBatch int, e *Engine) *convPool {
	if conv.Act != ReLU || pool.Size != 2 {
		return nil
	}
	f := conv.Filters
	l := &convPool{conv: conv, pool: pool, e: e}
	l.fpad = (f + filterPad - 1) / filterPad * filterPad
	kk := conv.k - 1
	l.wpad = make([]float32, kk*l.fpad)
	l.arg = make([]int32, maxBatch*tensor.Size(pool.outShape))
	threads := e.Pool.Threads()
	l.rows = make([]float32, threads*l.rowCount()*l.fpad)
	seg := conv.KW * conv.c
	l.xpad = make([]float32, threads*l.xpadLen())
	l.g = make([]float32, threads*tensor.Size(pool.outShape))
	l.ldw = kk + 1
	l.dwStep = (f-1)*l.ldw + max(kk+1, (conv.KH-1)*seg+max(seg, gemm.WindowSlack))
	l.dw = make([]float32, maxBatch*l.dwStep)
	l.fwd.l, l.bwd.l = l, l
	return l
}

// rowCount is how many rows of convolution output one product computes: the pixels of one output
// row and the first 2·ow of the next, one image row apart.
func (l *convPool) rowCount() int { return l.conv.w + 2*l.pool.ow }

func (l *convPool) xpadLen() int {
	c := l.conv
	return c.h*c.w*c.c + max(c.KW*c.c, gemm.WindowSlack)
}

func (l *convPool) String() string { return l.conv.String() + " -> " + l.pool.String() }

func (l *convPool) Build([]int, int, *rand.Rand, *Engine) []int {
	panic("nn: convPool is built from built layers")
}

func (l *convPool) Params() []*Param { return l.conv.Params() }

func (l *convPool) Forward(x *tensor.Tensor) *tensor.Tensor {
	c := l.conv
	tensor.CheckShape("nn", x, c.inShape)
	kk, f := c.k-1, c.Filters
	for k := 0; k < kk; k++ {
		copy(l.wpad[k*l.fpad:k*l.fpad+f], c.wb[k*f:(k+1)*f])
	}
	l.x = x.Data
	l.pool.y.SetBatch(x.Batch())
	l.e.Pool.For(x.Batch(), &l.fwd)
	return l.pool.y
}

type convPoolForward struct{ l *convPool }

// Do computes image i, one pooled row at a time: one window product gives the two convolution rows
// under it, at rows [0, 2·pw) and [w, w+2·pw) of the scratch (the rows between are pixels the
// product passes on its way, computed and not used), and the pooling reads them from there.
func (t *convPoolForward) Do(worker, i int) {
	l := t.l
	c, p := l.conv, l.pool
	h, w, ch := c.h, c.w, c.c
	f := c.Filters
	x := l.x[i*h*w*ch : (i+1)*h*w*ch]
	out := p.oh * p.ow * f
	y := p.y.Data[i*out : (i+1)*out]
	arg := l.arg[i*out : (i+1)*out]
	m := l.rowCount()
	rows := l.rows[worker*m*l.fpad : (worker+1)*m*l.fpad]
	bias := c.bias.Value
	s := l.e.WS.Scratch(worker)
	for py := 0; py < p.oh; py++ {
		top := 2 * py * w * ch
		gemm.Windows(s, m, l.fpad, c.KH, c.KW*ch, x[top:], ch, w*ch, l.wpad, l.fpad, rows, l.fpad)
		at := int32(top)
		off := [4]int32{at, at + int32(ch), at + int32(w*ch), at + int32(w*ch+ch)}
		o := py * p.ow * f
		vec.MaxPool2ArgRow(y[o:], arg[o:], rows, rows[w*l.fpad:], bias, f, l.fpad, p.ow, off, int32(2*ch))
	}
}

func (l *convPool) Backward(dy *tensor.Tensor, needInput bool) *tensor.Tensor {
	tensor.CheckShape("nn", dy, l.pool.outShape)
	if needInput {
		panic("nn: the fused first convolution and pooling computes no input gradient")
	}
	n := dy.Batch()
	if n != l.pool.y.Batch() {
		panic(fmt.Sprintf("nn: %v: gradient for %d examples after a forward pass of %d", l, n, l.pool.y.Batch()))
	}
	l.bwd.dy = dy.Data
	l.e.Pool.For(n, &l.bwd)
	l.bwd.dy = nil
	// The images' gradients summed in order, whatever the thread count.
	c := l.conv
	kk, f := c.k-1, c.Filters
	grad := c.gwb
	clear(grad)
	for i := 0; i < n; i++ {
		dw := l.dw[i*l.dwStep:]
		for ch := 0; ch < f; ch++ {
			d := dw[ch*l.ldw : ch*l.ldw+kk+1]
			for k, v := range d {
				grad[k*f+ch] += v
			}
		}
	}
	return nil
}

type convPoolBackward struct {
	l  *convPool
	dy []float32
}

func (t *convPoolBackward) Do(worker, i int) {
	l := t.l
	c, p := l.conv, l.pool
	in := c.h * c.w * c.c
	out := p.oh * p.ow * c.Filters
	g := l.g[worker*out : (worker+1)*out]
	vec.ReLUGrad(g, t.dy[i*out:(i+1)*out], p.y.Data[i*out:(i+1)*out])
	xpad := l.xpad[worker*l.xpadLen() : (worker+1)*l.xpadLen()]
	copy(xpad, l.x[i*in:(i+1)*in])
	gemm.WindowGrad(l.dw[i*l.dwStep:(i+1)*l.dwStep], l.ldw, c.Filters, c.KH, c.KW*c.c, xpad, c.w*c.c, g, l.arg[i*out:(i+1)*out], c.Filters, p.oh*p.ow)
}
