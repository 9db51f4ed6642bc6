package messenger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/conn"
	"github.com/msgr-dev/msgr/core/dispatch"
	"github.com/msgr-dev/msgr/core/internal/leakcheck"
	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

// connected waits for c's session.
func connected(t *testing.T, c *conn.Connection) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !c.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatalf("%v: no session after 5s", c)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLossyResetReported(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	sr, cr := newRec(false), newRec(false)
	srv := newServer(t, o, 1, sr)
	cli := newClient(t, o, 1, cr)
	cli.SetPolicy(msg.EntityOSD, msg.LossyClient(0))
	defer shutdown(t, cli, srv)
	c, err := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(numbered(1, 0)); err != nil {
		t.Fatal(err)
	}
	sr.waitFor(t, "message", 5*time.Second, func() bool { return len(sr.msgs) == 1 })
	// The server drops the connection: the lossy client faults, closes
	// and reports a reset.
	sr.mu.Lock()
	sc := sr.conns[sr.from[0]]
	sr.mu.Unlock()
	sc.MarkDown()
	cr.waitFor(t, "client reset", 5*time.Second, func() bool { return cr.resets == 1 })
	if c.State() != conn.StateClosed {
		t.Fatalf("client state %v after lossy fault", c.State())
	}
	if err := c.Send(numbered(2, 0)); !errors.Is(err, conn.ErrClosed) {
		t.Fatalf("Send on a reset connection: %v", err)
	}
	if sr.resets != 0 {
		t.Errorf("MarkDown reported a reset on its own side")
	}
	// A new ConnectTo opens a new session.
	c2, err := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
	if err != nil || c2 == c {
		t.Fatalf("reconnect after reset: %v (same conn %v)", err, c2 == c)
	}
	if err := c2.Send(numbered(3, 0)); err != nil {
		t.Fatal(err)
	}
	sr.waitFor(t, "message on the new session", 5*time.Second, func() bool { return len(sr.msgs) == 2 })
}

func TestMarkDown(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	sr, cr := newRec(false), newRec(false)
	srv := newServer(t, o, 1, sr)
	cli := newClient(t, o, 1, cr)
	cli.SetPolicy(msg.EntityOSD, msg.LossyClient(0))
	defer shutdown(t, cli, srv)
	c, err := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	connected(t, c)
	sr.waitFor(t, "accept", 5*time.Second, func() bool { return sr.accepts == 1 })
	cli.MarkDown(srv.Addrs())
	if c.State() != conn.StateClosed {
		t.Fatalf("state after MarkDown: %v", c.State())
	}
	m := numbered(1, 0)
	if err := c.Send(m); !errors.Is(err, conn.ErrClosed) {
		t.Fatalf("Send after MarkDown: %v", err)
	}
	// The server side (lossy) sees the socket go and reports it.
	sr.waitFor(t, "server reset", 5*time.Second, func() bool { return sr.resets == 1 })
	if len(cli.Connections()) != 0 {
		t.Errorf("marked-down connection still registered")
	}
	time.Sleep(20 * time.Millisecond)
	if cr.resets != 0 {
		t.Errorf("mark_down reported a reset to its own side (Ceph does not)")
	}
	// A connection's handle stays usable after close.
	if c.ID() == 0 || !isPeer(c.PeerName(), srv.Name()) || c.Get() != c || c.Refs() != 2 || c.Put() {
		t.Errorf("handle after close: id %d peer %v refs %d", c.ID(), c.PeerName(), c.Refs())
	}
}

// privateLoopback returns an address of 127.0.0.0/8 that no other program
// uses (Linux routes all of 127/8 to lo): ports on it stay free for the
// test between a close and a later bind, so no test needs to skip when
// another process takes "its" port meanwhile.
func privateLoopback() string {
	return fmt.Sprintf("127.%d.%d.%d", 100+rand.IntN(100), rand.IntN(256), 1+rand.IntN(254))
}

func closedPort(t *testing.T) msg.Addr {
	l, err := net.Listen("tcp", privateLoopback()+":0")
	if err != nil {
		t.Fatal(err)
	}
	a := msg.MustParseAddr(testBindPrefix + l.Addr().String() + "/0")
	l.Close()
	return a
}

func TestConnectRefused(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	o.InitialBackoff = 10 * time.Millisecond
	o.MaxBackoff = 20 * time.Millisecond
	for _, pol := range []msg.Policy{msg.LossyClient(0), msg.LosslessClient(0)} {
		cr := newRec(false)
		cli := newClient(t, o, 1, cr)
		cli.SetPolicy(msg.EntityOSD, pol)
		c, err := cli.ConnectTo(msg.EntityOSD, msg.AddrVec{closedPort(t)})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Send(numbered(1, 0)); err != nil {
			t.Fatal(err)
		}
		cr.waitFor(t, "refused", 5*time.Second, func() bool { return cr.refused >= 2 })
		if c.IsConnected() {
			t.Fatal("connected to a closed port")
		}
		if p := cli.Perf(); p.Refused < 2 || p.Reconnects < 1 {
			t.Errorf("perf refused %d reconnects %d", p.Refused, p.Reconnects)
		}
		// The connection says why: its last fault is the refusal. (A refusal
		// is reported before its fault is counted, so after two reports at
		// least the first is counted.)
		if f := c.LastFault(); !errors.Is(f, syscall.ECONNREFUSED) || c.Faults() < 1 {
			t.Errorf("LastFault %v (faults %d), want ECONNREFUSED, >= 1", f, c.Faults())
		}
		c.MarkDown()
		shutdown(t, cli)
	}
}

