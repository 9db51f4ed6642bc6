package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"runtime"
	"testing"

	"github.com/msgr-dev/msgr/core/msg"
)

// sampleFrames returns frames covering 1..4 segments, empty first and
// middle segments, in both layouts.
func sampleFrames(t testing.TB) map[string][]byte {
	out := map[string][]byte{}
	segsets := map[string][][]byte{
		"empty":      nil,
		"ctl":        {[]byte("payload")},
		"hdr":        {make([]byte, 41)},
		"front":      {nil, []byte("front")},
		"mid-empty":  {make([]byte, 41), []byte("front"), nil, []byte("data")},
		"all4":       {[]byte("h"), []byte("ff"), []byte("mmm"), []byte("dddd")},
		"data-only":  {nil, nil, nil, []byte("d")},
		"trail-nils": {[]byte("x"), nil, nil},
	}
	for name, segs := range segsets {
		for _, rev := range []Rev{Rev0, Rev1} {
			tag := TagMessage
			if name == "ctl" || name == "empty" {
				tag = TagAck
			}
			b, err := AppendFrame(nil, rev, tag, segs...)
			if err != nil {
				t.Fatal(err)
			}
			out[rev.String()+"/"+name] = b
		}
	}
	return out
}

func revOf(name string) Rev {
	if name[:7] == "msgr2.1" {
		return Rev1
	}
	return Rev0
}

func TestFrameTruncated(t *testing.T) {
	for name, b := range sampleFrames(t) {
		rev := revOf(name)
		for i := 0; i < len(b); i++ {
			n, err := FrameSize(b[:i], rev, Limits{})
			if err != nil {
				t.Fatalf("%s: FrameSize(%d bytes): %v", name, i, err)
			}
			if i < PreambleLen && n != PreambleLen || i >= PreambleLen && n != len(b) {
				t.Fatalf("%s: FrameSize(%d bytes) = %d", name, i, n)
			}
			if _, _, err := DecodeFrame(b[:i], rev, Limits{}); !errors.Is(err, ErrShort) {
				t.Fatalf("%s: DecodeFrame(%d of %d bytes): %v", name, i, len(b), err)
			}
		}
		// Bytes of the next frame after this one are not consumed.
		_, n, err := DecodeFrame(append(append([]byte(nil), b...), 0xEE, 0xEE), rev, Limits{})
		if err != nil || n != len(b) {
			t.Fatalf("%s: with trailing bytes: %d %v", name, n, err)
		}
	}
}

