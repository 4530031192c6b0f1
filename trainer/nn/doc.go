// Package nn holds the layers of a convolutional network, the softmax cross-entropy loss, Glorot
// initialisation, and models built as a list of layers (with the reference CNN as a preset).
//
// Tensors are channels-last: a batch of images is [n, height, width, channels]. A layer owns its
// output and its input gradient and reuses them every step: Forward's result is valid until the next
// Forward, Backward's until the next Backward. Layers never modify their inputs. Parameter gradients
// are overwritten (not accumulated) by each Backward and hold the gradient of the batch's loss.
//
// Shape mistakes are programmer errors and panic with the package name.
package nn
