//go:build !purego

#include "textflag.h"

// Each loop handles 16 floats (one Z register) per iteration; n is a positive multiple of 16.

// func reluAVX512(x *float32, n int)
TEXT ·reluAVX512(SB), NOSPLIT, $0-16
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	SHRQ $4, CX
	VXORPS Z1, Z1, Z1

relu_loop:
	VMOVUPS (DI), Z0
	VMAXPS  Z1, Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, DI
	DECQ    CX
	JNE     relu_loop
	VZEROUPPER
	RET

// func reluGradAVX512(dst, dy, y *float32, n int)
TEXT ·reluGradAVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ dy+8(FP), SI
	MOVQ y+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $4, CX
	VXORPS Z2, Z2, Z2

grad_loop:
	VMOVUPS   (DX), Z0
	VCMPPS    $0x0e, Z2, Z0, K1 // K1 = y > 0
	VMOVUPS.Z (SI), K1, Z1
	VMOVUPS   Z1, (DI)
	ADDQ      $64, DI
	ADDQ      $64, SI
	ADDQ      $64, DX
	DECQ      CX
	JNE       grad_loop
	VZEROUPPER
	RET

// func max4AVX512(dst, a, b, c, d *float32, n int)
TEXT ·max4AVX512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), R8
	MOVQ b+16(FP), R9
	MOVQ c+24(FP), R10
	MOVQ d+32(FP), R11
	MOVQ n+40(FP), CX
	SHRQ $4, CX
	XORQ AX, AX

max4_loop:
	VMOVUPS (R8)(AX*1), Z0
	VMOVUPS (R9)(AX*1), Z1
	VMOVUPS (R10)(AX*1), Z2
	VMOVUPS (R11)(AX*1), Z3
	VMAXPS  Z1, Z0, Z0
	VMAXPS  Z3, Z2, Z2
	VMAXPS  Z2, Z0, Z0
	VMOVUPS Z0, (DI)(AX*1)
	ADDQ    $64, AX
	DECQ    CX
	JNE     max4_loop
	VZEROUPPER
	RET

// func max4GradAVX512(da, db, dc, dd, grad, y, a, b, c, d *float32, n int)
// d is not read: where a, b and c are not the maximum, d is.
TEXT ·max4GradAVX512(SB), NOSPLIT, $0-88
	MOVQ da+0(FP), R8
	MOVQ db+8(FP), R9
	MOVQ dc+16(FP), R10
	MOVQ dd+24(FP), R11
	MOVQ grad+32(FP), R12
	MOVQ y+40(FP), R13
	MOVQ a+48(FP), SI
	MOVQ b+56(FP), DI
	MOVQ c+64(FP), DX
	MOVQ n+80(FP), CX
	SHRQ $4, CX
	XORQ AX, AX

maxgrad_loop:
	VMOVUPS (R13)(AX*1), Z0    // y
	VMOVUPS (R12)(AX*1), Z1    // g
	VMOVUPS (SI)(AX*1), Z3
	VMOVUPS (DI)(AX*1), Z4
	VMOVUPS (DX)(AX*1), Z5
	VCMPPS  $0, Z3, Z0, K1     // K1 = a == y
	VCMPPS  $0, Z4, Z0, K2     // K2 = b == y
	VCMPPS  $0, Z5, Z0, K3     // K3 = c == y
	KANDNW  K2, K1, K2             // K2 = b == y and not a
	KORW    K1, K2, K5             // K5 = taken by a or b
	KANDNW  K3, K5, K3             // K3 = c == y and not a, b
	KORW    K5, K3, K5             // K5 = taken by a, b or c
	KNOTW   K5, K4                 // K4 = the rest: d
	VMOVUPS.Z Z1, K1, Z2
	VMOVUPS   Z2, (R8)(AX*1)
	VMOVUPS.Z Z1, K2, Z2
	VMOVUPS   Z2, (R9)(AX*1)
	VMOVUPS.Z Z1, K3, Z2
	VMOVUPS   Z2, (R10)(AX*1)
	VMOVUPS.Z Z1, K4, Z2
	VMOVUPS   Z2, (R11)(AX*1)
	ADDQ      $64, AX
	DECQ      CX
	JNE       maxgrad_loop
	VZEROUPPER
	RET

