package protocol

import (
	"errors"
	"fmt"
	"time"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

// Config configures a Machine. Fields marked client or server are used by
// that role only.
type Config struct {
	// MyType is this messenger's entity type (sent in HELLO).
	MyType msg.EntityType
	// MyGID is this messenger's entity number, sent as gid in the ident
	// (the CLI sends -1 before it has a global id).
	MyGID int64
	// MyAddrs are this messenger's addresses. A server must list the
	// address clients dial (CLIENT_IDENT's target is checked against
	// them). A client that never bound may leave them empty (or blank): it
	// learns its IP from the server's HELLO (Events.LearnedAddr).
	MyAddrs msg.AddrVec
	// Nonce is this messenger's nonce, used for a learned address when
	// MyAddrs is empty.
	Nonce uint32

	// PeerType (client) is the entity type we expect the server to be.
	PeerType msg.EntityType
	// TargetAddr (client) is the address we dialled; it goes in HELLO and
	// CLIENT_IDENT and must be among the server's addresses.
	TargetAddr msg.Addr
	// Policy (client) is the policy for the peer's type, used for a new
	// session (a session passed to NewClient keeps its own).
	Policy msg.Policy
	// AuthClient (client) authenticates; nil means NoneClient{}.
	AuthClient AuthClient

	// PeerSocketAddr (server) is the client's socket address, sent back in
	// HELLO (as a v2 address with nonce 0).
	PeerSocketAddr msg.Addr
	// PolicyFor (server) returns the policy for a peer type learned from
	// HELLO; nil means msg.StatelessServer(0) for every type.
	PolicyFor func(msg.EntityType) msg.Policy
	// AuthServer (server) authenticates clients; nil means NoneServer{}.
	AuthServer AuthServer
	// Registry (server) gives access to existing connections for the
	// decision tables; nil behaves as an empty registry that accepts every
	// new session.
	Registry Registry

	// GlobalSeq is the messenger-wide global_seq counter: it returns
	// ++counter after raising counter to at least atLeast (Ceph's
	// get_global_seq(old)). Required.
	GlobalSeq func(atLeast uint64) uint64
	// Events receives the machine's reports; nil means NopEvents.
	Events Events
	// Release is the session's release func for sessions this machine
	// creates (see NewSession).
	Release func(*msg.Message)

	// NewMessage, if not nil, provides the message for each MESSAGE
	// received, with n payload bytes: it returns a message with zero
	// fields except DataFree (which must give the message and buf back to
	// wherever they came from), and buf with len(buf) == n, which the
	// machine fills with the payload (Front, Middle and Data are slices of
	// it). A pool behind it makes the receive path allocation-free. nil
	// means a new message and one payload buffer per message.
	NewMessage func(n int) (m *msg.Message, buf []byte)

	// DisableRev1 advertises only msgr2.0 framing (tests; interop).
	DisableRev1 bool
	// Limits bound the frames accepted from the peer (zero: core/wire
	// defaults: 256 MiB per message, 1 MiB per control frame).
	Limits wire.Limits
	// Rand returns random cookies; nil means math/rand/v2.
	Rand func() uint64
	// Now stamps KEEPALIVE2 frames; nil means time.Now.
	Now func() time.Time
}

// maxAuthRounds bounds AUTH_BAD_METHOD / AUTH_REPLY_MORE round trips.
const maxAuthRounds = 16

// maxPreAuth bounds the handshake bytes kept for AUTH_SIGNATURE (Ceph
// asserts the same bound).
const maxPreAuth = 1 << 20

// Machine is the msgr2 protocol state machine for one socket. See the
// package documentation for how an owner drives it.
type Machine struct {
	cfg   Config
	role  Role
	state State
	sess  *Session
	ev    Events

	myBanner wire.Banner
	rev      wire.Rev
	banner   bool // peer banner received

	peerType msg.EntityType
	myAddrs  msg.AddrVec

	authRounds int
	authMethod uint32
	auth       AuthResult
	preAuth    bool
	preRx      []byte
	preTx      []byte

	gotWait   bool     // client: WAIT received
	replacing bool     // server: took over an existing session, not READY yet
	replaced  Existing // server: the connection taken over
	reconnect bool     // the session was resumed, not (re)established

	fault *Fault
	out   []byte // control frames produced, not yet handed out
	want  int    // bytes needed to make progress (for Want)
}

func newMachine(cfg Config, role Role) (*Machine, error) {
	if cfg.GlobalSeq == nil {
		return nil, errors.New("protocol: Config.GlobalSeq is required")
	}
	if cfg.Events == nil {
		cfg.Events = NopEvents{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Machine{cfg: cfg, role: role, ev: cfg.Events, preAuth: true}
	m.myBanner = wire.DefaultBanner
	if cfg.DisableRev1 {
		m.myBanner.Supported &^= wire.FeatureRevision1
	}
	m.myAddrs = cfg.MyAddrs
	m.out = m.myBanner.Encode(m.out)
	m.preTx = append(m.preTx, m.out...)
	m.want = wire.BannerHeaderLen
	return m, nil
}

// Role returns the machine's role.
func (m *Machine) Role() Role { return m.role }

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Session returns the session the machine works on (nil on a server
// before the client's HELLO). After Registry.Reuse it is the taken-over
// session.
func (m *Machine) Session() *Session { return m.sess }

// Rev returns the frame layout in use (meaningful after the banners).
func (m *Machine) Rev() wire.Rev { return m.rev }

// PeerType returns the peer's entity type (server: learned from HELLO).
func (m *Machine) PeerType() msg.EntityType { return m.peerType }

// MyAddrs returns this side's addresses (a client's learned ones
// included).
func (m *Machine) MyAddrs() msg.AddrVec { return m.myAddrs }

// Err returns the fault that stopped the machine, or nil.
func (m *Machine) Err() *Fault { return m.fault }

// Want returns how many bytes, counted from the first unconsumed one, the
// machine needs buffered before Feed can make progress: the owner's read
// buffer must be able to hold that many (it is at most the frame limits).
func (m *Machine) Want() int { return m.want }

// Feed decodes every complete banner/frame at the start of in and acts on
// it. It returns how many bytes it consumed; the owner keeps the rest and
// passes it again, followed by new bytes, on the next call. On a fault it
// returns the *Fault (also kept in Err) and the machine is closed.
// Received payloads are copied: in may be reused after Feed returns.
func (m *Machine) Feed(in []byte) (int, error) {
	if m.fault != nil {
		return 0, m.fault
	}
	consumed := 0
	var p wire.Preamble
	var f wire.Frame
	for m.fault == nil {
		buf := in[consumed:]
		if !m.banner {
			n, err := wire.BannerSize(buf)
			if err != nil {
				return consumed, m.doFault(err)
			}
			m.want = n
			if len(buf) < n {
				return consumed, nil
			}
			b, n, err := wire.DecodeBanner(buf)
			if err != nil {
				return consumed, m.doFault(err)
			}
			if err := m.capturePreRx(buf[:n]); err != nil {
				return consumed, m.doFault(err)
			}
			consumed += n
			if err := m.handleBanner(b); err != nil {
				return consumed, m.doFault(err)
			}
			continue
		}
		if len(buf) < wire.PreambleLen {
			m.want = wire.PreambleLen
			return consumed, nil
		}
		if err := wire.DecodePreambleInto(&p, buf, m.cfg.Limits); err != nil {
			return consumed, m.doFault(err)
		}
		// Refuse a MESSAGE before the session is open as soon as its
		// preamble shows (Ceph does the same, before reading the body).
		if p.Tag == wire.TagMessage && m.state != StateReady {
			return consumed, m.doFault(fmt.Errorf("%w: MESSAGE in %v", ErrUnexpectedFrame, m.state))
		}
		n := p.FrameLen(m.rev)
		m.want = n
		if len(buf) < n {
			return consumed, nil
		}
		n, err := wire.DecodeFrameInto(&f, buf, &p, m.rev) // p is verified: not twice
		if err != nil {
			return consumed, m.doFault(err)
		}
		if err := m.capturePreRx(buf[:n]); err != nil {
			return consumed, m.doFault(err)
		}
		consumed += n
		m.want = wire.PreambleLen
		if f.Aborted {
			continue // late abort: the sender dropped the frame
		}
		if err := m.handleFrame(&f); err != nil {
			return consumed, m.doFault(err)
		}
	}
	return consumed, m.fault
}

func (m *Machine) capturePreRx(b []byte) error {
	if !m.preAuth {
		return nil
	}
	if len(m.preRx)+len(b) > maxPreAuth {
		return ErrPreAuthTooLarge
	}
	m.preRx = append(m.preRx, b...)
	return nil
}

// handleBanner checks the peer's banner, picks the frame layout and sends
// HELLO (both roles do the same).
func (m *Machine) handleBanner(b wire.Banner) error {
	rev, err := m.myBanner.Check(b)
	if err != nil {
		return err
	}
	m.rev, m.banner = rev, true
	var peerAddr msg.Addr
	if m.role == RoleClient {
		m.state = StateHelloConnecting
		peerAddr = m.cfg.TargetAddr
	} else {
		m.state = StateHelloAccepting
		peerAddr = m.cfg.PeerSocketAddr
		peerAddr.Type, peerAddr.Nonce = msg.AddrMsgr2, 0
	}
	return m.emit(&wire.Hello{EntityType: m.cfg.MyType, PeerAddr: peerAddr})
}

// emit appends a control frame to the output, recording it for the
// AUTH_SIGNATURE while the handshake is unauthenticated.
func (m *Machine) emit(p wire.Payload) error {
	start := len(m.out)
	m.out = wire.AppendControlFrame(m.out, m.rev, p)
	if m.preAuth {
		if len(m.preTx)+len(m.out)-start > maxPreAuth {
			return ErrPreAuthTooLarge
		}
		m.preTx = append(m.preTx, m.out[start:]...)
	}
	return nil
}

// handleFrame dispatches one decoded frame: the READY-state frames are
// shared (session.go), the handshake ones are per role.
func (m *Machine) handleFrame(f *wire.Frame) error {
	if m.state == StateReady {
		return m.readyFrame(f)
	}
	if m.role == RoleClient {
		return m.clientFrame(f)
	}
	return m.serverFrame(f)
}

// unexpected is the error for a frame the current state does not accept.
func (m *Machine) unexpected(t wire.Tag) error {
	return fmt.Errorf("%w: %v in %v", ErrUnexpectedFrame, t, m.state)
}

// decodeErr wraps a payload decoding error with the frame it came from.
func decodeErr(t wire.Tag, err error) error {
	return fmt.Errorf("decoding %v: %w", t, err)
}

// endPreAuth stops recording handshake bytes (after our AUTH_SIGNATURE's
// input is known).
func (m *Machine) endPreAuth() { m.preAuth = false }

// checkSignature verifies the peer's AUTH_SIGNATURE, computed over what we
// sent before it, and frees the recorded bytes.
func (m *Machine) checkSignature(f *wire.Frame) error {
	var sig wire.AuthSignature
	if err := sig.Decode(f.Payload()); err != nil {
		return decodeErr(f.Tag, err)
	}
	want := authSignature(m.auth.SessionKey, m.preTx)
	m.preTx, m.preRx = nil, nil
	if sig.Sig != want {
		return ErrAuthSignature
	}
	return nil
}

// sendSignature sends our AUTH_SIGNATURE over what we received so far and
// stops recording.
func (m *Machine) sendSignature() error {
	sig := authSignature(m.auth.SessionKey, m.preRx)
	m.endPreAuth()
	return m.emit(&wire.AuthSignature{Sig: sig})
}

// ready opens the session (Ceph's ready()).
func (m *Machine) ready() {
	s := m.sess
	m.state = StateReady
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

// Fault stops the machine because of an error outside the protocol (socket
// error, timeout) and returns the decision for the session. Calling it on
// a stopped machine returns the first fault.
func (m *Machine) Fault(reason error) *Fault { return m.doFault(reason) }

// Close stops the machine without deciding anything about the session
// (Ceph's mark_down path: the owner discards or keeps the session).
func (m *Machine) Close() {
	if m.fault == nil {
		m.fault = &Fault{Reason: ErrClosed, State: m.state, Action: ActionClose}
		m.state = StateClosed
	}
}

// doFault is Ceph's ProtocolV2::_fault: it closes the machine and decides
// what happens to the session.
func (m *Machine) doFault(reason error) *Fault {
	if m.fault != nil {
		return m.fault
	}
	st := m.state
	f := &Fault{Reason: reason, State: st}
	m.fault = f
	m.state = StateClosed
	m.preRx, m.preTx = nil, nil
	s := m.sess
	if s == nil { // server before HELLO: nothing to keep
		f.Action = ActionClose
		return f
	}
	pol := s.policy
	if pol.Lossy && !st.connecting() {
		f.Action = ActionClose
		s.discardQueues()
		return f
	}
	s.requeueSent()
	if s.queued() == 0 && st.accepting() && !m.replacing {
		// A half-accepted connection with nothing to send is just closed.
		f.Action = ActionClose
		return f
	}
	if pol.Standby && s.queued() == 0 && !s.keepalive && !m.gotWait {
		f.Action = ActionStandby
		s.standby = true
		return f
	}
	if pol.Server {
		f.Action = ActionStandby
		s.standby = true
		return f
	}
	f.Action = ActionReconnect
	if !st.connecting() && !m.gotWait && st != StateSessionAccepting {
		// The session was open: reconnect at once.
		s.connectSeq++
		f.Backoff = BackoffNone
		return f
	}
	if m.gotWait {
		f.Backoff = BackoffMax
	} else {
		f.Backoff = BackoffGrow
	}
	if s.serverCookie != 0 {
		s.connectSeq++
	}
	return f
}