func TestIdleTimeout(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	o.ConnectionIdleTimeout = 100 * time.Millisecond
	sr, cr := newRec(false), newRec(false)
	srv := newServer(t, o, 1, sr)
	cli := newClient(t, o, 1, cr)
	cli.SetPolicy(msg.EntityOSD, msg.LossyClient(0))
	defer shutdown(t, cli, srv)
	// Before the connect: the idle timer starts with the session, and a
	// loaded machine may run the test goroutine well after that.
	start := time.Now()
	c, err := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	connected(t, c)
	cr.waitFor(t, "idle reset", 5*time.Second, func() bool { return cr.resets == 1 })
	if d := time.Since(start); d < 90*time.Millisecond {
		t.Errorf("closed after %v, before the idle timeout", d)
	}
	if c.State() != conn.StateClosed {
		t.Errorf("state %v", c.State())
	}
	// Either side may time out first (the other sees the socket close).
	if p, q := cli.Perf(), srv.Perf(); p.IdleTimeouts+q.IdleTimeouts == 0 {
		t.Errorf("idle timeout not counted")
	}
}

// TestIdleTimeoutKeptByTraffic: traffic below the idle timeout keeps the
// connection.
func TestIdleTimeoutKeptByTraffic(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	o.ConnectionIdleTimeout = 150 * time.Millisecond
	sr, cr := newRec(false), newRec(false)
	srv := newServer(t, o, 1, sr)
	cli := newClient(t, o, 1, cr)
	cli.SetPolicy(msg.EntityOSD, msg.LossyClient(0))
	defer shutdown(t, cli, srv)
	c, err := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if err := c.Send(numbered(uint64(i), 0)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	if !c.IsConnected() || cr.resets != 0 {
		t.Fatalf("busy connection closed: %v resets %d", c.State(), cr.resets)
	}
}

func TestStalledHandshakeTimesOut(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	o.ConnectionReadyTimeout = 200 * time.Millisecond
	srv := newServer(t, o, 1, newRec(false))
	defer shutdown(t, srv)
	a := srv.Addrs()[0].AddrPort.String()
	banner := wire.DefaultBanner.Encode(nil)
	if testBindPrefix == "v1:" {
		banner = []byte(wire.V1Banner)
	}
	for _, prefix := range [][]byte{nil, banner} {
		nc, err := net.Dial("tcp", a)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write(prefix); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.Copy(io.Discard, nc) // the server's banner, then EOF
		nc.Close()
		if err != nil {
			t.Fatalf("stalled peer was not dropped: %v", err)
		}
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Errorf("dropped after %v, before the ready timeout", d)
		}
	}
	if p := srv.Perf(); p.ReadyTimeouts != 2 {
		t.Errorf("ready timeouts %d, want 2", p.ReadyTimeouts)
	}
}

