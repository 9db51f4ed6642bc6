package wire

import (
	"encoding/binary"
	"time"

	"github.com/msgr-dev/msgr/core/msg"
)

// UUID is Ceph's uuid_d: 16 raw bytes in the printed (big-endian) order.
type UUID [16]byte

// UTime is Ceph's utime_t / ceph_timespec: u32 seconds, u32 nanoseconds.
type UTime struct {
	Sec  uint32
	Nsec uint32
}

// UTimeOf converts t to a UTime (seconds truncated to 32 bits, as Ceph).
func UTimeOf(t time.Time) UTime {
	return UTime{Sec: uint32(t.Unix()), Nsec: uint32(t.Nanosecond())}
}

// Time converts u to a time.Time.
func (u UTime) Time() time.Time { return time.Unix(int64(u.Sec), int64(u.Nsec)) }

// Encoder appends Ceph encodings to B. It never allocates when B has
// enough spare capacity. The zero value is ready to use.
type Encoder struct {
	B []byte
}

// NewEncoder returns an Encoder appending to dst.
func NewEncoder(dst []byte) Encoder { return Encoder{B: dst} }

// Bytes returns the encoded bytes.
func (e *Encoder) Bytes() []byte { return e.B }

// U8 appends v.
func (e *Encoder) U8(v uint8) { e.B = append(e.B, v) }

// U16 appends v little-endian.
func (e *Encoder) U16(v uint16) { e.B = binary.LittleEndian.AppendUint16(e.B, v) }

// U32 appends v little-endian.
func (e *Encoder) U32(v uint32) { e.B = binary.LittleEndian.AppendUint32(e.B, v) }

// U64 appends v little-endian.
func (e *Encoder) U64(v uint64) { e.B = binary.LittleEndian.AppendUint64(e.B, v) }

// I32 appends v little-endian.
func (e *Encoder) I32(v int32) { e.U32(uint32(v)) }

// I64 appends v little-endian.
func (e *Encoder) I64(v int64) { e.U64(uint64(v)) }

// Bool appends 1 or 0.
func (e *Encoder) Bool(v bool) {
	if v {
		e.U8(1)
	} else {
		e.U8(0)
	}
}

// Raw appends b with no length prefix.
func (e *Encoder) Raw(b []byte) { e.B = append(e.B, b...) }

// Blob appends a bufferlist field: u32 length then the bytes.
func (e *Encoder) Blob(b []byte) {
	e.U32(uint32(len(b)))
	e.B = append(e.B, b...)
}

// String appends a std::string: u32 length then the bytes.
func (e *Encoder) String(s string) {
	e.U32(uint32(len(s)))
	e.B = append(e.B, s...)
}

// U32s appends a vector<u32>: u32 count then the items.
func (e *Encoder) U32s(v []uint32) {
	e.U32(uint32(len(v)))
	for _, x := range v {
		e.U32(x)
	}
}

// Strings appends a vector<string>.
func (e *Encoder) Strings(v []string) {
	e.U32(uint32(len(v)))
	for _, s := range v {
		e.String(s)
	}
}

// StringMap appends a map<string,string> in the given key order (Ceph's
// std::map is sorted; pass sorted keys for byte-identical output).
func (e *Encoder) StringMap(keys []string, m map[string]string) {
	e.U32(uint32(len(keys)))
	for _, k := range keys {
		e.String(k)
		e.String(m[k])
	}
}

// UUID appends the 16 raw bytes.
func (e *Encoder) UUID(u UUID) { e.B = append(e.B, u[:]...) }

// UTime appends seconds then nanoseconds.
func (e *Encoder) UTime(t UTime) {
	e.U32(t.Sec)
	e.U32(t.Nsec)
}

// EntityName appends an entity_name_t: u8 type, i64 num.
func (e *Encoder) EntityName(n msg.EntityName) {
	e.U8(uint8(n.Type))
	e.I64(n.Num)
}

// AuthEntityName appends an auth EntityName (e.g. "client.admin"): u32
// type, string id.
func (e *Encoder) AuthEntityName(typ msg.EntityType, id string) {
	e.U32(uint32(typ))
	e.String(id)
}

// StructStart begins a versioned structure (ENCODE_START): it appends
// struct_v, struct_compat and a length placeholder, and returns the mark
// to pass to StructEnd.
func (e *Encoder) StructStart(v, compat uint8) int {
	e.B = append(e.B, v, compat, 0, 0, 0, 0)
	return len(e.B)
}

// StructEnd fills in the length of the structure begun at mark.
func (e *Encoder) StructEnd(mark int) {
	binary.LittleEndian.PutUint32(e.B[mark-4:], uint32(len(e.B)-mark))
}

// Addr appends an entity_addr_t in the MSG_ADDR2 form (FACTS.md §2.2).
func (e *Encoder) Addr(a msg.Addr) {
	e.U8(1) // marker: new-style address
	mark := e.StructStart(1, 1)
	e.U32(uint32(a.Type))
	e.U32(a.Nonce)
	ip := a.AddrPort.Addr()
	port := a.AddrPort.Port()
	switch {
	case ip.Is4():
		e.U32(16) // sizeof(sockaddr_in)
		e.U16(afInet)
		e.B = binary.BigEndian.AppendUint16(e.B, port)
		v4 := ip.As4()
		e.B = append(e.B, v4[:]...)
		e.B = append(e.B, 0, 0, 0, 0, 0, 0, 0, 0) // sin_zero
	case ip.Is6():
		e.U32(28) // sizeof(sockaddr_in6)
		e.U16(afInet6)
		e.B = binary.BigEndian.AppendUint16(e.B, port)
		e.U32(0) // flowinfo
		v6 := ip.As16()
		e.B = append(e.B, v6[:]...)
		e.U32(0) // scope id
	default:
		// Blank: Ceph writes sizeof its sockaddr union (28), family 0 and
		// zeros.
		e.U32(28)
		e.B = append(e.B, make([]byte, 28)...)
	}
	e.StructEnd(mark)
}

// AddrVec appends an entity_addrvec_t (marker 2, u32 count, addresses).
func (e *Encoder) AddrVec(v msg.AddrVec) {
	e.U8(2)
	e.U32(uint32(len(v)))
	for _, a := range v {
		e.Addr(a)
	}
}

const (
	afInet  = 2
	afInet6 = 10
)

// AppendAddr appends the encoding of a to dst.
func AppendAddr(dst []byte, a msg.Addr) []byte {
	e := Encoder{B: dst}
	e.Addr(a)
	return e.B
}

// AppendAddrVec appends the encoding of v to dst.
func AppendAddrVec(dst []byte, v msg.AddrVec) []byte {
	e := Encoder{B: dst}
	e.AddrVec(v)
	return e.B
}
