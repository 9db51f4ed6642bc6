package msg

import (
	"errors"
	"net/netip"
	"testing"
)

func TestEntityName(t *testing.T) {
	cases := []struct {
		s string
		n EntityName
	}{
		{"client.4242", EntityName{EntityClient, 4242}},
		{"mon.0", EntityName{EntityMon, 0}},
		{"osd.12", EntityName{EntityOSD, 12}},
		{"mds.1", EntityName{EntityMDS, 1}},
		{"mgr.7", EntityName{EntityMgr, 7}},
		{"client.?", EntityName{EntityClient, NumNew}},
	}
	for _, c := range cases {
		if got := c.n.String(); got != c.s {
			t.Errorf("%+v.String() = %q, want %q", c.n, got, c.s)
		}
		got, err := ParseEntityName(c.s)
		if err != nil || got != c.n {
			t.Errorf("ParseEntityName(%q) = %+v, %v", c.s, got, err)
		}
	}
	for _, bad := range []string{"", "client", "client.", "bogus.1", "client.x", "client.+1", "client.1.2", ".1"} {
		if n, err := ParseEntityName(bad); err == nil {
			t.Errorf("ParseEntityName(%q) = %+v, want error", bad, n)
		}
	}
	if EntityType(0x40).String() != "unknown" {
		t.Errorf("unknown type name %q", EntityType(0x40).String())
	}
	if !(EntityName{EntityClient, NumNew}).IsNew() || (EntityName{EntityClient, 0}).IsNew() {
		t.Error("IsNew")
	}
	// Values fixed by Ceph's msgr.h.
	if EntityMon != 1 || EntityMDS != 2 || EntityOSD != 4 || EntityClient != 8 || EntityMgr != 0x10 {
		t.Error("entity type values")
	}
}

func TestAddrStringRoundTrip(t *testing.T) {
	cases := []string{
		"v2:127.0.0.1:3300/0",
		"v1:1.2.3.4:6789/123",
		"v2:[::1]:3300/0",
		"v1:[fe80::1:2]:6789/4294967295",
		"v2:0.0.0.0:0/0",
		"-",
	}
	for _, s := range cases {
		a, err := ParseAddr(s)
		if err != nil {
			t.Errorf("ParseAddr(%q): %v", s, err)
			continue
		}
		if got := a.String(); got != s {
			t.Errorf("ParseAddr(%q).String() = %q", s, got)
		}
	}
}

func TestAddrParseForms(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	cases := []struct {
		s    string
		want Addr
	}{
		{"127.0.0.1:3300", Addr{AddrMsgr2, 0, netip.AddrPortFrom(lo, 3300)}}, // bare = v2
		{"127.0.0.1", Addr{AddrMsgr2, 0, netip.AddrPortFrom(lo, 0)}},
		{"127.0.0.1/5", Addr{AddrMsgr2, 5, netip.AddrPortFrom(lo, 0)}},
		{"any:127.0.0.1:0/42", Addr{AddrAny, 42, netip.AddrPortFrom(lo, 0)}},
		{"::1", Addr{AddrMsgr2, 0, netip.AddrPortFrom(netip.IPv6Loopback(), 0)}},
		{"v1:[::1]/3", Addr{AddrLegacy, 3, netip.AddrPortFrom(netip.IPv6Loopback(), 0)}},
	}
	for _, c := range cases {
		got, err := ParseAddr(c.s)
		if err != nil || got != c.want {
			t.Errorf("ParseAddr(%q) = %+v, %v; want %+v", c.s, got, err, c.want)
		}
	}
	// Type any prints without a prefix, as Ceph.
	if s := (Addr{AddrAny, 42, netip.AddrPortFrom(lo, 0)}).String(); s != "127.0.0.1:0/42" {
		t.Errorf("any addr prints %q", s)
	}
	if s := (Addr{Type: AddrMsgr2}).String(); s != "v2:(unrecognized address family 0)/0" {
		t.Errorf("blank addr prints %q", s)
	}
}

func TestAddrParseBad(t *testing.T) {
	for _, s := range []string{
		"", "v2:", "v3:1.2.3.4:1/0", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:1/",
		"1.2.3.4:1/4294967296", "1.2.3.4:1/x", "[::1", "[::1]x", "::1:3300:", "1.2.3.4.5",
		"01.2.3.4:1", "v2:[1.2.3.4]:1/0x", "1.2.3.4:1/0 ", "[nothost]:1", "1.2.3.4:-1",
	} {
		if a, err := ParseAddr(s); err == nil {
			t.Errorf("ParseAddr(%q) = %v, want error", s, a)
		} else if !errors.Is(err, ErrBadAddr) {
			t.Errorf("ParseAddr(%q) error %v is not ErrBadAddr", s, err)
		}
	}
}

