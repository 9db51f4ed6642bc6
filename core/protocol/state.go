package protocol

import "strconv"

// State is the protocol state of a Machine, named after Ceph's ProtocolV2
// states. Client states come first, then server states, then the shared
// ones. The String method is hand-written (no generator in the build).
type State uint8

const (
	// StateNone: not started.
	StateNone State = iota

	// Client (connector) states, in handshake order.

	// StateBannerConnecting: banner sent, waiting for the server's banner.
	StateBannerConnecting
	// StateHelloConnecting: HELLO sent, waiting for the server's HELLO.
	StateHelloConnecting
	// StateAuthConnecting: AUTH_REQUEST sent, waiting for AUTH_DONE (or
	// AUTH_BAD_METHOD / AUTH_REPLY_MORE).
	StateAuthConnecting
	// StateAuthConnectingSign: our AUTH_SIGNATURE sent, waiting for the
	// server's.
	StateAuthConnectingSign
	// StateSessionConnecting: CLIENT_IDENT sent, waiting for SERVER_IDENT.
	StateSessionConnecting
	// StateSessionReconnecting: SESSION_RECONNECT sent, waiting for
	// SESSION_RECONNECT_OK (or RETRY / RETRY_GLOBAL / RESET / WAIT).
	StateSessionReconnecting

	// Server (acceptor) states, in handshake order.

	// StateBannerAccepting: banner sent, waiting for the client's banner.
	StateBannerAccepting
	// StateHelloAccepting: HELLO sent, waiting for the client's HELLO.
	StateHelloAccepting
	// StateAuthAccepting: waiting for AUTH_REQUEST.
	StateAuthAccepting
	// StateAuthAcceptingMore: AUTH_REPLY_MORE sent, waiting for
	// AUTH_REQUEST_MORE.
	StateAuthAcceptingMore
	// StateAuthAcceptingSign: AUTH_DONE and our AUTH_SIGNATURE sent,
	// waiting for the client's AUTH_SIGNATURE.
	StateAuthAcceptingSign
	// StateSessionAccepting: waiting for CLIENT_IDENT or SESSION_RECONNECT.
	StateSessionAccepting

	// Shared states.

	// StateReady: the session is open; MESSAGE, ACK and KEEPALIVE2 frames
	// flow both ways.
	StateReady
	// StateClosed: the machine faulted or was closed; it accepts no more
	// input. Its Session may live on in a new Machine.
	StateClosed

	numStates
)

var stateNames = [numStates]string{
	StateNone:                "NONE",
	StateBannerConnecting:    "BANNER_CONNECTING",
	StateHelloConnecting:     "HELLO_CONNECTING",
	StateAuthConnecting:      "AUTH_CONNECTING",
	StateAuthConnectingSign:  "AUTH_CONNECTING_SIGN",
	StateSessionConnecting:   "SESSION_CONNECTING",
	StateSessionReconnecting: "SESSION_RECONNECTING",
	StateBannerAccepting:     "BANNER_ACCEPTING",
	StateHelloAccepting:      "HELLO_ACCEPTING",
	StateAuthAccepting:       "AUTH_ACCEPTING",
	StateAuthAcceptingMore:   "AUTH_ACCEPTING_MORE",
	StateAuthAcceptingSign:   "AUTH_ACCEPTING_SIGN",
	StateSessionAccepting:    "SESSION_ACCEPTING",
	StateReady:               "READY",
	StateClosed:              "CLOSED",
}

// String returns Ceph's name of the state ("SESSION_ACCEPTING", ...), or
// "State(n)" for a value out of range.
func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// connecting reports whether s is one of the client handshake states
// (Ceph's START_CONNECT..SESSION_RECONNECTING range).
func (s State) connecting() bool {
	return s >= StateBannerConnecting && s <= StateSessionReconnecting
}

// accepting reports whether s is one of the server handshake states
// (Ceph's START_ACCEPT..SESSION_ACCEPTING range).
func (s State) accepting() bool {
	return s >= StateBannerAccepting && s <= StateSessionAccepting
}

// Role is the side of the connection a Machine plays.
type Role uint8

const (
	// RoleClient is the connector: it sends CLIENT_IDENT / SESSION_RECONNECT.
	RoleClient Role = iota + 1
	// RoleServer is the acceptor.
	RoleServer
)

// String returns "client" or "server".
func (r Role) String() string {
	switch r {
	case RoleClient:
		return "client"
	case RoleServer:
		return "server"
	}
	return "Role(" + strconv.Itoa(int(r)) + ")"
}
