package protocol

import (
	"github.com/msgr-dev/msgr/core/msg"
)

// Protocol is what a connection's owner drives for one socket, whichever
// wire protocol runs on it (Ceph's Protocol base of ProtocolV1 and
// ProtocolV2): *Machine speaks msgr2, the V1 machine msgr1. Both share
// Session, Events, Registry and Fault, so a connection, its out queue and
// its replay logic do not depend on the protocol version. Not safe for
// concurrent use; see the package documentation for how an owner drives it.
type Protocol interface {
	// Role is client (connector) or server (acceptor).
	Role() Role
	// State is the coarse protocol state (StateReady once messages flow,
	// StateClosed after a fault or Close).
	State() State
	// Session is the session the machine works on (nil on a server before
	// the peer identified itself).
	Session() *Session
	// PeerType is the peer's entity type (a server learns it in the
	// handshake).
	PeerType() msg.EntityType
	// MyAddrs are this side's addresses (a client's learned ones included).
	MyAddrs() msg.AddrVec
	// Err is the fault that stopped the machine, or nil.
	Err() *Fault
	// Want is how many bytes, from the first unconsumed one, Feed needs
	// buffered to make progress.
	Want() int
	// Feed consumes every complete unit at the start of in and returns how
	// many bytes it used; a *Fault error closes the machine.
	Feed(in []byte) (int, error)
	// Send queues a message on the session; SendKeepalive asks for a
	// keepalive once ready.
	Send(m *msg.Message)
	SendKeepalive()
	// Pending reports whether AppendOutput has something to write.
	Pending() bool
	// AppendOutput appends the bytes to write (at least max when enough is
	// queued); AppendOutputV may leave large segments out as OutRefs.
	AppendOutput(dst []byte, max int) []byte
	AppendOutputV(dst []byte, refs []OutRef, max, minRef int) ([]byte, []OutRef)
	// Fault closes the machine for reason (a socket error, a timeout) and
	// returns the fault with the action to take.
	Fault(reason error) *Fault
	// Close closes the machine without a fault; the session lives on.
	Close()
}

var _ Protocol = (*Machine)(nil)
