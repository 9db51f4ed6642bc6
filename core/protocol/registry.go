package protocol

import (
	"bytes"
	"encoding/binary"

	"github.com/msgr-dev/msgr/core/msg"
)

// ExistingState is the coarse state of an existing connection, as far as
// the server's decision tables (FACTS.md §8.4–8.5) care.
type ExistingState uint8

const (
	// ExistingClosed: the connection is closed (Ceph state CLOSED).
	ExistingClosed ExistingState = iota + 1
	// ExistingReplacing: another socket is already taking the connection
	// over (Ceph's "replacing" flag).
	ExistingReplacing
	// ExistingReady: the session is open (READY).
	ExistingReady
	// ExistingStandby: a lossless session without a socket (STANDBY).
	ExistingStandby
	// ExistingConnecting: a handshake is in progress on it, in either role
	// (for a connection race, the one we are dialling out on).
	ExistingConnecting
)

// ExistingInfo is a consistent snapshot of an existing connection to the
// peer, taken by the Registry. Session.Info provides the session fields.
type ExistingInfo struct {
	State ExistingState
	// Policy is the existing connection's policy (Lossy and Server matter).
	Policy msg.Policy
	// PeerAddrs are the peer's addresses as the existing connection knows
	// them (Ceph's existing->peer_addrs).
	PeerAddrs msg.AddrVec
	// Session fields (Ceph's exproto->...).
	ClientCookie  uint64
	ServerCookie  uint64
	PeerGlobalSeq uint64
	ConnectSeq    uint64
}

// Existing is the registry's handle on an existing connection. The
// protocol package only reads its Info and passes it back to the Registry.
type Existing interface {
	Info() ExistingInfo
}

// Registry is the server machine's view of the messenger's connections
// (Ceph's AsyncMessenger lookup_conn / accept_conn and the existing
// connection's protocol). All calls come from the machine's goroutine; an
// implementation locks as it needs.
type Registry interface {
	// Lookup returns the connection registered for the peer's addresses,
	// or nil.
	Lookup(peer msg.AddrVec) Existing
	// Reuse hands ex's session over to m, the calling machine (Ceph's
	// reuse_connection): the owner detaches ex's socket and machine so
	// that nothing else touches the session, marks ex as being replaced
	// (ExistingReplacing until m is READY), and returns the session and
	// the Events of ex (m reports to them from now on). m then finishes
	// the handshake on its own socket, in this same Feed call; the owner
	// moves m and its socket into ex (ReadyInfo.Replaced is ex). An error
	// faults m.
	Reuse(ex Existing, p Protocol) (*Session, Events, error)
	// MarkDown closes ex (a lossy connection replaced by a new one).
	MarkDown(ex Existing)
	// Keepalive makes ex send a KEEPALIVE2 (ex wins a connection race; this
	// makes sure it completes, since the peer has something to send).
	Keepalive(ex Existing)
	// Accept registers the calling machine's connection for its peer
	// (Ceph's accept_conn), just before SERVER_IDENT is sent for a new
	// session. An error (another connection won meanwhile) faults the
	// machine with ErrReplaced.
	Accept(p Protocol) error
}

// reconnectVerdict is the server's answer to SESSION_RECONNECT.
type reconnectVerdict uint8

const (
	rvResetFull reconnectVerdict = iota + 1
	rvResetPartial
	rvRetryGlobal
	rvRetry
	rvWait
	rvAccept
)

// reconnectRequest holds the SESSION_RECONNECT fields the table needs.
type reconnectRequest struct {
	clientCookie uint64
	globalSeq    uint64
	connectSeq   uint64
}

// decideReconnect is the decision table of FACTS.md §8.4 (Ceph's
// handle_reconnect). ex is nil when no connection to the peer exists;
// resetCheck is this connection's policy.ResetCheck; myAddrs are the
// server's own addresses. It returns the verdict; RETRY_GLOBAL carries
// ex.PeerGlobalSeq and RETRY carries ex.ConnectSeq.
func decideReconnect(ex *ExistingInfo, req reconnectRequest, resetCheck bool, myAddrs msg.AddrVec) reconnectVerdict {
	switch {
	case ex == nil, ex.State == ExistingClosed:
		return rvResetFull
	case ex.State == ExistingReplacing:
		return rvRetryGlobal
	case ex.ClientCookie != req.clientCookie:
		// The peer reconnects to a session we no longer have: we must
		// have reset. A full reset only if our policy checks resets.
		if resetCheck {
			return rvResetFull
		}
		return rvResetPartial
	case ex.ServerCookie == 0:
		// We were the client of that session and never got SERVER_IDENT:
		// ask the peer to resume session establishment.
		return rvResetPartial
	case ex.PeerGlobalSeq > req.globalSeq:
		return rvRetryGlobal
	case ex.ConnectSeq > req.connectSeq:
		return rvRetry
	case ex.ConnectSeq == req.connectSeq:
		// Both sides are reconnecting: the existing connection wins if the
		// peer's address is higher and it is not server-side.
		if addrLess(msgr2Addr(myAddrs), msgr2Addr(ex.PeerAddrs)) && !ex.Policy.Server {
			return rvWait
		}
	}
	return rvAccept
}

