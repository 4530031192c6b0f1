package nn

import (
	"math"
	"math/rand/v2"

	"github.com/kubetrain/kubetrain/trainer/gemm"
	"github.com/kubetrain/kubetrain/trainer/parallel"
	"github.com/kubetrain/kubetrain/trainer/tensor"
)

// Param is one trainable array and the gradient Backward writes for it.
type Param struct {
	Name  string
	Value []float32
	Grad  []float32
}

// Engine is where layers compute: a thread pool and the matrix products' scratch memory.
type Engine struct {
	Pool *parallel.Pool
	WS   *gemm.Workspace
}

// NewEngine starts an engine with threads workers. Close it when done.
func NewEngine(threads int) *Engine {
	p := parallel.New(threads)
	return &Engine{Pool: p, WS: gemm.NewWorkspace(p)}
}

// Close stops the engine's workers.
func (e *Engine) Close() { e.Pool.Close() }

// Layer is one stage of a model.
type Layer interface {
	// Build sizes the layer for examples of shape in (without the batch dimension) and batches of
	// up to maxBatch, draws its initial parameters from rng, and returns the shape of one output.
	Build(in []int, maxBatch int, rng *rand.Rand, e *Engine) (out []int)
	// Forward computes the layer's output for a batch.
	Forward(x *tensor.Tensor) *tensor.Tensor
	// Backward takes the gradient of the loss with respect to the last Forward's output, writes the
	// parameters' gradients, and returns the gradient with respect to the input, or nil when
	// needInput is false (the first layer of a model).
	Backward(dy *tensor.Tensor, needInput bool) *tensor.Tensor
	// Params lists the trainable arrays, in a fixed order.
	Params() []*Param
	// String describes the layer, e.g. "Conv2D(32, 3x3, relu)".
	String() string
}

// Activation is applied by a layer to its output.
type Activation int

const (
	Linear Activation = iota
	ReLU
)

func (a Activation) String() string {
	if a == ReLU {
		return "relu"
	}
	return "linear"
}

// glorotUniform fills w with draws from U(-l, l), l = sqrt(6 / (fanIn + fanOut)): Keras' default.
func glorotUniform(w []float32, fanIn, fanOut int, rng *rand.Rand) {
	limit := math.Sqrt(6 / float64(fanIn+fanOut))
	for i := range w {
		w[i] = float32((2*rng.Float64() - 1) * limit)
	}
}

// newBatchTensor returns a tensor for maxBatch examples of shape per, set to hold maxBatch.
func newBatchTensor(maxBatch int, per []int) *tensor.Tensor {
	return tensor.New(append([]int{maxBatch}, per...)...)
}
