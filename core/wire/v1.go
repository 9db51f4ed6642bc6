package wire

import (
	"encoding/binary"
	"errors"
	"math"
	"net/netip"
	"strconv"

	"github.com/msgr-dev/msgr/core/msg"
)

// msgr v1 ("legacy", Ceph's ProtocolV1) wire format: the banner, the
// 136-byte legacy entity_addr_t, ceph_msg_connect / ceph_msg_connect_reply,
// the one-byte stream tags, ceph_msg_header and the two footer layouts.
// See /work/shared/msgr2/V1-FACTS.md. Every struct is packed little-endian
// except where noted (the sockaddr family and port are big-endian).

// Sizes of the fixed v1 structures.
const (
	V1BannerLen       = 9   // "ceph v027"
	V1AddrLen         = 136 // legacy entity_addr_t
	V1ConnectLen      = 33  // ceph_msg_connect
	V1ConnectReplyLen = 26  // ceph_msg_connect_reply
	V1HeaderLen       = 53  // ceph_msg_header, crc included
	V1FooterLen       = 21  // ceph_msg_footer (MSG_AUTH sessions)
	V1FooterOldLen    = 13  // ceph_msg_footer_old (no MSG_AUTH)
	V1SeqLen          = 8   // the u64 after a SEQ reply, and the ACK body
	V1TimespecLen     = 8   // ceph_timespec of KEEPALIVE2 / KEEPALIVE2_ACK

	// V1ServerHelloLen is what a server sends first: banner, its own
	// address and the client's address as it sees it.
	V1ServerHelloLen = V1BannerLen + 2*V1AddrLen
	// V1ClientHelloLen is what a server reads first: banner and the
	// client's own address.
	V1ClientHelloLen = V1BannerLen + V1AddrLen

	// MaxV1AuthorizerLen bounds an authorizer (connect) or authorizer
	// reply (connect reply). Ceph asserts replies stay under 4096; cephx
	// authorizers are a few hundred bytes.
	MaxV1AuthorizerLen = 64 << 10
)

// V1Banner is CEPH_BANNER: 9 bytes, no terminator.
const V1Banner = msgr1Prefix

// V1CRCSeed is the crc32c seed of every v1 crc (header, front, middle,
// data). msgr2 segments use SegmentCRCSeed instead.
const V1CRCSeed uint32 = 0

// Ceph feature bits v1 itself depends on (V1-FACTS §4).
const (
	// V1FeatureReconnectSeq (RECONNECT_SEQ, bit 6): the server answers SEQ
	// plus an in_seq exchange instead of READY.
	V1FeatureReconnectSeq uint64 = 1 << 6
	// V1FeatureMsgAuth (MSG_AUTH, bit 23): messages end with the 21-byte
	// footer (with sig); without it the 13-byte old footer.
	V1FeatureMsgAuth uint64 = 1 << 23
	// V1FeatureKeepalive2 (MSGR_KEEPALIVE2, bit 42): keepalives carry a
	// timestamp (KEEPALIVE2) instead of the bare KEEPALIVE tag.
	V1FeatureKeepalive2 uint64 = msg.FeatureMsgrKeepalive2
)

// V1ConnectLossy is the flag of ceph_msg_connect / _reply: the session
// is lossy (in a connect only "fyi"; the server's reply decides).
const V1ConnectLossy uint8 = 1

// Footer flags (CEPH_MSG_FOOTER_*).
const (
	V1FooterComplete uint8 = msg.FlagComplete // not aborted
	V1FooterNoCRC    uint8 = msg.FlagNoCRC    // data crc not computed
	V1FooterSigned   uint8 = msg.FlagSigned   // sig is set (cephx)
)

// v1 errors (test with errors.Is).
var (
	// ErrMsgr2Banner: a v1 endpoint got the msgr2 banner ("ceph v2\n").
	ErrMsgr2Banner = errors.New("wire: peer speaks msgr2")
	// ErrAborted: a v1 message footer without the COMPLETE flag (the
	// sender aborted it); Ceph faults the connection.
	ErrAborted = errors.New("wire: message aborted by the sender")
)