// func poolRowAVX512(y, xTop, xBot *float32, c, ow int)
// One output row of 2x2 max pooling, channels last: c (a multiple of 16) channels, ow outputs.
TEXT ·poolRowAVX512(SB), NOSPLIT, $0-40
	MOVQ y+0(FP), DI
	MOVQ xTop+8(FP), SI
	MOVQ xBot+16(FP), DX
	MOVQ c+24(FP), R8
	MOVQ ow+32(FP), R9
	MOVQ R8, R10
	SHLQ $2, R10          // c in bytes: from a window's left pixel to its right one
	SHRQ $4, R8           // vectors per pixel

pool_pixel:
	MOVQ R8, CX
	XORQ AX, AX

pool_vec:
	VMOVUPS (SI)(AX*1), Z0
	ADDQ    R10, AX
	VMOVUPS (SI)(AX*1), Z1
	VMOVUPS (DX)(AX*1), Z3
	SUBQ    R10, AX
	VMOVUPS (DX)(AX*1), Z2
	VMAXPS  Z1, Z0, Z0
	VMAXPS  Z3, Z2, Z2
	VMAXPS  Z2, Z0, Z0
	VMOVUPS Z0, (DI)(AX*1)
	ADDQ    $64, AX
	DECQ    CX
	JNE     pool_vec
	ADDQ    R10, DI
	ADDQ    R10, SI
	ADDQ    R10, SI
	ADDQ    R10, DX
	ADDQ    R10, DX
	DECQ    R9
	JNE     pool_pixel
	VZEROUPPER
	RET

// func poolGradRowAVX512(dxTop, dxBot, dy, y, xTop, xBot *float32, c, ow int)
// The gradient of one output row of 2x2 max pooling (see Max4Grad: the first maximum of top-left,
// top-right, bottom-left, bottom-right takes the gradient).
TEXT ·poolGradRowAVX512(SB), NOSPLIT, $0-64
	MOVQ dxTop+0(FP), R11
	MOVQ dxBot+8(FP), R12
	MOVQ dy+16(FP), R13
	MOVQ y+24(FP), DI
	MOVQ xTop+32(FP), SI
	MOVQ xBot+40(FP), DX
	MOVQ c+48(FP), R8
	MOVQ ow+56(FP), R9
	MOVQ R8, R10
	SHLQ $2, R10
	SHRQ $4, R8

grad_pixel:
	MOVQ R8, CX
	XORQ AX, AX

grad_vec:
	VMOVUPS   (DI)(AX*1), Z0          // y
	VMOVUPS   (R13)(AX*1), Z1         // dy
	VMOVUPS   (SI)(AX*1), Z3          // a
	VMOVUPS   (DX)(AX*1), Z5          // c
	VCMPPS    $0, Z3, Z0, K1          // a == y
	VCMPPS    $0, Z5, Z0, K3          // c == y
	ADDQ      R10, AX
	VMOVUPS   (SI)(AX*1), Z4          // b
	VCMPPS    $0, Z4, Z0, K2          // b == y
	KANDNW    K2, K1, K2              // b, not a
	KORW      K1, K2, K5
	KANDNW    K3, K5, K3              // c, not a or b
	KORW      K5, K3, K5
	KNOTW     K5, K4                  // d: the rest
	VMOVUPS.Z Z1, K2, Z6
	VMOVUPS   Z6, (R11)(AX*1)         // db
	VMOVUPS.Z Z1, K4, Z6
	VMOVUPS   Z6, (R12)(AX*1)         // dd
	SUBQ      R10, AX
	VMOVUPS.Z Z1, K1, Z6
	VMOVUPS   Z6, (R11)(AX*1)         // da
	VMOVUPS.Z Z1, K3, Z6
	VMOVUPS   Z6, (R12)(AX*1)         // dc
	ADDQ      $64, AX
	DECQ      CX
	JNE       grad_vec
	ADDQ      R10, DI
	ADDQ      R10, R13
	ADDQ      R10, SI
	ADDQ      R10, SI
	ADDQ      R10, DX
	ADDQ      R10, DX
	ADDQ      R10, R11
	ADDQ      R10, R11
	ADDQ      R10, R12
	ADDQ      R10, R12
	DECQ      R9
	JNE       grad_pixel
	VZEROUPPER
	RET
