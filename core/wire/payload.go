package wire

import (
	"github.com/msgr-dev/msgr/core/msg"
)

// Auth constants (FACTS.md §6).
const (
	AuthMethodUnknown uint32 = 0
	AuthMethodNone    uint32 = 1
	AuthMethodCephx   uint32 = 2
	AuthMethodGSS     uint32 = 4

	ConModeUnknown uint32 = 0
	ConModeCRC     uint32 = 1
	ConModeSecure  uint32 = 2

	// First byte of an AUTH_REQUEST auth payload.
	AuthPayloadModeNone       uint8 = 0
	AuthPayloadModeAuthorizer uint8 = 1
	AuthPayloadModeMon        uint8 = 10
)

// IdentFlagLossy is bit 0 of the CLIENT_IDENT/SERVER_IDENT flags
// (CEPH_MSG_CONNECT_LOSSY).
const IdentFlagLossy uint64 = 1

// AuthSignatureLen is the size of an AUTH_SIGNATURE payload (SHA-256).
const AuthSignatureLen = 32

// Payload is a control frame payload. Encode appends the payload bytes
// (without any frame) to dst; Decode parses segment 0 of a frame with the
// payload's tag. Decode ignores trailing bytes (newer peers may append
// fields) and leaves byte-slice fields aliasing b. All payload types
// implement Payload with a pointer receiver.
type Payload interface {
	Tag() Tag
	Encode(dst []byte) []byte
	Decode(b []byte) error
}

// NewPayload returns a new zero payload for tag, or ErrUnknownTag for
// MESSAGE and unknown tags.
func NewPayload(tag Tag) (Payload, error) {
	switch tag {
	case TagHello:
		return new(Hello), nil
	case TagAuthRequest:
		return new(AuthRequest), nil
	case TagAuthBadMethod:
		return new(AuthBadMethod), nil
	case TagAuthReplyMore:
		return new(AuthReplyMore), nil
	case TagAuthRequestMore:
		return new(AuthRequestMore), nil
	case TagAuthDone:
		return new(AuthDone), nil
	case TagAuthSignature:
		return new(AuthSignature), nil
	case TagClientIdent:
		return new(ClientIdent), nil
	case TagServerIdent:
		return new(ServerIdent), nil
	case TagIdentMissingFeatures:
		return new(IdentMissingFeatures), nil
	case TagSessionReconnect:
		return new(SessionReconnect), nil
	case TagSessionReset:
		return new(SessionReset), nil
	case TagSessionRetry:
		return new(SessionRetry), nil
	case TagSessionRetryGlobal:
		return new(SessionRetryGlobal), nil
	case TagSessionReconnectOK:
		return new(SessionReconnectOK), nil
	case TagWait:
		return new(Wait), nil
	case TagKeepalive2:
		return new(Keepalive2), nil
	case TagKeepalive2Ack:
		return new(Keepalive2Ack), nil
	case TagAck:
		return new(Ack), nil
	case TagCompressionRequest:
		return new(CompressionRequest), nil
	case TagCompressionDone:
		return new(CompressionDone), nil
	}
	return nil, errf(ErrUnknownTag, "no control payload for %v", tag)
}

// DecodePayload decodes b as the payload of a control frame with tag.
func DecodePayload(tag Tag, b []byte) (Payload, error) {
	p, err := NewPayload(tag)
	if err != nil {
		return nil, err
	}
	if err := p.Decode(b); err != nil {
		return nil, err
	}
	return p, nil
}

func finish(d *Decoder, t Tag) error {
	if err := d.Err(); err != nil {
		return errf(err, "decoding %v", t)
	}
	return nil
}

// Hello (tag 1): my entity type and the address at which I see the peer.
type Hello struct {
	EntityType msg.EntityType
	PeerAddr   msg.Addr
}

// Tag returns TagHello.
func (*Hello) Tag() Tag { return TagHello }

// Encode appends the payload.
func (p *Hello) Encode(dst []byte) []byte {
	e := Encoder{B: dst}
	e.U8(uint8(p.EntityType))
	e.Addr(p.PeerAddr)
	return e.B
}

