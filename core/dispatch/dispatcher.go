// Package dispatch delivers received messages and connection events to the
// application (Ceph's Dispatcher and DispatchQueue).
//
// Two paths reach a Dispatcher:
//   - fast dispatch: the connection's worker thread calls FastDispatch
//     directly for a message that some dispatcher's CanFastDispatch accepts.
//     It must not block: it holds up every connection of that worker.
//   - the Queue: everything else is queued by priority and delivered by the
//     Queue's own goroutine, one call at a time, in priority order (strict
//     for priorities >= msg.PrioLow, weighted below, round-robin between
//     connections within a priority, FIFO within a connection).
package dispatch

import "github.com/msgr-dev/msgr/core/msg"

// Conn is what a dispatcher sees of a connection (implemented by
// core/conn.Connection). Every method is safe from any goroutine,
// including from inside a dispatch call.
type Conn interface {
	// ID is unique within a messenger for the connection's lifetime.
	ID() uint64
	// PeerName is the peer's entity name (known once the session is up).
	PeerName() msg.EntityName
	// PeerAddr is the peer's address.
	PeerAddr() msg.Addr
	// Features is the feature set agreed with the peer.
	Features() uint64
	// Send queues m; ownership passes to the connection on success.
	Send(m *msg.Message) error
	// SendKeepalive sends a KEEPALIVE2.
	SendKeepalive() error
	// MarkDown closes the connection and drops its queues.
	MarkDown()
	// IsLossy reports whether the session is lossy.
	IsLossy() bool
}

// Dispatcher is implemented by the application (Ceph's Dispatcher). Embed
// Base to get defaults for the methods you do not need.
//
// Unless noted, methods run on the Queue's goroutine, never two at once for
// the same Queue, and may call back into the messenger (Send included).
type Dispatcher interface {
	// Dispatch (ms_dispatch) offers m; return true if this dispatcher took
	// it. The dispatcher owns m when it returns true (Release it when
	// done); otherwise the next dispatcher in the chain is asked, and an
	// unclaimed message is released and counted.
	Dispatch(c Conn, m *msg.Message) bool
	// CanFastDispatch (ms_can_fast_dispatch) is called on a worker thread;
	// true means FastDispatch will take m there. Must be cheap and
	// side-effect free.
	CanFastDispatch(m *msg.Message) bool
	// FastDispatch (ms_fast_dispatch) runs on the connection's worker
	// thread; it owns m. Must not block.
	FastDispatch(c Conn, m *msg.Message)
	// HandleConnect (ms_handle_connect): an outgoing session is up.
	HandleConnect(c Conn)
	// HandleAccept (ms_handle_accept): an incoming session is up.
	HandleAccept(c Conn)
	// HandleReset (ms_handle_reset): a lossy connection faulted or was
	// marked down; anything queued on it is gone. Return true if handled.
	HandleReset(c Conn) bool
	// HandleRemoteReset (ms_handle_remote_reset): the peer reset the
	// session (it restarted); messages in flight may be lost.
	HandleRemoteReset(c Conn)
	// HandleRefused (ms_handle_refused): the peer refused the connection.
	// Return true if handled.
	HandleRefused(c Conn) bool
}

// Base implements every Dispatcher method as "not interested".
type Base struct{}

func (Base) Dispatch(Conn, *msg.Message) bool  { return false }
func (Base) CanFastDispatch(*msg.Message) bool { return false }
func (Base) FastDispatch(Conn, *msg.Message)   {}
func (Base) HandleConnect(Conn)                {}
func (Base) HandleAccept(Conn)                 {}
func (Base) HandleReset(Conn) bool             { return false }
func (Base) HandleRemoteReset(Conn)            {}
func (Base) HandleRefused(Conn) bool           { return false }
