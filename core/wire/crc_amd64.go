package wire

import "golang.org/x/sys/cpu"

// foldAVX512 (crc_amd64.s) is the raw crc32c of p from seed, for len(p)
// at least 256 and a multiple of 16: AVX-512 carry-less multiplies fold p
// into 16 bytes whose crc from 0 is p's from seed, and the crc32
// instruction takes those. Its constants were derived as x^k mod P and
// checked by a software model of the folding against hash/crc32; the
// tests compare it with hash/crc32 on every length and alignment.
//
//go:noescape
func foldAVX512(seed uint32, p []byte) uint32

// crcSmall (crc_amd64.s) is the raw crc32c of p from seed with the crc32
// instruction, 8 bytes at a time: for short inputs, where hash/crc32's
// dispatch cost as much as the crc.
//
//go:noescape
func crcSmall(seed uint32, p []byte) uint32

// useSmall: SSE4.2's crc32 instruction.
var useSmall = cpu.X86.HasSSE42

// useFold: AVX-512 with VPCLMULQDQ on 512-bit registers (x/sys/cpu also
// checks that the OS saves the registers).
var useFold = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512VPCLMULQDQ && cpu.X86.HasPCLMULQDQ

// crcFoldMin is the fold's least length (its first round takes 256 bytes).
// Measured against hash/crc32 here: 256 B 15 vs 30 ns, 4 KiB 89 vs 193
// ns, 1 MiB 2x.
const crcFoldMin = 256

// crcFold is CRC32C for len(b) >= crcFoldMin on a machine with useFold.
func crcFold(seed uint32, b []byte) uint32 {
	n := len(b) &^ 15
	crc := foldAVX512(seed, b[:n])
	if n < len(b) {
		crc = crcUpdate(crc, b[n:])
	}
	return crc
}
