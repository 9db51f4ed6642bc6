package wire

import (
	"bytes"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/msg"
)

func TestEncoderDecoderPrimitives(t *testing.T) {
	var e Encoder
	e.U8(0xAB)
	e.U16(0x1234)
	e.U32(0xDEADBEEF)
	e.U64(0x0102030405060708)
	e.I32(-95)
	e.I64(-1)
	e.Bool(true)
	e.Bool(false)
	e.Blob([]byte("blob"))
	e.String("str")
	e.U32s([]uint32{7, 8})
	e.Strings([]string{"a", "bc"})
	e.StringMap([]string{"k"}, map[string]string{"k": "v"})
	e.UUID(UUID{0x11, 15: 0x55})
	e.UTime(UTime{Sec: 5, Nsec: 6})
	e.EntityName(msg.EntityName{Type: msg.EntityClient, Num: 4242})
	e.AuthEntityName(msg.EntityClient, "admin")
	mark := e.StructStart(3, 1)
	e.U32(99)
	e.StructEnd(mark)

	// Spot-check layout: little-endian ints, u32-prefixed blob.
	if !bytes.Equal(e.B[:15], []byte{0xAB, 0x34, 0x12, 0xEF, 0xBE, 0xAD, 0xDE, 8, 7, 6, 5, 4, 3, 2, 1}) {
		t.Fatalf("prefix %x", e.B[:15])
	}

	d := NewDecoder(e.Bytes())
	check := func(name string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("U8", d.U8(), uint8(0xAB))
	check("U16", d.U16(), uint16(0x1234))
	check("U32", d.U32(), uint32(0xDEADBEEF))
	check("U64", d.U64(), uint64(0x0102030405060708))
	check("I32", d.I32(), int32(-95))
	check("I64", d.I64(), int64(-1))
	check("Bool", d.Bool(), true)
	check("Bool", d.Bool(), false)
	check("Blob", string(d.Blob(10)), "blob")
	check("String", d.String(10), "str")
	u := d.U32s(nil, 10)
	check("U32s", len(u) == 2 && u[0] == 7 && u[1] == 8, true)
	s := d.Strings(10, 10)
	check("Strings", len(s) == 2 && s[0] == "a" && s[1] == "bc", true)
	n := d.Count(8, 10)
	check("map count", n, 1)
	check("map key", d.String(10), "k")
	check("map val", d.String(10), "v")
	check("UUID", d.UUID(), UUID{0x11, 15: 0x55})
	check("UTime", d.UTime(), UTime{Sec: 5, Nsec: 6})
	check("EntityName", d.EntityName(), msg.EntityName{Type: msg.EntityClient, Num: 4242})
	typ, id := d.AuthEntityName(64)
	check("AuthEntityName", typ == msg.EntityClient && id == "admin", true)
	v, end := d.StructStart(3)
	check("struct v", v, uint8(3))
	check("struct field", d.U32(), uint32(99))
	d.StructEnd(end)
	if d.Err() != nil || d.Remaining() != 0 {
		t.Fatalf("err %v, %d bytes left", d.Err(), d.Remaining())
	}
	// Sticky error: reading past the end fails and keeps failing.
	if d.U32() != 0 || !errors.Is(d.Err(), ErrShort) || d.U8() != 0 {
		t.Errorf("read past end: %v", d.Err())
	}
}

func TestStructVersioning(t *testing.T) {
	// A newer encoder appended a field: the decoder skips it.
	var e Encoder
	m := e.StructStart(5, 2)
	e.U32(1)
	e.U64(0xFFFF) // unknown to a v2 decoder
	e.StructEnd(m)
	e.U8(0x77)
	d := NewDecoder(e.B)
	_, end := d.StructStart(2)
	d.U32()
	d.StructEnd(end)
	if d.U8() != 0x77 || d.Err() != nil {
		t.Fatalf("skip to end: %v", d.Err())
	}
	// compat newer than we understand.
	d = NewDecoder(e.B)
	d.StructStart(1)
	if !errors.Is(d.Err(), ErrMalformed) {
		t.Errorf("compat check: %v", d.Err())
	}
	// struct_len beyond the input.
	d = NewDecoder([]byte{1, 1, 100, 0, 0, 0, 0})
	d.StructStart(1)
	if !errors.Is(d.Err(), ErrShort) {
		t.Errorf("struct_len: %v", d.Err())
	}
	// Fields overrunning struct_len.
	e = Encoder{}
	m = e.StructStart(1, 1)
	e.U8(1)
	e.StructEnd(m)
	e.U32(0)
	d = NewDecoder(e.B)
	_, end = d.StructStart(1)
	d.U32()
	d.StructEnd(end)
	if !errors.Is(d.Err(), ErrMalformed) {
		t.Errorf("overrun: %v", d.Err())
	}
}

func TestDecoderLimits(t *testing.T) {
	huge := []byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3}
	d := NewDecoder(huge)
	if d.Blob(MaxBlobLen) != nil || !errors.Is(d.Err(), ErrTooLarge) {
		t.Errorf("blob over max: %v", d.Err())
	}
	d = NewDecoder([]byte{10, 0, 0, 0, 1, 2, 3})
	if d.Blob(100) != nil || !errors.Is(d.Err(), ErrShort) {
		t.Errorf("blob over input: %v", d.Err())
	}
	d = NewDecoder([]byte{10, 0, 0, 0})
	if d.Count(1, 5) != 0 || !errors.Is(d.Err(), ErrTooLarge) {
		t.Errorf("count over max: %v", d.Err())
	}
	d = NewDecoder([]byte{0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0})
	if d.Strings(1<<30, 10) != nil || !errors.Is(d.Err(), ErrShort) {
		t.Errorf("strings count over input: %v", d.Err())
	}
	// No allocation proportional to a hostile length: decode a 2^28
	// count vector many times and watch the heap.
	hostile := []byte{0, 0, 0, 0x10, 1, 2, 3, 4}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < 100; i++ {
		d := NewDecoder(hostile)
		d.U32s(nil, 1<<30)
		d = NewDecoder(hostile)
		d.Strings(1<<30, 1<<30)
		d = NewDecoder(hostile)
		d.Blob(1 << 30)
		d = NewDecoder(hostile)
		d.AddrVec(1 << 30)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("hostile lengths allocated %d bytes", grew)
	}
}

