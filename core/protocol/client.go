package protocol

import (
	"fmt"
	"net/netip"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

// NewClient returns a client (connector) machine for a freshly connected
// socket. s is the session to continue (a reconnect after a fault), or nil
// for a new session with cfg.Policy. The banner is queued for output at
// once; the owner writes it (AppendOutput) and feeds what it reads.
//
// Following Ceph, a session that has a server cookie is resumed with
// SESSION_RECONNECT, otherwise CLIENT_IDENT opens a new one.
func NewClient(cfg Config, s *Session) (*Machine, error) {
	if cfg.AuthClient == nil {
		cfg.AuthClient = NoneClient{}
	}
	m, err := newMachine(cfg, RoleClient)
	if err != nil {
		return nil, err
	}
	if s == nil {
		s = NewSession(cfg.Policy, cfg.Release)
	}
	if s.standby {
		// Leaving STANDBY to reconnect counts as a new attempt of the
		// session (Ceph's write_event on STANDBY).
		s.standby = false
		if s.serverCookie != 0 {
			s.connectSeq++
		}
	}
	s.globalSeq = cfg.GlobalSeq(0)
	m.sess = s
	m.peerType = cfg.PeerType
	m.state = StateBannerConnecting
	return m, nil
}

// clientFrame is the client's transition table: every handshake frame a
// client accepts, by state. Anything else faults.
func (m *Machine) clientFrame(f *wire.Frame) error {
	switch m.state {
	case StateHelloConnecting:
		if f.Tag == wire.TagHello {
			return m.clientHello(f)
		}
	case StateAuthConnecting:
		switch f.Tag {
		case wire.TagAuthBadMethod:
			return m.clientAuthBadMethod(f)
		case wire.TagAuthReplyMore:
			return m.clientAuthReplyMore(f)
		case wire.TagAuthDone:
			return m.clientAuthDone(f)
		}
	case StateAuthConnectingSign:
		if f.Tag == wire.TagAuthSignature {
			if err := m.checkSignature(f); err != nil {
				return err
			}
			return m.clientStartSession()
		}
	case StateSessionConnecting:
		switch f.Tag {
		case wire.TagServerIdent:
			return m.clientServerIdent(f)
		case wire.TagIdentMissingFeatures:
			var p wire.IdentMissingFeatures
			if err := p.Decode(f.Payload()); err != nil {
				return decodeErr(f.Tag, err)
			}
			return fmt.Errorf("%w: %#x", ErrMissingFeatures, p.Features)
		case wire.TagWait:
			return m.clientWait(f)
		}
	case StateSessionReconnecting:
		switch f.Tag {
		case wire.TagSessionReconnectOK:
			return m.clientReconnectOK(f)
		case wire.TagSessionRetry:
			return m.clientRetry(f)
		case wire.TagSessionRetryGlobal:
			return m.clientRetryGlobal(f)
		case wire.TagSessionReset:
			return m.clientReset(f)
		case wire.TagWait:
			return m.clientWait(f)
		}
	}
	return m.unexpected(f.Tag)
}

// clientHello checks the server's HELLO, learns our address if we have
// none, and starts authentication.
func (m *Machine) clientHello(f *wire.Frame) error {
	var h wire.Hello
	if err := h.Decode(f.Payload()); err != nil {
		return decodeErr(f.Tag, err)
	}
	if h.EntityType != m.peerType {
		return fmt.Errorf("%w: dialled a %v, peer is a %v", ErrPeerType, m.peerType, h.EntityType)
	}
	if len(m.myAddrs) == 0 || m.myAddrs[0].IsBlank() {
		m.learnAddr(h.PeerAddr)
	}
	m.state = StateAuthConnecting
	return m.clientAuthRequest()
}

// learnAddr sets our addresses from the peer's view of us, as Ceph's
// learned_addr: with no address, the peer's IP with type ANY, port 0 and
// our nonce; with blank ones, their IP is filled in.
func (m *Machine) learnAddr(seen msg.Addr) {
	if !seen.AddrPort.Addr().IsValid() {
		return // the peer does not know either
	}
	var addrs msg.AddrVec
	if len(m.myAddrs) == 0 {
		a := msg.Addr{Type: msg.AddrAny, Nonce: m.cfg.Nonce}
		a.AddrPort = netip.AddrPortFrom(seen.AddrPort.Addr(), 0)
		addrs = msg.AddrVec{a}
	} else {
		addrs = make(msg.AddrVec, len(m.myAddrs))
		for i, a := range m.myAddrs {
			if a.IsBlank() {
				a.AddrPort = netip.AddrPortFrom(seen.AddrPort.Addr(), a.Port())
			}
			addrs[i] = a
		}
	}
	m.myAddrs = addrs
	m.ev.LearnedAddr(addrs)
}

func (m *Machine) clientAuthRequest() error {
	m.authRounds++
	if m.authRounds > maxAuthRounds {
		return fmt.Errorf("%w: too many rounds", ErrAuthRefused)
	}
	req, err := m.cfg.AuthClient.Request(m.peerType)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrAuthRefused, err)
	}
	m.authMethod = req.Method
	return m.emit(&wire.AuthRequest{Method: req.Method, PreferredModes: req.PreferredModes, Payload: req.Payload})
}

