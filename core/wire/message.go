package wire

import (
	"encoding/binary"
	"math"
	"slices"

	"github.com/msgr-dev/msgr/core/msg"
)

// HeaderLen is the size of ceph_msg_header2, segment 0 of a MESSAGE.
const HeaderLen = msg.HeaderLen

// Segment indexes of a MESSAGE frame.
const (
	SegHeader = 0
	SegFront  = 1
	SegMiddle = 2
	SegData   = 3
)

// AppendHeader2 appends the 41-byte ceph_msg_header2 encoding of h.
func AppendHeader2(dst []byte, h *msg.Header) []byte {
	n := len(dst)
	dst = slices.Grow(dst, HeaderLen)[:n+HeaderLen]
	putHeader2(dst[n:], h)
	return dst
}

// putHeader2 writes h's ceph_msg_header2 encoding into b[:HeaderLen].
func putHeader2(b []byte, h *msg.Header) {
	_ = b[HeaderLen-1]
	le := binary.LittleEndian
	le.PutUint64(b[0:], h.Seq)
	le.PutUint64(b[8:], h.Tid)
	le.PutUint16(b[16:], h.Type)
	le.PutUint16(b[18:], h.Priority)
	le.PutUint16(b[20:], h.Version)
	le.PutUint32(b[22:], h.DataPrePaddingLen)
	le.PutUint16(b[26:], h.DataOff)
	le.PutUint64(b[28:], h.AckSeq)
	b[36] = h.Flags
	le.PutUint16(b[37:], h.CompatVersion)
	le.PutUint16(b[39:], h.Reserved)
}

// DecodeHeader2 decodes a ceph_msg_header2 from the start of b (ErrShort
// if b is shorter than HeaderLen; extra bytes are ignored).
func DecodeHeader2(b []byte) (msg.Header, error) {
	if len(b) < HeaderLen {
		return msg.Header{}, errf(ErrShort, "ceph_msg_header2 needs %d bytes, have %d", HeaderLen, len(b))
	}
	le := binary.LittleEndian
	return msg.Header{
		Seq:               le.Uint64(b[0:]),
		Tid:               le.Uint64(b[8:]),
		Type:              le.Uint16(b[16:]),
		Priority:          le.Uint16(b[18:]),
		Version:           le.Uint16(b[20:]),
		DataPrePaddingLen: le.Uint32(b[22:]),
		DataOff:           le.Uint16(b[26:]),
		AckSeq:            le.Uint64(b[28:]),
		Flags:             b[36],
		CompatVersion:     le.Uint16(b[37:]),
		Reserved:          le.Uint16(b[39:]),
	}, nil
}

// MessageFrameLen returns the on-wire size of m as a MESSAGE frame.
func MessageFrameLen(rev Rev, m *msg.Message) int {
	var hdr [HeaderLen]byte
	return FrameLen(rev, TagMessage, hdr[:], m.Front, m.Middle, m.Data)
}

// AppendMessageFrame appends m (header as is: the caller sets Seq and
// AckSeq) as a MESSAGE frame. It does not allocate when dst has room
// (MessageFrameLen).
func AppendMessageFrame(dst []byte, rev Rev, m *msg.Message) ([]byte, error) {
	if rev == Rev1 && uint64(len(m.Front)|len(m.Middle)|len(m.Data)) <= math.MaxUint32 {
		return appendMessageFrameRev1(dst, m), nil
	}
	return appendMessageFrame(dst, rev, m)
}

// appendMessageFrameRev1 is AppendMessageFrame for msgr2.1, every frame a
// sender writes, with the layout computed once and written in place (the
// general frame builder, a loop of appends per segment, was a quarter of
// a W2 client's profile).
func appendMessageFrameRev1(dst []byte, m *msg.Message) []byte {
	segs := [MaxSegments][]byte{nil, m.Front, m.Middle, m.Data}
	n := 1
	for i := MaxSegments - 1; i > 0; i-- {
		if len(segs[i]) > 0 {
			n = i + 1
			break
		}
	}
	body := len(m.Front) + len(m.Middle) + len(m.Data)
	total := PreambleLen + HeaderLen + CRCLen + body
	if n > 1 {
		total += EpilogueLenRev1
	}
	start := len(dst)
	dst = slices.Grow(dst, total)[:start+total]
	b := dst[start:]
	le := binary.LittleEndian
	off := PreambleLen
	putHeader2(b[off:off+HeaderLen], &m.Header)
	segs[0] = b[off : off+HeaderLen]
	off += HeaderLen
	le.PutUint32(b[off:], CRC32C(SegmentCRCSeed, segs[0]))
	off += CRCLen
	var crcs [MaxSegments]uint32 // 0 for segments not announced
	for i := 1; i < n; i++ {
		k := copy(b[off:], segs[i])
		crcs[i] = CRC32C(SegmentCRCSeed, b[off:off+k])
		off += k
	}
	if n > 1 {
		e := b[off : off+EpilogueLenRev1]
		e[0] = LateStatusComplete
		le.PutUint32(e[1:], crcs[1])
		le.PutUint32(e[5:], crcs[2])
		le.PutUint32(e[9:], crcs[3])
	}
	lens := [MaxSegments]uint32{HeaderLen, uint32(len(m.Front)), uint32(len(m.Middle)), uint32(len(m.Data))}
	putPreamble(b[:PreambleLen], TagMessage, n, &lens)
	return dst
}

// appendMessageFrame is AppendMessageFrame through the general frame
// builder (msgr2.0, and the reference the fast path is tested against).
func appendMessageFrame(dst []byte, rev Rev, m *msg.Message) ([]byte, error) {
	segs := [MaxSegments - 1][]byte{m.Front, m.Middle, m.Data}
	n := 1
	for i, s := range segs {
		if uint64(len(s)) > math.MaxUint32 {
			return dst, errf(ErrTooLarge, "message segment %d is %d bytes", i+1, len(s))
		}
		if len(s) > 0 {
			n = i + 2
		}
	}
	var fb frameBuilder
	dst = fb.begin(dst, rev, TagMessage)
	dst = AppendHeader2(dst, &m.Header)
	dst = fb.endSegment(dst)
	for i := 1; i < n; i++ {
		dst = append(dst, segs[i-1]...)
		dst = fb.endSegment(dst)
	}
	return fb.finish(dst), nil
}

// DecodeMessage fills m from a MESSAGE frame: the header from segment 0
// and Front/Middle/Data aliasing the frame's segments (no copy; nil when
// absent). It returns ErrMalformed for another tag and ErrShort for a
// short header. m.Src and m.DataFree are left alone.
func DecodeMessage(f *Frame, m *msg.Message) error {
	if f.Tag != TagMessage {
		return errf(ErrMalformed, "%v frame is not a MESSAGE", f.Tag)
	}
	h, err := DecodeHeader2(f.Segments[SegHeader])
	if err != nil {
		return err
	}
	m.Header = h
	m.Front = f.Segments[SegFront]
	m.Middle = f.Segments[SegMiddle]
	m.Data = f.Segments[SegData]
	return nil
}
