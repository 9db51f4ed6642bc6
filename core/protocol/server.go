package protocol

import (
	"fmt"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

// NewServer returns a server (acceptor) machine for an accepted socket.
// Its session is created when the client's HELLO names its type (the
// policy comes from cfg.PolicyFor), and may be swapped for an existing
// connection's session by the decision tables (Registry.Reuse).
func NewServer(cfg Config) (*Machine, error) {
	if cfg.AuthServer == nil {
		cfg.AuthServer = NoneServer{}
	}
	if cfg.PolicyFor == nil {
		cfg.PolicyFor = func(msg.EntityType) msg.Policy { return msg.StatelessServer(0) }
	}
	m, err := newMachine(cfg, RoleServer)
	if err != nil {
		return nil, err
	}
	m.state = StateBannerAccepting
	return m, nil
}

// serverFrame is the server's transition table: every handshake frame a
// server accepts, by state. Anything else faults.
func (m *Machine) serverFrame(f *wire.Frame) error {
	switch m.state {
	case StateHelloAccepting:
		if f.Tag == wire.TagHello {
			return m.serverHello(f)
		}
	case StateAuthAccepting:
		if f.Tag == wire.TagAuthRequest {
			return m.serverAuthRequest(f)
		}
	case StateAuthAcceptingMore:
		if f.Tag == wire.TagAuthRequestMore {
			var p wire.AuthRequestMore
			if err := p.Decode(f.Payload()); err != nil {
				return decodeErr(f.Tag, err)
			}
			return m.serverAuth(p.Payload, true)
		}
	case StateAuthAcceptingSign:
		if f.Tag == wire.TagAuthSignature {
			if err := m.checkSignature(f); err != nil {
				return err
			}
			m.state = StateSessionAccepting
			return nil
		}
	case StateSessionAccepting:
		switch f.Tag {
		case wire.TagClientIdent:
			return m.serverClientIdent(f)
		case wire.TagSessionReconnect:
			return m.serverReconnect(f)
		}
	}
	return m.unexpected(f.Tag)
}

// serverHello learns the client's type, which selects the policy, and
// creates the session.
func (m *Machine) serverHello(f *wire.Frame) error {
	var h wire.Hello
	if err := h.Decode(f.Payload()); err != nil {
		return decodeErr(f.Tag, err)
	}
	m.peerType = h.EntityType
	m.sess = NewSession(m.cfg.PolicyFor(h.EntityType), m.cfg.Release)
	m.state = StateAuthAccepting
	return nil
}

func (m *Machine) serverAuthRequest(f *wire.Frame) error {
	var p wire.AuthRequest
	if err := p.Decode(f.Payload()); err != nil {
		return decodeErr(f.Tag, err)
	}
	m.authMethod = p.Method
	mode := m.cfg.AuthServer.PickConMode(m.peerType, p.Method, p.PreferredModes)
	if mode != ConModeCRC {
		// Unknown (refused), or secure mode, which is not implemented.
		return m.serverAuthBadMethod(errnoEOPNOTSUPP)
	}
	m.auth.ConMode = mode
	return m.serverAuth(p.Payload, false)
}

// serverAuth runs one round of the auth server (Ceph's
// _handle_auth_request).
func (m *Machine) serverAuth(payload []byte, more bool) error {
	m.authRounds++
	if m.authRounds > maxAuthRounds {
		return fmt.Errorf("%w: too many rounds", ErrAuthRefused)
	}
	r := m.cfg.AuthServer.Handle(m.peerType, m.authMethod, more, payload)
	switch r.Status {
	case AuthDone:
		mode := m.auth.ConMode
		m.auth = r.AuthResult
		m.auth.ConMode = mode
		m.state = StateAuthAcceptingSign
		if err := m.emit(&wire.AuthDone{GlobalID: r.GlobalID, ConMode: mode, Payload: r.Payload}); err != nil {
			return err
		}
		return m.sendSignature()
	case AuthMore:
		m.state = StateAuthAcceptingMore
		return m.emit(&wire.AuthReplyMore{Payload: r.Payload})
	case AuthBusy:
		return fmt.Errorf("%w: auth server busy", ErrAuthRefused)
	}
	res := r.Result
	if res >= 0 {
		res = errnoEACCES
	}
	return m.serverAuthBadMethod(res)
}

func (m *Machine) serverAuthBadMethod(result int32) error {
	methods, modes := m.cfg.AuthServer.Methods(m.peerType)
	m.state = StateAuthAccepting
	return m.emit(&wire.AuthBadMethod{Method: m.authMethod, Result: result, AllowedMethods: methods, AllowedModes: modes})
}

// lookup asks the registry for the peer's existing connection.
func (m *Machine) lookup(peer msg.AddrVec) (Existing, *ExistingInfo) {
	if m.cfg.Registry == nil {
		return nil, nil
	}
	ex := m.cfg.Registry.Lookup(peer)
	if ex == nil {
		return nil, nil
	}
	info := ex.Info()
	return ex, &info
}

// serverClientIdent checks CLIENT_IDENT (FACTS.md §8.1) and applies the
// decision table for an existing connection (§8.5).
func (m *Machine) serverClientIdent(f *wire.Frame) error {
	var p wire.ClientIdent
	if err := p.Decode(f.Payload()); err != nil {
		return decodeErr(f.Tag, err)
	}
	if len(p.Addrs) == 0 || p.Addrs[0] == (msg.Addr{}) {
		return fmt.Errorf("%w: client sent no address", ErrPeerAddr)
	}
	if !m.myAddrs.Contains(p.TargetAddr) {
		return fmt.Errorf("%w: client wants %v, we are %v", ErrPeerAddr, p.TargetAddr, m.myAddrs)
	}
	s := m.sess
	s.peerAddrs = p.Addrs
	s.peerName = msg.EntityName{Type: m.peerType, Num: p.GID}
	s.clientCookie = p.ClientCookie
	missing := (s.policy.FeaturesRequired | msg.FeaturesMsgr2Required) &^ p.SupportedFeatures
	if missing != 0 {
		// The client may try again on this socket.
		return m.emit(&wire.IdentMissingFeatures{Features: missing})
	}
	s.features = p.SupportedFeatures & s.policy.FeaturesSupported
	s.peerGlobalSeq = p.GlobalSeq

	ex, info := m.lookup(s.peerAddrs)
	switch decideClientIdent(info, p.GlobalSeq, p.ClientCookie, s.policy.ResetCheck, s.peerAddrs, m.myAddrs) {
	case ivServerIdent:
		return m.sendServerIdent()
	case ivWait:
		return m.emit(&wire.Wait{})
	case ivWaitKick:
		m.cfg.Registry.Keepalive(ex)
		return m.emit(&wire.Wait{})
	case ivStale:
		return fmt.Errorf("%w: peer global_seq %d < existing %d", ErrStale, p.GlobalSeq, info.PeerGlobalSeq)
	case ivReplaceLossy:
		m.cfg.Registry.MarkDown(ex)
		return m.sendServerIdent()
	case ivReuseReset:
		if err := m.adopt(ex, true); err != nil {
			return err
		}
		return m.sendServerIdent()
	default: // ivReuse
		if err := m.adopt(ex, false); err != nil {
			return err
		}
		return m.sendServerIdent()
	}
}

// serverReconnect applies the decision table for SESSION_RECONNECT
// (FACTS.md §8.4).
func (m *Machine) serverReconnect(f *wire.Frame) error {
	var p wire.SessionReconnect
	if err := p.Decode(f.Payload()); err != nil {
		return decodeErr(f.Tag, err)
	}
	s := m.sess
	s.peerAddrs = p.Addrs
	s.peerGlobalSeq = p.GlobalSeq
	ex, info := m.lookup(p.Addrs)
	req := reconnectRequest{clientCookie: p.ClientCookie, globalSeq: p.GlobalSeq, connectSeq: p.ConnectSeq}
	switch decideReconnect(info, req, s.policy.ResetCheck, m.myAddrs) {
	case rvResetFull:
		return m.emit(&wire.SessionReset{Full: true})
	case rvResetPartial:
		return m.emit(&wire.SessionReset{Full: false})
	case rvRetryGlobal:
		return m.emit(&wire.SessionRetryGlobal{GlobalSeq: info.PeerGlobalSeq})
	case rvRetry:
		return m.emit(&wire.SessionRetry{ConnectSeq: info.ConnectSeq})
	case rvWait:
		return m.emit(&wire.Wait{})
	}
	m.reconnect = true
	if err := m.adopt(ex, false); err != nil {
		return err
	}
	m.sess.connectSeq = p.ConnectSeq
	m.sess.msgSeq = p.MsgSeq
	return m.sendReconnectOK()
}

// adopt takes the existing connection's session over (Ceph's
// reuse_connection): its unacknowledged messages are requeued; with reset
// (the peer restarted and our policy checks resets) the old session is
// dropped first and the application told.
func (m *Machine) adopt(ex Existing, reset bool) error {
	es, ev, err := m.cfg.Registry.Reuse(ex, m)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrReplaced, err)
	}
	if es == nil {
		return fmt.Errorf("%w: registry returned no session", ErrReplaced)
	}
	fresh := m.sess
	if ev != nil {
		m.ev = ev
	}
	es.requeueSent()
	if reset {
		es.discardQueues()
		es.resetCounters()
		m.ev.RemoteReset()
	}
	if !m.reconnect {
		es.clientCookie = fresh.clientCookie
		es.peerName = fresh.peerName
		es.features = fresh.features
	}
	if len(es.peerAddrs) == 0 {
		es.peerAddrs = fresh.peerAddrs
	}
	es.peerGlobalSeq = fresh.peerGlobalSeq
	m.sess = es
	m.replacing = true
	m.replaced = ex
	return nil
}