func (m *Machine) clientAuthBadMethod(f *wire.Frame) error {
	var p wire.AuthBadMethod
	if err := p.Decode(f.Payload()); err != nil {
		return decodeErr(f.Tag, err)
	}
	if err := m.cfg.AuthClient.BadMethod(p.Method, p.Result, p.AllowedMethods, p.AllowedModes); err != nil {
		return fmt.Errorf("%w: method %d: %v (result %d, allowed %v)", ErrAuthRefused, p.Method, err, p.Result, p.AllowedMethods)
	}
	return m.clientAuthRequest()
}

func (m *Machine) clientAuthReplyMore(f *wire.Frame) error {
	var p wire.AuthReplyMore
	if err := p.Decode(f.Payload()); err != nil {
		return decodeErr(f.Tag, err)
	}
	m.authRounds++
	if m.authRounds > maxAuthRounds {
		return fmt.Errorf("%w: too many rounds", ErrAuthRefused)
	}
	reply, err := m.cfg.AuthClient.ReplyMore(p.Payload)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrAuthRefused, err)
	}
	return m.emit(&wire.AuthRequestMore{Payload: reply})
}

func (m *Machine) clientAuthDone(f *wire.Frame) error {
	var p wire.AuthDone
	if err := p.Decode(f.Payload()); err != nil {
		return decodeErr(f.Tag, err)
	}
	res, err := m.cfg.AuthClient.Done(p.GlobalID, p.ConMode, p.Payload)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrAuthRefused, err)
	}
	if p.ConMode != ConModeCRC {
		// Secure mode needs frame encryption, which is not implemented.
		return fmt.Errorf("%w: connection mode %d not supported", ErrAuthRefused, p.ConMode)
	}
	res.ConMode = p.ConMode
	m.auth = res
	m.state = StateAuthConnectingSign
	return m.sendSignature()
}

// clientStartSession sends CLIENT_IDENT for a new session or
// SESSION_RECONNECT to resume one (Ceph's finish_client_auth).
func (m *Machine) clientStartSession() error {
	if m.sess.serverCookie == 0 {
		m.state = StateSessionConnecting
		return m.sendClientIdent()
	}
	m.state = StateSessionReconnecting
	return m.sendReconnect()
}

