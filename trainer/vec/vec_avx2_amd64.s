//go:build !purego

#include "textflag.h"

// The AVX2 versions: 8 floats (one Y register) per step, n a positive multiple of 8. Each does the
// same selections and comparisons as its Go twin in vec.go, so results are bit-identical.

// func reluAVX2(x *float32, n int)
TEXT ·reluAVX2(SB), NOSPLIT, $0-16
	MOVQ   x+0(FP), DI
	MOVQ   n+8(FP), CX
	SHRQ   $3, CX
	VXORPS Y1, Y1, Y1

relu2_loop:
	VMOVUPS (DI), Y0
	VMAXPS  Y1, Y0, Y0 // x > 0 ? x : 0 (NaN and -0 become +0)
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	DECQ    CX
	JNE     relu2_loop
	VZEROUPPER
	RET

// func reluGradAVX2(dst, dy, y *float32, n int)
TEXT ·reluGradAVX2(SB), NOSPLIT, $0-32
	MOVQ   dst+0(FP), DI
	MOVQ   dy+8(FP), SI
	MOVQ   y+16(FP), DX
	MOVQ   n+24(FP), CX
	SHRQ   $3, CX
	VXORPS Y2, Y2, Y2

grad2_loop:
	VMOVUPS (DX), Y0
	VCMPPS  $0x0e, Y2, Y0, Y0 // all ones where y > 0
	VANDPS  (SI), Y0, Y1      // dy there, +0 elsewhere
	VMOVUPS Y1, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	ADDQ    $32, DX
	DECQ    CX
	JNE     grad2_loop
	VZEROUPPER
	RET

// func max4AVX2(dst, a, b, c, d *float32, n int)
TEXT ·max4AVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), R8
	MOVQ b+16(FP), R9
	MOVQ c+24(FP), R10
	MOVQ d+32(FP), R11
	MOVQ n+40(FP), CX
	SHRQ $3, CX
	XORQ AX, AX

max42_loop:
	VMOVUPS (R8)(AX*1), Y0
	VMOVUPS (R10)(AX*1), Y2
	VMAXPS  (R9)(AX*1), Y0, Y0  // a > b ? a : b
	VMAXPS  (R11)(AX*1), Y2, Y2 // c > d ? c : d
	VMAXPS  Y2, Y0, Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ    $32, AX
	DECQ    CX
	JNE     max42_loop
	VZEROUPPER
	RET

// ROUTE4 routes the gradient Y1 of the maximum Y0 of the four inputs at A, B and C (D being the
// rest) to the four destinations: the first input equal to the maximum takes it, the others get +0.
// AX is the offset into every array; Y2-Y6 are clobbered.
#define ROUTE4(A, B, C, DA, DB, DC, DD) \
	VCMPPS  $0, A, Y0, Y2; \
	VCMPPS  $0, B, Y0, Y3; \
	VCMPPS  $0, C, Y0, Y4; \
	VANDNPS Y3, Y2, Y3; \
	VORPS   Y2, Y3, Y5; \
	VANDNPS Y4, Y5, Y4; \
	VORPS   Y5, Y4, Y5; \
	VANDPS  Y1, Y2, Y6; \
	VMOVUPS Y6, DA; \
	VANDPS  Y1, Y3, Y6; \
	VMOVUPS Y6, DB; \
	VANDPS  Y1, Y4, Y6; \
	VMOVUPS Y6, DC; \
	VANDNPS Y1, Y5, Y6; \
	VMOVUPS Y6, DD

// func max4GradAVX2(da, db, dc, dd, grad, y, a, b, c, d *float32, n int)
// d is not read: where a, b and c are not the maximum, d is.
TEXT ·max4GradAVX2(SB), NOSPLIT, $0-88
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
	SHRQ $3, CX
	XORQ AX, AX

maxgrad2_loop:
	VMOVUPS (R13)(AX*1), Y0 // y
	VMOVUPS (R12)(AX*1), Y1 // g
	ROUTE4((SI)(AX*1), (DI)(AX*1), (DX)(AX*1), (R8)(AX*1), (R9)(AX*1), (R10)(AX*1), (R11)(AX*1))
	ADDQ    $32, AX
	DECQ    CX
	JNE     maxgrad2_loop
	VZEROUPPER
	RET

