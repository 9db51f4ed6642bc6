package wire

import (
	"encoding/binary"
	"net/netip"

	"github.com/msgr-dev/msgr/core/msg"
)

// Default maxima for variable-length fields, applied on top of the check
// against the remaining input.
const (
	// MaxBlobLen bounds bufferlist/string fields in control payloads.
	MaxBlobLen = 16 << 20
	// MaxVecLen bounds element counts of vectors in control payloads
	// (methods, modes).
	MaxVecLen = 1024
	// MaxAddrs bounds the number of addresses in an entity_addrvec_t.
	MaxAddrs = 64
)

// Decoder reads Ceph encodings from a byte slice. Errors are sticky: after
// the first error every method returns a zero value and Err reports the
// error, so a payload can be decoded field by field and checked once.
// Slices it returns alias the input.
type Decoder struct {
	b   []byte
	off int
	err error
}

// NewDecoder returns a Decoder over b.
func NewDecoder(b []byte) Decoder { return Decoder{b: b} }

// Err returns the first error met, or nil.
func (d *Decoder) Err() error { return d.err }

// Offset returns the number of bytes consumed.
func (d *Decoder) Offset() int { return d.off }

// Remaining returns the number of unread bytes.
func (d *Decoder) Remaining() int { return len(d.b) - d.off }

// Fail records err (if no error is recorded yet).
func (d *Decoder) Fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

// take returns the next n bytes, or nil and a sticky ErrShort.
func (d *Decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b)-d.off {
		d.err = errf(ErrShort, "need %d bytes at offset %d, have %d", n, d.off, len(d.b)-d.off)
		return nil
	}
	p := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return p
}

// U8 reads a byte.
func (d *Decoder) U8() uint8 {
	p := d.take(1)
	if p == nil {
		return 0
	}
	return p[0]
}

// U16 reads a little-endian u16.
func (d *Decoder) U16() uint16 {
	p := d.take(2)
	if p == nil {
		return 0
	}
	return binary.LittleEndian.Uint16(p)
}

// U32 reads a little-endian u32.
func (d *Decoder) U32() uint32 {
	p := d.take(4)
	if p == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(p)
}

// U64 reads a little-endian u64.
func (d *Decoder) U64() uint64 {
	p := d.take(8)
	if p == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(p)
}

// I32 reads a little-endian i32.
func (d *Decoder) I32() int32 { return int32(d.U32()) }

// I64 reads a little-endian i64.
func (d *Decoder) I64() int64 { return int64(d.U64()) }

// Bool reads a byte; any non-zero value is true (as Ceph).
func (d *Decoder) Bool() bool { return d.U8() != 0 }

// Raw reads n bytes with no length prefix (aliasing the input).
func (d *Decoder) Raw(n int) []byte { return d.take(n) }

// Skip skips n bytes.
func (d *Decoder) Skip(n int) { d.take(n) }

// length reads a u32 length and checks it against max (ErrTooLarge) and
// then against the remaining input times elemMin (ErrShort), before anyone
// allocates from it.
func (d *Decoder) length(elemMin, max int) int {
	n := d.U32()
	if d.err != nil {
		return 0
	}
	if uint64(n) > uint64(max) {
		d.err = errf(ErrTooLarge, "length %d > limit %d at offset %d", n, max, d.off-4)
		return 0
	}
	if elemMin > 0 && uint64(n)*uint64(elemMin) > uint64(len(d.b)-d.off) {
		d.err = errf(ErrShort, "%d items of >= %d bytes at offset %d, have %d bytes", n, elemMin, d.off, len(d.b)-d.off)
		return 0
	}
	return int(n)
}

// Count reads a u32 element count of a vector/list/map whose elements
// take at least elemMin bytes each (elemMin >= 1), bounded by max and by
// the remaining input. Use it before allocating a slice of that size.
func (d *Decoder) Count(elemMin, max int) int {
	if elemMin < 1 {
		elemMin = 1
	}
	return d.length(elemMin, max)
}

