package ceph

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/internal/leakcheck"
	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
	"github.com/msgr-dev/msgr/internal/testenv"
)

// The interop tests again over msgr1: a real 16.2.15 monitor bound to
// [v2, v1] (ms bind msgr1 = true) reached at its v1 address, and the real
// CLI with a v1-only mon host against MonServer (`msgr serve v1:…`).

// TestMessengerMonClientV1: the msgr1 handshake, MAuth, keepalives,
// MMonGetVersion, MMonGetMap and commands against the real monitor.
func TestMessengerMonClientV1(t *testing.T) {
	mon := startMon(t, testenv.MonOptions{Msgr1: true})
	if !mon.AddrV1.IsValid() {
		t.Fatal("the monitor has no v1 address")
	}
	mc := dialMon(t, "v1:"+mon.AddrV1.String(), MonClientOptions{})
	con := mc.Conn()
	if con.MsgrVersion() != 1 || !con.IsLossy() || con.PeerName().Type != msg.EntityMon {
		t.Fatalf("session: msgr%d lossy %v peer %v; want a lossy msgr1 session with a mon", con.MsgrVersion(), con.IsLossy(), con.PeerName())
	}
	mc.mu.Lock()
	gid := mc.globalID
	mc.mu.Unlock()
	if gid == 0 {
		t.Errorf("no global id from MAuthReply")
	}
	if mc.Fsid() != mon.FsidBytes() {
		t.Errorf("fsid %s, conf says %s", testenv.FormatUUID(mc.Fsid()), mon.Fsid)
	}
	ctx := ctxT(t, 60*time.Second)
	for i := 0; i < 200; i++ {
		if _, err := mc.Ping(ctx); err != nil {
			t.Fatalf("keepalive %d over v1: %v", i, err)
		}
	}
	v, err := mc.GetVersion(ctx, "osdmap")
	if err != nil || v.Version < 1 || v.OldestVersion > v.Version {
		t.Fatalf("GetVersion osdmap over v1: %+v %v", v, err)
	}
	mm, err := mc.GetMonMap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if mm.Fsid != mon.FsidBytes() || len(mm.Ranks) != 1 {
		t.Errorf("monmap fsid %s ranks %v", testenv.FormatUUID(mm.Fsid), mm.Ranks)
	}
	if a, ok := mm.Mons[0].Addrs.Legacy(); !ok || a.AddrPort != mon.AddrV1 {
		t.Errorf("monmap addrs %v: no v1 address %v", mm.Mons[0].Addrs, mon.AddrV1)
	}
	res, err := mc.Command(ctx, `{"prefix": "mon versions"}`)
	if err != nil || res.R != 0 {
		t.Fatalf("mon versions over v1: %+v %v", res, err)
	}
	var versions map[string]int
	if err := json.Unmarshal(res.Output, &versions); err != nil || len(versions) != 1 {
		t.Fatalf("mon versions output %q: %v", res.Output, err)
	}
	for k := range versions {
		if !strings.Contains(k, "16.2.15") {
			t.Errorf("mon versions %q", k)
		}
	}
	res, err = mc.Command(ctx, `{"prefix": "no such command"}`)
	if err != nil || res.R != -22 {
		t.Errorf("unknown command over v1: %+v %v", res, err)
	}
	// The monitor pushes a monmap after MAuthReply (V1-FACTS.md §6.1): it
	// answers DialMon's MMonGetMap, whose own reply is then unmatched.
	if s := mc.Stats(); s.Resets != 0 || s.Unmatched > 1 {
		t.Errorf("stats %+v on a quiet session", s)
	}
}

// TestMessengerMonProtocolMismatch: dialling the v2 port as v1 (and the v1
// port as v2) fails with ErrProtocolMismatch naming the other protocol.
func TestMessengerMonProtocolMismatch(t *testing.T) {
	mon := startMon(t, testenv.MonOptions{Msgr1: true})
	o := MonClientOptions{Timeout: 3 * time.Second}
	for addr, want := range map[string]string{
		"v1:" + mon.Addr.String():   "speaks msgr2",
		"v2:" + mon.AddrV1.String(): "speaks msgr1",
	} {
		mc, err := DialMon(ctxT(t, 10*time.Second), addr, o)
		if err == nil {
			mc.Close()
			t.Errorf("DialMon %s succeeded", addr)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("DialMon %s: %v; want %q", addr, err, want)
		}
	}
}

func serverHostV1(s *MonServer) string {
	a, _ := s.Addrs().Legacy()
	return "v1:" + a.AddrPort.String()
}

// TestCLICannedV1: `ceph -s` and `ceph mon versions` from the real CLI with
// a v1-only mon host against canned answers.
func TestCLICannedV1(t *testing.T) {
	testenv.RequireCeph(t)
	snap := leakcheck.Take()
	t.Cleanup(func() { snap.Check(t) })
	fsid := testenv.NewUUID()
	u, err := testenv.ParseUUID(fsid)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewMonServer("v1:127.0.0.1:0", MonServerOptions{Fsid: wire.UUID(u), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	dir := t.TempDir()
	conf, err := testenv.ClientConf(dir, serverHostV1(s), fsid)
	if err != nil {
		t.Fatal(err)
	}
	r := testenv.RunCeph(conf, 30*time.Second, "-s", "--debug-ms=20")
	if r.Err != nil || !strings.Contains(string(r.Stdout), "id:     "+fsid) {
		t.Fatalf("ceph -s over v1 against canned answers: %v", r)
	}
	log := cliLog(t, dir, r)
	if !regexp.MustCompile(`<== mon\.0 \S+ \d+ ==== mon_command_ack\(\[\{"prefix": "status"\}\]=0`).MatchString(log) {
		t.Errorf("the CLI's log shows no mon_command_ack for status")
	}
	if !strings.Contains(log, "v1:127.0.0.1") || strings.Contains(log, "--2-") {
		t.Errorf("the CLI's log does not show a msgr1-only session")
	}
	r = testenv.RunCeph(conf, 30*time.Second, "mon", "versions")
	if r.Err != nil || !strings.Contains(string(r.Stdout), "canned") {
		t.Fatalf("ceph mon versions over v1: %v", r)
	}
}

// TestCLIForwardV1: `ceph -s` over v1 to MonServer, relayed over v2 to the
// real monitor (`msgr serve v1:… --forward v2:…`).
func TestCLIForwardV1(t *testing.T) {
	mon := startMon(t, testenv.MonOptions{})
	s, err := NewMonServer("v1:127.0.0.1:0", MonServerOptions{Forward: mon.AddrString(), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	dir := t.TempDir()
	conf, err := testenv.ClientConf(dir, serverHostV1(s), mon.Fsid)
	if err != nil {
		t.Fatal(err)
	}
	r := testenv.RunCeph(conf, 30*time.Second, "-s", "--debug-ms=20")
	if r.Err != nil || !strings.Contains(string(r.Stdout), "id:     "+mon.Fsid) {
		t.Fatalf("ceph -s over v1 through the relay: %v\n%s", r, lastLines(cliLog(t, dir, r), 40))
	}
	r = testenv.RunCeph(conf, 30*time.Second, "mon", "versions")
	if r.Err != nil || !strings.Contains(string(r.Stdout), "16.2.15") {
		t.Fatalf("ceph mon versions over v1 through the relay: %v", r)
	}
	if st := s.Stats(); st.Relayed == 0 || st.Returned == 0 {
		t.Errorf("relay stats %+v", st)
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}
