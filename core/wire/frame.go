package wire

import (
	"encoding/binary"
	"math"
)

// Rev selects the frame layout: msgr2.0 (Rev0) or msgr2.1 (Rev1). Banner.Check
// picks it from the peer's banner.
type Rev uint8

// Frame layouts (FACTS.md §4.3, §4.4).
const (
	Rev0 Rev = 0 // msgr2.0: preamble, segments, 17-byte epilogue always
	Rev1 Rev = 1 // msgr2.1: preamble, seg0 + inline crc, segments, 13-byte epilogue if > 1 segment
)

// String returns "msgr2.0" or "msgr2.1".
func (r Rev) String() string {
	if r == Rev1 {
		return "msgr2.1"
	}
	if r == Rev0 {
		return "msgr2.0"
	}
	return "msgr2.?"
}

// Frame layout constants.
const (
	PreambleLen     = 32 // preamble size, crc included
	MaxSegments     = 4  // segments per frame
	EpilogueLenRev0 = 17 // u8 late_flags + 4 × u32 crc
	EpilogueLenRev1 = 13 // u8 late_status + 3 × u32 crc
	CRCLen          = 4  // one crc32c

	// AlignDefault is the advisory alignment of control payloads and of
	// message header/front/middle segments; AlignPage that of the message
	// data segment.
	AlignDefault uint16 = 8
	AlignPage    uint16 = 4096

	// LateFlagAborted is the rev0 epilogue bit for "frame aborted".
	LateFlagAborted uint8 = 0x01
	// LateStatusComplete / LateStatusAborted are the low nibbles of the rev1
	// epilogue's late_status; senders write LateStatusComplete (0x0E).
	LateStatusComplete uint8 = 0x0E
	LateStatusAborted  uint8 = 0x01

	// PreambleFlagCompressed is bit 0 of preamble byte 26 (17+ only).
	PreambleFlagCompressed uint8 = 0x01
)

// Default frame limits (Limits fields left 0 take these).
const (
	DefaultMaxSegmentLen = 256 << 20 // one segment
	DefaultMaxFrameLen   = 256 << 20 // sum of the segment lengths
	DefaultMaxControlLen = 1 << 20   // payload of a non-MESSAGE frame
)

// Limits bounds what DecodePreamble/DecodeFrame accept; a frame beyond them
// is ErrTooLarge before any of its payload is needed. Zero fields mean the
// Default* value.
type Limits struct {
	MaxSegmentLen uint32
	MaxFrameLen   uint32
	MaxControlLen uint32
}

func (l Limits) norm() Limits {
	if l.MaxSegmentLen == 0 {
		l.MaxSegmentLen = DefaultMaxSegmentLen
	}
	if l.MaxFrameLen == 0 {
		l.MaxFrameLen = DefaultMaxFrameLen
	}
	if l.MaxControlLen == 0 {
		l.MaxControlLen = DefaultMaxControlLen
	}
	return l
}

// SegmentDesc is one segment descriptor of the preamble.
type SegmentDesc struct {
	Len   uint32
	Align uint16
}

// Preamble is the decoded 32-byte frame preamble.
type Preamble struct {
	Tag         Tag
	NumSegments int // 1..MaxSegments
	Segments    [MaxSegments]SegmentDesc
	Flags       uint8 // byte 26 (17+: PreambleFlagCompressed); 0 from 16.x
}

// PayloadLen returns the sum of the announced segment lengths.
func (p *Preamble) PayloadLen() int {
	n := 0
	for i := 0; i < p.NumSegments; i++ {
		n += int(p.Segments[i].Len)
	}
	return n
}

// FrameLen returns the frame's total on-wire size in layout rev, preamble
// included.
func (p *Preamble) FrameLen(rev Rev) int {
	n := PreambleLen + p.PayloadLen()
	if rev == Rev0 {
		return n + EpilogueLenRev0
	}
	if p.Segments[0].Len > 0 {
		n += CRCLen
	}
	if p.NumSegments > 1 {
		n += EpilogueLenRev1
	}
	return n
}

// DecodePreamble decodes and checks the first PreambleLen bytes of b: the
// crc (ErrBadCRC), the segment count and an empty last segment
// (ErrBadPreamble), the tag (ErrUnknownTag) and the limits (ErrTooLarge).
func DecodePreamble(b []byte, lim Limits) (Preamble, error) {
	var p Preamble
	if err := DecodePreambleInto(&p, b, lim); err != nil {
		return Preamble{}, err
	}
	return p, nil
}