// V1Tag is a v1 tag: the first byte of a connect reply, and the byte in
// front of every item of the stream after the handshake.
type V1Tag uint8

// v1 tags, values as in Ceph's msgr.h.
const (
	V1TagReady               V1Tag = 1  // reply: session open (no in_seq exchange)
	V1TagResetSession        V1Tag = 2  // reply: the server has no such session
	V1TagWait                V1Tag = 3  // reply: connection race, back off
	V1TagRetrySession        V1Tag = 4  // reply: retry with reply.connect_seq
	V1TagRetryGlobal         V1Tag = 5  // reply: retry with a global_seq above reply.global_seq
	V1TagClose               V1Tag = 6  // stream: the peer is closing
	V1TagMsg                 V1Tag = 7  // stream: a message follows
	V1TagAck                 V1Tag = 8  // stream: u64 seq follows
	V1TagKeepalive           V1Tag = 9  // stream: no body
	V1TagBadProtoVer         V1Tag = 10 // reply: protocol_version mismatch
	V1TagBadAuthorizer       V1Tag = 11 // reply: authorizer refused
	V1TagFeatures            V1Tag = 12 // reply: required features missing
	V1TagSeq                 V1Tag = 13 // reply: open, u64 in_seq follows
	V1TagKeepalive2          V1Tag = 14 // stream: ceph_timespec follows
	V1TagKeepalive2Ack       V1Tag = 15 // stream: ceph_timespec follows
	V1TagChallengeAuthorizer V1Tag = 16 // reply: cephx challenge, authorizer reply follows
)

var v1TagNames = [...]string{
	V1TagReady:               "READY",
	V1TagResetSession:        "RESETSESSION",
	V1TagWait:                "WAIT",
	V1TagRetrySession:        "RETRY_SESSION",
	V1TagRetryGlobal:         "RETRY_GLOBAL",
	V1TagClose:               "CLOSE",
	V1TagMsg:                 "MSG",
	V1TagAck:                 "ACK",
	V1TagKeepalive:           "KEEPALIVE",
	V1TagBadProtoVer:         "BADPROTOVER",
	V1TagBadAuthorizer:       "BADAUTHORIZER",
	V1TagFeatures:            "FEATURES",
	V1TagSeq:                 "SEQ",
	V1TagKeepalive2:          "KEEPALIVE2",
	V1TagKeepalive2Ack:       "KEEPALIVE2_ACK",
	V1TagChallengeAuthorizer: "CHALLENGE_AUTHORIZER",
}

// Valid reports whether t is a known v1 tag.
func (t V1Tag) Valid() bool { return int(t) < len(v1TagNames) && v1TagNames[t] != "" }

// String returns Ceph's name ("READY", ...) or "TAG(n)".
func (t V1Tag) String() string {
	if t.Valid() {
		return v1TagNames[t]
	}
	return "TAG(" + strconv.Itoa(int(t)) + ")"
}

// --- banner ------------------------------------------------------------------

// AppendV1Banner appends "ceph v027".
func AppendV1Banner(dst []byte) []byte { return append(dst, V1Banner...) }

// CheckV1Banner checks the start of a v1 banner: b may be shorter than
// V1BannerLen (only the bytes present are compared), so a wrong banner
// is refused as soon as it shows. The msgr2 banner is ErrMsgr2Banner,
// anything else ErrBadBanner.
func CheckV1Banner(b []byte) error {
	n := min(len(b), V1BannerLen)
	if string(b[:n]) == V1Banner[:n] {
		return nil
	}
	// "ceph v2\n" shares the first 6 bytes; byte 6 is '2', not '0'.
	if m := min(len(b), BannerPrefixLen); m > 6 && string(b[:m]) == BannerPrefix[:m] {
		return ErrMsgr2Banner
	}
	return errf(ErrBadBanner, "expected %q, got %q", V1Banner, b[:n])
}

// --- legacy entity_addr_t ----------------------------------------------------

