package nn

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/trainer/tensor"
)

// Model is a list of layers applied in order, built for one input shape and batch size.
type Model struct {
	Layers []Layer
	In     []int
	Out    []int
	params []*Param
	// grads holds every parameter's gradient, one after the other in Params' order: a data-parallel
	// step sums them across workers in one collective.
	grads []float32
	// stages are the layers as they run: Layers, with a first ReLU convolution and 2x2 pooling as
	// one (see convPool).
	stages []Layer
}

// NewModel builds layers for examples of shape in and batches of up to maxBatch, drawing the
// initial parameters from rng in layer order.
func NewModel(layers []Layer, in []int, maxBatch int, rng *rand.Rand, e *Engine) *Model {
	m := &Model{Layers: layers, In: append([]int(nil), in...)}
	shape := m.In
	for _, l := range layers {
		shape = l.Build(shape, maxBatch, rng, e)
		m.params = append(m.params, l.Params()...)
	}
	m.Out = shape
	// The gradients move into one flat buffer before anything (the fused first layer) holds on to
	// them.
	total := 0
	for _, p := range m.params {
		total += len(p.Grad)
	}
	m.grads = make([]float32, total)
	off := 0
	for _, l := range layers {
		if g, ok := l.(flatGrads); ok {
			off = g.useGrads(m.grads, off)
		}
	}
	if off != total {
		panic(fmt.Sprintf("nn: %d of %d gradient values placed in the flat buffer", off, total))
	}
	m.stages = layers
	first := 0
	if len(layers) >= 2 {
		conv, ok1 := layers[0].(*Conv2D)
		pool, ok2 := layers[1].(*MaxPool2D)
		if ok1 && ok2 {
			if fused := fuseConvPool(conv, pool, maxBatch, e); fused != nil {
				m.stages = append([]Layer{fused}, layers[2:]...)
				first = 2
			}
		}
	}
	// Elsewhere, a ReLU convolution followed by 2x2 max pooling: the pooling's backward pass also
	// applies the ReLU's gradient, on a quarter of the elements, and the convolution skips it.
	for i := first; i+1 < len(layers); i++ {
		conv, ok1 := layers[i].(*Conv2D)
		pool, ok2 := layers[i+1].(*MaxPool2D)
		if ok1 && ok2 && conv.Act == ReLU && pool.Size == 2 {
			conv.gradThroughReLU = true
			pool.reluGrad = make([]float32, e.Pool.Threads()*tensor.Size(pool.outShape))
		}
	}
	return m
}

// Forward runs the layers on a batch and returns the last layer's output.
func (m *Model) Forward(x *tensor.Tensor) *tensor.Tensor {
	for _, l := range m.stages {
		x = l.Forward(x)
	}
	return x
}

// Backward propagates the gradient of the loss with respect to the output back through the layers,
// writing every parameter's gradient. The first layer's input gradient is not computed.
func (m *Model) Backward(dy *tensor.Tensor) {
	for i := len(m.stages) - 1; i >= 0; i-- {
		dy = m.stages[i].Backward(dy, i > 0)
	}
}

// Grads is every parameter's gradient in one buffer, in Params' order: each Param's Grad is a
// part of it.
func (m *Model) Grads() []float32 { return m.grads }

// flatGrads is a layer with parameters: it moves its gradients into the model's flat buffer at
// off and returns the offset after them.
type flatGrads interface {
	useGrads(flat []float32, off int) int
}

// carve returns the n values of flat at *off and advances *off.
func carve(flat []float32, off *int, n int) []float32 {
	s := flat[*off : *off+n : *off+n]
	*off += n
	return s
}

// Params lists every trainable array, layer by layer.
func (m *Model) Params() []*Param { return m.params }

// ParamCount is the number of trainable floats.
func (m *Model) ParamCount() int {
	n := 0
	for _, p := range m.params {
		n += len(p.Value)
	}
	return n
}

func (m *Model) String() string {
	var names []string
	for _, l := range m.Layers {
		names = append(names, l.String())
	}
	return strings.Join(names, " -> ")
}

// ReferenceCNN is the reference model: Conv2D(32, 3x3, relu) -> MaxPool2D(2x2) -> Flatten ->
// Dense(64, relu) -> Dense(classes). The loss applies the softmax.
func ReferenceCNN(classes int) []Layer {
	return []Layer{
		NewConv2D(32, 3, 3, ReLU),
		NewMaxPool2D(2),
		NewFlatten(),
		NewDense(64, ReLU),
		NewDense(classes, Linear),
	}
}

// Preset returns the layers of a named model (contract.Models lists the names).
func Preset(name string, classes int) ([]Layer, error) {
	switch name {
	case contract.ModelReferenceCNN:
		return ReferenceCNN(classes), nil
	}
	return nil, fmt.Errorf("unknown model %q", name)
}