// DecodePreambleInto is DecodePreamble filling *p (on error *p is
// undefined). A receiver decodes one per frame: returning the struct by
// value cost a copy through memory per call (measured: the copies of the
// preamble and the frame were a third of the W2 server's decode loop).
func DecodePreambleInto(p *Preamble, b []byte, lim Limits) error {
	if len(b) < PreambleLen {
		return errf(ErrShort, "preamble needs %d bytes, have %d", PreambleLen, len(b))
	}
	b = b[:PreambleLen]
	want := binary.LittleEndian.Uint32(b[28:])
	if got := CRC32C(PreambleCRCSeed, b[:28]); got != want {
		return errf(ErrBadCRC, "preamble crc %#08x, computed %#08x", want, got)
	}
	p.Tag = Tag(b[0])
	p.NumSegments = int(b[1])
	p.Flags = b[26]
	if p.NumSegments < 1 || p.NumSegments > MaxSegments {
		return errf(ErrBadPreamble, "%d segments", p.NumSegments)
	}
	for i := 0; i < MaxSegments; i++ {
		o := 2 + 6*i
		p.Segments[i] = SegmentDesc{
			Len:   binary.LittleEndian.Uint32(b[o:]),
			Align: binary.LittleEndian.Uint16(b[o+4:]),
		}
	}
	if p.NumSegments > 1 && p.Segments[p.NumSegments-1].Len == 0 {
		return errf(ErrBadPreamble, "last of %d segments is empty", p.NumSegments)
	}
	if !p.Tag.Valid() {
		return errf(ErrUnknownTag, "tag %d", b[0])
	}
	lim = lim.norm()
	var sum uint64
	for i := 0; i < p.NumSegments; i++ {
		l := p.Segments[i].Len
		if l > lim.MaxSegmentLen {
			return errf(ErrTooLarge, "%v segment %d is %d bytes, limit %d", p.Tag, i, l, lim.MaxSegmentLen)
		}
		sum += uint64(l)
	}
	if sum > uint64(lim.MaxFrameLen) {
		return errf(ErrTooLarge, "%v frame payload %d bytes, limit %d", p.Tag, sum, lim.MaxFrameLen)
	}
	if p.Tag != TagMessage && sum > uint64(lim.MaxControlLen) {
		return errf(ErrTooLarge, "%v control payload %d bytes, limit %d", p.Tag, sum, lim.MaxControlLen)
	}
	// A frame must fit in an int (matters on 32-bit platforms only).
	if sum > math.MaxInt32-PreambleLen-EpilogueLenRev0-CRCLen {
		return errf(ErrTooLarge, "frame payload %d bytes", sum)
	}
	return nil
}

// FrameSize tells a reader how many bytes the frame at the start of buf
// takes in total: PreambleLen while fewer than PreambleLen bytes are
// buffered, then (after checking the preamble as DecodePreamble does) the
// full frame size. Read until len(buf) >= the returned size, then call
// DecodeFrame.
func FrameSize(buf []byte, rev Rev, lim Limits) (int, error) {
	if len(buf) < PreambleLen {
		return PreambleLen, nil
	}
	p, err := DecodePreamble(buf, lim)
	if err != nil {
		return 0, err
	}
	return p.FrameLen(rev), nil
}

// Frame is a decoded frame. Its segments alias the input buffer.
type Frame struct {
	Tag         Tag
	Flags       uint8 // preamble byte 26
	NumSegments int
	// Segments holds the announced segments (nil beyond NumSegments). For
	// a MESSAGE they are header2, front, middle, data.
	Segments [MaxSegments][]byte
	// Aborted: the sender aborted the frame (late flag/status); the caller
	// must drop it. Its crcs were still checked, as Ceph does.
	Aborted bool
}

// Payload returns segment 0, the payload of a control frame.
func (f *Frame) Payload() []byte { return f.Segments[0] }

// DecodeFrame decodes the frame at the start of buf in layout rev and
// returns it and its size. The segments alias buf (no copy). It verifies
// the preamble (see DecodePreamble) and every segment crc (ErrBadCRC), and
// returns ErrShort while buf holds less than the whole frame.
func DecodeFrame(buf []byte, rev Rev, lim Limits) (Frame, int, error) {
	p, err := DecodePreamble(buf, lim)
	if err != nil {
		return Frame{}, 0, err
	}
	return DecodeFrameWith(buf, &p, rev)
}

// DecodeFrameWith is DecodeFrame for a reader that has already decoded
// the frame's preamble: p must be what DecodePreamble returned for this
// buf. The preamble is not decoded nor its crc computed a second time (a
// receiver calls DecodePreamble first to learn the frame's size); the
// segment crcs are verified as by DecodeFrame.
func DecodeFrameWith(buf []byte, p *Preamble, rev Rev) (Frame, int, error) {
	var f Frame
	n, err := DecodeFrameInto(&f, buf, p, rev)
	if err != nil {
		return Frame{}, 0, err
	}
	return f, n, nil
}

