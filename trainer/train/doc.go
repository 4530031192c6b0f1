// Package train runs the training loop: it builds a model from a preset and a dataset's shape,
// feeds it shuffled batches, applies the optimizer, evaluates on the test split after each epoch,
// and hands each epoch's progress to a Reporter.
//
// It is the seam between the numeric core (nn, optim, data) and the outside: the CLI supplies the
// Reporter (logs now, the TrainingJob's status later) and stores checkpoints through SaveState and
// LoadState, which write and read an io.Writer / io.Reader, so the core knows nothing of storage.
//
// With the same configuration (seed and threads included) and code path, training is bit-for-bit
// reproducible: weights are drawn from the seed, batches come in a seeded order, and every
// parallel reduction adds in a fixed order (see package gemm).
package train
