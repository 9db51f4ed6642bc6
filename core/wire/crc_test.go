package wire

import (
	"math/rand"
	"testing"
)

// TestCRC32CFold compares CRC32C (which runs the crc32 instruction inline on
// short inputs and folds long ones with AVX-512 where the CPU has them), and
// each of those paths, with hash/crc32's update, on every
// length up to 5000 bytes (all tails, all lane and 256-byte-round counts),
// odd alignments, random seeds and a few large sizes.
func TestCRC32CFold(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	buf := make([]byte, 3<<20+64)
	rng.Read(buf)
	check := func(seed uint32, p []byte) {
		t.Helper()
		want := crcUpdate(seed, p)
		if got := CRC32C(seed, p); got != want {
			t.Fatalf("CRC32C(%#x, %d bytes) = %#08x, want %#08x", seed, len(p), got, want)
		}
		if useSmall && len(p) <= 256 {
			if got := crcSmall(seed, p); got != want {
				t.Fatalf("crcSmall(%#x, %d bytes) = %#08x, want %#08x", seed, len(p), got, want)
			}
		}
		if useFold && len(p) >= 256 {
			if got := crcFold(seed, p); got != want {
				t.Fatalf("crcFold(%#x, %d bytes) = %#08x, want %#08x", seed, len(p), got, want)
			}
		}
	}
	for n := 1; n <= 5000; n++ {
		off := rng.Intn(64)
		check(rng.Uint32(), buf[off:off+n])
	}
	for _, n := range []int{64 << 10, 1<<20 - 16, 1 << 20, 1<<20 + 13, 3 << 20} {
		check(SegmentCRCSeed, buf[5:5+n])
		check(0, buf[:n])
	}
	check(0x1234, buf[3:3]) // empty
	if !useFold {
		t.Log("no AVX-512 VPCLMULQDQ on this CPU: the fold did not run")
	}
}
