package protocol

import (
	"fmt"
	"net/netip"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

// isBlankIP is Ceph's is_blank_ip: no IP, or the unspecified one.
func isBlankIP(a msg.Addr) bool {
	return a.IsBlank() || a.AddrPort.Addr().IsUnspecified()
}

// sameLegacy reports whether a and b name the same v1 endpoint (nonce,
// IP and port; the type is not on the v1 wire).
func sameLegacy(a, b msg.Addr) bool {
	return a.Nonce == b.Nonce && a.Port() == b.Port() && a.AddrPort.Addr().Unmap() == b.AddrPort.Addr().Unmap()
}

// clientBanner checks the server's address and learns ours (Ceph's
// handle_server_banner_and_identify), then sends our address and the
// first connect.
func (m *V1) clientBanner(serverAddr, forMe []byte) error {
	paddr, err := wire.DecodeV1Addr(serverAddr)
	if err != nil {
		return fmt.Errorf("decoding the server's address: %w", err)
	}
	seen, err := wire.DecodeV1Addr(forMe)
	if err != nil {
		return fmt.Errorf("decoding our address as the server sees it: %w", err)
	}
	target := m.cfg.TargetAddr
	if !sameLegacy(paddr, target) &&
		!(isBlankIP(paddr) && paddr.Port() == target.Port() && paddr.Nonce == target.Nonce) {
		return fmt.Errorf("%w: server claims to be %v, dialled %v", ErrPeerAddr, paddr, target)
	}
	target.Type = msg.AddrLegacy
	m.peerAddr = target
	if len(m.myAddrs) == 0 || isBlankIP(m.myAddrs[0]) {
		m.learnAddr(seen)
	}
	m.out = wire.AppendV1Addr(m.out, m.myLegacy())
	return m.sendConnect()
}

// learnAddr sets our addresses from the server's view of us, as Ceph's
// learned_addr (ms_learn_addr_from_peer): with no address, its IP with
// type any, port 0 and our nonce; blank ones get the IP.
func (m *V1) learnAddr(seen msg.Addr) {
	ip := seen.AddrPort.Addr()
	if !ip.IsValid() || ip.IsUnspecified() {
		return // the server does not know either
	}
	var addrs msg.AddrVec
	if len(m.myAddrs) == 0 {
		addrs = msg.AddrVec{{Type: msg.AddrAny, Nonce: m.cfg.Nonce, AddrPort: netip.AddrPortFrom(ip, 0)}}
	} else {
		addrs = make(msg.AddrVec, len(m.myAddrs))
		for i, a := range m.myAddrs {
			if isBlankIP(a) {
				a.AddrPort = netip.AddrPortFrom(ip, a.Port())
			}
			addrs[i] = a
		}
	}
	m.myAddrs = addrs
	m.ev.LearnedAddr(addrs)
}

// myLegacy is the address we claim (Ceph's get_myaddr_legacy): the first
// v1 or any address, else the first one, else a blank one with our nonce.
func (m *V1) myLegacy() msg.Addr {
	if a, ok := m.myAddrs.Legacy(); ok {
		return a
	}
	if len(m.myAddrs) > 0 {
		return m.myAddrs[0]
	}
	return msg.Addr{Nonce: m.cfg.Nonce}
}

// wantsAuthorizer reports whether our connects carry an authorizer: not
// from a non-monitor to a monitor, which authenticates in MAuth messages
// instead (Ceph's send_connect_message).
func (m *V1) wantsAuthorizer() bool {
	return m.peerType != msg.EntityMon || m.cfg.MyType == msg.EntityMon
}

// sendConnect sends a ceph_msg_connect (and authorizer) with the
// session's connect_seq and global_seq.
func (m *V1) sendConnect() error {
	m.rounds++
	if m.rounds > maxV1Rounds {
		return fmt.Errorf("%w: %d connect attempts on one socket", ErrUnexpectedFrame, m.rounds-1)
	}
	s := m.sess
	c := wire.V1Connect{
		Features:        s.policy.FeaturesSupported,
		HostType:        uint32(m.cfg.MyType),
		GlobalSeq:       uint32(s.globalSeq),
		ConnectSeq:      uint32(s.connectSeq),
		ProtocolVersion: v1ProtoVersion(m.cfg.MyType, m.peerType, true),
	}
	if s.policy.Lossy {
		c.Flags = wire.V1ConnectLossy // "fyi": the server decides
	}
	var authorizer []byte
	if m.wantsAuthorizer() {
		if m.authMore != nil {
			// Answering a challenge: the augmented authorizer, same method.
			authorizer = m.authMore
		} else {
			req, err := m.cfg.AuthClient.Request(m.peerType)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrAuthRefused, err)
			}
			authorizer, m.authMethod = req.Payload, req.Method
		}
		if len(authorizer) > wire.MaxV1AuthorizerLen {
			return fmt.Errorf("%w: authorizer of %d bytes", wire.ErrTooLarge, len(authorizer))
		}
		if len(authorizer) > 0 {
			c.AuthorizerProtocol = m.authMethod
			c.AuthorizerLen = uint32(len(authorizer))
		}
	}
	m.out = c.Append(m.out)
	m.out = append(m.out, authorizer...)
	m.st = v1ClientReply
	m.want = wire.V1ConnectReplyLen
	return nil
}