// DecodeFrameInto is DecodeFrameWith filling *f (on error *f is
// undefined), without the copy of a returned struct.
func DecodeFrameInto(f *Frame, buf []byte, p *Preamble, rev Rev) (int, error) {
	total := p.FrameLen(rev)
	if len(buf) < total {
		return 0, errf(ErrShort, "%v frame needs %d bytes, have %d", p.Tag, total, len(buf))
	}
	buf = buf[:total]
	*f = Frame{Tag: p.Tag, Flags: p.Flags, NumSegments: p.NumSegments}
	off := PreambleLen
	le := binary.LittleEndian
	if rev == Rev0 {
		for i := 0; i < p.NumSegments; i++ {
			l := int(p.Segments[i].Len)
			f.Segments[i] = buf[off : off+l : off+l]
			off += l
		}
		// As Ceph: crcs first, then the abort flag.
		for i := 0; i < p.NumSegments; i++ {
			want := le.Uint32(buf[off+1+4*i:])
			if got := CRC32C(SegmentCRCSeed, f.Segments[i]); got != want {
				return 0, errf(ErrBadCRC, "%v segment %d crc %#08x, computed %#08x", p.Tag, i, want, got)
			}
		}
		f.Aborted = buf[off]&LateFlagAborted != 0
		return total, nil
	}
	l0 := int(p.Segments[0].Len)
	f.Segments[0] = buf[off : off+l0 : off+l0]
	off += l0
	if l0 > 0 {
		want := le.Uint32(buf[off:])
		if got := CRC32C(SegmentCRCSeed, f.Segments[0]); got != want {
			return 0, errf(ErrBadCRC, "%v segment 0 crc %#08x, computed %#08x", p.Tag, want, got)
		}
		off += CRCLen
	}
	if p.NumSegments == 1 {
		return total, nil
	}
	for i := 1; i < p.NumSegments; i++ {
		l := int(p.Segments[i].Len)
		f.Segments[i] = buf[off : off+l : off+l]
		off += l
	}
	// As Ceph: crcs first, then late_status (low nibble only; the high
	// nibble is reserved).
	for i := 1; i < p.NumSegments; i++ {
		want := le.Uint32(buf[off+1+4*(i-1):])
		if got := CRC32C(SegmentCRCSeed, f.Segments[i]); got != want {
			return 0, errf(ErrBadCRC, "%v segment %d crc %#08x, computed %#08x", p.Tag, i, want, got)
		}
	}
	switch buf[off] & 0x0F {
	case LateStatusComplete:
	case LateStatusAborted:
		f.Aborted = true
	default:
		return 0, errf(ErrBadEpilogue, "late_status %#02x", buf[off])
	}
	return total, nil
}

// segAlign is the alignment Ceph announces for segment i of a frame with
// tag t.
func segAlign(t Tag, i int) uint16 {
	if t == TagMessage && i == 3 {
		return AlignPage
	}
	return AlignDefault
}

// numSegments returns the index of the last non-empty segment + 1, at
// least 1.
func numSegments(segs [][]byte) int {
	n := 1
	for i := len(segs) - 1; i > 0; i-- {
		if len(segs[i]) > 0 {
			n = i + 1
			break
		}
	}
	return n
}

// FrameLen returns the on-wire size AppendFrame produces for segs.
func FrameLen(rev Rev, tag Tag, segs ...[]byte) int {
	p := Preamble{Tag: tag, NumSegments: numSegments(segs)}
	for i := 0; i < p.NumSegments && i < len(segs); i++ {
		p.Segments[i].Len = uint32(len(segs[i]))
	}
	return p.FrameLen(rev)
}

// AppendFrame appends a complete frame (preamble, segments, crcs,
// epilogue) in layout rev to dst, without allocating when dst has room
// (FrameLen tells how much). Trailing empty segments are not announced;
// alignments are Ceph's (8, and 4096 for a MESSAGE's data segment). It
// fails with ErrTooLarge for more than MaxSegments segments or a segment
// longer than 4 GiB - 1.
func AppendFrame(dst []byte, rev Rev, tag Tag, segs ...[]byte) ([]byte, error) {
	if len(segs) > MaxSegments {
		return dst, errf(ErrTooLarge, "%d segments", len(segs))
	}
	for i, s := range segs {
		if uint64(len(s)) > math.MaxUint32 {
			return dst, errf(ErrTooLarge, "segment %d is %d bytes", i, len(s))
		}
	}
	n := numSegments(segs)
	var fb frameBuilder
	dst = fb.begin(dst, rev, tag)
	for i := 0; i < n; i++ {
		dst = append(dst, segAt(segs, i)...)
		dst = fb.endSegment(dst)
	}
	return fb.finish(dst), nil
}

