package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

// Errors specific to msgr v1 (wrapped in a *Fault like the others).
var (
	// ErrBadProtocolVersion: the server answered BADPROTOVER (our
	// protocol_version for its entity type is not the one it expects).
	ErrBadProtocolVersion = errors.New("protocol: v1 protocol version mismatch")
	// ErrPeerClosed: the peer sent the v1 CLOSE tag.
	ErrPeerClosed = errors.New("protocol: peer closed the session")
)

// maxV1Rounds bounds the connect messages of one socket (RETRY_*,
// RESETSESSION and challenge round trips, or a server refusing them).
const maxV1Rounds = 32

// Ceph's protocol versions (rados.h / msgr.h), for ceph_msg_connect.
const (
	v1ProtoOSDCluster = 10 // CEPH_OSD_PROTOCOL
	v1ProtoMDSCluster = 32 // CEPH_MDS_PROTOCOL
	v1ProtoMonCluster = 13 // CEPH_MON_PROTOCOL
	v1ProtoOSDClient  = 24 // CEPH_OSDC_PROTOCOL
	v1ProtoMDSClient  = 32 // CEPH_MDSC_PROTOCOL
	v1ProtoMonClient  = 15 // CEPH_MONC_PROTOCOL
)

// v1ProtoVersion is Ceph's AsyncMessenger::get_proto_version: between
// peers of one type the cluster protocol of that type (0 for clients and
// managers, which set none); otherwise the client protocol of the server's
// type (the peer's when connecting, ours when accepting).
func v1ProtoVersion(my, peer msg.EntityType, connect bool) uint32 {
	if my == peer {
		switch my {
		case msg.EntityOSD:
			return v1ProtoOSDCluster
		case msg.EntityMDS:
			return v1ProtoMDSCluster
		case msg.EntityMon:
			return v1ProtoMonCluster
		}
		return 0
	}
	t := my
	if connect {
		t = peer
	}
	switch t {
	case msg.EntityOSD:
		return v1ProtoOSDClient
	case msg.EntityMDS:
		return v1ProtoMDSClient
	case msg.EntityMon:
		return v1ProtoMonClient
	}
	return 0
}

// v1State is the V1 machine's own state; State() maps it onto the coarse
// shared State.
type v1State uint8

const (
	v1Start         v1State = iota
	v1ClientBanner          // banner sent, waiting for the server's banner and addresses
	v1ClientReply           // connect sent, waiting for the connect reply
	v1ClientSeq             // SEQ received, waiting for the server's in_seq
	v1ServerBanner          // banner and addresses sent, waiting for the client's
	v1ServerConnect         // waiting for a connect
	v1ServerSeq             // SEQ sent, waiting for the client's in_seq
	v1Ready                 // messages flow
	v1Closed
)

func (s v1State) public() State {
	switch s {
	case v1ClientBanner:
		return StateBannerConnecting
	case v1ClientReply, v1ClientSeq:
		return StateSessionConnecting
	case v1ServerBanner:
		return StateBannerAccepting
	case v1ServerConnect, v1ServerSeq:
		return StateSessionAccepting
	case v1Ready:
		return StateReady
	case v1Closed:
		return StateClosed
	}
	return StateNone
}

