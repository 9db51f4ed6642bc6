// Package protocol is the msgr2 session state machine (Ceph's ProtocolV2)
// for both roles, client (connector) and server (acceptor), with no sockets.
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
