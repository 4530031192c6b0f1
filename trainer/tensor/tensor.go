// Package tensor holds the trainer's n-dimensional float32 arrays: a flat row-major slice of data
// and an explicit shape. A batch of images is [n, height, width, channels] (channels last), a batch
// of vectors [n, features].
//
// Tensors are plain values: whoever owns the Data slice may write it. Layers own their outputs and
// gradients and reuse them from step to step; callers read them until the next call that writes them.
package tensor

import "fmt"

// Tensor is a float32 array with a shape; len(Data) is the product of Shape.
type Tensor struct {
	Shape []int
	Data  []float32
}

// New returns a zeroed tensor of the given shape.
func New(shape ...int) *Tensor {
	return &Tensor{Shape: append([]int(nil), shape...), Data: make([]float32, Size(shape))}
}

// Size is the number of elements of a shape.
func Size(shape []int) int {
	n := 1
	for _, d := range shape {
		if d < 0 {
			panic(fmt.Sprintf("tensor: negative dimension in shape %v", shape))
		}
		n *= d
	}
	return n
}

// Batch is the first dimension of t: the number of examples it holds.
func (t *Tensor) Batch() int { return t.Shape[0] }

// Example is the number of elements in one example (all dimensions but the first).
func (t *Tensor) Example() int { return Size(t.Shape[1:]) }

// SetBatch resizes t to hold n examples within its existing capacity, without allocating.
// It panics if the capacity is too small.
func (t *Tensor) SetBatch(n int) {
	per := t.Example()
	if n*per > cap(t.Data) {
		panic(fmt.Sprintf("tensor: batch of %d does not fit a tensor built for %d examples of shape %v", n, cap(t.Data)/max(per, 1), t.Shape[1:]))
	}
	t.Shape[0] = n
	t.Data = t.Data[:n*per]
}

// CheckShape panics, naming pkg, unless t's per-example shape is want.
func CheckShape(pkg string, t *Tensor, want []int) {
	got := t.Shape[1:]
	if len(got) != len(want) {
		panic(fmt.Sprintf("%s: shape mismatch: input %v, want [n %v]", pkg, t.Shape, want))
	}
	for i := range got {
		if got[i] != want[i] {
			panic(fmt.Sprintf("%s: shape mismatch: input %v, want [n %v]", pkg, t.Shape, want))
		}
	}
	if len(t.Data) != Size(t.Shape) {
		panic(fmt.Sprintf("%s: tensor of shape %v holds %d floats", pkg, t.Shape, len(t.Data)))
	}
}