func TestAddrVec(t *testing.T) {
	s := "[v2:1.2.3.4:3300/0,v1:1.2.3.4:6789/0]"
	v, err := ParseAddrVec(s)
	if err != nil || len(v) != 2 || v.String() != s {
		t.Fatalf("ParseAddrVec(%q) = %v, %v", s, v, err)
	}
	if a, ok := v.Msgr2(); !ok || a.Port() != 3300 {
		t.Errorf("Msgr2() = %v %v", a, ok)
	}
	if a, ok := v.Legacy(); !ok || a.Port() != 6789 {
		t.Errorf("Legacy() = %v %v", a, ok)
	}
	if !v.Contains(MustParseAddr("v1:1.2.3.4:6789/0")) || v.Contains(MustParseAddr("v1:1.2.3.4:6789/1")) {
		t.Error("Contains")
	}
	one, err := ParseAddrVec("v2:[::1]:3300/0")
	if err != nil || len(one) != 1 || one.String() != "v2:[::1]:3300/0" {
		t.Errorf("single addrvec %v %v", one, err)
	}
	if (AddrVec{}).String() != "" {
		t.Error("empty addrvec prints non-empty")
	}
	for _, bad := range []string{"", "[]", "[v2:1.2.3.4:1/0", "[v2:1.2.3.4:1/0,]", "[v2:1.2.3.4:1/0]x", "[v2:1.2.3.4:1/0;v1:1.2.3.4:2/0]"} {
		if v, err := ParseAddrVec(bad); err == nil {
			t.Errorf("ParseAddrVec(%q) = %v, want error", bad, v)
		}
	}
}

func TestAddrPredicates(t *testing.T) {
	a := MustParseAddr("v2:[::ffff:1.2.3.4]:1/0")
	if !a.IsIPv6() || a.IsIPv4() || a.IsBlank() {
		t.Errorf("4in6 predicates: %v", a)
	}
	b := MustParseAddr("v2:1.2.3.4:1/0")
	if !b.IsIPv4() || b.IsIPv6() {
		t.Error("v4 predicates")
	}
	if !(Addr{Type: AddrAny}).IsBlank() {
		t.Error("blank")
	}
}

func TestPolicies(t *testing.T) {
	// FACTS.md §8.6 table: lossy, server, standby, resetcheck, register_lossy_clients.
	cases := []struct {
		name string
		p    Policy
		want [5]bool
	}{
		{"stateful_server", StatefulServer(0), [5]bool{false, true, true, true, true}},
		{"stateless_registered_server", StatelessRegisteredServer(0), [5]bool{true, true, false, false, true}},
		{"stateless_server", StatelessServer(0), [5]bool{true, true, false, false, false}},
		{"lossless_peer", LosslessPeer(0), [5]bool{false, false, true, false, true}},
		{"lossless_peer_reuse", LosslessPeerReuse(0), [5]bool{false, false, true, true, true}},
		{"lossy_client", LossyClient(0), [5]bool{true, false, false, false, true}},
		{"lossless_client", LosslessClient(0), [5]bool{false, false, false, true, true}},
	}
	for _, c := range cases {
		got := [5]bool{c.p.Lossy, c.p.Server, c.p.Standby, c.p.ResetCheck, c.p.RegisterLossyClients}
		if got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	p := LossyClient(FeatureOSDReplyMux)
	if p.FeaturesRequired != FeatureOSDReplyMux || p.FeaturesSupported != FeaturesAll {
		t.Errorf("features %#x %#x", p.FeaturesRequired, p.FeaturesSupported)
	}
}

func TestMessage(t *testing.T) {
	m := New(MsgMonGetVersion, []byte("front"))
	if m.Priority != PrioDefault || m.Version != 1 || m.CompatVersion != 1 || m.Flags != 3 || m.Type != 19 {
		t.Errorf("defaults %+v", m.Header)
	}
	m.Data = []byte("data")
	if m.PayloadLen() != 9 {
		t.Errorf("PayloadLen %d", m.PayloadLen())
	}
	calls := 0
	m.DataFree = func() { calls++ }
	m.Release()
	m.Release()
	if calls != 1 || m.Front != nil || m.Data != nil {
		t.Errorf("Release: %d calls, front %v", calls, m.Front)
	}
	if PrioLow != 64 || PrioDefault != 127 || PrioHigh != 196 || PrioHighest != 255 {
		t.Error("priority values")
	}
}

func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{"v2:127.0.0.1:3300/0", "v1:[::1]:6789/1", "1.2.3.4", "-", "any:[::]:0/0", "[v2:1.2.3.4:3300/0,v1:1.2.3.4:6789/0]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if a, err := ParseAddr(s); err == nil {
			// Whatever parses must print to something that parses back to
			// the same address (type any prints without a prefix and so
			// reads back as v2; zones are not printed).
			a.AddrPort = netip.AddrPortFrom(a.AddrPort.Addr().WithZone(""), a.AddrPort.Port())
			b, err := ParseAddr(a.String())
			if a.Type == AddrAny {
				b.Type = AddrAny
			}
			if err != nil || b != a {
				t.Fatalf("%q -> %v -> %v, %v", s, a, b, err)
			}
		}
		if v, err := ParseAddrVec(s); err == nil && len(v) == 0 {
			t.Fatalf("%q parsed to an empty vector", s)
		}
	})
}

// Release must drop the segments before DataFree runs: a pool that gets m
// back from DataFree may refill it at once (found by cmd/msgr-bench).
func TestReleaseClearsBeforeDataFree(t *testing.T) {
	m := New(1, []byte("front"))
	m.Data = []byte("data")
	var seen []byte
	calls := 0
	m.DataFree = func() {
		calls++
		seen = m.Data
		m.Data = []byte("reused") // what a pool's next user would do
	}
	m.Release()
	if calls != 1 {
		t.Fatalf("DataFree ran %d times, want 1", calls)
	}
	if seen != nil {
		t.Fatalf("DataFree saw Data %q, want it cleared", seen)
	}
	if string(m.Data) != "reused" {
		t.Fatalf("Release clobbered the reused message: Data %q", m.Data)
	}
	m.DataFree = nil
	m.Release() // idempotent: DataFree is gone, nothing runs twice
	if calls != 1 {
		t.Fatalf("DataFree ran %d times, want 1", calls)
	}
}
