package messenger

import (
	"fmt"
	"os"
	"runtime"
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
)

// socketFDs counts this process's open sockets.
func socketFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// raiseFDLimit makes sure the process may open want fds (soft limit up
// to the hard one), or skips.
func raiseFDLimit(t *testing.T, want uint64) {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur >= want {
		return
	}
	if rl.Max < want {
		t.Skipf("fd hard limit %d < %d needed", rl.Max, want)
	}
	old := rl.Cur
	rl.Cur = want
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Skipf("cannot raise the fd limit to %d: %v", want, err)
	}
	t.Cleanup(func() {
		rl.Cur = old
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	})
}

// TestManyIdleConnectionsTimeOut: 1,000 lossy connections (1,000 client
// messengers, one worker loop each, against one server: a messenger
// keeps one connection per peer) are opened, exchange one message each,
// then sit idle; the idle timeout closes every one of them on both
// sides, each close is reported by HandleReset, the sockets are gone,
// and shutting everything down leaves no goroutine or fd.
func TestManyIdleConnectionsTimeOut(t *testing.T) {
	const n, inFlight = 1000, 64
	if defaultType == "async+select" {
		t.Skip("ms_type async+select: select(2) watches fds below FD_SETSIZE (1024) only; this test needs 4,000")
	}
	raiseFDLimit(t, 8*n)
	defer leakcheck.Take().Check(t)
	sock0 := socketFDs()
	o := testOpts(t)
	o.Logf = func(string, ...any) {}
	// Long enough for all 1,000 sessions to be up at once (checked
	// below), short enough to keep the test quick.
	// 1,000 client messengers take 1-3 s to set up here, 4-7 s on a loaded
	// machine or with two threads per connection (simple), which took
	// 10.3 s once with two test runs sharing the machine.
	idle := 10 * time.Second
	if defaultType == "simple" {
		idle = 16 * time.Second
	}
	o.ConnectionIdleTimeout = idle
	sr := newRec(false)
	srv := newServer(t, o, 1, sr)
	srv.SetPolicy(msg.EntityClient, msg.StatelessServer(0))
	defer shutdown(t, srv)

	co := o
	co.OpThreads = 1
	cls := make([]*Messenger, n)
	recs := make([]*rec, n)
	conns := make([]*conn.Connection, n)
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Bool
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				// At most inFlight sessions in the making at once: 1,000
				// simultaneous connects overflow the listen backlog (512,
				// or somaxconn, 128 on older kernels), the kernel drops
				// SYNs, their retries back off past the ready timeout, and
				// a lossy connection that fails drops its one message.
				for sr.count() < i-inFlight {
					if time.Since(start) > time.Minute {
						failed.Store(true)
						t.Errorf("client %d: the server has only %d messages after %v", i, sr.count(), time.Since(start))
						return
					}
					time.Sleep(time.Millisecond)
				}
				recs[i] = newRec(false)
				m, err := New(msg.EntityName{Type: msg.EntityClient, Num: int64(i + 1)}, uint32(20000+i), co)
				if err != nil {
					failed.Store(true)
					t.Error(err)
					return
				}
				m.AddDispatcherTail(recs[i])
				m.SetPolicy(msg.EntityOSD, msg.LossyClient(0))
				cls[i] = m
				if err := m.Start(); err != nil {
					failed.Store(true)
					t.Error(err)
					return
				}
				c, err := m.ConnectTo(msg.EntityOSD, srv.Addrs())
				if err != nil {
					failed.Store(true)
					t.Error(err)
					return
				}
				conns[i] = c
				if err := c.Send(numbered(uint64(i), 0)); err != nil {
					failed.Store(true)
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	defer func() {
		var sw sync.WaitGroup
		for _, m := range cls {
			if m != nil {
				sw.Add(1)
				go func() { defer sw.Done(); _ = m.Shutdown() }()
			}
		}
		sw.Wait()
	}()
	if failed.Load() {
		return
	}
	if !waitCount(sr, n, 60*time.Second) {
		// Say which messages are missing and what became of their
		// connections: a lossy connection that failed drops its message.
		got := map[uint64]bool{}
		sr.mu.Lock()
		for _, m := range sr.msgs {
			got[num(m)] = true
		}
		sr.mu.Unlock()
		var missing []string
		for i := 0; i < n; i++ {
			if !got[uint64(i)] {
				missing = append(missing, fmt.Sprintf("%d: %v reset=%v perf=%+v", i, conns[i].State(), wlResetSeen(recs[i], conns[i].ID()), cls[i].Perf()))
			}
		}
		t.Fatalf("after 60s the server has %d of %d messages; server perf %+v; missing %d:\n%s",
			len(got), n, srv.Perf(), len(missing), strings.Join(missing[:min(len(missing), 20)], "\n"))
	}
	upAt := time.Since(start)
	p := srv.Perf()
	open := socketFDs() - sock0
	t.Logf("%d sessions up after %v: server active %d, sockets open %d, goroutines %d", n, upAt, p.ActiveConnections, open, runtime.NumGoroutine())
	if upAt >= idle {
		t.Fatalf("setting up %d sessions took %v, longer than the idle timeout %v: they were never all open at once", n, upAt, idle)
	}
	if p.ActiveConnections != n {
		t.Errorf("server has %d active connections, want %d", p.ActiveConnections, n)
	}
	if open < 2*n {
		t.Errorf("%d sockets open, want at least %d (both ends of %d connections)", open, 2*n, n)
	}
	for i, c := range conns {
		if !c.IsConnected() {
			t.Errorf("connection %d not connected before the idle timeout: %v", i, c.State())
			break
		}
	}

	// Every connection idles out.
	deadline := time.Now().Add(idle + 30*time.Second)
	for {
		ok := srv.Perf().Connections == 0
		for i := 0; ok && i < n; i++ {
			ok = conns[i].State() == conn.StateClosed
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			closed := 0
			for _, c := range conns {
				if c.State() == conn.StateClosed {
					closed++
				}
			}
			t.Fatalf("after %v: %d of %d client connections closed, server still has %d", idle+30*time.Second, closed, n, srv.Perf().Connections)
		}
		time.Sleep(20 * time.Millisecond)
	}
	closedAt := time.Since(start)
	var idles uint64
	for i, m := range cls {
		idles += m.Perf().IdleTimeouts
		if !wlResetSeen(recs[i], conns[i].ID()) {
			// The reset is queued on the client's dispatch queue: wait a bit.
			recs[i].waitFor(t, "reset of an idle connection", 5*time.Second, func() bool {
				for _, id := range recs[i].resetIDs {
					if id == conns[i].ID() {
						return true
					}
				}
				return false
			})
		}
	}
	sp := srv.Perf()
	idles += sp.IdleTimeouts
	// Each connection was closed by a timeout on at least one side (the
	// other side may see the close first).
	if idles < n {
		t.Errorf("%d idle timeouts counted (clients + server), want at least %d", idles, n)
	}
	if closedAt < idle {
		t.Errorf("all closed after %v, before the idle timeout %v", closedAt, idle)
	}
	// The sockets are gone (the listener stays).
	deadline = time.Now().Add(5 * time.Second)
	for socketFDs()-sock0 > 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := socketFDs() - sock0; s > 1 {
		t.Errorf("%d sockets still open after every connection idled out (want only the listener)", s)
	}
	t.Logf("closed after %v: idle timeouts %d (server %d), server resets %d", closedAt, idles, sp.IdleTimeouts, sr.resets)
}

// TestShutdownManyConnectionsInFlight: 20 clients (10 lossless, 10
// lossy) stream to a server that echoes on the fast path and has a slow
// queue dispatcher behind a small throttle, so every queue is full
// (out queues, the dispatch queue, the throttle) when both sides shut
// down at once. Shutdown returns within its bound, every message handed
// to Send is released exactly once, and nothing is left behind.
func TestShutdownManyConnectionsInFlight(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	o.ShutdownTimeout = 100 * time.Millisecond
	o.DispatchThrottleBytes = 256 << 10
	o.Logf = func(string, ...any) {}
	srvD := &echoSlow{}
	srv := newServer(t, o, 1, srvD)
	srv.SetPolicy(msg.EntityClient, msg.StatefulServer(0))
	defer shutdown(t, srv)
	const clients = 20
	var cls []*Messenger
	for i := 0; i < clients; i++ {
		cli := newClient(t, o, int64(i+1), &sink{})
		if i%2 == 0 {
			cli.SetPolicy(msg.EntityOSD, msg.LosslessClient(0))
		} else {
			cli.SetPolicy(msg.EntityOSD, msg.LossyClient(0))
		}
		cls = append(cls, cli)
	}
	defer shutdown(t, cls...)

	// Count every message Send accepted and every release of one.
	var accepted, rejected, released, doubles atomic.Int64
	newMsg := func(i, k int) *msg.Message {
		m := numbered(uint64(i)<<32|uint64(k), k%2000)
		m.Priority = wlPrios[k%len(wlPrios)]
		var once atomic.Bool
		m.DataFree = func() {
			if !once.CompareAndSwap(false, true) {
				doubles.Add(1)
			}
			released.Add(1)
		}
		return m
	}
	var wg sync.WaitGroup
	for i, cli := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
			if err != nil {
				return
			}
			for k := 0; k < 5000; k++ {
				m := newMsg(i, k)
				if err := c.Send(m); err != nil {
					m.Release() // not accepted: still ours
					rejected.Add(1)
					if c, err = cli.ConnectTo(msg.EntityOSD, srv.Addrs()); err != nil {
						return // shut down
					}
					continue
				}
				accepted.Add(1)
				if k%64 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for srvD.n.Load() < 200 || srv.Perf().DispatchQueueLen == 0 || srv.Perf().DispatchThrottleBytes == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no traffic before shutdown: server %+v", srv.Perf())
		}
		time.Sleep(5 * time.Millisecond)
	}
	before := srv.Perf()
	start := time.Now()
	done := make(chan error, clients+1)
	for _, m := range append([]*Messenger{srv}, cls...) {
		go func() { done <- m.Shutdown() }()
	}
	for i := 0; i < clients+1; i++ {
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("shutdown hung (%d of %d returned)", i, clients+1)
		}
	}
	took := time.Since(start)
	wg.Wait()
	// Every message Send accepted was released once: the connections,
	// queues and throttle dropped nothing on the floor and freed nothing
	// twice.
	deadline = time.Now().Add(2 * time.Second)
	for released.Load() < accepted.Load()+rejected.Load() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if r, a, x := released.Load(), accepted.Load(), rejected.Load(); r != a+x || doubles.Load() != 0 {
		t.Errorf("%d messages accepted by Send and %d refused (released by the test), %d released in all (%d released twice)", a, x, r, doubles.Load())
	}
	t.Logf("shutdown of %d messengers took %v with dispatch queue %d, throttle %d B, %d sent, %d dispatched slowly",
		clients+1, took, before.DispatchQueueLen, before.DispatchThrottleBytes, accepted.Load(), srvD.n.Load())
}