// masks holds 8 all-ones words then 8 zeros: the 8 words from masks+4·(8-m) select m lanes.
DATA masks<>+0(SB)/8, $0xffffffffffffffff
DATA masks<>+8(SB)/8, $0xffffffffffffffff
DATA masks<>+16(SB)/8, $0xffffffffffffffff
DATA masks<>+24(SB)/8, $0xffffffffffffffff
DATA masks<>+32(SB)/8, $0
DATA masks<>+40(SB)/8, $0
DATA masks<>+48(SB)/8, $0
DATA masks<>+56(SB)/8, $0
GLOBL masks<>(SB), RODATA|NOPTR, $64

// func poolRowAVX2(y, xTop, xBot *float32, c, ow int)
// One output row of 2x2 max pooling, channels last: c (a multiple of 8) channels, ow outputs.
TEXT ·poolRowAVX2(SB), NOSPLIT, $0-40
	MOVQ y+0(FP), DI
	MOVQ xTop+8(FP), SI
	MOVQ xBot+16(FP), DX
	MOVQ c+24(FP), R8
	MOVQ ow+32(FP), R9
	MOVQ R8, R10
	SHLQ $2, R10     // c in bytes: from a window's left pixel to its right one
	SHRQ $3, R8      // vectors per pixel
	LEAQ (SI)(R10*1), R11
	LEAQ (DX)(R10*1), R12

pool2_pixel:
	MOVQ R8, CX
	XORQ AX, AX

pool2_vec:
	VMOVUPS (SI)(AX*1), Y0
	VMOVUPS (DX)(AX*1), Y2
	VMAXPS  (R11)(AX*1), Y0, Y0 // top-left, top-right
	VMAXPS  (R12)(AX*1), Y2, Y2 // bottom-left, bottom-right
	VMAXPS  Y2, Y0, Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ    $32, AX
	DECQ    CX
	JNE     pool2_vec
	ADDQ    R10, DI
	LEAQ    (SI)(R10*2), SI
	LEAQ    (DX)(R10*2), DX
	LEAQ    (R11)(R10*2), R11
	LEAQ    (R12)(R10*2), R12
	DECQ    R9
	JNE     pool2_pixel
	VZEROUPPER
	RET

// func poolGradRowAVX2(dxTop, dxBot, dy, y, xTop, xBot *float32, c, ow int)
// The gradient of one output row of 2x2 max pooling (see Max4Grad: the first maximum of top-left,
// top-right, bottom-left, bottom-right takes the gradient).
TEXT ·poolGradRowAVX2(SB), NOSPLIT, $0-64
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
	SHRQ $3, R8
	LEAQ (SI)(R10*1), R14  // top-right
	LEAQ (R11)(R10*1), R15 // its gradient
	LEAQ (R12)(R10*1), BX  // bottom-right's gradient

gradpool2_pixel:
	MOVQ R8, CX
	XORQ AX, AX

gradpool2_vec:
	VMOVUPS (DI)(AX*1), Y0  // y
	VMOVUPS (R13)(AX*1), Y1 // dy
	ROUTE4((SI)(AX*1), (R14)(AX*1), (DX)(AX*1), (R11)(AX*1), (R15)(AX*1), (R12)(AX*1), (BX)(AX*1))
	ADDQ    $32, AX
	DECQ    CX
	JNE     gradpool2_vec
	ADDQ    R10, DI
	ADDQ    R10, R13
	LEAQ    (SI)(R10*2), SI
	LEAQ    (R14)(R10*2), R14
	LEAQ    (DX)(R10*2), DX
	LEAQ    (R11)(R10*2), R11
	LEAQ    (R15)(R10*2), R15
	LEAQ    (R12)(R10*2), R12
	LEAQ    (BX)(R10*2), BX
	DECQ    R9
	JNE     gradpool2_pixel
	VZEROUPPER
	RET

// func transposeAVX2(dst *float32, ldd int, src *float32, lds int, rowBlocks, colBlocks int)
// Transposes rowBlocks x colBlocks blocks of 8x8 floats: block (i, j) of src, rows 8i.. and columns
// 8j.., becomes block (j, i) of dst. Strides are in floats.
TEXT ·transposeAVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), R8
	SHLQ $2, R8
	MOVQ src+16(FP), SI
	MOVQ lds+24(FP), R9
	SHLQ $2, R9
	MOVQ rowBlocks+32(FP), R12
	LEAQ (R9)(R9*2), R10 // 3 source rows
	LEAQ (R8)(R8*2), R11 // 3 destination rows

tr_rowblock:
	MOVQ colBlocks+40(FP), R13
	MOVQ SI, AX // this row block's next source block
	MOVQ DI, DX // and where it goes

