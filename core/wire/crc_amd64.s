#include "textflag.h"

// FOLD: x = x folded forward by the distance k holds, xor y (register or
// memory); t is scratch. Works on X and Z registers alike, lane by lane.
#define FOLD(k, x, t, y) \
	VPCLMULQDQ $0x00, k, x, t \
	VPCLMULQDQ $0x11, k, x, x \
	VPTERNLOGQ $0x96, y, t, x

// Folding constants for the reflected Castagnoli polynomial: for a fold
// over D bits, the low qword multiplies by x^(D+32) mod P and the high by
// x^(D-32) mod P, bit-reflected and shifted left by one (crc_amd64.go says
// how they were checked).
DATA k2048<>+0(SB)/8, $0xdcb17aa4
DATA k2048<>+8(SB)/8, $0xb9e02b86
GLOBL k2048<>(SB), RODATA|NOPTR, $16
DATA k512<>+0(SB)/8, $0x740eef02
DATA k512<>+8(SB)/8, $0x9e4addf8
GLOBL k512<>(SB), RODATA|NOPTR, $16
DATA k128<>+0(SB)/8, $0xf20c0dfe
DATA k128<>+8(SB)/8, $0x14cd00bd6
GLOBL k128<>(SB), RODATA|NOPTR, $16

// func foldAVX512(seed uint32, p []byte) uint32
// len(p) >= 256 and a multiple of 16. Folds p (the seed xored into its
// first four bytes) into 16 bytes whose raw crc32c from 0 is p's from
// seed, and returns that, from the crc32 instruction.
TEXT ·foldAVX512(SB), NOSPLIT, $0-36
	MOVL seed+0(FP), AX
	MOVQ p_base+8(FP), SI
	MOVQ p_len+16(FP), CX

	VMOVDQU64 0(SI), Z0
	VMOVDQU64 64(SI), Z1
	VMOVDQU64 128(SI), Z2
	VMOVDQU64 192(SI), Z3
	VMOVD     AX, X4
	VPXORQ    Z4, Z0, Z0
	ADDQ      $256, SI
	SUBQ      $256, CX

	// Four accumulators, 256 bytes a round: each folds over 2048 bits.
	VBROADCASTI32X4 k2048<>(SB), Z5

loop256:
	CMPQ CX, $256
	JB   fold4
	FOLD(Z5, Z0, Z6, 0(SI))
	FOLD(Z5, Z1, Z7, 64(SI))
	FOLD(Z5, Z2, Z8, 128(SI))
	FOLD(Z5, Z3, Z9, 192(SI))
	ADDQ $256, SI
	SUBQ $256, CX
	JMP  loop256

fold4:
	// Into one accumulator (Z0): each folds over 512 bits onto the next.
	VBROADCASTI32X4 k512<>(SB), Z5
	FOLD(Z5, Z0, Z6, Z1)
	FOLD(Z5, Z0, Z6, Z2)
	FOLD(Z5, Z0, Z6, Z3)

loop64:
	CMPQ CX, $64
	JB   lanes
	FOLD(Z5, Z0, Z6, 0(SI))
	ADDQ $64, SI
	SUBQ $64, CX
	JMP  loop64

lanes:
	// The four 128-bit lanes, first (X0) to last, each folded onto the next.
	VMOVDQU64     k128<>(SB), X5
	VEXTRACTI32X4 $1, Z0, X1
	VEXTRACTI32X4 $2, Z0, X2
	VEXTRACTI32X4 $3, Z0, X3
	FOLD(X5, X0, X6, X1)
	FOLD(X5, X0, X6, X2)
	FOLD(X5, X0, X6, X3)

loop16:
	CMPQ CX, $16
	JB   done
	FOLD(X5, X0, X6, 0(SI))
	ADDQ $16, SI
	SUBQ $16, CX
	JMP  loop16

done:
	VMOVQ   X0, R8
	VPEXTRQ $1, X0, R9
	VZEROUPPER
	XORL    AX, AX
	CRC32Q  R8, AX
	CRC32Q  R9, AX
	MOVL    AX, ret+32(FP)
	RET

// func crcSmall(seed uint32, p []byte) uint32
// The raw crc32c of p from seed with the crc32 instruction, 8 bytes at a
// time: for the short segments of small messages (a 28-byte preamble, a
// header, a 64-byte payload), without hash/crc32's dispatch.
TEXT ·crcSmall(SB), NOSPLIT, $0-36
	MOVL seed+0(FP), AX
	MOVQ p_base+8(FP), SI
	MOVQ p_len+16(FP), CX

loop8:
	CMPQ   CX, $8
	JB     loop1
	CRC32Q 0(SI), AX
	ADDQ   $8, SI
	SUBQ   $8, CX
	JMP    loop8

loop1:
	// The tail: 4, 2 and 1 bytes.
	TESTQ  $4, CX
	JZ     tail2
	CRC32L 0(SI), AX
	ADDQ   $4, SI

tail2:
	TESTQ  $2, CX
	JZ     tail1
	CRC32W 0(SI), AX
	ADDQ   $2, SI

tail1:
	TESTQ  $1, CX
	JZ     small_done
	CRC32B 0(SI), AX

small_done:
	MOVL AX, ret+32(FP)
	RET