// Decode parses the payload.
func (p *Hello) Decode(b []byte) error {
	d := NewDecoder(b)
	p.EntityType = msg.EntityType(d.U8())
	p.PeerAddr = d.Addr()
	return finish(&d, TagHello)
}

// AuthRequest (tag 2): auth method, preferred connection modes, method
// payload.
type AuthRequest struct {
	Method         uint32
	PreferredModes []uint32
	Payload        []byte
}

// Tag returns TagAuthRequest.
func (*AuthRequest) Tag() Tag { return TagAuthRequest }

// Encode appends the payload.
func (p *AuthRequest) Encode(dst []byte) []byte {
	e := Encoder{B: dst}
	e.U32(p.Method)
	e.U32s(p.PreferredModes)
	e.Blob(p.Payload)
	return e.B
}

// Decode parses the payload.
func (p *AuthRequest) Decode(b []byte) error {
	d := NewDecoder(b)
	p.Method = d.U32()
	p.PreferredModes = d.U32s(p.PreferredModes, MaxVecLen)
	p.Payload = d.Blob(MaxBlobLen)
	return finish(&d, TagAuthRequest)
}

// AuthBadMethod (tag 3): the method tried, the result (-errno) and what
// the server allows.
type AuthBadMethod struct {
	Method         uint32
	Result         int32
	AllowedMethods []uint32
	AllowedModes   []uint32
}

// Tag returns TagAuthBadMethod.
func (*AuthBadMethod) Tag() Tag { return TagAuthBadMethod }

// Encode appends the payload.
func (p *AuthBadMethod) Encode(dst []byte) []byte {
	e := Encoder{B: dst}
	e.U32(p.Method)
	e.I32(p.Result)
	e.U32s(p.AllowedMethods)
	e.U32s(p.AllowedModes)
	return e.B
}

// Decode parses the payload.
func (p *AuthBadMethod) Decode(b []byte) error {
	d := NewDecoder(b)
	p.Method = d.U32()
	p.Result = d.I32()
	p.AllowedMethods = d.U32s(p.AllowedMethods, MaxVecLen)
	p.AllowedModes = d.U32s(p.AllowedModes, MaxVecLen)
	return finish(&d, TagAuthBadMethod)
}

// AuthReplyMore (tag 4): a further auth payload from the server.
type AuthReplyMore struct {
	Payload []byte
}

// Tag returns TagAuthReplyMore.
func (*AuthReplyMore) Tag() Tag { return TagAuthReplyMore }

// Encode appends the payload.
func (p *AuthReplyMore) Encode(dst []byte) []byte {
	e := Encoder{B: dst}
	e.Blob(p.Payload)
	return e.B
}

// Decode parses the payload.
func (p *AuthReplyMore) Decode(b []byte) error {
	d := NewDecoder(b)
	p.Payload = d.Blob(MaxBlobLen)
	return finish(&d, TagAuthReplyMore)
}

// AuthRequestMore (tag 5): a further auth payload from the client.
type AuthRequestMore struct {
	Payload []byte
}

// Tag returns TagAuthRequestMore.
func (*AuthRequestMore) Tag() Tag { return TagAuthRequestMore }

// Encode appends the payload.
func (p *AuthRequestMore) Encode(dst []byte) []byte {
	e := Encoder{B: dst}
	e.Blob(p.Payload)
	return e.B
}

// Decode parses the payload.
func (p *AuthRequestMore) Decode(b []byte) error {
	d := NewDecoder(b)
	p.Payload = d.Blob(MaxBlobLen)
	return finish(&d, TagAuthRequestMore)
}

// AuthDone (tag 6): the client's global id, the connection mode and the
// final auth payload.
type AuthDone struct {
	GlobalID uint64
	ConMode  uint32
	Payload  []byte
}

// Tag returns TagAuthDone.
func (*AuthDone) Tag() Tag { return TagAuthDone }

// Encode appends the payload.
func (p *AuthDone) Encode(dst []byte) []byte {
	e := Encoder{B: dst}
	e.U64(p.GlobalID)
	e.U32(p.ConMode)
	e.Blob(p.Payload)
	return e.B
}

