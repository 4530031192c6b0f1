//go:build !purego

#include "textflag.h"

// The arguments both kernels share, in the registers both use: DI dw, R8 ldw and R9 segStride and
// R14 ldg in bytes, SI a, R10 grad, R11 arg, R15 limit.
#define WINDOW_ARGS \
	MOVQ dw+0(FP), DI         \
	MOVQ ldw+8(FP), R8        \
	SHLQ $2, R8               \
	MOVQ segStride+32(FP), R9 \
	SHLQ $2, R9               \
	MOVQ a+40(FP), SI         \
	MOVQ grad+48(FP), R10     \
	MOVQ arg+56(FP), R11      \
	MOVQ ldg+64(FP), R14      \
	SHLQ $2, R14              \
	MOVQ limit+80(FP), R15

// Clears the window and bias sums.
#define ZERO_Y0_Y12 \
	VXORPS Y0, Y0, Y0 \
	VXORPS Y1, Y1, Y1 \
	VXORPS Y2, Y2, Y2 \
	VXORPS Y3, Y3, Y3 \
	VXORPS Y4, Y4, Y4 \
	VXORPS Y5, Y5, Y5 \
	VXORPS Y6, Y6, Y6 \
	VXORPS Y7, Y7, Y7 \
	VXORPS Y8, Y8, Y8 \
	VXORPS Y9, Y9, Y9 \
	VXORPS Y10, Y10, Y10 \
	VXORPS Y11, Y11, Y11 \
	VXORPS Y12, Y12, Y12


// One window's gradient for one channel: acc0..acc5 += g times the window's 3 segments of 16 floats
// at base, segments R9 bytes apart.
#define WINDOW(base, g, acc0, acc1, acc2, acc3, acc4, acc5) \
	VFMADD231PS (base), g, acc0        \
	VFMADD231PS 32(base), g, acc1      \
	VFMADD231PS (base)(R9*1), g, acc2  \
	VFMADD231PS 32(base)(R9*1), g, acc3 \
	VFMADD231PS (base)(R9*2), g, acc4  \
	VFMADD231PS 32(base)(R9*2), g, acc5

// One channel's sums to dw: 16 floats per segment at base, AX bytes apart, then the bias's at DX.
#define STORE(base, acc0, acc1, acc2, acc3, acc4, acc5, bias) \
	VMOVUPS acc0, (base)          \
	VMOVUPS acc1, 32(base)        \
	VMOVUPS acc2, (base)(AX*1)    \
	VMOVUPS acc3, 32(base)(AX*1)  \
	VMOVUPS acc4, (base)(AX*2)    \
	VMOVUPS acc5, 32(base)(AX*2)  \
	VMOVSS  bias, (base)(DX*1)

// func windowGradAVX2(dw *float32, ldw, pairs, seg, segStride int, a, grad *float32, arg *int32, ldg, np, limit int) int
// Two channels at a time: Y0-Y5 and Y6-Y11 their window sums, Y12 and Y13 their bias sums, Y14 and
// Y15 their gradients, broadcast.
TEXT ·windowGradAVX2(SB), NOSPLIT, $0-96
	MOVQ pairs+16(FP), BX
	WINDOW_ARGS

wg_pair:
	ZERO_Y0_Y12
	VXORPS Y13, Y13, Y13
	MOVQ   np+72(FP), CX
	MOVQ   R10, R12 // this output's gradients
	MOVQ   R11, R13 // and windows

