// Package gemm multiplies float32 matrices: C = beta·C + op(A)·op(B), the work behind every
// convolution and dense layer of the trainer.
//
// The product is split into register tiles (12x32 floats with AVX-512, 6x16 with AVX2) computed by a
// micro-kernel: assembly where the CPU has it (kernel_amd64.s, written by internal/asmgen), a
// portable Go twin elsewhere or when asked for (Use(Portable), or the purego build tag). The kernels
// read A in place, row-major or transposed, and B row-major; only ragged edges of A and a transposed
// or ragged B are packed. Each element of C is one chain of FMAs in k order. Tiles and K-chunks are
// fixed by the shapes and the kernel alone, never by the thread count, and partial sums are added in
// a fixed order, so a product is bit-identical whatever the number of threads.
//
// Windows and WindowGrad serve a convolution directly: Windows is a product whose A is read in place
// as the windows of an image (the row kernels run K in segments), and WindowGrad the weight gradient
// when each output's gradient flows to a single window, as after max pooling.
//
// Sgemm writes only C and the Workspace; A and B are never modified.
package gemm