func TestGarbagePeerDropped(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	sr, cr := newRec(false), newRec(false)
	srv := newServer(t, o, 1, sr)
	cli := newClient(t, o, 1, cr)
	defer shutdown(t, cli, srv)
	c, err := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(numbered(0, 0)); err != nil {
		t.Fatal(err)
	}
	sr.waitFor(t, "first message", 5*time.Second, func() bool { return len(sr.msgs) == 1 })

	a := srv.Addrs()[0].AddrPort.String()
	garbage := [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		append(wire.DefaultBanner.Encode(nil), make([]byte, 64)...), // banner, then a zero preamble (bad crc)
		[]byte("ceph v027\n\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
	}
	if testBindPrefix == "v1:" {
		// The v1 banner, then an address and a connect of all ones (an
		// authorizer length no server accepts).
		garbage[2] = append([]byte(wire.V1Banner), bytes.Repeat([]byte{0xff}, wire.V1AddrLen+64)...)
	}
	for _, g := range garbage {
		nc, err := net.Dial("tcp", a)
		if err != nil {
			t.Fatal(err)
		}
		nc.Write(g)
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.Copy(io.Discard, nc)
		nc.Close()
		if err != nil {
			t.Fatalf("garbage peer %q not dropped: %v", g[:8], err)
		}
	}
	if p := srv.Perf(); p.ProtocolErrors < uint64(len(garbage)) {
		t.Errorf("protocol errors %d, want %d", p.ProtocolErrors, len(garbage))
	}
	// The good connection still works.
	if err := c.Send(numbered(1, 0)); err != nil {
		t.Fatal(err)
	}
	sr.waitFor(t, "message after garbage", 5*time.Second, func() bool { return len(sr.msgs) == 2 })
}

// panicker panics on message 3; others are recorded.
type panicker struct {
	*rec
}

func (p panicker) Dispatch(c dispatch.Conn, m *msg.Message) bool {
	if num(m) == 3 {
		panic("dispatcher bug")
	}
	return p.rec.Dispatch(c, m)
}

func (p panicker) FastDispatch(c dispatch.Conn, m *msg.Message) {
	if num(m) == 3 {
		panic("fast dispatcher bug")
	}
	p.rec.FastDispatch(c, m)
}

func TestDispatcherPanicRecovered(t *testing.T) {
	defer leakcheck.Take().Check(t)
	for _, fast := range []bool{false, true} {
		o := testOpts(t)
		o.Logf = func(string, ...any) {}
		sr := newRec(fast)
		srv := newServer(t, o, 1, panicker{sr})
		cli := newClient(t, o, 1, nil)
		cli2 := newClient(t, o, 2, nil)
		c, _ := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
		c2, _ := cli2.ConnectTo(msg.EntityOSD, srv.Addrs())
		for i := uint64(0); i < 10; i++ {
			c.Send(numbered(i, 0))
			c2.Send(numbered(100+i, 0))
		}
		sr.waitFor(t, "messages around the panic", 5*time.Second, func() bool { return len(sr.msgs) == 19 })
		if p := srv.Perf(); p.DispatchPanics != 1 {
			t.Errorf("fast=%v: %d panics counted, want 1", fast, p.DispatchPanics)
		}
		if !c.IsConnected() || !c2.IsConnected() {
			t.Errorf("a dispatcher panic broke a connection")
		}
		shutdown(t, cli, cli2, srv)
	}
}

func TestSendToSelf(t *testing.T) {
	defer leakcheck.Take().Check(t)
	for _, fast := range []bool{false, true} {
		o := testOpts(t)
		r := newRec(fast)
		m := newServer(t, o, 7, r)
		c, err := m.ConnectTo(msg.EntityOSD, m.Addrs())
		if err != nil {
			t.Fatal(err)
		}
		if c != m.LocalConnection() || !c.IsLocal() {
			t.Fatalf("ConnectTo(self) did not give the local connection")
		}
		for i := uint64(0); i < 50; i++ {
			if err := c.Send(numbered(i, 0)); err != nil {
				t.Fatal(err)
			}
		}
		r.waitFor(t, "local delivery", 5*time.Second, func() bool { return len(r.msgs) == 50 })
		for i, mm := range r.msgs {
			if num(mm) != uint64(i) || mm.Src != m.Name() {
				t.Fatalf("local message %d: %d from %v", i, num(mm), mm.Src)
			}
		}
		if p := m.Perf(); p.Connections != 0 || p.MsgsOut != 50 {
			t.Errorf("local sends opened sockets or were not counted: %+v", p)
		}
		shutdown(t, m)
		if err := c.Send(numbered(99, 0)); !errors.Is(err, conn.ErrClosed) {
			t.Errorf("local Send after shutdown: %v", err)
		}
	}
}

func TestPerfJSON(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	sr := newRec(false)
	srv := newServer(t, o, 1, sr)
	cli := newClient(t, o, 1, nil)
	defer shutdown(t, cli, srv)
	c, _ := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
	const n = 30
	for i := uint64(0); i < n; i++ {
		c.Send(numbered(i, 92)) // 100-byte fronts
	}
	sr.waitFor(t, "messages", 5*time.Second, func() bool { return len(sr.msgs) == n })
	js, err := srv.PerfJSON()
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]float64
	if err := json.Unmarshal(js, &v); err != nil {
		t.Fatalf("perf JSON %s: %v", js, err)
	}
	for _, k := range []string{"msgr_recv_messages", "msgr_send_bytes", "msgr_active_connections", "msgr_faults", "msgr_reconnects", "msgr_dispatch_queue_len", "msgr_out_queue_len"} {
		if _, ok := v[k]; !ok {
			t.Errorf("perf JSON lacks %s: %s", k, js)
		}
	}
	if v["msgr_recv_messages"] != n || v["msgr_recv_bytes"] < n*100 || v["msgr_active_connections"] != 1 || v["msgr_accepted"] != 1 {
		t.Errorf("server perf %s", js)
	}
	// The client counts bytes once its write returns, which on a loaded
	// machine can be after the server has dispatched them: wait (bounded).
	cp := cli.Perf()
	for deadline := time.Now().Add(5 * time.Second); cp.BytesOut < n*100 && time.Now().Before(deadline); cp = cli.Perf() {
		time.Sleep(time.Millisecond)
	}
	if cp.MsgsOut != n || cp.BytesOut < n*100 || cp.Connected != 1 {
		t.Errorf("client perf %+v", cp)
	}
	// Closed connections keep counting once reaped.
	c.MarkDown()
	time.Sleep(50 * time.Millisecond)
	if cp2 := cli.Perf(); cp2.MsgsOut != n || cp2.Connections != 0 || cp2.Deleted != 0 {
		t.Errorf("after close and reap: %+v", cp2)
	}
}

