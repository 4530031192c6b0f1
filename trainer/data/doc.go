// Package data reads the trainer's datasets into memory: CIFAR-10 binary files, MNIST-style IDX
// files (gzipped or not), and a built-in synthetic set shaped like CIFAR-10 whose classes are
// learnable. Images are kept as bytes, channels last ([height, width, channels]), and turned into
// float32 batches scaled to [0, 1] on demand.
//
// Bad data is an error, never a panic: a truncated, oversized or mislabelled file is rejected with
// the file, the record and what was expected (see *Error). Loaded datasets are read-only.
package data
