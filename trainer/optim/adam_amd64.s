//go:build !purego

#include "textflag.h"

// func adamAVX512(w, grad, m, v *float32, n int, b1, b2, c1, c2, alpha, eps float32)
// The same operations, in the same order and rounding, as adamGo; n is a positive multiple of 16.
TEXT ·adamAVX512(SB), NOSPLIT, $0-64
	MOVQ w+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ m+16(FP), DX
	MOVQ v+24(FP), BX
	MOVQ n+32(FP), CX
	SHRQ $4, CX
	VBROADCASTSS b1+40(FP), Z10
	VBROADCASTSS b2+44(FP), Z11
	VBROADCASTSS c1+48(FP), Z12
	VBROADCASTSS c2+52(FP), Z13
	VBROADCASTSS alpha+56(FP), Z14
	VBROADCASTSS eps+60(FP), Z15

adam_loop:
	VMOVUPS (SI), Z0        // g
	VMOVUPS (DX), Z1        // m
	VMOVUPS (BX), Z2        // v
	VMULPS  Z10, Z1, Z1     // b1*m
	VMULPS  Z12, Z0, Z3     // c1*g
	VADDPS  Z3, Z1, Z1      // m = b1*m + c1*g
	VMULPS  Z11, Z2, Z2     // b2*v
	VMULPS  Z13, Z0, Z4     // c2*g
	VMULPS  Z0, Z4, Z4      // c2*g*g
	VADDPS  Z4, Z2, Z2      // v = b2*v + c2*g*g
	VMOVUPS Z1, (DX)
	VMOVUPS Z2, (BX)
	VSQRTPS Z2, Z5
	VADDPS  Z15, Z5, Z5     // sqrt(v) + eps
	VMULPS  Z14, Z1, Z6     // alpha*m
	VDIVPS  Z5, Z6, Z6      // alpha*m / (sqrt(v) + eps)
	VMOVUPS (DI), Z7
	VSUBPS  Z6, Z7, Z7
	VMOVUPS Z7, (DI)
	ADDQ    $64, DI
	ADDQ    $64, SI
	ADDQ    $64, DX
	ADDQ    $64, BX
	DECQ    CX
	JNE     adam_loop
	VZEROUPPER
	RET

// func adamAVX2(w, grad, m, v *float32, n int, b1, b2, c1, c2, alpha, eps float32)
// adamAVX512 on Y registers: n is a positive multiple of 8.
TEXT ·adamAVX2(SB), NOSPLIT, $0-64
	MOVQ w+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ m+16(FP), DX
	MOVQ v+24(FP), BX
	MOVQ n+32(FP), CX
	SHRQ $3, CX
	VBROADCASTSS b1+40(FP), Y10
	VBROADCASTSS b2+44(FP), Y11
	VBROADCASTSS c1+48(FP), Y12
	VBROADCASTSS c2+52(FP), Y13
	VBROADCASTSS alpha+56(FP), Y14
	VBROADCASTSS eps+60(FP), Y15

adam2_loop:
	VMOVUPS (SI), Y0        // g
	VMULPS  (DX), Y10, Y1   // b1*m
	VMULPS  Y12, Y0, Y3     // c1*g
	VADDPS  Y3, Y1, Y1      // m = b1*m + c1*g
	VMULPS  (BX), Y11, Y2   // b2*v
	VMULPS  Y13, Y0, Y4     // c2*g
	VMULPS  Y0, Y4, Y4      // c2*g*g
	VADDPS  Y4, Y2, Y2      // v = b2*v + c2*g*g
	VMOVUPS Y1, (DX)
	VMOVUPS Y2, (BX)
	VSQRTPS Y2, Y5
	VADDPS  Y15, Y5, Y5     // sqrt(v) + eps
	VMULPS  Y14, Y1, Y6     // alpha*m
	VDIVPS  Y5, Y6, Y6      // alpha*m / (sqrt(v) + eps)
	VMOVUPS (DI), Y7
	VSUBPS  Y6, Y7, Y7
	VMOVUPS Y7, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, BX
	DECQ    CX
	JNE     adam2_loop
	VZEROUPPER
	RET