// identVerdict is the server's answer to CLIENT_IDENT.
type identVerdict uint8

const (
	ivServerIdent  identVerdict = iota + 1 // no usable existing: new session
	ivWait                                 // existing wins or is being replaced
	ivWaitKick                             // existing wins a race: WAIT here, keepalive there
	ivStale                                // close this connection silently
	ivReplaceLossy                         // close existing, new session here
	ivReuseReset                           // peer restarted: reset existing session then reuse
	ivReuse                                // take existing's session over
)

// decideClientIdent is the decision table of FACTS.md §8.5 (Ceph's
// handle_existing_connection). ex is nil when no connection to the peer
// exists. peerGlobalSeq and clientCookie come from CLIENT_IDENT,
// peerAddrs are the client's addresses, myAddrs the server's.
func decideClientIdent(ex *ExistingInfo, peerGlobalSeq, clientCookie uint64, resetCheck bool, peerAddrs, myAddrs msg.AddrVec) identVerdict {
	switch {
	case ex == nil, ex.State == ExistingClosed:
		return ivServerIdent
	case ex.State == ExistingReplacing:
		return ivWait
	case ex.PeerGlobalSeq > peerGlobalSeq:
		return ivStale
	case ex.Policy.Lossy:
		return ivReplaceLossy
	case ex.ServerCookie != 0 && ex.ClientCookie != 0 && ex.ClientCookie != clientCookie:
		// The peer restarted: its old session is gone.
		if resetCheck {
			return ivReuseReset
		}
		return ivReuse
	case ex.ClientCookie == clientCookie:
		// Session establishment was interrupted between CLIENT_IDENT and
		// SERVER_IDENT; continue it.
		return ivReuse
	case ex.State == ExistingReady || ex.State == ExistingStandby:
		return ivReuse
	case addrLess(msgr2Addr(peerAddrs), msgr2Addr(myAddrs)) || ex.Policy.Server:
		// Connection race: both sides connect; the lower address's
		// incoming connection wins.
		return ivReuse
	}
	return ivWaitKick
}

// msgr2Addr is Ceph's entity_addrvec_t::msgr2_addr: the first v2 address,
// or the blank address.
func msgr2Addr(v msg.AddrVec) msg.Addr {
	for _, a := range v {
		if a.Type == msg.AddrMsgr2 {
			return a
		}
	}
	return msg.Addr{}
}

// addrLess orders addresses as Ceph's entity_addr_t operator< does: a
// memcmp of the in-memory struct on a little-endian host (u32 type, u32
// nonce, then the sockaddr: family in host order, port and address in
// network order). Both peers of a race must agree on the order, including
// a real Ceph peer, hence this exact byte layout.
func addrLess(a, b msg.Addr) bool {
	var ka, kb [36]byte
	return bytes.Compare(addrKey(&ka, a), addrKey(&kb, b)) < 0
}

func addrKey(k *[36]byte, a msg.Addr) []byte {
	binary.LittleEndian.PutUint32(k[0:], uint32(a.Type))
	binary.LittleEndian.PutUint32(k[4:], a.Nonce)
	ip := a.AddrPort.Addr()
	switch {
	case ip.Is4():
		binary.LittleEndian.PutUint16(k[8:], 2) // AF_INET
		binary.BigEndian.PutUint16(k[10:], a.AddrPort.Port())
		v4 := ip.As4()
		copy(k[12:], v4[:])
	case ip.Is6():
		binary.LittleEndian.PutUint16(k[8:], 10) // AF_INET6
		binary.BigEndian.PutUint16(k[10:], a.AddrPort.Port())
		v6 := ip.As16()
		copy(k[16:], v6[:]) // after the 4-byte flowinfo
	}
	return k[:]
}