// Blob reads a bufferlist field (u32 length + bytes) of at most max bytes;
// the result aliases the input.
func (d *Decoder) Blob(max int) []byte {
	n := d.length(1, max)
	return d.take(n)
}

// String reads a std::string of at most max bytes (this copies).
func (d *Decoder) String(max int) string { return string(d.Blob(max)) }

// U32s reads a vector<u32> of at most max items, appending to dst[:0].
func (d *Decoder) U32s(dst []uint32, max int) []uint32 {
	n := d.Count(4, max)
	if d.err != nil {
		return nil
	}
	out := dst[:0]
	if cap(out) < n {
		out = make([]uint32, 0, n)
	}
	for i := 0; i < n; i++ {
		out = append(out, d.U32())
	}
	return out
}

// Strings reads a vector<string> of at most max items, each at most
// maxLen bytes.
func (d *Decoder) Strings(max, maxLen int) []string {
	n := d.Count(4, max)
	if d.err != nil || n == 0 {
		return nil
	}
	out := make([]string, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		out = append(out, d.String(maxLen))
	}
	if d.err != nil {
		return nil
	}
	return out
}

// UUID reads 16 raw bytes.
func (d *Decoder) UUID() (u UUID) {
	copy(u[:], d.take(16))
	return u
}

// UTime reads seconds then nanoseconds.
func (d *Decoder) UTime() UTime {
	return UTime{Sec: d.U32(), Nsec: d.U32()}
}

// EntityName reads an entity_name_t (u8 type, i64 num).
func (d *Decoder) EntityName() msg.EntityName {
	t := d.U8()
	n := d.I64()
	return msg.EntityName{Type: msg.EntityType(t), Num: n}
}

// AuthEntityName reads an auth EntityName (u32 type, string id).
func (d *Decoder) AuthEntityName(maxLen int) (msg.EntityType, string) {
	t := d.U32()
	id := d.String(maxLen)
	return msg.EntityType(t), id
}

// StructStart reads a versioned structure header (DECODE_START): it fails
// with ErrMalformed if struct_compat > maxV, checks struct_len against the
// remaining input and returns the version and the end offset to pass to
// StructEnd.
func (d *Decoder) StructStart(maxV uint8) (v uint8, end int) {
	v = d.U8()
	compat := d.U8()
	n := d.U32()
	if d.err != nil {
		return 0, 0
	}
	if compat > maxV {
		d.err = errf(ErrMalformed, "struct compat %d > supported %d", compat, maxV)
		return 0, 0
	}
	if uint64(n) > uint64(len(d.b)-d.off) {
		d.err = errf(ErrShort, "struct_len %d at offset %d, have %d", n, d.off, len(d.b)-d.off)
		return 0, 0
	}
	return v, d.off + int(n)
}

// StructEnd skips to end (DECODE_FINISH), failing with ErrMalformed if the
// fields read overran the declared length.
func (d *Decoder) StructEnd(end int) {
	if d.err != nil {
		return
	}
	if d.off > end {
		d.err = errf(ErrMalformed, "struct overran its length by %d bytes", d.off-end)
		return
	}
	d.off = end
}

// Addr reads an entity_addr_t: the new form (marker 1) or the legacy
// 136-byte form (marker 0). Unknown address families are ErrMalformed (Addr
// cannot represent them); family 0 is the blank address.
func (d *Decoder) Addr() msg.Addr {
	marker := d.U8()
	if d.err != nil {
		return msg.Addr{}
	}
	switch marker {
	case 0:
		return d.legacyAddr()
	case 1:
	default:
		d.err = errf(ErrMalformed, "entity_addr_t marker %d", marker)
		return msg.Addr{}
	}
	_, end := d.StructStart(1)
	var a msg.Addr
	a.Type = msg.AddrType(d.U32())
	a.Nonce = d.U32()
	elen := d.U32()
	if d.err != nil {
		return msg.Addr{}
	}
	if elen > 0 {
		if elen < 2 {
			d.err = errf(ErrMalformed, "sockaddr_len %d", elen)
			return msg.Addr{}
		}
		fam := d.U16()
		body := d.Raw(int(elen) - 2)
		if d.err != nil {
			return msg.Addr{}
		}
		a.AddrPort = d.sockaddr(fam, body)
	}
	d.StructEnd(end)
	if d.err != nil {
		return msg.Addr{}
	}
	return a
}