// Decode parses the payload.
func (p *AuthDone) Decode(b []byte) error {
	d := NewDecoder(b)
	p.GlobalID = d.U64()
	p.ConMode = d.U32()
	p.Payload = d.Blob(MaxBlobLen)
	return finish(&d, TagAuthDone)
}

// AuthSignature (tag 7): HMAC-SHA256 of the bytes received so far; all
// zero for auth none.
type AuthSignature struct {
	Sig [AuthSignatureLen]byte
}

// Tag returns TagAuthSignature.
func (*AuthSignature) Tag() Tag { return TagAuthSignature }

// Encode appends the payload.
func (p *AuthSignature) Encode(dst []byte) []byte { return append(dst, p.Sig[:]...) }

// Decode parses the payload.
func (p *AuthSignature) Decode(b []byte) error {
	d := NewDecoder(b)
	copy(p.Sig[:], d.Raw(AuthSignatureLen))
	return finish(&d, TagAuthSignature)
}

// ClientIdent (tag 8): the client's session identity (FACTS.md §8.1).
type ClientIdent struct {
	Addrs             msg.AddrVec
	TargetAddr        msg.Addr
	GID               int64
	GlobalSeq         uint64
	SupportedFeatures uint64
	RequiredFeatures  uint64
	Flags             uint64 // IdentFlagLossy
	ClientCookie      uint64
}

// Tag returns TagClientIdent.
func (*ClientIdent) Tag() Tag { return TagClientIdent }

// Encode appends the payload.
func (p *ClientIdent) Encode(dst []byte) []byte {
	e := Encoder{B: dst}
	e.AddrVec(p.Addrs)
	e.Addr(p.TargetAddr)
	e.I64(p.GID)
	e.U64(p.GlobalSeq)
	e.U64(p.SupportedFeatures)
	e.U64(p.RequiredFeatures)
	e.U64(p.Flags)
	e.U64(p.ClientCookie)
	return e.B
}

// Decode parses the payload.
func (p *ClientIdent) Decode(b []byte) error {
	d := NewDecoder(b)
	p.Addrs = d.AddrVec(MaxAddrs)
	p.TargetAddr = d.Addr()
	p.GID = d.I64()
	p.GlobalSeq = d.U64()
	p.SupportedFeatures = d.U64()
	p.RequiredFeatures = d.U64()
	p.Flags = d.U64()
	p.ClientCookie = d.U64()
	return finish(&d, TagClientIdent)
}

// ServerIdent (tag 9): the server's session identity (FACTS.md §8.2).
type ServerIdent struct {
	Addrs             msg.AddrVec
	GID               int64
	GlobalSeq         uint64
	SupportedFeatures uint64
	RequiredFeatures  uint64
	Flags             uint64 // IdentFlagLossy
	ServerCookie      uint64
}

// Tag returns TagServerIdent.
func (*ServerIdent) Tag() Tag { return TagServerIdent }

// Encode appends the payload.
func (p *ServerIdent) Encode(dst []byte) []byte {
	e := Encoder{B: dst}
	e.AddrVec(p.Addrs)
	e.I64(p.GID)
	e.U64(p.GlobalSeq)
	e.U64(p.SupportedFeatures)
	e.U64(p.RequiredFeatures)
	e.U64(p.Flags)
	e.U64(p.ServerCookie)
	return e.B
}

// Decode parses the payload.
func (p *ServerIdent) Decode(b []byte) error {
	d := NewDecoder(b)
	p.Addrs = d.AddrVec(MaxAddrs)
	p.GID = d.I64()
	p.GlobalSeq = d.U64()
	p.SupportedFeatures = d.U64()
	p.RequiredFeatures = d.U64()
	p.Flags = d.U64()
	p.ServerCookie = d.U64()
	return finish(&d, TagServerIdent)
}

// IdentMissingFeatures (tag 10): the required features the client lacks.
type IdentMissingFeatures struct {
	Features uint64
}

// Tag returns TagIdentMissingFeatures.
func (*IdentMissingFeatures) Tag() Tag { return TagIdentMissingFeatures }

