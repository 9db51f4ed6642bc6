package protocol

import (
	"testing"

	"github.com/msgr-dev/msgr/core/msg"
)

var (
	addrLo = msg.AddrVec{msg.MustParseAddr("v2:127.0.0.1:6800/7")}
	addrHi = msg.AddrVec{msg.MustParseAddr("v2:127.0.0.1:6801/7")}
)

// TestDecideReconnect walks the SESSION_RECONNECT table of FACTS.md §8.4
// row by row, in order.
func TestDecideReconnect(t *testing.T) {
	base := ExistingInfo{State: ExistingStandby, Policy: msg.LosslessPeer(0), PeerAddrs: addrHi,
		ClientCookie: 7, ServerCookie: 9, PeerGlobalSeq: 5, ConnectSeq: 3}
	req := reconnectRequest{clientCookie: 7, globalSeq: 6, connectSeq: 4}
	with := func(f func(*ExistingInfo)) *ExistingInfo { e := base; f(&e); return &e }
	for _, tc := range []struct {
		name       string
		ex         *ExistingInfo
		req        reconnectRequest
		resetCheck bool
		me         msg.AddrVec
		want       reconnectVerdict
	}{
		{"none", nil, req, true, addrLo, rvResetFull},
		{"closed", with(func(e *ExistingInfo) { e.State = ExistingClosed }), req, true, addrLo, rvResetFull},
		{"replacing", with(func(e *ExistingInfo) { e.State = ExistingReplacing }), req, true, addrLo, rvRetryGlobal},
		{"cookie-resetcheck", with(func(e *ExistingInfo) { e.ClientCookie = 8 }), req, true, addrLo, rvResetFull},
		{"cookie-no-resetcheck", with(func(e *ExistingInfo) { e.ClientCookie = 8 }), req, false, addrLo, rvResetPartial},
		{"no-server-cookie", with(func(e *ExistingInfo) { e.ServerCookie = 0 }), req, true, addrLo, rvResetPartial},
		{"stale-global", with(func(e *ExistingInfo) { e.PeerGlobalSeq = 7 }), req, true, addrLo, rvRetryGlobal},
		{"stale-connect", with(func(e *ExistingInfo) { e.ConnectSeq = 5 }), req, true, addrLo, rvRetry},
		// Both reconnecting (equal connect_seq): the higher peer's
		// existing connection wins unless it is server-side.
		{"race-existing-wins", with(func(e *ExistingInfo) { e.ConnectSeq = 4 }), req, true, addrLo, rvWait},
		{"race-existing-server", with(func(e *ExistingInfo) { e.ConnectSeq = 4; e.Policy.Server = true }), req, true, addrLo, rvAccept},
		{"race-this-wins", with(func(e *ExistingInfo) { e.ConnectSeq = 4; e.PeerAddrs = addrLo }), req, true, addrHi, rvAccept},
		{"accept", &base, req, true, addrLo, rvAccept},
	} {
		if got := decideReconnect(tc.ex, tc.req, tc.resetCheck, tc.me); got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestDecideClientIdent walks the CLIENT_IDENT table of FACTS.md §8.5.
func TestDecideClientIdent(t *testing.T) {
	base := ExistingInfo{State: ExistingConnecting, Policy: msg.LosslessPeer(0), PeerAddrs: addrHi,
		ClientCookie: 0, ServerCookie: 0, PeerGlobalSeq: 5}
	with := func(f func(*ExistingInfo)) *ExistingInfo { e := base; f(&e); return &e }
	const gs, cookie = 6, 77
	for _, tc := range []struct {
		name       string
		ex         *ExistingInfo
		gs         uint64
		resetCheck bool
		peer, me   msg.AddrVec
		want       identVerdict
	}{
		{"none", nil, gs, true, addrHi, addrLo, ivServerIdent},
		{"closed", with(func(e *ExistingInfo) { e.State = ExistingClosed }), gs, true, addrHi, addrLo, ivServerIdent},
		{"replacing", with(func(e *ExistingInfo) { e.State = ExistingReplacing }), gs, true, addrHi, addrLo, ivWait},
		{"stale", &base, 4, true, addrHi, addrLo, ivStale},
		{"lossy", with(func(e *ExistingInfo) { e.Policy.Lossy = true }), gs, true, addrHi, addrLo, ivReplaceLossy},
		{"peer-restarted-resetcheck", with(func(e *ExistingInfo) { e.ClientCookie, e.ServerCookie = 1, 2 }), gs, true, addrHi, addrLo, ivReuseReset},
		{"peer-restarted", with(func(e *ExistingInfo) { e.ClientCookie, e.ServerCookie = 1, 2 }), gs, false, addrHi, addrLo, ivReuse},
		{"interrupted", with(func(e *ExistingInfo) { e.ClientCookie = cookie }), gs, true, addrHi, addrLo, ivReuse},
		{"ready", with(func(e *ExistingInfo) { e.State = ExistingReady }), gs, true, addrHi, addrLo, ivReuse},
		{"standby", with(func(e *ExistingInfo) { e.State = ExistingStandby }), gs, true, addrHi, addrLo, ivReuse},
		{"race-peer-lower-wins", &base, gs, true, addrLo, addrHi, ivReuse},
		{"race-existing-server", with(func(e *ExistingInfo) { e.Policy.Server = true }), gs, true, addrHi, addrLo, ivReuse},
		{"race-existing-wins", &base, gs, true, addrHi, addrLo, ivWaitKick},
	} {
		if got := decideClientIdent(tc.ex, tc.gs, cookie, tc.resetCheck, tc.peer, tc.me); got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestAddrLess checks the memcmp order of entity_addr_t on a little-endian
// host: type, then nonce byte by byte from the low byte, then family,
// port (big-endian) and IP.
func TestAddrLess(t *testing.T) {
	p := msg.MustParseAddr
	for _, tc := range []struct{ a, b string }{
		{"v2:127.0.0.1:6800/7", "v2:127.0.0.1:6801/7"},
		{"v2:127.0.0.2:6800/7", "v2:127.0.0.1:6900/7"},   // port before IP
		{"v2:127.0.0.1:6800/256", "v2:127.0.0.1:6800/1"}, // nonce bytes 00 01.. < 01 00..
		{"v1:127.0.0.9:6800/7", "v2:127.0.0.1:6800/7"},   // type first
		{"v2:127.0.0.1:255/7", "v2:127.0.0.1:256/7"},     // port big-endian
		{"v2:10.0.0.1:1/7", "v2:[::1]:1/7"},              // AF_INET < AF_INET6
	} {
		a, b := p(tc.a), p(tc.b)
		if !addrLess(a, b) || addrLess(b, a) {
			t.Errorf("want %v < %v", a, b)
		}
	}
	if addrLess(p("v2:1.2.3.4:5/6"), p("v2:1.2.3.4:5/6")) {
		t.Error("an address is less than itself")
	}
	if got := msgr2Addr(msg.AddrVec{p("v1:1.2.3.4:5/0"), p("v2:1.2.3.4:6/0")}); got != p("v2:1.2.3.4:6/0") {
		t.Errorf("msgr2Addr picked %v", got)
	}
}