// AppendV1Addr appends a's 136-byte legacy encoding: u32 type (always 0,
// as Ceph writes it), u32 nonce, then a Linux sockaddr_storage whose
// family is big-endian (AF_INET = 00 02), port big-endian, IPv4 address
// (or IPv6 flowinfo 0, address, scope id 0), zero-filled to 128 bytes. A
// blank address is family 0 and zeros. The address type is not encoded.
func AppendV1Addr(dst []byte, a msg.Addr) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, V1AddrLen)...)
	b := dst[start:]
	binary.LittleEndian.PutUint32(b[4:], a.Nonce)
	ip := a.AddrPort.Addr()
	switch {
	case ip.Is4():
		binary.BigEndian.PutUint16(b[8:], afInet)
		binary.BigEndian.PutUint16(b[10:], a.AddrPort.Port())
		v4 := ip.As4()
		copy(b[12:], v4[:])
	case ip.Is6():
		binary.BigEndian.PutUint16(b[8:], afInet6)
		binary.BigEndian.PutUint16(b[10:], a.AddrPort.Port())
		v6 := ip.As16()
		copy(b[16:], v6[:]) // after the 4-byte flowinfo
	}
	return dst
}

// DecodeV1Addr decodes a 136-byte legacy entity_addr_t from the start of
// b. As in Ceph, the first byte (the new-style marker) must be 0 and the
// other three bytes of the type are ignored; the type is AddrLegacy when
// a family is set and AddrNone for a blank address (family 0). Families
// other than AF_INET and AF_INET6 are ErrMalformed; flowinfo and scope id
// are dropped.
func DecodeV1Addr(b []byte) (msg.Addr, error) {
	if len(b) < V1AddrLen {
		return msg.Addr{}, errf(ErrShort, "legacy entity_addr_t needs %d bytes, have %d", V1AddrLen, len(b))
	}
	if b[0] != 0 {
		return msg.Addr{}, errf(ErrMalformed, "legacy entity_addr_t starts with %d, not 0", b[0])
	}
	a := msg.Addr{Nonce: binary.LittleEndian.Uint32(b[4:])}
	fam := binary.BigEndian.Uint16(b[8:])
	port := binary.BigEndian.Uint16(b[10:])
	switch fam {
	case 0:
		return a, nil
	case afInet:
		a.AddrPort = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[12:16])), port)
	case afInet6:
		a.AddrPort = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[16:32])), port)
	default:
		return msg.Addr{}, errf(ErrMalformed, "legacy entity_addr_t family %d", fam)
	}
	a.Type = msg.AddrLegacy
	return a, nil
}

// --- connect / connect reply -------------------------------------------------

// V1Connect is ceph_msg_connect (33 bytes), sent by the client, followed
// by AuthorizerLen bytes of authorizer.
type V1Connect struct {
	Features           uint64 // supported features
	HostType           uint32 // sender's entity type
	GlobalSeq          uint32
	ConnectSeq         uint32
	ProtocolVersion    uint32
	AuthorizerProtocol uint32 // auth method of the authorizer, 0 for none
	AuthorizerLen      uint32
	Flags              uint8 // V1ConnectLossy
}

// Append appends the 33-byte encoding.
func (c *V1Connect) Append(dst []byte) []byte {
	le := binary.LittleEndian
	dst = le.AppendUint64(dst, c.Features)
	dst = le.AppendUint32(dst, c.HostType)
	dst = le.AppendUint32(dst, c.GlobalSeq)
	dst = le.AppendUint32(dst, c.ConnectSeq)
	dst = le.AppendUint32(dst, c.ProtocolVersion)
	dst = le.AppendUint32(dst, c.AuthorizerProtocol)
	dst = le.AppendUint32(dst, c.AuthorizerLen)
	return append(dst, c.Flags)
}