func TestAddrDecodeErrors(t *testing.T) {
	good := AppendAddr(nil, msg.MustParseAddr("v2:[::1]:3300/0"))
	for i := 0; i < len(good); i++ {
		if _, _, err := DecodeAddr(good[:i]); !errors.Is(err, ErrShort) {
			t.Fatalf("addr truncated to %d: %v", i, err)
		}
		if _, _, err := DecodeAddrVec(good[:i]); !errors.Is(err, ErrShort) {
			t.Fatalf("addrvec truncated to %d: %v", i, err)
		}
	}
	legacy := make([]byte, 136)
	legacy[9] = 2
	for i := 0; i < len(legacy); i++ {
		if _, _, err := DecodeAddr(legacy[:i]); !errors.Is(err, ErrShort) {
			t.Fatalf("legacy addr truncated to %d: %v", i, err)
		}
	}
	bad := func(name string, mut func(b []byte) []byte) {
		t.Helper()
		b := mut(append([]byte(nil), AppendAddr(nil, msg.MustParseAddr("v2:1.2.3.4:5/6"))...))
		if _, _, err := DecodeAddr(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	bad("marker 2", func(b []byte) []byte { b[0] = 2; return b })
	bad("compat 2", func(b []byte) []byte { b[2] = 2; return b })
	bad("family 1", func(b []byte) []byte { b[19] = 1; return b })
	bad("sockaddr_len 1", func(b []byte) []byte { b[15] = 1; return b })
	bad("sockaddr_len 17 for inet", func(b []byte) []byte {
		b[15] = 17
		b[3]++
		return append(b, 0)
	})
	// A short sockaddr (Ceph copies elen bytes into a zeroed union) is fine.
	var e Encoder
	e.U8(1)
	m := e.StructStart(1, 1)
	e.U32(2)
	e.U32(0)
	e.U32(4) // family + port only
	e.U16(2)
	e.Raw([]byte{0x0c, 0xe4})
	e.StructEnd(m)
	if a, _, err := DecodeAddr(e.B); err != nil || a.String() != "v2:0.0.0.0:3300/0" {
		t.Errorf("short sockaddr: %v %v", a, err)
	}
}

func TestUTime(t *testing.T) {
	tm := time.Unix(1700000000, 5)
	u := UTimeOf(tm)
	if u != (UTime{1700000000, 5}) || !u.Time().Equal(tm) {
		t.Errorf("UTime %v %v", u, u.Time())
	}
}