func segAt(segs [][]byte, i int) []byte {
	if i < len(segs) {
		return segs[i]
	}
	return nil
}

// frameBuilder assembles a frame in place at the end of a byte slice:
// begin reserves the preamble, the caller appends each announced segment
// and calls endSegment after it, and finish writes the epilogue and fills
// the preamble. Crcs are computed over the bytes already in dst, so the
// caller's segment slices never reach the crc code (which keeps them from
// escaping to the heap).
type frameBuilder struct {
	start    int // offset of the preamble
	segStart int // offset of the current segment
	n        int // segments ended so far
	rev      Rev
	tag      Tag
	lens     [MaxSegments]uint32
	crcs     [MaxSegments]uint32
}

func (fb *frameBuilder) begin(dst []byte, rev Rev, tag Tag) []byte {
	fb.start, fb.rev, fb.tag = len(dst), rev, tag
	dst = append(dst, make([]byte, PreambleLen)...)
	fb.segStart = len(dst)
	return dst
}

func (fb *frameBuilder) endSegment(dst []byte) []byte {
	seg := dst[fb.segStart:]
	i := fb.n
	fb.lens[i] = uint32(len(seg))
	fb.crcs[i] = CRC32C(SegmentCRCSeed, seg)
	fb.n++
	if fb.rev == Rev1 && i == 0 && len(seg) > 0 {
		dst = binary.LittleEndian.AppendUint32(dst, fb.crcs[0])
	}
	fb.segStart = len(dst)
	return dst
}

// putPreamble writes the preamble of a frame of n segments of lengths
// lens[:n] into pre[:PreambleLen], crc included.
func putPreamble(pre []byte, tag Tag, n int, lens *[MaxSegments]uint32) {
	_ = pre[PreambleLen-1]
	pre[0] = byte(tag)
	pre[1] = byte(n)
	for i := 0; i < MaxSegments; i++ {
		o := 2 + 6*i
		if i < n {
			binary.LittleEndian.PutUint32(pre[o:], lens[i])
			binary.LittleEndian.PutUint16(pre[o+4:], segAlign(tag, i))
		} else {
			clear(pre[o : o+6])
		}
	}
	pre[26], pre[27] = 0, 0
	binary.LittleEndian.PutUint32(pre[28:], CRC32C(PreambleCRCSeed, pre[:28]))
}

func (fb *frameBuilder) finish(dst []byte) []byte {
	if fb.n == 0 { // an empty frame announces one empty segment
		dst = fb.endSegment(dst)
	}
	putPreamble(dst[fb.start:fb.start+PreambleLen], fb.tag, fb.n, &fb.lens)
	if fb.rev == Rev0 {
		dst = append(dst, 0)
		for i := 0; i < MaxSegments; i++ {
			dst = binary.LittleEndian.AppendUint32(dst, fb.crcs[i]) // 0 when unannounced
		}
		return dst
	}
	if fb.n > 1 {
		dst = append(dst, LateStatusComplete)
		for i := 1; i < MaxSegments; i++ {
			dst = binary.LittleEndian.AppendUint32(dst, fb.crcs[i])
		}
	}
	return dst
}

// StartControlFrame reserves room for a preamble at the end of dst and
// returns the extended slice and a mark. Append the payload to the
// returned slice (e.g. with a payload's Encode), then call
// FinishControlFrame: this builds a one-segment frame in place, with no
// allocation and no copy.
func StartControlFrame(dst []byte) ([]byte, int) {
	mark := len(dst)
	return append(dst, make([]byte, PreambleLen)...), mark
}

// FinishControlFrame completes the frame begun by StartControlFrame at
// mark: the bytes after the reserved preamble are its single segment.
func FinishControlFrame(dst []byte, mark int, rev Rev, tag Tag) []byte {
	fb := frameBuilder{start: mark, segStart: mark + PreambleLen, rev: rev, tag: tag}
	dst = fb.endSegment(dst)
	return fb.finish(dst)
}

// AppendControlFrame appends p as a one-segment control frame.
func AppendControlFrame(dst []byte, rev Rev, p Payload) []byte {
	dst, mark := StartControlFrame(dst)
	dst = p.Encode(dst)
	return FinishControlFrame(dst, mark, rev, p.Tag())
}
