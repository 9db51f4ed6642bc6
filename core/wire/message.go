package wire

import (
	"encoding/binary"
	"math"

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
	le := binary.LittleEndian
	dst = le.AppendUint64(dst, h.Seq)
	dst = le.AppendUint64(dst, h.Tid)
	dst = le.AppendUint16(dst, h.Type)
	dst = le.AppendUint16(dst, h.Priority)
	dst = le.AppendUint16(dst, h.Version)
	dst = le.AppendUint32(dst, h.DataPrePaddingLen)
	dst = le.AppendUint16(dst, h.DataOff)
	dst = le.AppendUint64(dst, h.AckSeq)
	dst = append(dst, h.Flags)
	dst = le.AppendUint16(dst, h.CompatVersion)
	return le.AppendUint16(dst, h.Reserved)
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