// sendServerIdent opens a new session (Ceph's send_server_ident): the
// sequence numbers restart (requeued messages keep theirs), a lossless
// session gets a new server cookie.
func (m *Machine) sendServerIdent() error {
	s := m.sess
	s.discardRequeuedUpTo(0)
	s.inSeq, s.ackPending = 0, 0
	var flags uint64
	if s.policy.Lossy {
		flags |= wire.IdentFlagLossy
	} else {
		s.serverCookie = randomCookie(m.cfg.Rand)
	}
	gs := m.cfg.GlobalSeq(0)
	if !m.replacing && m.cfg.Registry != nil {
		if err := m.cfg.Registry.Accept(m); err != nil {
			return fmt.Errorf("%w: %v", ErrReplaced, err)
		}
	}
	if err := m.emit(&wire.ServerIdent{
		Addrs:             m.myAddrs,
		GID:               m.cfg.MyGID,
		GlobalSeq:         gs,
		SupportedFeatures: s.policy.FeaturesSupported,
		RequiredFeatures:  s.policy.FeaturesRequired | msg.FeaturesMsgr2Required,
		Flags:             flags,
		ServerCookie:      s.serverCookie,
	}); err != nil {
		return err
	}
	m.ready()
	return nil
}

// sendReconnectOK resumes the session (Ceph's send_reconnect_ok): replays
// the client already has are dropped, the rest go out first.
func (m *Machine) sendReconnectOK() error {
	s := m.sess
	s.discardRequeuedUpTo(s.msgSeq)
	if err := m.emit(&wire.SessionReconnectOK{MsgSeq: s.inSeq}); err != nil {
		return err
	}
	m.ready()
	return nil
}