tr_block:
	LEAQ      (AX)(R9*4), BX
	VMOVUPS   (AX), Y0
	VMOVUPS   (AX)(R9*1), Y1
	VMOVUPS   (AX)(R9*2), Y2
	VMOVUPS   (AX)(R10*1), Y3
	VMOVUPS   (BX), Y4
	VMOVUPS   (BX)(R9*1), Y5
	VMOVUPS   (BX)(R9*2), Y6
	VMOVUPS   (BX)(R10*1), Y7
	VUNPCKLPS Y1, Y0, Y8       // r0[0] r1[0] r0[1] r1[1] | r0[4] r1[4] r0[5] r1[5]
	VUNPCKHPS Y1, Y0, Y9       // columns 2, 3 | 6, 7
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15
	VSHUFPS   $0x44, Y10, Y8, Y0 // column 0 | 4 of rows 0-3
	VSHUFPS   $0xee, Y10, Y8, Y1 // column 1 | 5
	VSHUFPS   $0x44, Y11, Y9, Y2 // column 2 | 6
	VSHUFPS   $0xee, Y11, Y9, Y3 // column 3 | 7
	VSHUFPS   $0x44, Y14, Y12, Y4 // the same of rows 4-7
	VSHUFPS   $0xee, Y14, Y12, Y5
	VSHUFPS   $0x44, Y15, Y13, Y6
	VSHUFPS   $0xee, Y15, Y13, Y7
	LEAQ      (DX)(R8*4), BX
	VPERM2F128 $0x20, Y4, Y0, Y8
	VMOVUPS   Y8, (DX)
	VPERM2F128 $0x20, Y5, Y1, Y8
	VMOVUPS   Y8, (DX)(R8*1)
	VPERM2F128 $0x20, Y6, Y2, Y8
	VMOVUPS   Y8, (DX)(R8*2)
	VPERM2F128 $0x20, Y7, Y3, Y8
	VMOVUPS   Y8, (DX)(R11*1)
	VPERM2F128 $0x31, Y4, Y0, Y8
	VMOVUPS   Y8, (BX)
	VPERM2F128 $0x31, Y5, Y1, Y8
	VMOVUPS   Y8, (BX)(R8*1)
	VPERM2F128 $0x31, Y6, Y2, Y8
	VMOVUPS   Y8, (BX)(R8*2)
	VPERM2F128 $0x31, Y7, Y3, Y8
	VMOVUPS   Y8, (BX)(R11*1)
	ADDQ      $32, AX          // the next 8 source columns
	LEAQ      (DX)(R8*8), DX   // go 8 destination rows down
	DECQ      R13
	JNE       tr_block
	LEAQ      (SI)(R9*8), SI   // the next 8 source rows
	ADDQ      $32, DI          // go 8 destination columns right
	DECQ      R12
	JNE       tr_rowblock
	VZEROUPPER
	RET

// func patchesAVX2(dst *float32, x *float32, w, c, span, kh, ow, pixels int)
// The first pixels rows of a convolution's patch matrix (see Patches), span <= 16: each segment is
// a masked load (never reading past it) and whole 8-float stores, in increasing address order, so
// that what a store writes past its segment is overwritten by the next segment, the row's 1 or the
// next row. The caller does the last row, whose stores would run past the matrix.
TEXT ·patchesAVX2(SB), NOSPLIT, $0-64
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ w+16(FP), R8
	MOVQ c+24(FP), R9
	SHLQ $2, R9          // a pixel, in bytes
	IMULQ R9, R8         // an input row, in bytes
	MOVQ span+32(FP), R13
	MOVQ kh+40(FP), R11
	MOVQ R13, R10
	IMULQ R11, R10
	INCQ R10
	SHLQ $2, R10         // a patch row: kh·span+1 floats, in bytes
	SHLQ $2, R13         // a segment, in bytes
	MOVQ ow+48(FP), CX
	MOVQ w+16(FP), R15
	SUBQ CX, R15
	IMULQ R9, R15        // from past a row's last window to the next row's first
	MOVQ pixels+56(FP), DX

	// Y14: the segment's first min(span, 8) lanes; Y15: lanes 8 up to span.
	LEAQ    masks<>(SB), AX
	MOVQ    span+32(FP), R12
	MOVQ    $8, BX
	CMPQ    R12, BX
	CMOVQGT BX, R12
	SUBQ    R12, BX
	VMOVDQU (AX)(BX*4), Y14
	MOVQ    span+32(FP), R12
	SUBQ    $8, R12
	MOVQ    $0, BX
	CMPQ    R12, BX
	CMOVQLT BX, R12
	MOVQ    $8, BX
	SUBQ    R12, BX
	VMOVDQU (AX)(BX*4), Y15
	MOVQ    span+32(FP), R14