// gate is a queue dispatcher that blocks until opened.
type gate struct {
	*rec
	open chan struct{}
	once *sync.Once
}

func newGate(r *rec) gate { return gate{r, make(chan struct{}), new(sync.Once)} }

// release opens the gate (once). Tests defer it after deferring shutdown,
// so it runs first: a failed check must not leave the dispatcher blocked,
// or shutdown would wait for it for ever.
func (g gate) release() { g.once.Do(func() { close(g.open) }) }

func (g gate) Dispatch(c dispatch.Conn, m *msg.Message) bool {
	<-g.open
	return g.rec.Dispatch(c, m)
}

func TestDispatchThrottleBackpressure(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	o.DispatchThrottleBytes = 64 << 10
	sr := newRec(false)
	g := newGate(sr)
	srv := newServer(t, o, 1, g)
	srv.SetPolicy(msg.EntityClient, msg.StatefulServer(0))
	cli := newClient(t, o, 1, nil)
	cli.SetPolicy(msg.EntityOSD, msg.LosslessClient(0))
	defer shutdown(t, cli, srv)
	defer g.release() // runs first: see gate.release
	c, _ := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
	const n, size = 400, 4096
	for i := uint64(0); i < n; i++ {
		if err := c.Send(numbered(i, size-8)); err != nil {
			t.Fatal(err)
		}
	}
	// The server stops reading once the budget is used up.
	deadline := time.Now().Add(5 * time.Second)
	for srv.Perf().ThrottleStalls == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("server never stalled: %+v", srv.Perf())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	p := srv.Perf()
	// Budget is taken per decoded read buffer, so the overshoot is at
	// most one read buffer (128 KiB) plus a frame.
	if p.DispatchThrottleBytes > p.DispatchThrottleMax+(128<<10)+size {
		t.Errorf("throttle at %d of %d", p.DispatchThrottleBytes, p.DispatchThrottleMax)
	}
	if p.MsgsIn >= n {
		t.Errorf("server read everything (%d) despite the throttle", p.MsgsIn)
	}
	g.release()
	sr.waitFor(t, "all messages after the gate opens", 10*time.Second, func() bool { return len(sr.msgs) == n })
	for i, m := range sr.msgs {
		if num(m) != uint64(i) {
			t.Fatalf("message %d carries %d", i, num(m))
		}
	}
	// The dispatcher records a message before it returns, and the budget
	// comes back after: wait for the last return (bounded).
	p = srv.Perf()
	for deadline := time.Now().Add(5 * time.Second); p.DispatchThrottleBytes != 0 && time.Now().Before(deadline); p = srv.Perf() {
		time.Sleep(time.Millisecond)
	}
	if p.DispatchThrottleBytes != 0 {
		t.Errorf("budget not returned: %d", p.DispatchThrottleBytes)
	}
}

func TestPolicyThrottleMessages(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	sr := newRec(false)
	g := newGate(sr)
	srv := newServer(t, o, 1, g)
	pol := msg.StatelessServer(0)
	pol.ThrottleMessages = 10
	srv.SetPolicy(msg.EntityClient, pol)
	cli := newClient(t, o, 1, nil)
	defer shutdown(t, cli, srv)
	defer g.release() // runs first: see gate.release
	c, _ := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
	const n = 200
	for i := uint64(0); i < n; i++ {
		c.Send(numbered(i, 0))
		if i%20 == 0 {
			time.Sleep(2 * time.Millisecond) // several reads, so the stall shows
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.Perf().ThrottleStalls == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no stall on the message throttle")
		}
		time.Sleep(5 * time.Millisecond)
	}
	g.release()
	sr.waitFor(t, "all messages", 10*time.Second, func() bool { return len(sr.msgs) == n })
}