// Encode appends the payload.
func (p *IdentMissingFeatures) Encode(dst []byte) []byte {
	e := Encoder{B: dst}
	e.U64(p.Features)
	return e.B
}

// Decode parses the payload.
func (p *IdentMissingFeatures) Decode(b []byte) error {
	d := NewDecoder(b)
	p.Features = d.U64()
	return finish(&d, TagIdentMissingFeatures)
}

// SessionReconnect (tag 11): a client resuming a lossless session.
type SessionReconnect struct {
	Addrs        msg.AddrVec
	ClientCookie uint64
	ServerCookie uint64
	GlobalSeq    uint64
	ConnectSeq   uint64
	MsgSeq       uint64 // last in_seq received
}

// Tag returns TagSessionReconnect.
func (*SessionReconnect) Tag() Tag { return TagSessionReconnect }

// Encode appends the payload.
func (p *SessionReconnect) Encode(dst []byte) []byte {
	e := Encoder{B: dst}
	e.AddrVec(p.Addrs)
	e.U64(p.ClientCookie)
	e.U64(p.ServerCookie)
	e.U64(p.GlobalSeq)
	e.U64(p.ConnectSeq)
	e.U64(p.MsgSeq)
	return e.B
}

// Decode parses the payload.
func (p *SessionReconnect) Decode(b []byte) error {
	d := NewDecoder(b)
	p.Addrs = d.AddrVec(MaxAddrs)
	p.ClientCookie = d.U64()
	p.ServerCookie = d.U64()
	p.GlobalSeq = d.U64()
	p.ConnectSeq = d.U64()
	p.MsgSeq = d.U64()
	return finish(&d, TagSessionReconnect)
}

// SessionReset (tag 12): the server does not know the session; Full means
// the client must drop it entirely.
type SessionReset struct {
	Full bool
}

// Tag returns TagSessionReset.
func (*SessionReset) Tag() Tag { return TagSessionReset }

// Encode appends the payload.
func (p *SessionReset) Encode(dst []byte) []byte {
	e := Encoder{B: dst}
	e.Bool(p.Full)
	return e.B
}

// Decode parses the payload.
func (p *SessionReset) Decode(b []byte) error {
	d := NewDecoder(b)
	p.Full = d.Bool()
	return finish(&d, TagSessionReset)
}

// SessionRetry (tag 13): the server's current connect_seq.
type SessionRetry struct {
	ConnectSeq uint64
}

// Tag returns TagSessionRetry.
func (*SessionRetry) Tag() Tag { return TagSessionRetry }

// Encode appends the payload.
func (p *SessionRetry) Encode(dst []byte) []byte {
	e := Encoder{B: dst}
	e.U64(p.ConnectSeq)
	return e.B
}

// Decode parses the payload.
func (p *SessionRetry) Decode(b []byte) error {
	d := NewDecoder(b)
	p.ConnectSeq = d.U64()
	return finish(&d, TagSessionRetry)
}

// SessionRetryGlobal (tag 14): the server's view of the peer's global_seq.
type SessionRetryGlobal struct {
	GlobalSeq uint64
}

// Tag returns TagSessionRetryGlobal.
func (*SessionRetryGlobal) Tag() Tag { return TagSessionRetryGlobal }

// Encode appends the payload.
func (p *SessionRetryGlobal) Encode(dst []byte) []byte {
	e := Encoder{B: dst}
	e.U64(p.GlobalSeq)
	return e.B
}

// Decode parses the payload.
func (p *SessionRetryGlobal) Decode(b []byte) error {
	d := NewDecoder(b)
	p.GlobalSeq = d.U64()
	return finish(&d, TagSessionRetryGlobal)
}

// SessionReconnectOK (tag 15): the server's in_seq (last message it got).
type SessionReconnectOK struct {
	MsgSeq uint64
}

// Tag returns TagSessionReconnectOK.
func (*SessionReconnectOK) Tag() Tag { return TagSessionReconnectOK }

// Encode appends the payload.
func (p *SessionReconnectOK) Encode(dst []byte) []byte {
	e := Encoder{B: dst}
	e.U64(p.MsgSeq)
	return e.B
}