func (m *Machine) sendClientIdent() error {
	s := m.sess
	if !s.policy.Lossy && s.clientCookie == 0 {
		s.clientCookie = randomCookie(m.cfg.Rand)
	}
	var flags uint64
	if s.policy.Lossy {
		flags |= wire.IdentFlagLossy
	}
	return m.emit(&wire.ClientIdent{
		Addrs:             m.myAddrs,
		TargetAddr:        m.cfg.TargetAddr,
		GID:               m.cfg.MyGID,
		GlobalSeq:         s.globalSeq,
		SupportedFeatures: s.policy.FeaturesSupported,
		RequiredFeatures:  s.policy.FeaturesRequired | msg.FeaturesMsgr2Required,
		Flags:             flags,
		ClientCookie:      s.clientCookie,
	})
}

func (m *Machine) sendReconnect() error {
	s := m.sess
	return m.emit(&wire.SessionReconnect{
		Addrs:        m.myAddrs,
		ClientCookie: s.clientCookie,
		ServerCookie: s.serverCookie,
		GlobalSeq:    s.globalSeq,
		ConnectSeq:   s.connectSeq,
		MsgSeq:       s.inSeq,
	})
}

func (m *Machine) clientServerIdent(f *wire.Frame) error {
	var p wire.ServerIdent
	if err := p.Decode(f.Payload()); err != nil {
		return decodeErr(f.Tag, err)
	}
	if !p.Addrs.Contains(m.cfg.TargetAddr) {
		return fmt.Errorf("%w: server is %v, dialled %v", ErrPeerAddr, p.Addrs, m.cfg.TargetAddr)
	}
	s := m.sess
	s.serverCookie = p.ServerCookie
	s.peerAddrs = p.Addrs
	s.peerName = msg.EntityName{Type: m.peerType, Num: p.GID}
	s.features = p.SupportedFeatures & s.policy.FeaturesSupported
	s.peerGlobalSeq = p.GlobalSeq
	// The server's policy decides lossiness.
	s.policy.Lossy = p.Flags&wire.IdentFlagLossy != 0
	m.ready()
	return nil
}

func (m *Machine) clientReconnectOK(f *wire.Frame) error {
	var p wire.SessionReconnectOK
	if err := p.Decode(f.Payload()); err != nil {
		return decodeErr(f.Tag, err)
	}
	// Replays the server already has are dropped; the rest go out first.
	m.sess.discardRequeuedUpTo(p.MsgSeq)
	m.reconnect = true
	m.ready()
	return nil
}

func (m *Machine) clientRetry(f *wire.Frame) error {
	var p wire.SessionRetry
	if err := p.Decode(f.Payload()); err != nil {
		return decodeErr(f.Tag, err)
	}
	m.sess.connectSeq = p.ConnectSeq + 1
	return m.sendReconnect()
}

func (m *Machine) clientRetryGlobal(f *wire.Frame) error {
	var p wire.SessionRetryGlobal
	if err := p.Decode(f.Payload()); err != nil {
		return decodeErr(f.Tag, err)
	}
	m.sess.globalSeq = m.cfg.GlobalSeq(p.GlobalSeq)
	return m.sendReconnect()
}

// clientReset handles SESSION_RESET: a full reset drops the session (and
// tells the application), a partial one only forgets the server's side;
// either way a new session is opened on this socket.
func (m *Machine) clientReset(f *wire.Frame) error {
	var p wire.SessionReset
	if err := p.Decode(f.Payload()); err != nil {
		return decodeErr(f.Tag, err)
	}
	s := m.sess
	if p.Full {
		s.discardQueues()
		s.resetCounters()
		m.ev.RemoteReset()
	} else {
		s.serverCookie, s.connectSeq, s.inSeq = 0, 0, 0
	}
	m.state = StateSessionConnecting
	return m.sendClientIdent()
}

// clientWait handles WAIT: the server is connecting to us too and its
// connection wins; fault, and reconnect after the maximum backoff.
func (m *Machine) clientWait(f *wire.Frame) error {
	var p wire.Wait
	if err := p.Decode(f.Payload()); err != nil {
		return decodeErr(f.Tag, err)
	}
	m.gotWait = true
	return ErrWait
}