func TestInjectDelay(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	if err := o.Set("ms_inject_delay_type", "client mon"); err != nil {
		t.Fatal(err)
	}
	o.Set("ms_inject_delay_max", "0.02")
	o.Set("ms_inject_delay_probability", "0.3")
	o.Set("ms_inject_seed", "42")
	for _, fast := range []bool{false, true} {
		sr := newRec(fast)
		srv := newServer(t, o, 1, sr)
		cli := newClient(t, testOpts(t), 1, nil)
		c, _ := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
		const n = 200
		start := time.Now()
		for i := uint64(0); i < n; i++ {
			c.Send(numbered(i, 0))
			if i%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		sr.waitFor(t, "delayed messages", 10*time.Second, func() bool { return len(sr.msgs) == n })
		for i, m := range sr.msgs {
			if num(m) != uint64(i) {
				t.Fatalf("delayed message %d carries %d", i, num(m))
			}
		}
		if p := srv.Perf(); p.InjectedDelays == 0 || time.Since(start) < 10*time.Millisecond {
			t.Errorf("no delay injected: %d", p.InjectedDelays)
		}
		shutdown(t, cli, srv)
	}
}

func TestShutdownWithTrafficInFlight(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	o.ShutdownTimeout = 50 * time.Millisecond
	srv := newServer(t, o, 1, &sink{echo: true, pool: newMsgPool(100)})
	srv.SetPolicy(msg.EntityClient, msg.StatefulServer(0))
	var got atomic.Int64
	cr := &sink{}
	cli := newClient(t, o, 1, cr)
	cli.SetPolicy(msg.EntityOSD, msg.LosslessClient(0))
	defer shutdown(t, cli, srv) // idempotent; covers failure paths
	c, _ := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
	var wg sync.WaitGroup
	for k := 0; k < 2; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1_000_000; i++ {
				if c.Send(numbered(uint64(i), 100)) != nil {
					return
				}
				got.Add(1)
				if i%256 == 0 {
					time.Sleep(100 * time.Microsecond)
				}
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for cr.n.Load() < 1000 {
		if time.Now().After(deadline) {
			t.Fatalf("no traffic before shutdown: conn %v client %+v server %+v", c, cli.Perf(), srv.Perf())
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	done := make(chan error, 2)
	go func() { done <- srv.Shutdown() }()
	go func() { done <- cli.Shutdown() }()
	for i := 0; i < 2; i++ {
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("shutdown hung")
		}
	}
	wg.Wait()
	t.Logf("shutdown took %v after %d sends", time.Since(start), got.Load())
	srv.Wait()
	cli.Wait()
}

func TestOptionsSet(t *testing.T) {
	var o Options
	good := map[string]string{
		"ms_type": "async+poll", "ms_async_op_threads": "2", "ms_tcp_nodelay": "false",
		"ms_tcp_rcvbuf": "256K", "ms_initial_backoff": "0.5", "ms_max_backoff": "10",
		"ms_connection_ready_timeout": "3", "ms_connection_idle_timeout": "0",
		"ms_dispatch_throttle_bytes": "1M", "ms_crc_data": "true", "ms-crc-header": "0",
		"ms_inject_socket_failures": "500", "ms_inject_delay_type": "osd client",
		"ms_inject_delay_max": "1", "ms_inject_delay_probability": "0.5", "ms_inject_seed": "7",
		"ms_async_busy_poll": "20us", "debug_ms": "5/5",
	}
	for k, v := range good {
		if err := o.Set(k, v); err != nil {
			t.Errorf("Set(%s, %s): %v", k, v, err)
		}
	}
	want := Options{Type: "async+poll", OpThreads: 2, TCPRcvBuf: 256 << 10, InitialBackoff: 500 * time.Millisecond,
		MaxBackoff: 10 * time.Second, ConnectionReadyTimeout: 3 * time.Second, ConnectionIdleTimeout: -1,
		DispatchThrottleBytes: 1 << 20, CRCData: true, InjectSocketFailures: 500, InjectDelayType: "osd client",
		InjectDelayMax: time.Second, InjectDelayProbability: 0.5, InjectSeed: 7, BusyPoll: 20 * time.Microsecond, DebugMS: 5}
	got := o
	got.explicit = 0
	if got.Type != want.Type || got.OpThreads != want.OpThreads || got.TCPNoDelay || got.TCPRcvBuf != want.TCPRcvBuf ||
		got.InitialBackoff != want.InitialBackoff || got.MaxBackoff != want.MaxBackoff ||
		got.ConnectionReadyTimeout != want.ConnectionReadyTimeout || got.ConnectionIdleTimeout != want.ConnectionIdleTimeout ||
		got.DispatchThrottleBytes != want.DispatchThrottleBytes || !got.CRCData || got.CRCHeader ||
		got.InjectSocketFailures != 500 || got.InjectDelayType != "osd client" || got.InjectDelayMax != time.Second ||
		got.InjectDelayProbability != 0.5 || got.InjectSeed != 7 || got.BusyPoll != want.BusyPoll || got.DebugMS != 5 {
		t.Errorf("Set gave %+v", got)
	}
	// Explicit false survives the defaults.
	d, err := o.withDefaults()
	if err != nil || d.TCPNoDelay || d.CRCHeader {
		t.Errorf("explicit false lost: %v %+v", err, d)
	}
	bad := map[string]string{
		"ms_no_such_option": "1", "ms_type": "carrier-pigeon", "ms_async_op_threads": "0",
		"ms_tcp_nodelay": "maybe", "ms_initial_backoff": "-1", "ms_inject_delay_probability": "2",
		"ms_inject_delay_type": "osd martian", "ms_dispatch_throttle_bytes": "lots", "ms_inject_socket_failures": "-3",
	}
	for k, v := range bad {
		err := o.Set(k, v)
		if err == nil {
			t.Errorf("Set(%s, %s) accepted", k, v)
		} else if !strings.Contains(err.Error(), strings.ReplaceAll(k, "-", "_")) {
			t.Errorf("error %q does not name %s", err, k)
		}
	}
	// The zero value is Ceph's defaults.
	z, err := Options{}.withDefaults()
	if err != nil || !z.TCPNoDelay || z.InitialBackoff != 200*time.Millisecond || z.MaxBackoff != 15*time.Second ||
		z.ConnectionReadyTimeout != 10*time.Second || z.ConnectionIdleTimeout != 900*time.Second ||
		z.DispatchThrottleBytes != 100<<20 || z.Type != defaultType || z.OpThreads != DefaultOpThreads() {
		t.Errorf("zero options: %v %+v", err, z)
	}
	if _, err := New(msg.EntityName{Type: msg.EntityClient}, 1, Options{InjectDelayProbability: 3}); err == nil {
		t.Errorf("New accepted a bad probability")
	}
}

func TestBindRangeAndErrors(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	ip := privateLoopback() // nobody else binds here: the range stays ours
	busy, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port
	m, err := New(msg.EntityName{Type: msg.EntityOSD, Num: 1}, 9, o)
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, m)
	if err := m.Bind(msg.Addr{Type: msg.AddrNone, AddrPort: netip.MustParseAddrPort("127.0.0.1:0")}); err == nil {
		t.Errorf("bound an address of type none")
	}
	if err := m.BindAddrs(nil); err == nil {
		t.Errorf("bound no address")
	}
	// The busy port is skipped; the rest of the range is on a private
	// loopback address, so it is free.
	err = m.BindRange(msg.MustParseAddr("v2:"+ip+":0"), port, port+5)
	if err != nil {
		t.Fatalf("BindRange %d..%d on %s: %v", port, port+5, ip, err)
	}
	if a := m.Addrs(); len(a) != 1 || int(a[0].Port()) <= port || int(a[0].Port()) > port+5 || a[0].Nonce != 9 {
		t.Errorf("bound %v, want a port in %d..%d", a, port+1, port+5)
	}
	if err := m.Bind(msg.MustParseAddr("v2:127.0.0.1:0")); !errors.Is(err, ErrAlreadyBound) {
		t.Errorf("second bind: %v", err)
	}
}

// TestConnectionRace: two bound messengers with lossless peer policies
// connect to each other at the same time; each side's messages arrive
// exactly once and in order.
func TestConnectionRace(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	o.InitialBackoff = 10 * time.Millisecond
	o.MaxBackoff = 50 * time.Millisecond
	ra, rb := newRec(false), newRec(false)
	a := newServer(t, o, 1, ra)
	b := newServer(t, o, 2, rb)
	for _, m := range []*Messenger{a, b} {
		m.SetPolicy(msg.EntityOSD, msg.LosslessPeer(0))
	}
	defer shutdown(t, a, b)
	// Both dial at once: one socket survives, the other side's session is
	// taken over by it (or a WAIT/retry resolves it), as in Ceph.
	ca, err := a.ConnectTo(msg.EntityOSD, b.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	cb, err := b.ConnectTo(msg.EntityOSD, a.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	for i := uint64(0); i < n; i++ {
		ca.Send(numbered(i, 0))
		cb.Send(numbered(i, 0))
	}
	ra.waitFor(t, "b's messages", 15*time.Second, func() bool { return len(ra.msgs) >= n })
	rb.waitFor(t, "a's messages", 15*time.Second, func() bool { return len(rb.msgs) >= n })
	time.Sleep(30 * time.Millisecond)
	for _, r := range []*rec{ra, rb} {
		r.mu.Lock()
		if len(r.msgs) != n {
			t.Errorf("got %d messages, want %d", len(r.msgs), n)
		}
		for i, m := range r.msgs {
			if num(m) != uint64(i) {
				t.Errorf("message %d carries %d", i, num(m))
				break
			}
		}
		r.mu.Unlock()
	}
}

func TestKeepalive(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	srv := newServer(t, o, 1, newRec(false))
	cli := newClient(t, o, 1, nil)
	defer shutdown(t, cli, srv)
	c, _ := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
	before := time.Now()
	if err := c.SendKeepalive(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.LastKeepaliveAck().IsZero() {
		if time.Now().After(deadline) {
			t.Fatal("no KEEPALIVE2_ACK")
		}
		time.Sleep(time.Millisecond)
	}
	// The ack echoes our stamp (microsecond resolution on the wire).
	if ack := c.LastKeepaliveAck(); ack.Before(before.Add(-time.Millisecond)) || ack.After(time.Now()) {
		t.Errorf("ack stamp %v not in [%v, now]", ack, before)
	}
	var sc *conn.Connection
	for _, x := range srv.Connections() {
		sc = x
	}
	if sc == nil || sc.LastKeepalive().IsZero() {
		t.Errorf("server did not record the keepalive")
	}
}

// TestManyClients: several client messengers on one server, each
// connection's messages in order, the server's per-connection counters
// adding up.
func TestManyClients(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	o.OpThreads = 1
	sr := newRec(true)
	srv := newServer(t, o, 1, sr)
	srv.SetPolicy(msg.EntityClient, msg.StatefulServer(0))
	defer shutdown(t, srv)
	const clients, n = 16, 300
	var cls []*Messenger
	for i := 0; i < clients; i++ {
		cli := newClient(t, o, int64(i+1), nil)
		cli.SetPolicy(msg.EntityOSD, msg.LosslessClient(0))
		cls = append(cls, cli)
	}
	defer shutdown(t, cls...)
	var wg sync.WaitGroup
	for i, cli := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
			if err != nil {
				t.Error(err)
				return
			}
			for k := 0; k < n; k++ {
				c.Send(numbered(uint64(i)<<32|uint64(k), k%64))
			}
		}()
	}
	wg.Wait()
	sr.waitFor(t, "all messages", 20*time.Second, func() bool { return len(sr.msgs) == clients*n })
	next := map[uint64]uint64{}
	sr.mu.Lock()
	for _, m := range sr.msgs {
		v := num(m)
		cl, k := v>>32, v&0xffffffff
		if k != next[cl] {
			t.Fatalf("client %d: message %d after %d", cl, k, next[cl])
		}
		next[cl]++
	}
	sr.mu.Unlock()
	if p := srv.Perf(); p.Connections != clients || p.MsgsIn != clients*n || p.ActiveConnections != clients {
		t.Errorf("server perf %+v", p)
	}
}

// TestOutQueuePriority: messages queued before the session opens leave
// highest priority first, FIFO within a priority. The server's
// handshake waits for its Start, so everything is queued by then; fast
// dispatch shows the wire order (the dispatch queue would reorder).
func TestOutQueuePriority(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	sr := newRec(true)
	srv, err := New(msg.EntityName{Type: msg.EntityOSD, Num: 1}, 77, o)
	if err != nil {
		t.Fatal(err)
	}
	srv.AddDispatcherTail(sr)
	if err := srv.Bind(msg.MustParseAddr(testBindPrefix + "127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	cli := newClient(t, o, 1, nil)
	defer shutdown(t, cli, srv)
	c, _ := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
	prios := []uint16{msg.PrioLow, msg.PrioDefault, msg.PrioHigh, msg.PrioHighest}
	const n = 40
	for i := 0; i < n; i++ {
		m := numbered(uint64(i), 0)
		m.Priority = prios[i%len(prios)]
		if err := c.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	sr.waitFor(t, "messages", 5*time.Second, func() bool { return len(sr.msgs) == n })
	last := map[uint16]int{}
	prev := uint16(msg.PrioHighest)
	for _, m := range sr.msgs {
		if m.Priority > prev {
			t.Fatalf("priority %d after %d", m.Priority, prev)
		}
		prev = m.Priority
		k := int(num(m))
		if l, ok := last[m.Priority]; ok && k < l {
			t.Fatalf("priority %d: %d after %d", m.Priority, k, l)
		}
		last[m.Priority] = k
	}
}

// stopper shuts its messenger down from a fast dispatch (a worker loop).
type stopper struct {
	dispatch.Base
	m    *Messenger
	done chan error
}

func (s *stopper) CanFastDispatch(*msg.Message) bool { return true }
func (s *stopper) FastDispatch(_ dispatch.Conn, m *msg.Message) {
	m.Release()
	s.done <- s.m.Shutdown()
}

func TestLifecycleEdges(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	m, err := New(msg.EntityName{Type: msg.EntityOSD, Num: 3}, 3, o)
	if err != nil {
		t.Fatal(err)
	}
	// Shutdown of a messenger that never started leaves nothing behind.
	if err := m.Shutdown(); err != nil {
		t.Fatal(err)
	}
	m.Wait()
	if err := m.Start(); !errors.Is(err, ErrStopped) {
		t.Errorf("Start after Shutdown: %v", err)
	}
	if _, err := m.ConnectTo(msg.EntityOSD, msg.AddrVec{msg.MustParseAddr("v2:127.0.0.1:1/0")}); !errors.Is(err, ErrStopped) {
		t.Errorf("ConnectTo after Shutdown: %v", err)
	}
	if err := m.Bind(msg.MustParseAddr("v2:127.0.0.1:0")); !errors.Is(err, ErrStopped) {
		t.Errorf("Bind after Shutdown: %v", err)
	}

	srv := newServer(t, o, 1, nil)
	if err := srv.Start(); err != nil {
		t.Errorf("second Start: %v", err)
	}
	for _, bad := range []msg.AddrVec{nil, {msg.MustParseAddr("v1:127.0.0.1:0/0")}, {msg.MustParseAddr("v2:127.0.0.1:0/0")}} {
		if _, err := srv.ConnectTo(msg.EntityOSD, bad); err == nil {
			t.Errorf("ConnectTo(%v) accepted", bad)
		}
	}
	// Shutdown from a fast dispatch runs in the background.
	st := &stopper{m: srv, done: make(chan error, 1)}
	srv.AddDispatcherHead(st)
	cli := newClient(t, o, 1, nil)
	defer shutdown(t, cli)
	c, _ := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
	c.Send(numbered(1, 0))
	select {
	case err := <-st.done:
		if err != nil {
			t.Errorf("Shutdown from a loop: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}
	waited := make(chan struct{})
	go func() { srv.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after a Shutdown from a loop")
	}
}

// WaitHeld blocks a sender while the peer holds the connection back, wakes
// it once the queue drains, and fails clearly on a timeout, on a worker
// loop, and on a closed connection.
func TestWaitHeld(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	o.DispatchThrottleBytes = 64 << 10
	sr := newRec(false)
	g := newGate(sr)
	srv := newServer(t, o, 1, g)
	srv.SetPolicy(msg.EntityClient, msg.StatefulServer(0))
	loopErr := make(chan error, 1)
	cli := newClient(t, o, 1, fastFunc(func(c dispatch.Conn, m *msg.Message) {
		// A fast dispatch runs on the worker loop that drains the queue.
		select {
		case loopErr <- c.(*conn.Connection).WaitHeld(0, time.Second):
		default:
		}
		m.Release()
	}))
	cli.SetPolicy(msg.EntityOSD, msg.LosslessClient(0))
	defer shutdown(t, cli, srv)
	defer g.release()
	c, _ := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
	const n, size = 400, 4096
	for i := uint64(0); i < n; i++ {
		if err := c.Send(numbered(i, size-8)); err != nil {
			t.Fatal(err)
		}
	}
	// The server stops reading at its budget, so the client keeps most.
	if err := c.WaitHeld(0, 100*time.Millisecond); !errors.Is(err, conn.ErrWaitTimeout) {
		t.Fatalf("WaitHeld with the peer stalled: %v, want ErrWaitTimeout", err)
	}
	if err := c.WaitHeld(0, 0); !errors.Is(err, conn.ErrWaitTimeout) {
		t.Fatalf("WaitHeld(0, 0) with messages held: %v", err)
	}
	if st := c.Stats(); st.Queued+st.Unacked == 0 {
		t.Fatalf("nothing held while the peer is stalled: %+v", st)
	}
	if err := c.WaitHeld(n, 0); err != nil {
		t.Fatalf("WaitHeld(n) holding at most n: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.WaitHeld(0, 10*time.Second) }()
	time.Sleep(20 * time.Millisecond)
	g.release()
	if err := <-done; err != nil {
		t.Fatalf("WaitHeld after the peer resumed: %v", err)
	}
	if st := c.Stats(); st.Queued+st.Unacked != 0 {
		t.Fatalf("WaitHeld returned holding %+v", st)
	}
	sr.waitFor(t, "every message", 10*time.Second, func() bool { return len(sr.msgs) == n })

	// From the worker loop: refused, not a deadlock.
	sr.mu.Lock()
	var sc dispatch.Conn
	for _, x := range sr.conns {
		sc = x
	}
	sr.mu.Unlock()
	if sc == nil {
		t.Fatal("server has no connection to the client")
	}
	if err := sc.Send(numbered(0, 8)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-loopErr:
		if !errors.Is(err, conn.ErrWaitOnLoop) {
			t.Fatalf("WaitHeld on a loop: %v, want ErrWaitOnLoop", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no message reached the client's fast dispatch")
	}

	c.MarkDown()
	if err := c.WaitHeld(0, time.Second); !errors.Is(err, conn.ErrClosed) {
		t.Fatalf("WaitHeld after MarkDown: %v, want ErrClosed", err)
	}
}

// fastFunc is a dispatcher that fast-dispatches every message to itself.
type fastFunc func(dispatch.Conn, *msg.Message)

func (fastFunc) Dispatch(dispatch.Conn, *msg.Message) bool      { return false }
func (fastFunc) CanFastDispatch(*msg.Message) bool              { return true }
func (f fastFunc) FastDispatch(c dispatch.Conn, m *msg.Message) { f(c, m) }
func (fastFunc) HandleConnect(dispatch.Conn)                    {}
func (fastFunc) HandleAccept(dispatch.Conn)                     {}
func (fastFunc) HandleReset(dispatch.Conn) bool                 { return false }
func (fastFunc) HandleRemoteReset(dispatch.Conn)                {}
func (fastFunc) HandleRefused(dispatch.Conn) bool               { return false }
