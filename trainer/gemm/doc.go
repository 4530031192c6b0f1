// Package gemm multiplies float32 matrices: C = beta·C + op(A)·op(B), the work behind every
// convolution and dense layer of the trainer.
//
// The product is split into register tiles computed by a micro-kernel: AVX-512 or AVX2/FMA assembly
// where the CPU has it (kernel_amd64.s, written by internal/asmgen), a portable Go twin elsewhere or
// when asked for (Use(Portable), or the purego build tag). Tiles and K-chunks are fixed by the shapes
// alone, never by the thread count, and partial sums are added in a fixed order, so a product is
// bit-identical whatever the number of threads and however the pool schedules them.
//
// Sgemm writes only C and the Workspace; A and B are never modified.
package gemm