wg_output:
	MOVLQSX      (R13), AX
	MOVLQSX      4(R13), DX
	CMPQ         AX, R15
	JA           wg_bad // unsigned: a negative start is above limit too
	CMPQ         DX, R15
	JA           wg_bad
	LEAQ         (SI)(AX*4), AX
	LEAQ         (SI)(DX*4), DX
	VBROADCASTSS (R12), Y14
	VBROADCASTSS 4(R12), Y15
	VADDPS       Y14, Y12, Y12
	VADDPS       Y15, Y13, Y13
	WINDOW(AX, Y14, Y0, Y1, Y2, Y3, Y4, Y5)
	WINDOW(DX, Y15, Y6, Y7, Y8, Y9, Y10, Y11)
	ADDQ         R14, R12
	ADDQ         R14, R13
	DECQ         CX
	JNE          wg_output

	// Segments seg floats apart, each stored 16 wide: a segment's spill is overwritten by the
	// next one, the last one's by the bias or by the next channel.
	MOVQ seg+24(FP), AX
	SHLQ $2, AX
	LEAQ (AX)(AX*2), DX
	STORE(DI, Y0, Y1, Y2, Y3, Y4, Y5, X12)
	ADDQ R8, DI
	STORE(DI, Y6, Y7, Y8, Y9, Y10, Y11, X13)
	ADDQ R8, DI
	ADDQ $8, R10
	ADDQ $8, R11
	DECQ BX
	JNE  wg_pair
	VZEROUPPER
	MOVQ $0, ret+88(FP)
	RET

wg_bad:
	VZEROUPPER
	MOVQ $1, ret+88(FP)
	RET

// One window's gradient for channel c of four, segments at most 8 wide: Y(3c)..Y(3c+2) += g times
// the window's 3 segments of 8 floats, g broadcast in Y13. AX is clobbered.
#define WINDOW8(c, acc0, acc1, acc2) \
	MOVLQSX      (4*c)(R13), AX     \
	CMPQ         AX, R15            \
	JA           wg8_bad            \
	LEAQ         (SI)(AX*4), AX     \
	VBROADCASTSS (4*c)(R12), Y13    \
	VFMADD231PS  (AX), Y13, acc0    \
	VFMADD231PS  (AX)(R9*1), Y13, acc1 \
	VFMADD231PS  (AX)(R9*2), Y13, acc2

// Channel c's sums to dw at base: 8 floats per segment, AX bytes apart, then the bias's (lane c of
// X12) at DX.
#define STORE8(base, c, acc0, acc1, acc2) \
	VMOVUPS    acc0, (base)         \
	VMOVUPS    acc1, (base)(AX*1)   \
	VMOVUPS    acc2, (base)(AX*2)   \
	VEXTRACTPS $c, X12, (base)(DX*1)

// func windowGrad8AVX2(dw *float32, ldw, quads, seg, segStride int, a, grad *float32, arg *int32, ldg, np, limit int) int
// WindowGrad for quads·4 channels, 3 segments of at most 8 steps: Y0-Y11 the four channels' window
// sums, X12 their bias sums.
TEXT ·windowGrad8AVX2(SB), NOSPLIT, $0-96
	MOVQ quads+16(FP), BX
	WINDOW_ARGS

wg8_quad:
	ZERO_Y0_Y12
	MOVQ   np+72(FP), CX
	MOVQ   R10, R12
	MOVQ   R11, R13

wg8_output:
	WINDOW8(0, Y0, Y1, Y2)
	WINDOW8(1, Y3, Y4, Y5)
	WINDOW8(2, Y6, Y7, Y8)
	WINDOW8(3, Y9, Y10, Y11)
	VADDPS (R12), X12, X12
	ADDQ   R14, R12
	ADDQ   R14, R13
	DECQ   CX
	JNE    wg8_output

	MOVQ seg+24(FP), AX
	SHLQ $2, AX
	LEAQ (AX)(AX*2), DX
	STORE8(DI, 0, Y0, Y1, Y2)
	ADDQ R8, DI
	STORE8(DI, 1, Y3, Y4, Y5)
	ADDQ R8, DI
	STORE8(DI, 2, Y6, Y7, Y8)
	ADDQ R8, DI
	STORE8(DI, 3, Y9, Y10, Y11)
	ADDQ R8, DI
	ADDQ $16, R10
	ADDQ $16, R11
	DECQ BX
	JNE  wg8_quad
	VZEROUPPER
	MOVQ $0, ret+88(FP)
	RET

wg8_bad:
	VZEROUPPER
	MOVQ $1, ret+88(FP)
	RET