// DecodeV1Connect decodes a ceph_msg_connect from the start of b. It
// does not read the authorizer; AuthorizerLen above MaxV1AuthorizerLen is
// ErrTooLarge.
func DecodeV1Connect(b []byte) (V1Connect, error) {
	if len(b) < V1ConnectLen {
		return V1Connect{}, errf(ErrShort, "ceph_msg_connect needs %d bytes, have %d", V1ConnectLen, len(b))
	}
	le := binary.LittleEndian
	c := V1Connect{
		Features:           le.Uint64(b[0:]),
		HostType:           le.Uint32(b[8:]),
		GlobalSeq:          le.Uint32(b[12:]),
		ConnectSeq:         le.Uint32(b[16:]),
		ProtocolVersion:    le.Uint32(b[20:]),
		AuthorizerProtocol: le.Uint32(b[24:]),
		AuthorizerLen:      le.Uint32(b[28:]),
		Flags:              b[32],
	}
	if c.AuthorizerLen > MaxV1AuthorizerLen {
		return c, errf(ErrTooLarge, "authorizer of %d bytes", c.AuthorizerLen)
	}
	return c, nil
}

// V1ConnectReply is ceph_msg_connect_reply (26 bytes), the server's answer
// to a connect, followed by AuthorizerLen bytes of authorizer reply (and,
// for tag SEQ, the server's u64 in_seq).
type V1ConnectReply struct {
	Tag             V1Tag
	Features        uint64
	GlobalSeq       uint32
	ConnectSeq      uint32
	ProtocolVersion uint32
	AuthorizerLen   uint32
	Flags           uint8 // V1ConnectLossy
}

// Append appends the 26-byte encoding.
func (r *V1ConnectReply) Append(dst []byte) []byte {
	le := binary.LittleEndian
	dst = append(dst, byte(r.Tag))
	dst = le.AppendUint64(dst, r.Features)
	dst = le.AppendUint32(dst, r.GlobalSeq)
	dst = le.AppendUint32(dst, r.ConnectSeq)
	dst = le.AppendUint32(dst, r.ProtocolVersion)
	dst = le.AppendUint32(dst, r.AuthorizerLen)
	return append(dst, r.Flags)
}

// DecodeV1ConnectReply decodes a ceph_msg_connect_reply from the start of
// b. The tag is not checked (the caller decides what it accepts);
// AuthorizerLen above MaxV1AuthorizerLen is ErrTooLarge.
func DecodeV1ConnectReply(b []byte) (V1ConnectReply, error) {
	if len(b) < V1ConnectReplyLen {
		return V1ConnectReply{}, errf(ErrShort, "ceph_msg_connect_reply needs %d bytes, have %d", V1ConnectReplyLen, len(b))
	}
	le := binary.LittleEndian
	r := V1ConnectReply{
		Tag:             V1Tag(b[0]),
		Features:        le.Uint64(b[1:]),
		GlobalSeq:       le.Uint32(b[9:]),
		ConnectSeq:      le.Uint32(b[13:]),
		ProtocolVersion: le.Uint32(b[17:]),
		AuthorizerLen:   le.Uint32(b[21:]),
		Flags:           b[25],
	}
	if r.AuthorizerLen > MaxV1AuthorizerLen {
		return r, errf(ErrTooLarge, "authorizer reply of %d bytes", r.AuthorizerLen)
	}
	return r, nil
}

// --- stream items ------------------------------------------------------------

// AppendV1Seq appends a bare u64 (the in_seq exchanged after SEQ).
func AppendV1Seq(dst []byte, seq uint64) []byte {
	return binary.LittleEndian.AppendUint64(dst, seq)
}

// AppendV1Ack appends an ACK: tag 8 and the u64 seq.
func AppendV1Ack(dst []byte, seq uint64) []byte {
	return binary.LittleEndian.AppendUint64(append(dst, byte(V1TagAck)), seq)
}

// AppendV1Keepalive2 appends a KEEPALIVE2 (or, with tag
// V1TagKeepalive2Ack, its ack): the tag and a ceph_timespec.
func AppendV1Keepalive2(dst []byte, tag V1Tag, t UTime) []byte {
	dst = append(dst, byte(tag))
	dst = binary.LittleEndian.AppendUint32(dst, t.Sec)
	return binary.LittleEndian.AppendUint32(dst, t.Nsec)
}