// V1 is the msgr v1 protocol state machine (Ceph's ProtocolV1) for one
// socket, client or server. It implements Protocol with the same Config,
// Session, Events, Registry and Fault semantics as Machine (msgr2), so an
// owner picks one or the other by the address type it dials or listens
// on (msg.AddrLegacy: V1). Not safe for concurrent use.
//
// Differences from msgr2 an owner may notice: v1 has no cookies (Session
// ClientCookie/ServerCookie stay 0; sessions are identified by the peer's
// legacy address and connect_seq); the peer's entity number is not
// exchanged (ReadyInfo.PeerName.Num is the authorizer's global id on a
// server, else -1; every received message carries its sender in Src); and
// a server that takes over an existing session may wait for the client's
// in_seq before Ready (see Registry.Reuse).
type V1 struct {
	cfg  Config
	role Role
	st   v1State
	sess *Session
	ev   Events

	peerType msg.EntityType
	myAddrs  msg.AddrVec
	peerAddr msg.Addr // the peer's legacy address

	connect    wire.V1Connect      // server: the connect being handled
	reply      wire.V1ConnectReply // client: the SEQ reply waiting for its u64
	authMore   []byte              // client: authorizer answering a challenge
	authMethod uint32              // client: method of the authorizer
	challenged bool                // server: the last reply was CHALLENGE_AUTHORIZER
	rounds     int                 // connect messages on this socket
	auth       AuthResult

	gotWait       bool     // client: WAIT received
	onceReady     bool     // the session opened on this machine
	replacing     bool     // server: took over an existing session, not READY yet
	replaced      Existing // server: the connection taken over
	resetFromPeer bool     // server: the peer restarted (connect_seq 0)
	reconnect     bool     // the session's sequence numbers carried over

	fault *Fault
	out   []byte // handshake and control bytes produced, not yet handed out
	want  int
}

var _ Protocol = (*V1)(nil)