// echoSlow echoes every fifth message on the fast path and takes the
// rest slowly on the queue.
type echoSlow struct {
	dispatch.Base
	n atomic.Int64
}

func (e *echoSlow) CanFastDispatch(m *msg.Message) bool { return num(m)%5 == 0 }
func (e *echoSlow) FastDispatch(c dispatch.Conn, m *msg.Message) {
	m.Release()
	e.n.Add(1)
	_ = c.Send(numbered(0, 8))
}
func (e *echoSlow) Dispatch(c dispatch.Conn, m *msg.Message) bool {
	time.Sleep(50 * time.Microsecond)
	m.Release()
	e.n.Add(1)
	return true
}

// TestRefusedThenServerComes: a lossless client connecting to a closed
// port is told HandleRefused (and keeps retrying with backoff); once a
// server binds that port, the messages queued meanwhile arrive, once
// each and in order.
func TestRefusedThenServerComes(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	o.InitialBackoff = 10 * time.Millisecond
	o.MaxBackoff = 40 * time.Millisecond
	o.Logf = func(string, ...any) {}
	cr := newRec(false)
	cli := newClient(t, o, 1, cr)
	cli.SetPolicy(msg.EntityOSD, msg.LosslessClient(0))
	defer shutdown(t, cli)
	addr := closedPort(t)
	c, err := cli.ConnectTo(msg.EntityOSD, msg.AddrVec{addr})
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	for i := uint64(0); i < n; i++ {
		if err := c.Send(numbered(i, int(i))); err != nil {
			t.Fatal(err)
		}
	}
	cr.waitFor(t, "refused", 5*time.Second, func() bool { return cr.refused >= 2 })

	sr := newRec(false)
	srv, err := New(msg.EntityName{Type: msg.EntityOSD, Num: 1}, 0, o)
	if err != nil {
		t.Fatal(err)
	}
	srv.AddDispatcherTail(sr)
	srv.SetPolicy(msg.EntityClient, msg.StatefulServer(0))
	if err := srv.Bind(addr); err != nil {
		t.Fatalf("bind %v (a private loopback address, so no one else holds it): %v", addr, err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, srv)
	sr.waitFor(t, "the queued messages", 10*time.Second, func() bool { return len(sr.msgs) >= n })
	time.Sleep(20 * time.Millisecond)
	sr.mu.Lock()
	defer sr.mu.Unlock()
	if len(sr.msgs) != n {
		t.Errorf("got %d messages, want %d", len(sr.msgs), n)
	}
	for i, m := range sr.msgs {
		if num(m) != uint64(i) {
			t.Fatalf("message %d carries %d", i, num(m))
		}
	}
	if cr.openResets() != 0 {
		t.Errorf("lossless client reported a reset")
	}
}

// eventPanicker panics in its connection callbacks and in
// CanFastDispatch for message 5; it records messages.
type eventPanicker struct {
	*rec
}

func (p eventPanicker) HandleAccept(dispatch.Conn)     { panic("HandleAccept bug") }
func (p eventPanicker) HandleReset(dispatch.Conn) bool { panic("HandleReset bug") }
func (p eventPanicker) CanFastDispatch(m *msg.Message) bool {
	if num(m) == 5 {
		panic("CanFastDispatch bug")
	}
	return false
}

// TestDispatcherEventPanics complements TestDispatcherPanicRecovered
// (which covers Dispatch and FastDispatch): panics in HandleAccept,
// HandleReset and CanFastDispatch are recovered and counted, and the
// messenger keeps serving every connection (message 5, whose
// CanFastDispatch panicked, still arrives by the queue).
func TestDispatcherEventPanics(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	o.Logf = func(string, ...any) {}
	sr := newRec(false)
	srv := newServer(t, o, 1, eventPanicker{sr})
	cli := newClient(t, o, 1, nil)
	cli.SetPolicy(msg.EntityOSD, msg.LossyClient(0))
	cli2 := newClient(t, o, 2, nil)
	cli2.SetPolicy(msg.EntityOSD, msg.LossyClient(0))
	defer shutdown(t, cli, cli2, srv)
	c, _ := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
	c2, _ := cli2.ConnectTo(msg.EntityOSD, srv.Addrs())
	for i := uint64(0); i < 10; i++ {
		c.Send(numbered(i, 0))
		c2.Send(numbered(100+i, 0))
	}
	sr.waitFor(t, "all 20 messages", 5*time.Second, func() bool { return len(sr.msgs) == 20 })
	// The first client goes away: the server's lossy side reports a
	// reset, whose callback panics.
	c.MarkDown()
	deadline := time.Now().Add(5 * time.Second)
	for srv.Perf().DispatchPanics < 4 { // 2 accepts, 1 CanFastDispatch, 1 reset
		if time.Now().After(deadline) {
			t.Fatalf("panics counted %d, want 4", srv.Perf().DispatchPanics)
		}
		time.Sleep(2 * time.Millisecond)
	}
	for i := uint64(10); i < 20; i++ {
		c2.Send(numbered(100+i, 0))
	}
	sr.waitFor(t, "the other connection's messages after the panics", 5*time.Second, func() bool { return len(sr.msgs) == 30 })
	if !c2.IsConnected() {
		t.Errorf("the surviving connection is %v", c2.State())
	}
}

// waitCount waits up to d for r to hold n messages, and says whether it does.
func waitCount(r *rec, n int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for r.count() < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