// DecodeV1Timespec decodes the ceph_timespec at the start of b.
func DecodeV1Timespec(b []byte) (UTime, error) {
	if len(b) < V1TimespecLen {
		return UTime{}, errf(ErrShort, "ceph_timespec needs %d bytes, have %d", V1TimespecLen, len(b))
	}
	return UTime{Sec: binary.LittleEndian.Uint32(b), Nsec: binary.LittleEndian.Uint32(b[4:])}, nil
}

// --- messages ----------------------------------------------------------------

// V1Header is ceph_msg_header (53 bytes, V1-FACTS §7.1).
type V1Header struct {
	Seq           uint64
	Tid           uint64
	Type          uint16
	Priority      uint16
	Version       uint16
	FrontLen      uint32
	MiddleLen     uint32
	DataLen       uint32
	DataOff       uint16
	Src           msg.EntityName // u8 type, i64 num
	CompatVersion uint16
	Reserved      uint16
	CRC           uint32 // crc32c(0, the 49 bytes before it)
}

// PayloadLen returns FrontLen+MiddleLen+DataLen.
func (h *V1Header) PayloadLen() int { return int(h.FrontLen) + int(h.MiddleLen) + int(h.DataLen) }

// Append appends the 53-byte encoding with the crc computed (h.CRC is
// ignored).
func (h *V1Header) Append(dst []byte) []byte {
	le := binary.LittleEndian
	start := len(dst)
	dst = le.AppendUint64(dst, h.Seq)
	dst = le.AppendUint64(dst, h.Tid)
	dst = le.AppendUint16(dst, h.Type)
	dst = le.AppendUint16(dst, h.Priority)
	dst = le.AppendUint16(dst, h.Version)
	dst = le.AppendUint32(dst, h.FrontLen)
	dst = le.AppendUint32(dst, h.MiddleLen)
	dst = le.AppendUint32(dst, h.DataLen)
	dst = le.AppendUint16(dst, h.DataOff)
	dst = append(dst, byte(h.Src.Type))
	dst = le.AppendUint64(dst, uint64(h.Src.Num))
	dst = le.AppendUint16(dst, h.CompatVersion)
	dst = le.AppendUint16(dst, h.Reserved)
	return le.AppendUint32(dst, CRC32C(V1CRCSeed, dst[start:]))
}

// DecodeV1Header decodes a ceph_msg_header from the start of b and checks
// its crc (ErrBadCRC). Lengths are not checked: see CheckLimits.
func DecodeV1Header(b []byte) (V1Header, error) {
	if len(b) < V1HeaderLen {
		return V1Header{}, errf(ErrShort, "ceph_msg_header needs %d bytes, have %d", V1HeaderLen, len(b))
	}
	le := binary.LittleEndian
	h := V1Header{
		Seq:           le.Uint64(b[0:]),
		Tid:           le.Uint64(b[8:]),
		Type:          le.Uint16(b[16:]),
		Priority:      le.Uint16(b[18:]),
		Version:       le.Uint16(b[20:]),
		FrontLen:      le.Uint32(b[22:]),
		MiddleLen:     le.Uint32(b[26:]),
		DataLen:       le.Uint32(b[30:]),
		DataOff:       le.Uint16(b[34:]),
		Src:           msg.EntityName{Type: msg.EntityType(b[36]), Num: int64(le.Uint64(b[37:]))},
		CompatVersion: le.Uint16(b[45:]),
		Reserved:      le.Uint16(b[47:]),
		CRC:           le.Uint32(b[49:]),
	}
	if want := CRC32C(V1CRCSeed, b[:49]); want != h.CRC {
		return h, errf(ErrBadCRC, "ceph_msg_header crc %#08x, computed %#08x", h.CRC, want)
	}
	return h, nil
}

// CheckLimits refuses a header announcing more than lim allows (each
// section against MaxSegmentLen, their sum against MaxFrameLen):
// ErrTooLarge, so nobody buffers a body that will be refused anyway.
func (h *V1Header) CheckLimits(lim Limits) error {
	lim = lim.norm()
	for i, n := range [3]uint32{h.FrontLen, h.MiddleLen, h.DataLen} {
		if n > lim.MaxSegmentLen {
			return errf(ErrTooLarge, "message section %d is %d bytes (limit %d)", i, n, lim.MaxSegmentLen)
		}
	}
	if total := uint64(h.FrontLen) + uint64(h.MiddleLen) + uint64(h.DataLen); total > uint64(lim.MaxFrameLen) {
		return errf(ErrTooLarge, "message of %d bytes (limit %d)", total, lim.MaxFrameLen)
	}
	return nil
}

