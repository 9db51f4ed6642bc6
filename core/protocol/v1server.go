package protocol

import (
	"fmt"
	"net/netip"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

// serverBanner reads the client's address (Ceph's handle_client_banner):
// a client that does not know its IP gets the socket's, with the port it
// sent (0 for clients that never bound).
func (m *V1) serverBanner(b []byte) error {
	a, err := wire.DecodeV1Addr(b)
	if err != nil {
		return fmt.Errorf("decoding the client's address: %w", err)
	}
	if isBlankIP(a) {
		if ip := m.cfg.PeerSocketAddr.AddrPort.Addr(); ip.IsValid() {
			a.AddrPort = netip.AddrPortFrom(ip, a.Port())
		}
	}
	a.Type = msg.AddrLegacy
	m.peerAddr = a
	m.st = v1ServerConnect
	m.want = wire.V1ConnectLen
	return nil
}

// v1Verdict is the server's answer to a connect with an existing
// connection to the peer (Ceph's handle_connect_message_2).
type v1Verdict uint8

const (
	v1vOpen         v1Verdict = iota + 1 // new session here
	v1vResetSession                      // RESETSESSION: we have no such session
	v1vRetryGlobal                       // RETRY_GLOBAL(existing peer_global_seq)
	v1vRetrySession                      // RETRY_SESSION(existing connect_seq + 1)
	v1vWait                              // WAIT, and kick the existing connection
	v1vReplaceLossy                      // close the existing lossy one, new session here
	v1vReplaceReset                      // the peer restarted: take the session over from scratch (READY)
	v1vReplace                           // take the existing session over (SEQ)
)

// decideV1Connect is the decision table of V1-FACTS §9 (Ceph's
// handle_connect_message_2 with an existing connection). ex is nil when
// there is none; cs and gs come from the connect; resetCheck is our
// policy for the peer; peer and me are the peer's and our legacy
// addresses (a connection race is won by the lower address's connect).
func decideV1Connect(ex *ExistingInfo, cs, gs uint64, resetCheck bool, peer, me msg.Addr) v1Verdict {
	switch {
	case ex == nil:
		if cs > 0 {
			return v1vResetSession // we reset, the peer resumes a session
		}
		return v1vOpen
	case ex.State == ExistingClosed:
		return v1vOpen
	case ex.State == ExistingReplacing:
		return v1vRetryGlobal
	case gs < ex.PeerGlobalSeq:
		return v1vRetryGlobal
	case ex.Policy.Lossy:
		return v1vReplaceLossy
	case cs == 0 && ex.ConnectSeq > 0:
		return v1vReplaceReset
	case cs < ex.ConnectSeq:
		return v1vRetrySession // an old attempt, or our READY got lost
	case cs == ex.ConnectSeq:
		if ex.State == ExistingReady || ex.State == ExistingStandby {
			// Not a race: the peer must bump connect_seq. Both 0 with
			// resetcheck would deadlock: replace.
			if resetCheck && ex.ConnectSeq == 0 {
				return v1vReplace
			}
			return v1vRetrySession
		}
		// A connection race: the lower address's connect wins.
		if addrLess(legacyKey(peer), legacyKey(me)) || ex.Policy.Server {
			return v1vReplace
		}
		return v1vWait
	case resetCheck && ex.ConnectSeq == 0:
		return v1vResetSession
	}
	return v1vReplace
}

// legacyKey is a as Ceph's legacy_addr() compares it: type LEGACY.
func legacyKey(a msg.Addr) msg.Addr {
	a.Type = msg.AddrLegacy
	return a
}

// serverConnect handles a ceph_msg_connect (Ceph's
// handle_connect_message_2): protocol version, features, authorizer,
// then the decision for an existing session.
func (m *V1) serverConnect(c wire.V1Connect, authorizer []byte) error {
	m.rounds++
	if m.rounds > maxV1Rounds {
		return fmt.Errorf("%w: %d connect attempts on one socket", ErrUnexpectedFrame, m.rounds-1)
	}
	if c.HostType == 0 || c.HostType > 0xff {
		return fmt.Errorf("%w: connect from entity type %d", wire.ErrMalformed, c.HostType)
	}
	pt := msg.EntityType(c.HostType)
	if m.sess == nil || m.peerType != pt {
		m.sess = NewSession(m.cfg.PolicyFor(pt), m.cfg.Release)
	}
	m.peerType = pt
	s := m.sess
	s.peerAddrs = msg.AddrVec{m.peerAddr}
	s.peerName = msg.EntityName{Type: pt, Num: msg.NumNew}
	m.connect = c
	reply := wire.V1ConnectReply{ProtocolVersion: v1ProtoVersion(m.cfg.MyType, pt, false)}
	if c.ProtocolVersion != reply.ProtocolVersion {
		return m.sendReply(wire.V1TagBadProtoVer, reply, nil)
	}
	pol := s.policy
	if pol.FeaturesRequired&^c.Features != 0 {
		return m.sendReply(wire.V1TagFeatures, reply, nil)
	}
	authReply, st := m.serverAuth(c, authorizer)
	switch st {
	case AuthMore:
		return m.sendReply(wire.V1TagChallengeAuthorizer, reply, authReply)
	case AuthDone:
	default:
		return m.sendReply(wire.V1TagBadAuthorizer, reply, authReply)
	}
	if pol.Server && pol.Lossy {
		// An incoming lossy client: no session to look up.
		return m.open(reply, authReply)
	}
	var ex Existing
	var info *ExistingInfo
	if m.cfg.Registry != nil {
		if ex = m.cfg.Registry.Lookup(s.peerAddrs); ex != nil {
			i := ex.Info()
			info = &i
		}
	}
	me, _ := m.myAddrs.Legacy()
	switch decideV1Connect(info, uint64(c.ConnectSeq), uint64(c.GlobalSeq), pol.ResetCheck, m.peerAddr, me) {
	case v1vResetSession:
		return m.sendReply(wire.V1TagResetSession, reply, authReply)
	case v1vRetryGlobal:
		reply.GlobalSeq = uint32(info.PeerGlobalSeq)
		return m.sendReply(wire.V1TagRetryGlobal, reply, authReply)
	case v1vRetrySession:
		reply.ConnectSeq = uint32(info.ConnectSeq + 1)
		return m.sendReply(wire.V1TagRetrySession, reply, authReply)
	case v1vWait:
		// Our own connection to the peer wins; make sure it completes,
		// since the peer has something to send.
		m.cfg.Registry.Keepalive(ex)
		return m.sendReply(wire.V1TagWait, reply, authReply)
	case v1vReplaceLossy:
		m.cfg.Registry.MarkDown(ex)
	case v1vReplaceReset:
		m.resetFromPeer = true
		if err := m.adopt(ex, pol.ResetCheck); err != nil {
			return err
		}
	case v1vReplace:
		if err := m.adopt(ex, false); err != nil {
			return err
		}
		m.reconnect = true
	}
	return m.open(reply, authReply)
}

// serverAuth checks the authorizer. A monitor accepts none from
// non-monitors, who authenticate in MAuth messages (Ceph's
// Monitor::handle_auth_request); everything else goes to the AuthServer.
func (m *V1) serverAuth(c wire.V1Connect, authorizer []byte) ([]byte, AuthStatus) {
	if len(authorizer) == 0 && m.cfg.MyType == msg.EntityMon && m.peerType != msg.EntityMon {
		return nil, AuthDone
	}
	r := m.cfg.AuthServer.Handle(m.peerType, c.AuthorizerProtocol, m.challenged, authorizer)
	m.challenged = false
	switch r.Status {
	case AuthDone:
		m.auth = r.AuthResult
		return r.Payload, AuthDone
	case AuthMore:
		if len(r.Payload) == 0 {
			break // a challenge needs a payload: the client would take it as READY
		}
		m.challenged = true
		return r.Payload, AuthMore
	}
	return r.Payload, AuthBadMethod
}

// sendReply answers a connect that does not open the session; the client
// may send another connect on this socket (Ceph's
// send_connect_message_reply).
func (m *V1) sendReply(tag wire.V1Tag, r wire.V1ConnectReply, authReply []byte) error {
	pol := m.sess.policy
	r.Tag = tag
	r.Features = m.connect.Features&pol.FeaturesSupported | pol.FeaturesRequired
	r.AuthorizerLen = uint32(len(authReply))
	m.out = r.Append(m.out)
	m.out = append(m.out, authReply...)
	m.want = wire.V1ConnectLen
	return nil
}

// adopt takes the existing connection's session over (Ceph's replace):
// its unacknowledged messages are requeued; with reset (the peer
// restarted and our policy checks resets) the old session is dropped
// first and the application told. Ceph moves the socket into the existing
// connection and answers RETRY_GLOBAL to make the client connect again;
// here the owner moves this machine instead (Registry.Reuse), and the
// session opens on this very connect, which the client cannot tell apart.
func (m *V1) adopt(ex Existing, reset bool) error {
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
	es.peerAddrs = fresh.peerAddrs
	es.peerName = fresh.peerName
	m.sess = es
	m.replacing = true
	m.replaced = ex
	return nil
}

// open accepts the connect (Ceph's open): READY, or SEQ with our in_seq
// when the client has RECONNECT_SEQ and did not restart.
func (m *V1) open(r wire.V1ConnectReply, authReply []byte) error {
	s, c := m.sess, m.connect
	s.connectSeq = uint64(c.ConnectSeq) + 1
	s.peerGlobalSeq = uint64(c.GlobalSeq)
	seq := c.Features&wire.V1FeatureReconnectSeq != 0 && !m.resetFromPeer
	if seq {
		r.Tag = wire.V1TagSeq
	} else {
		r.Tag = wire.V1TagReady
		s.discardRequeuedUpTo(0)
		s.inSeq, s.ackPending = 0, 0
		m.reconnect = false
	}
	m.resetFromPeer = false
	r.Features = s.policy.FeaturesSupported
	r.GlobalSeq = uint32(m.cfg.GlobalSeq(0))
	r.ConnectSeq = uint32(s.connectSeq)
	r.AuthorizerLen = uint32(len(authReply))
	r.Flags = 0
	if s.policy.Lossy {
		r.Flags = wire.V1ConnectLossy
	}
	s.features = r.Features & c.Features
	if m.auth.GlobalID != 0 {
		s.peerName.Num = int64(m.auth.GlobalID)
	}
	if !m.replacing && m.cfg.Registry != nil {
		if err := m.cfg.Registry.Accept(m); err != nil {
			return fmt.Errorf("%w: %v", ErrReplaced, err)
		}
	}
	m.out = r.Append(m.out)
	m.out = append(m.out, authReply...)
	m.onceReady = true
	if seq {
		m.out = wire.AppendV1Seq(m.out, s.inSeq)
		m.st = v1ServerSeq
		m.want = wire.V1SeqLen
		return nil
	}
	m.ready()
	return nil
}
