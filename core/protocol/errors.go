package protocol

import (
	"errors"
	"strings"
)

// Reasons a Machine faults, wrapped in a *Fault (test with errors.Is).
// Errors from core/wire (bad crc, bad preamble, malformed payload...) are
// wrapped the same way.
var (
	// ErrUnexpectedFrame: a frame that is not valid in the current state
	// (for example MESSAGE before the session is open, or a server frame
	// sent to a server).
	ErrUnexpectedFrame = errors.New("protocol: frame not valid in this state")
	// ErrFrameTooLarge: a frame announces more bytes than Config.MaxFrame.
	ErrFrameTooLarge = errors.New("protocol: frame too large")
	// ErrPeerType: the peer's HELLO names a different entity type than the
	// one we connected to.
	ErrPeerType = errors.New("protocol: peer entity type mismatch")
	// ErrPeerAddr: the peer's addresses are empty or blank, or do not
	// contain the address that was dialled (or the server's own address).
	ErrPeerAddr = errors.New("protocol: wrong peer address")
	// ErrMissingFeatures: the server requires features the client lacks
	// (IDENT_MISSING_FEATURES).
	ErrMissingFeatures = errors.New("protocol: peer requires features we lack")
	// ErrAuthRefused: authentication failed or no acceptable method is left.
	ErrAuthRefused = errors.New("protocol: authentication refused")
	// ErrAuthSignature: the peer's AUTH_SIGNATURE does not match.
	ErrAuthSignature = errors.New("protocol: bad auth signature")
	// ErrWait: the server answered WAIT (it is connecting to us at the same
	// time and its connection wins); reconnect after the maximum backoff.
	ErrWait = errors.New("protocol: server asked us to wait (connection race)")
	// ErrStale: the server closed this connection because an existing
	// connection from the same peer has a newer global_seq.
	ErrStale = errors.New("protocol: stale connection attempt")
	// ErrReplaced: an accepting machine could not register its connection
	// (Registry.Accept failed: another connection for the peer won).
	ErrReplaced = errors.New("protocol: connection replaced")
	// ErrClosed: the machine was closed by its owner.
	ErrClosed = errors.New("protocol: machine closed")
	// ErrPreAuthTooLarge: the handshake exceeded the pre-auth byte budget.
	ErrPreAuthTooLarge = errors.New("protocol: handshake too large")
)

// Action tells the owner what to do with the session after a fault, as
// Ceph's ProtocolV2::_fault decides it.
type Action uint8

const (
	// ActionClose: close the connection and drop the session (lossy
	// session, or a half-accepted server connection with nothing to send).
	// The owner reports a reset (ms_handle_reset) to the application.
	ActionClose Action = iota + 1
	// ActionStandby: keep the session (and its queue) and wait: a server
	// waits for the peer to reconnect; a client with a standby policy
	// reconnects once something is queued.
	ActionStandby
	// ActionReconnect: open a new socket and run a new client Machine over
	// the same Session, after Backoff.
	ActionReconnect
)

// String returns "close", "standby" or "reconnect".
func (a Action) String() string {
	switch a {
	case ActionClose:
		return "close"
	case ActionStandby:
		return "standby"
	case ActionReconnect:
		return "reconnect"
	}
	return "Action(?)"
}

// Backoff says how long the owner should wait before reconnecting.
type Backoff uint8

const (
	// BackoffNone: reconnect at once (the session was READY).
	BackoffNone Backoff = iota
	// BackoffGrow: wait ms_initial_backoff (0.2 s), doubling on every
	// consecutive fault up to ms_max_backoff (15 s).
	BackoffGrow
	// BackoffMax: wait ms_max_backoff (after WAIT: the peer's connection
	// wins the race and will reach us).
	BackoffMax
)

// Fault is the error a Machine returns when it stops: the reason and what
// the owner should do with the session. After a Fault the machine is in
// StateClosed and accepts no input.
type Fault struct {
	// Reason is the cause (one of the Err* values, a core/wire error, or
	// the error passed to Machine.Fault), possibly wrapped.
	Reason error
	// State is the state the machine was in when it faulted.
	State State
	// Action and Backoff are the decision for the session.
	Action  Action
	Backoff Backoff
}

// Error describes the fault.
func (f *Fault) Error() string {
	var b strings.Builder
	b.WriteString("protocol fault in ")
	b.WriteString(f.State.String())
	b.WriteString(" (")
	b.WriteString(f.Action.String())
	b.WriteString("): ")
	if f.Reason != nil {
		b.WriteString(f.Reason.Error())
	} else {
		b.WriteString("unknown reason")
	}
	return b.String()
}

// Unwrap returns the reason.
func (f *Fault) Unwrap() error { return f.Reason }