func TestFrameCorruption(t *testing.T) {
	// Flipping any byte must never yield a complete frame with different
	// contents: either an error, an aborted frame, or (for the bytes no crc
	// covers: epilogue crc slots of unannounced segments, the reserved
	// high bits of late flags) the same segments.
	for name, b := range sampleFrames(t) {
		rev := revOf(name)
		orig, _, err := DecodeFrame(b, rev, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		detected := 0
		for i := range b {
			c := append([]byte(nil), b...)
			c[i] ^= 0x5A
			f, _, err := DecodeFrame(c, rev, Limits{})
			if err != nil {
				detected++
				continue
			}
			if f.Aborted {
				continue
			}
			if f.Tag != orig.Tag || f.NumSegments != orig.NumSegments {
				t.Fatalf("%s: byte %d flip changed the frame shape undetected", name, i)
			}
			for s := range f.Segments {
				if !bytes.Equal(f.Segments[s], orig.Segments[s]) {
					t.Fatalf("%s: byte %d flip corrupted segment %d undetected", name, i, s)
				}
			}
		}
		// Every preamble and segment byte is protected.
		if detected < PreambleLen {
			t.Errorf("%s: only %d of %d flips detected", name, detected, len(b))
		}
	}
}

// preamble builds a preamble with a valid crc.
func preamble(tag Tag, n int, lens ...uint32) []byte {
	b := make([]byte, PreambleLen)
	b[0], b[1] = byte(tag), byte(n)
	for i, l := range lens {
		binary.LittleEndian.PutUint32(b[2+6*i:], l)
		binary.LittleEndian.PutUint16(b[6+6*i:], 8)
	}
	binary.LittleEndian.PutUint32(b[28:], CRC32C(0, b[:28]))
	return b
}

func TestPreambleErrors(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
		lim  Limits
		want error
	}{
		{"zero segments", preamble(TagAck, 0), Limits{}, ErrBadPreamble},
		{"five segments", preamble(TagMessage, 5, 1, 1, 1, 1), Limits{}, ErrBadPreamble},
		{"empty last", preamble(TagMessage, 2, 1, 0), Limits{}, ErrBadPreamble},
		{"unknown tag 0", preamble(0, 1, 8), Limits{}, ErrUnknownTag},
		{"unknown tag 23", preamble(23, 1, 8), Limits{}, ErrUnknownTag},
		{"segment over limit", preamble(TagMessage, 1, 0xFFFFFFFF), Limits{}, ErrTooLarge},
		{"frame over limit", preamble(TagMessage, 4, 1<<27, 1<<27, 1<<27, 1<<27), Limits{}, ErrTooLarge},
		{"control over limit", preamble(TagHello, 1, 2<<20), Limits{}, ErrTooLarge},
		{"custom segment limit", preamble(TagMessage, 1, 1001), Limits{MaxSegmentLen: 1000}, ErrTooLarge},
		{"custom frame limit", preamble(TagMessage, 2, 600, 600), Limits{MaxFrameLen: 1000}, ErrTooLarge},
		{"custom control limit", preamble(TagAck, 1, 9), Limits{MaxControlLen: 8}, ErrTooLarge},
	}
	for _, c := range cases {
		if _, err := DecodePreamble(c.b, c.lim); !errors.Is(err, c.want) {
			t.Errorf("%s: DecodePreamble err = %v, want %v", c.name, err, c.want)
		}
		if _, err := FrameSize(c.b, Rev1, c.lim); !errors.Is(err, c.want) {
			t.Errorf("%s: FrameSize err = %v, want %v", c.name, err, c.want)
		}
		if _, _, err := DecodeFrame(c.b, Rev0, c.lim); !errors.Is(err, c.want) {
			t.Errorf("%s: DecodeFrame err = %v, want %v", c.name, err, c.want)
		}
	}
	bad := preamble(TagAck, 1, 8)
	bad[28] ^= 1
	if _, err := DecodePreamble(bad, Limits{}); !errors.Is(err, ErrBadCRC) {
		t.Errorf("bad preamble crc: %v", err)
	}
	// Within limits: the size is reported, nothing more is needed yet.
	ok := preamble(TagMessage, 1, 1000)
	if n, err := FrameSize(ok, Rev1, Limits{MaxSegmentLen: 1000}); err != nil || n != 32+1000+4 {
		t.Errorf("FrameSize at the limit: %d %v", n, err)
	}
}