// Decode parses the payload.
func (p *SessionReconnectOK) Decode(b []byte) error {
	d := NewDecoder(b)
	p.MsgSeq = d.U64()
	return finish(&d, TagSessionReconnectOK)
}

// Wait (tag 16): empty; the client must back off and retry.
type Wait struct{}

// Tag returns TagWait.
func (*Wait) Tag() Tag { return TagWait }

// Encode appends nothing.
func (*Wait) Encode(dst []byte) []byte { return dst }

// Decode accepts any payload (trailing bytes are ignored).
func (*Wait) Decode([]byte) error { return nil }

// Keepalive2 (tag 18): the sender's clock.
type Keepalive2 struct {
	Timestamp UTime
}

// Tag returns TagKeepalive2.
func (*Keepalive2) Tag() Tag { return TagKeepalive2 }

// Encode appends the payload.
func (p *Keepalive2) Encode(dst []byte) []byte {
	e := Encoder{B: dst}
	e.UTime(p.Timestamp)
	return e.B
}

// Decode parses the payload.
func (p *Keepalive2) Decode(b []byte) error {
	d := NewDecoder(b)
	p.Timestamp = d.UTime()
	return finish(&d, TagKeepalive2)
}

// Keepalive2Ack (tag 19): the timestamp of the KEEPALIVE2 acknowledged.
type Keepalive2Ack struct {
	Timestamp UTime
}

// Tag returns TagKeepalive2Ack.
func (*Keepalive2Ack) Tag() Tag { return TagKeepalive2Ack }

// Encode appends the payload.
func (p *Keepalive2Ack) Encode(dst []byte) []byte {
	e := Encoder{B: dst}
	e.UTime(p.Timestamp)
	return e.B
}

// Decode parses the payload.
func (p *Keepalive2Ack) Decode(b []byte) error {
	d := NewDecoder(b)
	p.Timestamp = d.UTime()
	return finish(&d, TagKeepalive2Ack)
}

// Ack (tag 20): the highest message seq received.
type Ack struct {
	Seq uint64
}

// Tag returns TagAck.
func (*Ack) Tag() Tag { return TagAck }

// Encode appends the payload.
func (p *Ack) Encode(dst []byte) []byte {
	e := Encoder{B: dst}
	e.U64(p.Seq)
	return e.B
}

// Decode parses the payload.
func (p *Ack) Decode(b []byte) error {
	d := NewDecoder(b)
	p.Seq = d.U64()
	return finish(&d, TagAck)
}

// CompressionRequest (tag 21, 17+ only): whether to compress and the
// preferred methods.
type CompressionRequest struct {
	IsCompress       bool
	PreferredMethods []uint32
}

// Tag returns TagCompressionRequest.
func (*CompressionRequest) Tag() Tag { return TagCompressionRequest }

// Encode appends the payload.
func (p *CompressionRequest) Encode(dst []byte) []byte {
	e := Encoder{B: dst}
	e.Bool(p.IsCompress)
	e.U32s(p.PreferredMethods)
	return e.B
}

// Decode parses the payload.
func (p *CompressionRequest) Decode(b []byte) error {
	d := NewDecoder(b)
	p.IsCompress = d.Bool()
	p.PreferredMethods = d.U32s(p.PreferredMethods, MaxVecLen)
	return finish(&d, TagCompressionRequest)
}

// CompressionDone (tag 22, 17+ only): the server's decision.
type CompressionDone struct {
	IsCompress bool
	Method     uint32
}

// Tag returns TagCompressionDone.
func (*CompressionDone) Tag() Tag { return TagCompressionDone }

// Encode appends the payload.
func (p *CompressionDone) Encode(dst []byte) []byte {
	e := Encoder{B: dst}
	e.Bool(p.IsCompress)
	e.U32(p.Method)
	return e.B
}

// Decode parses the payload.
func (p *CompressionDone) Decode(b []byte) error {
	d := NewDecoder(b)
	p.IsCompress = d.Bool()
	p.Method = d.U32()
	return finish(&d, TagCompressionDone)
}
