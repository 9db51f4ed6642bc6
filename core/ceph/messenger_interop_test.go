package ceph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/messenger"
	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/protocol"
	"github.com/msgr-dev/msgr/core/wire"
	"github.com/msgr-dev/msgr/internal/testenv"
)

// Interop tests of MonClient (the messenger, end to end) against a real
// Ceph 16.2.15 monitor, one monitor per test.

func dialMon(t testing.TB, addr string, o MonClientOptions) *MonClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mc, err := DialMon(ctx, addr, o)
	if err != nil {
		t.Fatalf("DialMon %s: %v", addr, err)
	}
	t.Cleanup(func() { mc.Close() })
	return mc
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestMessengerMonClient: handshake, 1,000 keepalive round trips,
// MMonGetVersion, MMonGetMap and two commands, all over the messenger.
func TestMessengerMonClient(t *testing.T) {
	mon := startMon(t, testenv.MonOptions{})
	mc := dialMon(t, mon.AddrString(), MonClientOptions{})
	con := mc.Conn()
	if !con.IsLossy() || con.PeerName() != (msg.EntityName{Type: msg.EntityMon, Num: 0}) || con.Features() != msg.FeaturesAll {
		t.Errorf("session: lossy %v peer %v features %#x; want a lossy session with mon.0, all features",
			con.IsLossy(), con.PeerName(), con.Features())
	}
	if mc.Fsid() != mon.FsidBytes() {
		t.Errorf("fsid %s, conf says %s", testenv.FormatUUID(mc.Fsid()), mon.Fsid)
	}
	ctx := ctxT(t, 60*time.Second)
	var worst time.Duration
	for i := 0; i < 1000; i++ {
		d, err := mc.Ping(ctx)
		if err != nil {
			t.Fatalf("keepalive %d: %v", i, err)
		}
		worst = max(worst, d)
	}
	t.Logf("1000 keepalives, slowest %v", worst)
	if ka := con.LastKeepaliveAck(); time.Since(ka) > time.Minute {
		t.Errorf("last keepalive ack stamp %v", ka)
	}

	v, err := mc.GetVersion(ctx, "monmap")
	if err != nil || v.Version < 1 || v.OldestVersion < 1 || v.OldestVersion > v.Version {
		t.Fatalf("GetVersion monmap: %+v %v", v, err)
	}
	mm, err := mc.GetMonMap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if mm.Fsid != mon.FsidBytes() || uint64(mm.Epoch) != v.Version || len(mm.Ranks) != 1 || mm.Ranks[0] != mon.Name {
		t.Errorf("monmap fsid %s epoch %d ranks %v; want %s, %d, [%s]", testenv.FormatUUID(mm.Fsid), mm.Epoch, mm.Ranks, mon.Fsid, v.Version, mon.Name)
	}

	res, err := mc.Command(ctx, `{"prefix": "mon versions"}`)
	if err != nil || res.R != 0 {
		t.Fatalf("mon versions: %+v %v", res, err)
	}
	var versions map[string]int
	if err := json.Unmarshal(res.Output, &versions); err != nil || len(versions) != 1 {
		t.Fatalf("mon versions output %q: %v", res.Output, err)
	}
	for k, n := range versions {
		if !strings.Contains(k, "16.2.15") || n != 1 {
			t.Errorf("mon versions %q: %d", k, n)
		}
	}
	res, err = mc.Command(ctx, `{"prefix": "status", "format": "json"}`)
	if err != nil || res.R != 0 {
		t.Fatalf("status: %+v %v", res, err)
	}
	var st struct {
		Fsid        string   `json:"fsid"`
		QuorumNames []string `json:"quorum_names"`
	}
	if err := json.Unmarshal(res.Output, &st); err != nil || st.Fsid != mon.Fsid || len(st.QuorumNames) != 1 {
		t.Errorf("status %q: %+v %v", res.Output, st, err)
	}
	res, err = mc.Command(ctx, `{"prefix": "no such command"}`)
	if err != nil || res.R != -22 || res.Rs == "" {
		t.Errorf("unknown command: %+v %v", res, err)
	}
	if s := mc.Stats(); s.Resets != 0 || s.Unmatched != 0 {
		t.Errorf("stats %+v on a quiet session", s)
	}
}