patch_pixel:
	MOVQ SI, AX
	MOVQ DI, BX
	MOVQ R11, R12

patch_segment:
	VMASKMOVPS (AX), Y14, Y0
	VMOVUPS    Y0, (BX)
	CMPQ       R14, $8
	JLE        patch_next
	VMASKMOVPS 32(AX), Y15, Y1
	VMOVUPS    Y1, 32(BX)

patch_next:
	ADDQ R8, AX
	ADDQ R13, BX
	DECQ R12
	JNE  patch_segment
	MOVL $0x3f800000, (BX) // the bias's column
	ADDQ R10, DI
	ADDQ R9, SI
	DECQ CX
	JNE  patch_same_row
	ADDQ R15, SI
	MOVQ ow+48(FP), CX

patch_same_row:
	DECQ DX
	JNE  patch_pixel
	VZEROUPPER
	RET

// func poolArgRowAVX2(y *float32, arg *int32, top, bot, bias *float32, c, ps, ow int, off *[4]int32, step int32)
// See MaxPool2ArgRow: c a multiple of 8. Y8-Y11 hold the four places' arg for this pixel, Y12 the
// step to the next pixel's, Y13 zero.
TEXT ·poolArgRowAVX2(SB), NOSPLIT, $0-76
	MOVQ         y+0(FP), DI
	MOVQ         arg+8(FP), BX
	MOVQ         top+16(FP), SI
	MOVQ         bot+24(FP), DX
	MOVQ         bias+32(FP), R13
	MOVQ         c+40(FP), R8
	MOVQ         ps+48(FP), R10
	SHLQ         $2, R10          // from a window's left pixel to its right one, in bytes
	MOVQ         ow+56(FP), R9
	MOVQ         off+64(FP), AX
	VPBROADCASTD (AX), Y8
	VPBROADCASTD 4(AX), Y9
	VPBROADCASTD 8(AX), Y10
	VPBROADCASTD 12(AX), Y11
	MOVL         step+72(FP), AX
	VMOVD        AX, X12
	VPBROADCASTD X12, Y12
	VXORPS       Y13, Y13, Y13
	MOVQ         R8, R14
	SHLQ         $2, R14          // one output pixel, in bytes
	SHRQ         $3, R8           // vectors per pixel
	LEAQ         (SI)(R10*1), R11 // top-right
	LEAQ         (DX)(R10*1), R12 // bottom-right

poolarg2_pixel:
	MOVQ R8, CX
	XORQ AX, AX // offset into the input pixels
	XORQ R15, R15 // and into the outputs and the bias

poolarg2_vec:
	VMOVUPS   (SI)(AX*1), Y0      // top-left
	VMOVUPS   (R11)(AX*1), Y1     // top-right
	VMOVUPS   (DX)(AX*1), Y2      // bottom-left
	VMOVUPS   (R12)(AX*1), Y3     // bottom-right
	VMAXPS    Y1, Y0, Y4          // tl > tr ? tl : tr
	VMAXPS    Y3, Y2, Y5          // bl > br ? bl : br
	VMAXPS    Y5, Y4, Y4          // the maximum, paired as in Max4
	VCMPPS    $0, Y4, Y0, Y0      // tl == m
	VCMPPS    $0, Y4, Y1, Y1      // tr == m
	VCMPPS    $0, Y4, Y2, Y2      // bl == m
	VBLENDVPS Y2, Y10, Y11, Y5    // the first equal, from the last: bl or br
	VBLENDVPS Y1, Y9, Y5, Y5      // tr before them
	VBLENDVPS Y0, Y8, Y5, Y5      // tl before all
	VMOVDQU   Y5, (BX)(R15*1)
	VADDPS    (R13)(R15*1), Y4, Y4
	VMAXPS    Y13, Y4, Y4         // v > 0 ? v : 0
	VMOVUPS   Y4, (DI)(R15*1)
	ADDQ      $32, AX
	ADDQ      $32, R15
	DECQ      CX
	JNE       poolarg2_vec
	VPADDD    Y12, Y8, Y8
	VPADDD    Y12, Y9, Y9
	VPADDD    Y12, Y10, Y10
	VPADDD    Y12, Y11, Y11
	ADDQ      R14, DI
	ADDQ      R14, BX
	LEAQ      (SI)(R10*2), SI
	LEAQ      (DX)(R10*2), DX
	LEAQ      (R11)(R10*2), R11
	LEAQ      (R12)(R10*2), R12
	DECQ      R9
	JNE       poolarg2_pixel
	VZEROUPPER
	RET