func newV1(cfg Config, role Role) (*V1, error) {
	if cfg.GlobalSeq == nil {
		return nil, errors.New("protocol: Config.GlobalSeq is required")
	}
	if cfg.Events == nil {
		cfg.Events = NopEvents{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &V1{cfg: cfg, role: role, ev: cfg.Events, myAddrs: cfg.MyAddrs}, nil
}

// NewClientV1 returns a v1 client (connector) machine for a freshly
// connected socket to cfg.TargetAddr (the v1 address dialled; the server
// must claim exactly it). s is the session to continue, or nil for a new
// one with cfg.Policy. The banner is queued for output at once.
//
// Config fields used: MyType, MyGID (the src of our message headers),
// MyAddrs and Nonce (the address we claim; a client with none learns its
// IP from the server), PeerType, TargetAddr, Policy, AuthClient (asked for
// an authorizer except by a non-monitor talking to a monitor, as Ceph),
// GlobalSeq, Events, Release, NewMessage, Limits, Now.
func NewClientV1(cfg Config, s *Session) (*V1, error) {
	if cfg.AuthClient == nil {
		cfg.AuthClient = NoneClient{}
	}
	m, err := newV1(cfg, RoleClient)
	if err != nil {
		return nil, err
	}
	if s == nil {
		s = NewSession(cfg.Policy, cfg.Release)
	}
	// Unlike msgr2, leaving STANDBY keeps connect_seq: the server answers
	// RETRY_SESSION and the client catches up (Ceph's ProtocolV1).
	s.standby = false
	s.globalSeq = cfg.GlobalSeq(0)
	m.sess = s
	m.peerType = cfg.PeerType
	m.st = v1ClientBanner
	m.out = wire.AppendV1Banner(m.out)
	m.want = wire.V1ServerHelloLen
	return m, nil
}

// NewServerV1 returns a v1 server (acceptor) machine for a socket accepted
// on a v1 address. Its banner, its own legacy address (the first v1, else
// "any", address of cfg.MyAddrs: the address clients dial) and the
// client's address as seen (cfg.PeerSocketAddr) are queued at once. The
// session is created when the client's connect names its type (policy
// from cfg.PolicyFor), or taken over from an existing connection.
//
// Config fields used: MyType, MyGID, MyAddrs, PeerSocketAddr, PolicyFor,
// AuthServer, Registry, GlobalSeq, Events, Release, NewMessage, Limits,
// Now.
func NewServerV1(cfg Config) (*V1, error) {
	if cfg.AuthServer == nil {
		cfg.AuthServer = NoneServer{}
	}
	if cfg.PolicyFor == nil {
		cfg.PolicyFor = func(msg.EntityType) msg.Policy { return msg.StatelessServer(0) }
	}
	m, err := newV1(cfg, RoleServer)
	if err != nil {
		return nil, err
	}
	me, ok := m.myAddrs.Legacy()
	if !ok {
		return nil, fmt.Errorf("protocol: a v1 server needs a v1 address in Config.MyAddrs, have %v", m.myAddrs)
	}
	seen := cfg.PeerSocketAddr
	seen.Nonce = 0
	m.st = v1ServerBanner
	m.out = wire.AppendV1Banner(m.out)
	m.out = wire.AppendV1Addr(m.out, me)
	m.out = wire.AppendV1Addr(m.out, seen)
	m.want = wire.V1ClientHelloLen
	return m, nil
}

// Role returns the machine's role.
func (m *V1) Role() Role { return m.role }

// State returns the coarse state (StateReady once messages flow).
func (m *V1) State() State { return m.st.public() }

// Session returns the session (nil on a server before the connect).
func (m *V1) Session() *Session { return m.sess }

// PeerType returns the peer's entity type (server: from the connect).
func (m *V1) PeerType() msg.EntityType { return m.peerType }

// MyAddrs returns this side's addresses (a client's learned ones
// included).
func (m *V1) MyAddrs() msg.AddrVec { return m.myAddrs }

// PeerAddr returns the peer's legacy address: the server's (client), or
// the client's with its IP taken from the socket if it sent none
// (server). Sessions are registered under it.
func (m *V1) PeerAddr() msg.Addr { return m.peerAddr }

// Err returns the fault that stopped the machine, or nil.
func (m *V1) Err() *Fault { return m.fault }

// Want returns how many bytes, from the first unconsumed one, Feed needs
// buffered to make progress (a whole message once its header is known).
func (m *V1) Want() int { return m.want }

// Feed consumes every complete unit (handshake structure, tag and its
// body) at the start of in and acts on it; see Machine.Feed.
func (m *V1) Feed(in []byte) (int, error) {
	if m.fault != nil {
		return 0, m.fault
	}
	consumed := 0
	for m.fault == nil {
		n, err := m.step(in[consumed:])
		consumed += n
		if err != nil {
			return consumed, m.doFault(err)
		}
		if n == 0 {
			return consumed, nil
		}
	}
	return consumed, m.fault
}

// need records that n bytes are wanted and reports whether b has them.
func (m *V1) need(b []byte, n int) bool {
	m.want = n
	return len(b) >= n
}

// step handles the unit at the start of b and returns its size, or 0
// when more bytes are needed.
func (m *V1) step(b []byte) (int, error) {
	switch m.st {
	case v1ClientBanner:
		if err := wire.CheckV1Banner(b); err != nil {
			return 0, err
		}
		if !m.need(b, wire.V1ServerHelloLen) {
			return 0, nil
		}
		return wire.V1ServerHelloLen, m.clientBanner(b[wire.V1BannerLen:], b[wire.V1BannerLen+wire.V1AddrLen:])
	case v1ClientReply:
		if !m.need(b, wire.V1ConnectReplyLen) {
			return 0, nil
		}
		r, err := wire.DecodeV1ConnectReply(b)
		if err != nil {
			return 0, fmt.Errorf("decoding connect reply: %w", err)
		}
		n := wire.V1ConnectReplyLen + int(r.AuthorizerLen)
		if !m.need(b, n) {
			return 0, nil
		}
		return n, m.clientReply(r, b[wire.V1ConnectReplyLen:n])
	case v1ClientSeq:
		if !m.need(b, wire.V1SeqLen) {
			return 0, nil
		}
		return wire.V1SeqLen, m.clientSeq(binary.LittleEndian.Uint64(b))
	case v1ServerBanner:
		if err := wire.CheckV1Banner(b); err != nil {
			return 0, err
		}
		if !m.need(b, wire.V1ClientHelloLen) {
			return 0, nil
		}
		return wire.V1ClientHelloLen, m.serverBanner(b[wire.V1BannerLen:])
	case v1ServerConnect:
		if !m.need(b, wire.V1ConnectLen) {
			return 0, nil
		}
		c, err := wire.DecodeV1Connect(b)
		if err != nil {
			return 0, fmt.Errorf("decoding connect: %w", err)
		}
		n := wire.V1ConnectLen + int(c.AuthorizerLen)
		if !m.need(b, n) {
			return 0, nil
		}
		return n, m.serverConnect(c, b[wire.V1ConnectLen:n])
	case v1ServerSeq:
		if !m.need(b, wire.V1SeqLen) {
			return 0, nil
		}
		m.sess.discardRequeuedUpTo(binary.LittleEndian.Uint64(b))
		m.ready()
		return wire.V1SeqLen, nil
	case v1Ready:
		return m.readyItem(b)
	}
	return 0, fmt.Errorf("%w: input in state %v", ErrUnexpectedFrame, m.State())
}

// readyItem handles one tag of an open session (Ceph's wait_message):
// MSG, ACK, KEEPALIVE, KEEPALIVE2, KEEPALIVE2_ACK and CLOSE.
func (m *V1) readyItem(b []byte) (int, error) {
	if !m.need(b, 1) {
		return 0, nil
	}
	s := m.sess
	switch tag := wire.V1Tag(b[0]); tag {
	case wire.V1TagMsg:
		if !m.need(b, 1+wire.V1HeaderLen) {
			return 0, nil
		}
		auth := s.features&wire.V1FeatureMsgAuth != 0
		// Header crc and limits are checked before the body is waited for.
		size, err := wire.V1MessageSize(b[1:], auth, m.cfg.Limits)
		if err != nil {
			return 0, err
		}
		if !m.need(b, 1+size) {
			return 0, nil
		}
		dm, n, err := wire.DecodeV1Message(b[1:], auth, m.cfg.Limits)
		if err != nil {
			return 0, err
		}
		m.want = 1
		return 1 + n, m.receive(&dm)
	case wire.V1TagAck:
		if !m.need(b, 1+wire.V1SeqLen) {
			return 0, nil
		}
		seq := binary.LittleEndian.Uint64(b[1:])
		if s.handleAck(seq) {
			m.ev.Acked(seq)
		}
		m.want = 1
		return 1 + wire.V1SeqLen, nil
	case wire.V1TagKeepalive:
		m.ev.Keepalive(m.cfg.Now())
		return 1, nil
	case wire.V1TagKeepalive2, wire.V1TagKeepalive2Ack:
		if !m.need(b, 1+wire.V1TimespecLen) {
			return 0, nil
		}
		ts, _ := wire.DecodeV1Timespec(b[1:])
		m.want = 1
		if tag == wire.V1TagKeepalive2Ack {
			m.ev.KeepaliveAck(ts.Time())
			return 1 + wire.V1TimespecLen, nil
		}
		// Echo the timestamp bit for bit.
		m.out = wire.AppendV1Keepalive2(m.out, wire.V1TagKeepalive2Ack, ts)
		m.ev.Keepalive(ts.Time())
		return 1 + wire.V1TimespecLen, nil
	case wire.V1TagClose:
		return 1, ErrPeerClosed
	default:
		return 0, fmt.Errorf("%w: tag %v in %v", ErrUnexpectedFrame, tag, m.State())
	}
}

// receive delivers a message in order and drops duplicates (Ceph's
// handle_message_footer): a seq at or below in_seq was delivered already
// (a replay after a reconnect); a gap is allowed.
func (m *V1) receive(dm *wire.V1Message) error {
	s := m.sess
	h := &dm.Header
	if h.Seq <= s.inSeq {
		return nil
	}
	total := h.PayloadLen()
	var rm *msg.Message
	var buf []byte
	if nm := m.cfg.NewMessage; nm != nil {
		rm, buf = nm(total)
		if len(buf) != total {
			if rm != nil {
				rm.Release()
			}
			return fmt.Errorf("protocol: Config.NewMessage(%d) returned a %d-byte buffer", total, len(buf))
		}
	} else {
		rm = &msg.Message{}
		if total > 0 {
			buf = make([]byte, total)
		}
	}
	rm.Header, rm.Src = dm.MsgHeader(), h.Src
	rm.Front = sub(buf, 0, dm.Front)
	rm.Middle = sub(buf, len(dm.Front), dm.Middle)
	rm.Data = sub(buf, len(dm.Front)+len(dm.Middle), dm.Data)
	s.inSeq = h.Seq
	if !s.policy.Lossy {
		s.ackPending++
	}
	m.ev.Message(rm)
	return nil
}

// ready opens the session (Ceph's ready()).
func (m *V1) ready() {
	s := m.sess
	m.st = v1Ready
	m.want = 1
	m.onceReady = true
	m.replacing = false
	s.standby = false
	m.ev.Ready(ReadyInfo{
		Role:      m.role,
		PeerName:  s.peerName,
		PeerAddrs: s.peerAddrs,
		Features:  s.features,
		Lossy:     s.policy.Lossy,
		Reconnect: m.reconnect,
		Replaced:  m.replaced,
		Auth:      m.auth,
	})
}

// Send queues a message on the session (see Machine.Send). The header's
// src on the wire is cfg.MyType / cfg.MyGID, as Ceph writes its own name.
func (m *V1) Send(mm *msg.Message) { enqueueOn(m.sess, mm) }

// SendKeepalive asks for a KEEPALIVE2 (KEEPALIVE if the peer lacks
// MSGR_KEEPALIVE2) once ready.
func (m *V1) SendKeepalive() {
	if m.sess != nil {
		m.sess.SendKeepalive()
	}
}

// Pending reports whether AppendOutput has something to write.
func (m *V1) Pending() bool {
	if len(m.out) > 0 {
		return true
	}
	return m.st == v1Ready && m.sess.hasOutput()
}

// AppendOutput appends the bytes to write: handshake and control bytes,
// then (once ready) a keepalive if asked for, queued messages until dst
// holds at least max bytes (at least one when any is queued), and an ACK
// if messages were received (v1 headers carry no ack, so Ceph sends one
// after every batch on lossless sessions).
func (m *V1) AppendOutput(dst []byte, max int) []byte {
	dst, _ = m.AppendOutputV(dst, nil, max, 0)
	return dst
}

// AppendOutputV is AppendOutput that leaves message sections of at least
// minRef bytes out of dst as OutRefs (see OutRef and
// Machine.AppendOutputV).
func (m *V1) AppendOutputV(dst []byte, refs []OutRef, max, minRef int) ([]byte, []OutRef) {
	dst = append(dst, m.out...)
	m.out = m.out[:0]
	if m.st != v1Ready {
		return dst, refs
	}
	s := m.sess
	if s.keepalive {
		s.keepalive = false
		if s.features&wire.V1FeatureKeepalive2 != 0 {
			dst = wire.AppendV1Keepalive2(dst, wire.V1TagKeepalive2, wire.UTimeOf(m.cfg.Now()))
		} else {
			dst = append(dst, byte(wire.V1TagKeepalive))
		}
	}
	src := msg.EntityName{Type: m.cfg.MyType, Num: m.cfg.MyGID}
	auth := s.features&wire.V1FeatureMsgAuth != 0
	refBytes := 0
	for len(dst)+refBytes < max || max <= 0 {
		mm := s.nextOutgoing()
		if mm == nil {
			break
		}
		s.outSeq++
		mm.Seq = s.outSeq
		if mm.CompatVersion == 0 {
			mm.CompatVersion = mm.Version // as Ceph's encode does
		}
		var err error
		nrefs := len(refs)
		if minRef > 0 && mm.PayloadLen() >= minRef {
			dst, refs, err = appendV1MessageV(dst, refs, mm, src, auth, minRef)
		} else {
			dst, err = wire.AppendV1Message(dst, mm, src, auth)
		}
		if err != nil {
			// Only a section over 4 GiB fails: drop it rather than wedge
			// the queue. Its seq is taken back.
			s.outSeq--
			s.release(mm)
			continue
		}
		for _, r := range refs[nrefs:] {
			refBytes += len(r.Data)
		}
		switch {
		case !s.policy.Lossy:
			s.sent.PushBack(mm)
		case len(refs) > nrefs:
			refs[len(refs)-1].Msg = mm // released by the caller once written
		default:
			s.release(mm)
		}
	}
	if s.ackPending > 0 {
		s.ackPending = 0
		dst = wire.AppendV1Ack(dst, s.inSeq)
	}
	return dst, refs
}

// appendV1MessageV is wire.AppendV1Message with the sections of at least
// minRef bytes left out of dst as OutRefs.
func appendV1MessageV(dst []byte, refs []OutRef, mm *msg.Message, src msg.EntityName, auth bool, minRef int) ([]byte, []OutRef, error) {
	h, err := wire.V1MessageHeader(mm, src)
	if err != nil {
		return dst, refs, err
	}
	dst = h.Append(append(dst, byte(wire.V1TagMsg)))
	for _, sec := range [3][]byte{mm.Front, mm.Middle, mm.Data} {
		if len(sec) >= minRef {
			refs = append(refs, OutRef{Off: len(dst), Data: sec})
		} else {
			dst = append(dst, sec...)
		}
	}
	f := wire.V1MessageFooter(mm)
	return f.Append(dst, auth), refs, nil
}

// Fault stops the machine because of an error outside the protocol and
// returns the decision for the session (first fault wins).
func (m *V1) Fault(reason error) *Fault { return m.doFault(reason) }

// Close stops the machine without deciding anything about the session.
func (m *V1) Close() {
	if m.fault == nil {
		m.fault = &Fault{Reason: ErrClosed, State: m.State(), Action: ActionClose}
		m.st = v1Closed
	}
}

// doFault is Ceph's ProtocolV1::fault: it closes the machine and decides
// what happens to the session.
func (m *V1) doFault(reason error) *Fault {
	if m.fault != nil {
		return m.fault
	}
	prev := m.st
	f := &Fault{Reason: reason, State: prev.public()}
	m.fault = f
	m.st = v1Closed
	s := m.sess
	if s == nil { // server before the connect: nothing to keep
		f.Action = ActionClose
		return f
	}
	pol := s.policy
	// A lossy session closes, except before the server answered at all
	// (Ceph's START_CONNECT/CONNECTING: a failed TCP connect retries). A
	// CLOSE from the peer stops any session (Ceph's stop()).
	if pol.Lossy && prev != v1ClientBanner || errors.Is(reason, ErrPeerClosed) {
		f.Action = ActionClose
		s.discardQueues()
		return f
	}
	s.requeueSent()
	if !m.onceReady && s.queued() == 0 && (prev == v1ServerBanner || prev == v1ServerConnect) && !m.replacing {
		// A half-accepted connection with nothing to send is just closed.
		f.Action = ActionClose
		return f
	}
	connecting := prev == v1ClientBanner || prev == v1ClientReply || prev == v1ClientSeq
	if pol.Standby && s.queued() == 0 && !s.keepalive && !m.gotWait {
		f.Action = ActionStandby
		s.standby = true
		return f
	}
	f.Action = ActionReconnect
	if connecting || m.gotWait {
		f.Backoff = BackoffGrow
		if m.gotWait {
			f.Backoff = BackoffMax
		}
		return f
	}
	if pol.Server {
		f.Action = ActionStandby
		s.standby = true
		return f
	}
	// The session was open (or accepted): reconnect at once.
	s.connectSeq++
	f.Backoff = BackoffNone
	return f
}
