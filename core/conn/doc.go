// Package conn is msgr's Connection (Ceph's AsyncConnection): one peer
// session over a sequence of sockets, driven by a worker's event loop.
//
// A Connection owns a protocol.Session (what survives sockets: sequence
// numbers, the out queue by priority, the unacknowledged messages) and, while
// connected, a stack.Socket and the protocol.Machine running over it. The
// socket's worker loop runs every handler of the connection:
//
//   - the read handler reads as much as the socket holds into one buffer,
//     feeds it to the machine, which decodes every complete frame; messages
//     go to fast dispatch on this thread when a dispatcher accepts them,
//     else into the dispatch queue;
//   - the write path (Ceph's _try_send) drains the messages staged by Send,
//     encodes as many queued frames as fit into one contiguous buffer and
//     writes it with one syscall; only when the socket would block does it
//     register for writability, and it unregisters once the bytes are out;
//   - timers: handshake timeout (ms_connection_ready_timeout), idle timeout
//     (ms_connection_idle_timeout), reconnect backoff, injected delays.
//
// Threads. Send, SendKeepalive, MarkDown and every getter are safe from any
// goroutine, including dispatch callbacks. Send never takes the connection's
// main lock: it appends to a staging list under a small lock and, only when
// the loop is not already going to look at that list, submits one write
// event to the loop (so wake-ups coalesce, and a Send made from a handler on
// the same loop costs no event at all). Everything else is guarded by the
// connection's mutex, which the loop handlers take; it is uncontended in
// steady state.
//
// Sockets and workers. A Connection follows its socket: stack.Connect picks
// the least-loaded worker for each new socket, and a server connection that
// takes over an existing session (Ceph's reuse_connection) moves that
// session onto the new socket's worker, as Ceph does. Handlers are bound to
// one socket and ignore events of a socket the connection no longer owns.
//
// Faults follow the protocol's decision (protocol.Fault): a lossy session is
// closed and reported (dispatch HandleReset); a lossless one keeps its
// session, requeues what was not acknowledged, and reconnects at once (if it
// was open) or after a backoff growing from ms_initial_backoff to
// ms_max_backoff; a server-side lossless session waits in standby for the
// peer to come back.
//
// The connection talks to its messenger only through the Host interface,
// so this package does not import core/messenger.
package conn
