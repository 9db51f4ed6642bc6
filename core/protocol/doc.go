// Package protocol is the session state machine for both roles, client
// (connector) and server (acceptor), with no sockets: msgr2 (Machine,
// Ceph's ProtocolV2) and msgr1 (V1, Ceph's ProtocolV1, files v1*.go). Both
// implement Protocol and share Session, Events, Registry and Fault, so the
// owner drives either the same way; the rest of this comment describes
// msgr2, and v1.go describes msgr1.
//
// A Machine handles one socket's worth of protocol: the banner exchange and
// revision negotiation, HELLO, authentication (through the AuthClient /
// AuthServer interfaces of auth.go; method "none" is implemented), the
// session handshake (CLIENT_IDENT / SERVER_IDENT / SESSION_RECONNECT and
// their replies, including the server-side decision tables of FACTS.md
// §8.4–8.5), and then MESSAGE / ACK / KEEPALIVE2 traffic.
//
// A Session is what survives a socket: cookies, connect_seq, global_seq,
// in/out sequence numbers, the out queue and the sent-but-unacked messages
// kept for replay. When a lossless connection faults, its owner builds a new
// Machine over the same Session for the next socket.
//
// The owner (core/conn) drives a Machine from one goroutine (the worker's
// event loop): it passes every byte read to Feed, writes what AppendOutput
// produces, and reacts to the Events callbacks and to the *Fault errors that
// Feed returns. A Machine is not safe for concurrent use.
//
// Files: state.go (State), client.go / server.go (the transitions of each
// role), session.go (messages, acks, keepalive, replay), auth.go (auth
// layer), registry.go (the server's view of existing connections).
package protocol