// V1Footer is ceph_msg_footer (21 bytes) or, without MSG_AUTH,
// ceph_msg_footer_old (13 bytes, no Sig).
type V1Footer struct {
	FrontCRC  uint32
	MiddleCRC uint32
	DataCRC   uint32
	Sig       uint64 // MSG_AUTH footer only; 0 unless cephx signs
	Flags     uint8  // V1FooterComplete...
}

// V1FooterSize returns the footer size for a session with (msgAuth) or
// without MSG_AUTH.
func V1FooterSize(msgAuth bool) int {
	if msgAuth {
		return V1FooterLen
	}
	return V1FooterOldLen
}

// Append appends the footer in the layout msgAuth selects.
func (f *V1Footer) Append(dst []byte, msgAuth bool) []byte {
	le := binary.LittleEndian
	dst = le.AppendUint32(dst, f.FrontCRC)
	dst = le.AppendUint32(dst, f.MiddleCRC)
	dst = le.AppendUint32(dst, f.DataCRC)
	if msgAuth {
		dst = le.AppendUint64(dst, f.Sig)
	}
	return append(dst, f.Flags)
}

// DecodeV1Footer decodes a footer in the layout msgAuth selects.
func DecodeV1Footer(b []byte, msgAuth bool) (V1Footer, error) {
	n := V1FooterSize(msgAuth)
	if len(b) < n {
		return V1Footer{}, errf(ErrShort, "message footer needs %d bytes, have %d", n, len(b))
	}
	le := binary.LittleEndian
	f := V1Footer{FrontCRC: le.Uint32(b[0:]), MiddleCRC: le.Uint32(b[4:]), DataCRC: le.Uint32(b[8:])}
	if msgAuth {
		f.Sig = le.Uint64(b[12:])
	}
	f.Flags = b[n-1]
	return f, nil
}

// V1MessageHeader returns the ceph_msg_header of m sent as src (lengths
// from m's sections; Seq, Tid and the rest from m.Header).
func V1MessageHeader(m *msg.Message, src msg.EntityName) (V1Header, error) {
	for i, s := range [3][]byte{m.Front, m.Middle, m.Data} {
		if uint64(len(s)) > math.MaxUint32 {
			return V1Header{}, errf(ErrTooLarge, "message section %d is %d bytes", i, len(s))
		}
	}
	return V1Header{
		Seq:           m.Seq,
		Tid:           m.Tid,
		Type:          m.Type,
		Priority:      m.Priority,
		Version:       m.Version,
		FrontLen:      uint32(len(m.Front)),
		MiddleLen:     uint32(len(m.Middle)),
		DataLen:       uint32(len(m.Data)),
		DataOff:       m.DataOff,
		Src:           src,
		CompatVersion: m.CompatVersion,
		Reserved:      m.Reserved,
	}, nil
}

// V1MessageFooter returns the footer Ceph sends for m: the crcs of its
// sections (seed 0, an empty section's crc is 0), sig 0, flags COMPLETE.
func V1MessageFooter(m *msg.Message) V1Footer {
	return V1Footer{
		FrontCRC:  CRC32C(V1CRCSeed, m.Front),
		MiddleCRC: CRC32C(V1CRCSeed, m.Middle),
		DataCRC:   CRC32C(V1CRCSeed, m.Data),
		Flags:     V1FooterComplete,
	}
}

// V1MessageLen returns the on-wire size of m as a MSG: tag, header,
// sections and footer.
func V1MessageLen(m *msg.Message, msgAuth bool) int {
	return 1 + V1HeaderLen + m.PayloadLen() + V1FooterSize(msgAuth)
}