// sockaddr decodes the sockaddr bytes after the family (port first, in
// network order). Short bodies are zero-extended, as Ceph copies elen bytes
// into a zeroed union, but must not exceed the family's size.
func (d *Decoder) sockaddr(fam uint16, body []byte) netip.AddrPort {
	var buf [26]byte // sizeof(sockaddr_in6) - family
	var limit int
	switch fam {
	case afInet:
		limit = 14
	case afInet6:
		limit = 26
	case 0:
		limit = 26
	default:
		d.err = errf(ErrMalformed, "address family %d", fam)
		return netip.AddrPort{}
	}
	if len(body) > limit {
		d.err = errf(ErrMalformed, "sockaddr_len %d exceeds family %d", len(body)+2, fam)
		return netip.AddrPort{}
	}
	copy(buf[:], body)
	port := binary.BigEndian.Uint16(buf[0:2])
	switch fam {
	case afInet:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(buf[2:6])), port)
	case afInet6:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(buf[6:22])), port)
	}
	return netip.AddrPort{} // blank
}

// legacyAddr decodes the rest of the 136-byte legacy form after its zero
// marker: 3 bytes (rest of the u32 type), u32 nonce, 128-byte
// sockaddr_storage with a big-endian family.
func (d *Decoder) legacyAddr() msg.Addr {
	d.Skip(3)
	nonce := d.U32()
	ss := d.Raw(128)
	if d.err != nil {
		return msg.Addr{}
	}
	fam := binary.BigEndian.Uint16(ss[0:2])
	body := ss[2 : 2+26]
	if fam == afInet {
		body = ss[2 : 2+14]
	}
	ap := d.sockaddr(fam, body)
	if d.err != nil {
		return msg.Addr{}
	}
	return msg.Addr{Type: msg.AddrLegacy, Nonce: nonce, AddrPort: ap}
}

// AddrVec reads an entity_addrvec_t of at most max addresses (marker 2),
// or a single bare entity_addr_t (marker 0 or 1) as a one-element vector.
func (d *Decoder) AddrVec(max int) msg.AddrVec {
	if d.err != nil {
		return nil
	}
	if d.off >= len(d.b) {
		d.take(1) // records ErrShort
		return nil
	}
	switch d.b[d.off] {
	case 0, 1:
		a := d.Addr()
		if d.err != nil {
			return nil
		}
		return msg.AddrVec{a}
	case 2:
		d.off++
	default:
		d.err = errf(ErrMalformed, "entity_addrvec_t marker %d", d.b[d.off])
		return nil
	}
	// Each address takes at least 15 bytes (marker, struct header, type,
	// nonce, sockaddr_len).
	n := d.Count(15, max)
	if d.err != nil {
		return nil
	}
	v := make(msg.AddrVec, 0, n)
	for i := 0; i < n; i++ {
		a := d.Addr()
		if d.err != nil {
			return nil
		}
		v = append(v, a)
	}
	return v
}

// DecodeAddr decodes one entity_addr_t from the start of b and returns it
// and the number of bytes used.
func DecodeAddr(b []byte) (msg.Addr, int, error) {
	d := NewDecoder(b)
	a := d.Addr()
	return a, d.off, d.err
}

// DecodeAddrVec decodes one entity_addrvec_t (at most MaxAddrs) from the
// start of b and returns it and the number of bytes used.
func DecodeAddrVec(b []byte) (msg.AddrVec, int, error) {
	d := NewDecoder(b)
	v := d.AddrVec(MaxAddrs)
	return v, d.off, d.err
}