func TestTooLargeDoesNotAllocate(t *testing.T) {
	// A hostile preamble declaring 4 GiB is rejected from the 32 bytes
	// alone: the only allocations are the (small) error value.
	b := preamble(TagMessage, 1, 0xFFFFFFFF)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < 100; i++ {
		if _, _, err := DecodeFrame(b, Rev1, Limits{}); !errors.Is(err, ErrTooLarge) {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if perCall := (after.TotalAlloc - before.TotalAlloc) / 100; perCall > 1024 {
		t.Errorf("%d bytes allocated per oversized frame", perCall)
	}
}

func TestAbortedFrames(t *testing.T) {
	segs := [][]byte{[]byte("hdr"), []byte("front")}
	b0, _ := AppendFrame(nil, Rev0, TagMessage, segs...)
	b0[len(b0)-17] = LateFlagAborted
	f, n, err := DecodeFrame(b0, Rev0, Limits{})
	if err != nil || n != len(b0) || !f.Aborted {
		t.Errorf("rev0 aborted: %v %d %v", f.Aborted, n, err)
	}
	// Crcs are still checked for an aborted frame (as Ceph does).
	b0[len(b0)-13] ^= 0xFF
	if _, _, err := DecodeFrame(b0, Rev0, Limits{}); !errors.Is(err, ErrBadCRC) {
		t.Errorf("rev0 aborted with bad crc: %v", err)
	}
	b1, _ := AppendFrame(nil, Rev1, TagMessage, segs...)
	b1[len(b1)-13] = 0x01
	f, n, err = DecodeFrame(b1, Rev1, Limits{})
	if err != nil || n != len(b1) || !f.Aborted {
		t.Errorf("rev1 aborted: %v %d %v", f.Aborted, n, err)
	}
	// Reserved high nibble is ignored; any other low nibble is an error.
	b1[len(b1)-13] = 0xEE
	if f, _, err = DecodeFrame(b1, Rev1, Limits{}); err != nil || f.Aborted {
		t.Errorf("rev1 high nibble: %v %v", f.Aborted, err)
	}
	b1[len(b1)-13] = 0x0F
	if _, _, err = DecodeFrame(b1, Rev1, Limits{}); !errors.Is(err, ErrBadEpilogue) {
		t.Errorf("rev1 late_status 0x0F: %v", err)
	}
}

func TestAppendFrameErrorsAndAllocs(t *testing.T) {
	if _, err := AppendFrame(nil, Rev1, TagMessage, nil, nil, nil, nil, nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("5 segments: %v", err)
	}
	m := msg.New(msg.MsgMonCommand, make([]byte, 64))
	m.Data = make([]byte, 4096)
	buf := make([]byte, 0, MessageFrameLen(Rev1, m))
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := AppendMessageFrame(buf[:0], Rev1, m); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("AppendMessageFrame allocated %v times", allocs)
	}
	ack := &Ack{Seq: 9}
	cbuf := make([]byte, 0, 128)
	allocs = testing.AllocsPerRun(100, func() {
		dst, mark := StartControlFrame(cbuf[:0])
		dst = ack.Encode(dst)
		FinishControlFrame(dst, mark, Rev0, TagAck)
	})
	if allocs != 0 {
		t.Errorf("control frame assembly allocated %v times", allocs)
	}
	frame, _ := AppendMessageFrame(nil, Rev1, m)
	var rm msg.Message
	allocs = testing.AllocsPerRun(100, func() {
		f, _, err := DecodeFrame(frame, Rev1, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if err := DecodeMessage(&f, &rm); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("DecodeFrame+DecodeMessage allocated %v times", allocs)
	}
	if len(rm.Data) != 4096 || &rm.Data[0] != &frame[len(frame)-13-4096] {
		t.Error("message data does not alias the frame buffer")
	}
}

func TestDecodeMessageErrors(t *testing.T) {
	b := AppendControlFrame(nil, Rev1, &Ack{Seq: 1})
	f, _, _ := DecodeFrame(b, Rev1, Limits{})
	var m msg.Message
	if err := DecodeMessage(&f, &m); !errors.Is(err, ErrMalformed) {
		t.Errorf("ACK as message: %v", err)
	}
	b, _ = AppendFrame(nil, Rev1, TagMessage, make([]byte, 40))
	f, _, _ = DecodeFrame(b, Rev1, Limits{})
	if err := DecodeMessage(&f, &m); !errors.Is(err, ErrShort) {
		t.Errorf("40-byte header: %v", err)
	}
	h := msg.Header{Seq: 1, Tid: 2, Type: 3, Priority: 4, Version: 5, DataPrePaddingLen: 6, DataOff: 7,
		AckSeq: 8, Flags: 9, CompatVersion: 10, Reserved: 11}
	hb := AppendHeader2(nil, &h)
	if len(hb) != HeaderLen {
		t.Fatalf("header %d bytes", len(hb))
	}
	for i := 0; i < HeaderLen; i++ {
		if _, err := DecodeHeader2(hb[:i]); !errors.Is(err, ErrShort) {
			t.Fatalf("header truncated to %d: %v", i, err)
		}
	}
	if got, err := DecodeHeader2(hb); err != nil || got != h {
		t.Errorf("header round trip %+v %v", got, err)
	}
}

// ---- benchmarks ----

func benchMessage(size int) *msg.Message {
	m := msg.New(msg.MsgMonCommand, make([]byte, size))
	m.Seq = 1
	return m
}

func BenchmarkAppendMessageFrame(b *testing.B) {
	for _, size := range []int{64, 4096} {
		for _, rev := range []Rev{Rev0, Rev1} {
			b.Run(rev.String()+"/"+itoa(size), func(b *testing.B) {
				m := benchMessage(size)
				buf := make([]byte, 0, MessageFrameLen(rev, m))
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					buf, _ = AppendMessageFrame(buf[:0], rev, m)
				}
			})
		}
	}
}

func BenchmarkDecodeMessageFrame(b *testing.B) {
	for _, size := range []int{64, 4096} {
		for _, rev := range []Rev{Rev0, Rev1} {
			b.Run(rev.String()+"/"+itoa(size), func(b *testing.B) {
				frame, _ := AppendMessageFrame(nil, rev, benchMessage(size))
				var m msg.Message
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					f, _, err := DecodeFrame(frame, rev, Limits{})
					if err != nil {
						b.Fatal(err)
					}
					if err := DecodeMessage(&f, &m); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkCRC32C(b *testing.B) {
	ieee := crc32.IEEETable
	cast := crc32.MakeTable(crc32.Castagnoli)
	for _, size := range []int{64, 4096, 1 << 20} {
		buf := make([]byte, size)
		for i := range buf {
			buf[i] = byte(i)
		}
		b.Run("ceph-raw/"+itoa(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				CRC32C(SegmentCRCSeed, buf)
			}
		})
		b.Run("hash-crc32-castagnoli/"+itoa(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				crc32.Update(0, cast, buf)
			}
		})
		b.Run("hash-crc32-ieee/"+itoa(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				crc32.Update(0, ieee, buf)
			}
		})
	}
}

func itoa(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return itoa(n>>20) + "MiB"
	case n >= 1024 && n%1024 == 0:
		return itoa(n>>10) + "KiB"
	}
	var b []byte
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
		if n == 0 {
			return string(b)
		}
	}
}

// The msgr2.1 message fast path writes exactly what the general frame
// builder writes, for every combination of present and empty segments.
func TestAppendMessageFrameRev1Fast(t *testing.T) {
	seg := func(n int, c byte) []byte {
		if n == 0 {
			return nil
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = c + byte(i)
		}
		return b
	}
	for mask := 0; mask < 8; mask++ {
		for _, size := range []int{1, 64, 4097} {
			m := msg.New(msg.MsgMonCommand, nil)
			m.Seq, m.AckSeq, m.Tid, m.Flags, m.DataOff = 7, 5, 99, 3, 12
			if mask&1 != 0 {
				m.Front = seg(size, 'f')
			}
			if mask&2 != 0 {
				m.Middle = seg(size+1, 'm')
			}
			if mask&4 != 0 {
				m.Data = seg(size+2, 'd')
			}
			prefix := []byte("xyz") // appends after existing bytes
			got, err := AppendMessageFrame(append([]byte(nil), prefix...), Rev1, m)
			if err != nil {
				t.Fatal(err)
			}
			want, err := appendMessageFrame(append([]byte(nil), prefix...), Rev1, m)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("segments %03b size %d: fast path differs\n got %x\nwant %x", mask, size, got, want)
			}
			f, n, err := DecodeFrame(got[len(prefix):], Rev1, Limits{})
			if err != nil || n != len(got)-len(prefix) {
				t.Fatalf("segments %03b: decode: %v (%d of %d)", mask, err, n, len(got)-len(prefix))
			}
			var back msg.Message
			if err := DecodeMessage(&f, &back); err != nil || back.Header != m.Header ||
				!bytes.Equal(back.Front, m.Front) || !bytes.Equal(back.Middle, m.Middle) || !bytes.Equal(back.Data, m.Data) {
				t.Fatalf("segments %03b: round trip: %v", mask, err)
			}
		}
	}
}