// AppendV1Message appends m as a MSG item (tag 7, header with crc,
// front, middle, data, footer with crcs and flags COMPLETE) sent as src.
// Header fields come from m.Header as they are (the caller sets Seq);
// m.Flags and m.AckSeq are not part of v1. It does not allocate when dst
// has room (V1MessageLen).
func AppendV1Message(dst []byte, m *msg.Message, src msg.EntityName, msgAuth bool) ([]byte, error) {
	h, err := V1MessageHeader(m, src)
	if err != nil {
		return dst, err
	}
	dst = h.Append(append(dst, byte(V1TagMsg)))
	dst = append(dst, m.Front...)
	dst = append(dst, m.Middle...)
	dst = append(dst, m.Data...)
	f := V1MessageFooter(m)
	return f.Append(dst, msgAuth), nil
}

// V1Message is a decoded MSG: Front, Middle and Data alias the input.
type V1Message struct {
	Header V1Header
	Front  []byte
	Middle []byte
	Data   []byte
	Footer V1Footer
}

// V1MessageSize returns the size of the MSG body (after the tag) whose
// header is at the start of b, once V1HeaderLen bytes are there: header
// crc and limits are checked first.
func V1MessageSize(b []byte, msgAuth bool, lim Limits) (int, error) {
	h, err := DecodeV1Header(b)
	if err != nil {
		return 0, err
	}
	if err := h.CheckLimits(lim); err != nil {
		return 0, err
	}
	return V1HeaderLen + h.PayloadLen() + V1FooterSize(msgAuth), nil
}

// DecodeV1Message decodes the MSG body (after the tag 7) at the start of
// b and returns it and its size. It checks, in Ceph's order, the header
// crc, the limits, the COMPLETE flag (ErrAborted), the front and middle
// crcs and, unless the footer says NOCRC, the data crc (ErrBadCRC). An
// incomplete body is ErrShort.
func DecodeV1Message(b []byte, msgAuth bool, lim Limits) (V1Message, int, error) {
	n, err := V1MessageSize(b, msgAuth, lim)
	if err != nil {
		return V1Message{}, 0, err
	}
	if len(b) < n {
		return V1Message{}, 0, errf(ErrShort, "message needs %d bytes, have %d", n, len(b))
	}
	h, _ := DecodeV1Header(b)
	var m V1Message
	m.Header = h
	off := V1HeaderLen
	sec := func(l uint32) []byte {
		if l == 0 {
			return nil
		}
		s := b[off : off+int(l) : off+int(l)]
		off += int(l)
		return s
	}
	m.Front, m.Middle, m.Data = sec(h.FrontLen), sec(h.MiddleLen), sec(h.DataLen)
	m.Footer, _ = DecodeV1Footer(b[off:], msgAuth)
	if m.Footer.Flags&V1FooterComplete == 0 {
		return m, n, ErrAborted
	}
	if c := CRC32C(V1CRCSeed, m.Front); c != m.Footer.FrontCRC {
		return m, n, errf(ErrBadCRC, "front crc %#08x, computed %#08x", m.Footer.FrontCRC, c)
	}
	if c := CRC32C(V1CRCSeed, m.Middle); c != m.Footer.MiddleCRC {
		return m, n, errf(ErrBadCRC, "middle crc %#08x, computed %#08x", m.Footer.MiddleCRC, c)
	}
	if m.Footer.Flags&V1FooterNoCRC == 0 {
		if c := CRC32C(V1CRCSeed, m.Data); c != m.Footer.DataCRC {
			return m, n, errf(ErrBadCRC, "data crc %#08x, computed %#08x", m.Footer.DataCRC, c)
		}
	}
	return m, n, nil
}

// MsgHeader returns the msg.Header of a decoded message: the v1 header
// fields, and Flags from the footer (v1 has no AckSeq).
func (m *V1Message) MsgHeader() msg.Header {
	h := &m.Header
	return msg.Header{
		Seq:           h.Seq,
		Tid:           h.Tid,
		Type:          h.Type,
		Priority:      h.Priority,
		Version:       h.Version,
		DataOff:       h.DataOff,
		Flags:         m.Footer.Flags,
		CompatVersion: h.CompatVersion,
		Reserved:      h.Reserved,
	}
}