// TestMessengerMonErrors: the errors DialMon gives for an address nobody
// listens on, a peer that is not msgr2, and a server refusing auth none.
func TestMessengerMonErrors(t *testing.T) {
	testenv.RequireCeph(t)
	// Unreachable: a port just closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	o := MonClientOptions{Timeout: 3 * time.Second}
	if _, err := DialMon(context.Background(), closed, o); !errors.Is(err, ErrUnreachable) {
		t.Errorf("dial %s: %v, want ErrUnreachable", closed, err)
	} else {
		t.Log(err)
	}

	// Protocol mismatch: a msgr1 banner.
	l, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("ceph v027 and then some"))
			c.Close()
		}
	}()
	if _, err := DialMon(context.Background(), l.Addr().String(), o); !errors.Is(err, ErrProtocolMismatch) || !strings.Contains(err.Error(), "msgr1") {
		t.Errorf("dial a msgr1 peer: %v, want ErrProtocolMismatch naming msgr1", err)
	} else {
		t.Log(err)
	}
	l.Close()
	wg.Wait()

	// Auth refused: a messenger whose auth server allows cephx only.
	ms, err := messenger.New(msg.EntityName{Type: msg.EntityMon, Num: 0}, 0, messenger.Options{AuthServer: cephxOnly{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ms.Bind(msg.MustParseAddr("v2:127.0.0.1:0/0")); err != nil {
		t.Fatal(err)
	}
	if err := ms.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { ms.Shutdown(); ms.Wait() }()
	a, _ := ms.Addrs().Msgr2()
	if _, err := DialMon(context.Background(), a.AddrPort.String(), o); !errors.Is(err, ErrAuthRefused) {
		t.Errorf("dial a cephx-only server: %v, want ErrAuthRefused", err)
	} else {
		t.Log(err)
	}
}

// cephxOnly refuses every method but cephx (2).
type cephxOnly struct{}

func (cephxOnly) Methods(msg.EntityType) (methods, modes []uint32) {
	return []uint32{2}, []uint32{protocol.ConModeCRC}
}
func (cephxOnly) PickConMode(msg.EntityType, uint32, []uint32) uint32 { return protocol.ConModeCRC }
func (cephxOnly) Handle(msg.EntityType, uint32, bool, []byte) protocol.AuthReply {
	return protocol.AuthReply{Status: protocol.AuthBadMethod, Result: -95}
}

// TestMessengerLosslessPeer: as a mon-type peer the monitor gives us a
// lossless session. Our side uses the lossless_client policy: with
// lossless_peer (standby) a fault with nothing queued parks the session
// in STANDBY until the monitor connects back, which it cannot do to an
// unbound messenger (Ceph behaves the same). Our messenger kills its own socket at random
// (ms_inject_socket_failures); every time it resumes the session, the
// monitor answers SESSION_RECONNECT_OK, and every request is answered
// exactly once without the client resending anything.
func TestMessengerLosslessPeer(t *testing.T) {
	mon := startMon(t, testenv.MonOptions{DebugMS: 20})
	pol := msg.LosslessClient(0)
	o := MonClientOptions{
		Name:   msg.EntityName{Type: msg.EntityMon, Num: 7},
		AuthID: "gotest",
		Policy: &pol,
	}
	o.Messenger.InitialBackoff = 10 * time.Millisecond
	o.Messenger.MaxBackoff = 100 * time.Millisecond
	mc := dialMon(t, mon.AddrString(), o)
	if mc.Conn().IsLossy() {
		t.Fatal("a mon-type peer got a lossy session")
	}
	// Failures only once the session is up, so that reconnects (not
	// first handshakes) are what gets exercised.
	mc2 := injectAfterDial(t, mon, o)
	_ = mc
	const n = 300
	ctx := ctxT(t, 60*time.Second)
	for i := 0; i < n; i++ {
		v, err := mc2.GetVersion(ctx, "monmap")
		if err != nil || v.Version < 1 {
			lines := mon.LogLines(fmt.Sprintf("/%d ", mc2.Messenger().Nonce()))
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			t.Fatalf("request %d: %+v %v (stats %+v, conn %v state %v, perf %+v)\nmonitor log tail:\n%s", i, v, err, mc2.Stats(),
				mc2.Conn(), mc2.Conn().State(), mc2.Messenger().Perf(), strings.Join(lines, "\n"))
		}
	}
	// A keepalive round trip flushes any late duplicate ahead of it.
	if _, err := mc2.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	s, p := mc2.Stats(), mc2.Messenger().Perf()
	t.Logf("stats %+v; injected %d, reconnects %d, faults %d", s, p.InjectedFailures, p.Reconnects, p.Faults)
	if s.Replies != n+1 || s.Unmatched != 0 || s.Resent != 0 {
		t.Errorf("replies %d unmatched %d resent %d; want %d, 0, 0", s.Replies, s.Unmatched, s.Resent, n+1)
	}
	if p.InjectedFailures == 0 || p.Reconnects == 0 {
		t.Errorf("no socket was killed (injected %d, reconnects %d)", p.InjectedFailures, p.Reconnects)
	}
	// The monitor logs send_reconnect_ok per resume (asynchronously).
	conn := fmt.Sprintf("/%d ", mc2.Messenger().Nonce())
	deadline := time.Now().Add(3 * time.Second)
	for len(mon.LogLines(conn, "send_reconnect_ok")) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	oks := len(mon.LogLines(conn, "send_reconnect_ok"))
	t.Logf("monitor: %d send_reconnect_ok, %d reset sessions", oks, len(mon.LogLines(conn, "reset_session")))
	if oks == 0 {
		t.Error("the monitor never answered SESSION_RECONNECT_OK")
	}
	if !mon.Running() {
		t.Error("the monitor died")
	}
}

// injectAfterDial dials a second lossless client with socket failure
// injection on our side (1 in 40 socket operations).
func injectAfterDial(t *testing.T, mon *testenv.Mon, o MonClientOptions) *MonClient {
	o.Messenger.InjectSocketFailures = 40
	o.Messenger.InjectSeed = 42
	o.Name.Num = 8
	return dialMon(t, mon.AddrString(), o)
}

// TestMessengerMonInjectFailures: the monitor drops sockets at random
// (its own ms_inject_socket_failures); our lossy client reconnects and
// resends, as Ceph's MonClient does, and all 500 commands are answered.
func TestMessengerMonInjectFailures(t *testing.T) {
	mon := startMon(t, testenv.MonOptions{Conf: []string{"ms inject socket failures = 100"}})
	mc := dialMon(t, mon.AddrString(), MonClientOptions{Timeout: 20 * time.Second})
	ctx := ctxT(t, 90*time.Second)
	const n = 500
	for i := 0; i < n; i++ {
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		res, err := mc.Command(rctx, `{"prefix": "mon versions"}`)
		cancel()
		if err != nil || res.R != 0 || !strings.Contains(string(res.Output), "16.2.15") {
			t.Fatalf("command %d: %+v %v (stats %+v)", i, res, err, mc.Stats())
		}
	}
	s := mc.Stats()
	t.Logf("stats %+v, perf faults %d", s, mc.Messenger().Perf().Faults)
	if s.Reconnect == 0 || s.Resets == 0 {
		t.Errorf("no reconnect happened (stats %+v): is the monitor injecting failures?", s)
	}
	if !mon.Running() {
		t.Error("the monitor died")
	}
}

// TestMessengerBadMessageToMon: a message whose payload does not decode
// (an MMonCommand with a 3-byte front) sent through the messenger: the
// monitor must survive, and our client reconnects and goes on.
func TestMessengerBadMessageToMon(t *testing.T) {
	mon := startMon(t, testenv.MonOptions{})
	mc := dialMon(t, mon.AddrString(), MonClientOptions{})
	ctx := ctxT(t, 30*time.Second)
	bad := msg.New(msg.MsgMonCommand, []byte{1, 2, 3})
	if err := mc.Conn().Send(bad); err != nil {
		t.Fatal(err)
	}
	// Whatever the monitor does with it (drop the message or the
	// connection), commands go on working.
	for i := 0; i < 3; i++ {
		res, err := mc.Command(ctx, `{"prefix": "mon versions"}`)
		if err != nil || res.R != 0 {
			t.Fatalf("command after the bad message: %+v %v", res, err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if !mon.Running() {
		t.Fatal("the monitor died")
	}
	t.Logf("stats after the bad message %+v; monitor log: %q", mc.Stats(), mon.LogLines("decode"))
}

// TestRawFrameRevisions: a client session to the real monitor in msgr2.1
// and forcing msgr2.0 (RawConn: the messenger has no option for rev0):
// keepalives and a request in each layout.
func TestRawFrameRevisions(t *testing.T) {
	mon := startMon(t, testenv.MonOptions{})
	for _, c := range []struct {
		rev0 bool
		want wire.Rev
	}{{false, wire.Rev1}, {true, wire.Rev0}} {
		t.Run(fmt.Sprintf("rev0=%v", c.rev0), func(t *testing.T) {
			rc, err := DialRaw(ctxT(t, 10*time.Second), mon.AddrString(), c.rev0)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if rc.Rev() != c.want {
				t.Errorf("layout %v, want %v", rc.Rev(), c.want)
			}
			for i := 0; i < 100; i++ {
				if _, err := rc.Ping(5 * time.Second); err != nil {
					t.Fatalf("keepalive %d: %v", i, err)
				}
			}
			rep, err := rc.Request((&MMonGetVersion{Handle: 77, What: "monmap"}).Encode(rc.Ready().Features), msg.MsgMonGetVersionReply, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if r, err := DecodeMMonGetVersionReply(rep); err != nil || r.Handle != 77 {
				t.Errorf("reply %+v %v", r, err)
			}
		})
	}
}

// reportPercentiles adds p50/p99 (µs) of lat to b's metrics.
func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(f float64) float64 { return float64(lat[min(len(lat)-1, int(f*float64(len(lat))))]) / 1e3 }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
}

// BenchmarkMonGetVersion: MMonGetVersion round trips to a real monitor
// over the messenger, one at a time.
func BenchmarkMonGetVersion(b *testing.B) {
	mon := startMon(b, testenv.MonOptions{})
	mc := dialMon(b, mon.AddrString(), MonClientOptions{})
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := mc.GetVersion(ctx, "monmap"); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkMonKeepalive: KEEPALIVE2 round trips to a real monitor over
// the messenger.
func BenchmarkMonKeepalive(b *testing.B) {
	mon := startMon(b, testenv.MonOptions{})
	mc := dialMon(b, mon.AddrString(), MonClientOptions{})
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, err := mc.Ping(ctx)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, d)
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}