// clientReply handles a ceph_msg_connect_reply (Ceph's
// handle_connect_reply_*).
func (m *V1) clientReply(r wire.V1ConnectReply, authReply []byte) error {
	s := m.sess
	if len(authReply) > 0 && m.wantsAuthorizer() {
		if r.Tag == wire.V1TagChallengeAuthorizer {
			more, err := m.cfg.AuthClient.ReplyMore(authReply)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrAuthRefused, err)
			}
			m.authMore = more
			return m.sendConnect()
		}
		res, err := m.cfg.AuthClient.Done(0, ConModeCRC, authReply)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrAuthRefused, err)
		}
		m.auth = res
	}
	switch r.Tag {
	case wire.V1TagFeatures:
		return fmt.Errorf("%w: server requires %#x", ErrMissingFeatures, r.Features&^s.policy.FeaturesSupported)
	case wire.V1TagBadProtoVer:
		return fmt.Errorf("%w: ours %d, server's %d", ErrBadProtocolVersion,
			v1ProtoVersion(m.cfg.MyType, m.peerType, true), r.ProtocolVersion)
	case wire.V1TagBadAuthorizer:
		return fmt.Errorf("%w: BADAUTHORIZER", ErrAuthRefused)
	case wire.V1TagResetSession:
		// The server has no such session: ours is gone (queues and
		// sequence numbers), start a new one on this socket.
		s.discardQueues()
		s.resetCounters()
		m.ev.RemoteReset()
		return m.sendConnect()
	case wire.V1TagRetryGlobal:
		s.globalSeq = m.cfg.GlobalSeq(uint64(r.GlobalSeq))
		return m.sendConnect()
	case wire.V1TagRetrySession:
		if uint64(r.ConnectSeq) <= s.connectSeq {
			return fmt.Errorf("%w: RETRY_SESSION to connect_seq %d from %d", ErrUnexpectedFrame, r.ConnectSeq, s.connectSeq)
		}
		s.connectSeq = uint64(r.ConnectSeq)
		return m.sendConnect()
	case wire.V1TagWait:
		m.gotWait = true
		return ErrWait
	case wire.V1TagSeq, wire.V1TagReady:
		if missing := s.policy.FeaturesRequired &^ r.Features; missing != 0 {
			return fmt.Errorf("%w: server lacks %#x", ErrMissingFeatures, missing)
		}
		if r.Tag == wire.V1TagSeq {
			m.reply = r
			m.st = v1ClientSeq
			m.want = wire.V1SeqLen
			return nil
		}
		return m.clientReady(r, false)
	}
	return fmt.Errorf("%w: connect reply %v", ErrUnexpectedFrame, r.Tag)
}

// clientSeq handles the server's in_seq after SEQ: replays it has are
// dropped, and we answer with ours.
func (m *V1) clientSeq(acked uint64) error {
	s := m.sess
	s.discardRequeuedUpTo(acked)
	m.out = wire.AppendV1Seq(m.out, s.inSeq)
	return m.clientReady(m.reply, true)
}

// clientReady opens the session (Ceph's client_ready).
func (m *V1) clientReady(r wire.V1ConnectReply, seq bool) error {
	s := m.sess
	resumed := s.connectSeq > 0
	s.connectSeq++
	if s.connectSeq != uint64(r.ConnectSeq) {
		return fmt.Errorf("%w: server says connect_seq %d, expected %d", ErrUnexpectedFrame, r.ConnectSeq, s.connectSeq)
	}
	s.peerGlobalSeq = uint64(r.GlobalSeq)
	s.policy.Lossy = r.Flags&wire.V1ConnectLossy != 0 // the server decides
	s.features = r.Features & s.policy.FeaturesSupported
	s.peerAddrs = msg.AddrVec{m.peerAddr}
	s.peerName = msg.EntityName{Type: m.peerType, Num: msg.NumNew}
	m.reconnect = seq && resumed
	m.ready()
	return nil
}
