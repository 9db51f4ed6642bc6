package stack

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/msgr-dev/msgr/core/internal/leakcheck"
)

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func totalConns(s *Stack) int {
	n := 0
	for _, w := range s.Workers() {
		n += w.NumConns()
	}
	return n
}

func pattern(i, n int) []byte {
	p := make([]byte, n)
	for j := range p {
		p[j] = byte(i*131 + j*7 + j>>8)
	}
	return p
}

// 1,000 loopback connections: every echo verified byte for byte, accepted
// sockets spread evenly over the server's workers, then all closed from
// the test goroutine (not a loop) and counted back to zero.
func TestEcho1000Spread(t *testing.T) { eachTransport(t, testEcho1000Spread) }

func testEcho1000Spread(t *testing.T, typ string) {
	srv := newStarted(t, Options{Type: typ, Workers: 4})
	defer stop(t, srv)
	cli := newStarted(t, Options{Type: typ, Workers: 2})
	defer stop(t, cli)

	ln, err := srv.Listen(lo4, DefaultSockOpts(), 2048, func(s *Socket) { serveEcho(s, nil) })
	if err != nil {
		t.Fatal(err)
	}
	if !ln.Addr().Addr().IsLoopback() || ln.Addr().Port() == 0 {
		t.Fatalf("Addr() = %v, want 127.0.0.1 with a real port", ln.Addr())
	}

	const N = 1000
	done := make(chan error, N)
	conns := make(chan *Socket, N)
	for i := range N {
		payload := pattern(i, 1000+i) // different length and bytes per connection
		err := cli.Connect(ln.Addr(), DefaultSockOpts(), 10*time.Second, func(s *Socket, err error) {
			if err != nil {
				done <- err
				return
			}
			conns <- s
			runEchoClient(s, payload, done)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.After(40 * time.Second)
	for i := range N {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
		case <-deadline:
			t.Fatalf("only %d of %d echoes done", i, N)
		}
	}

	// Nothing has closed yet, so the fewest-connections pick must have dealt
	// the accepted sockets out evenly.
	var counts []int
	sum := 0
	for _, w := range srv.Workers() {
		counts = append(counts, w.NumConns())
		sum += w.NumConns()
	}
	if sum != N || max(counts[0], counts[1], counts[2], counts[3])-min(counts[0], counts[1], counts[2], counts[3]) > 1 {
		t.Fatalf("server per-worker connections %v (sum %d), want %d spread within 1", counts, sum, N)
	}
	if a, b := cli.Workers()[0].NumConns(), cli.Workers()[1].NumConns(); a != N/2 || b != N/2 {
		t.Fatalf("client per-worker connections %d, %d; want %d each", a, b, N/2)
	}
	t.Logf("server workers: %v", counts)

	for range N {
		(<-conns).Close() // from the test goroutine: hops to the loop
	}
	waitFor(t, 10*time.Second, "all sockets closed", func() bool { return totalConns(srv)+totalConns(cli) == 0 })
	ln.Close()
}

func TestEchoIPv6(t *testing.T) { eachTransport(t, testEchoIPv6) }

func testEchoIPv6(t *testing.T, typ string) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		err = unix.Bind(fd, &unix.SockaddrInet6{Addr: netip.IPv6Loopback().As16()})
		unix.Close(fd)
	}
	if err != nil {
		t.Skipf("this machine cannot bind [::1]: %v", err)
	}
	s := newStarted(t, Options{Type: typ, Workers: 2})
	defer stop(t, s)
	ln, err := s.Listen(netip.MustParseAddrPort("[::1]:0"), DefaultSockOpts(), 0, func(k *Socket) { serveEcho(k, nil) })
	if err != nil {
		t.Fatal(err)
	}
	if ln.Addr().Addr() != netip.IPv6Loopback() {
		t.Fatalf("Addr() = %v, want [::1]:port", ln.Addr())
	}
	c, err := connectWait(t, s, ln.Addr(), DefaultSockOpts(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if c.RemoteAddr() != ln.Addr() || !c.LocalAddr().Addr().Is6() {
		t.Fatalf("addresses local %v remote %v, want IPv6 and remote %v", c.LocalAddr(), c.RemoteAddr(), ln.Addr())
	}
	done := make(chan error, 1)
	c.Worker().Center.Submit(func() { runEchoClient(c, pattern(6, 100000), done) })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// The poll and select drivers must carry the same traffic as epoll, with
// either transport (simple still connects through the loop's driver).
func TestEchoDrivers(t *testing.T) {
	for _, drv := range []string{"poll", "select"} {
		t.Run(drv, func(t *testing.T) {
			eachTransport(t, func(t *testing.T, typ string) { testEchoDriver(t, typ, drv) })
		})
	}
}

func testEchoDriver(t *testing.T, typ, drv string) {
	if typ == "io_uring" {
		// Its sockets need the ring of the io_uring driver.
		if s, err := New(Options{Type: typ, Driver: drv}); err == nil {
			s.Stop()
			t.Fatalf("New(io_uring over %s) succeeded, want an error", drv)
		}
		return
	}
	s := newStarted(t, Options{Type: typ, Workers: 2, Driver: drv})
	defer stop(t, s)
	for _, w := range s.Workers() {
		if got := w.Center.DriverName(); got != drv {
			t.Fatalf("worker %d runs driver %q, want %q", w.ID, got, drv)
		}
	}
	ln, err := s.Listen(lo4, DefaultSockOpts(), 0, func(k *Socket) { serveEcho(k, nil) })
	if err != nil {
		t.Fatal(err)
	}
	const N = 20
	done := make(chan error, N)
	for i := range N {
		s.Connect(ln.Addr(), DefaultSockOpts(), 5*time.Second, func(k *Socket, err error) {
			if err != nil {
				done <- err
				return
			}
			runEchoClient(k, pattern(i, 300000), done) // larger than socket buffers: exercises WantWrite
		})
	}
	for range N {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestConnectRefused(t *testing.T) { eachTransport(t, testConnectRefused) }

func testConnectRefused(t *testing.T, typ string) {
	s := newStarted(t, Options{Type: typ, Workers: 1})
	defer stop(t, s)
	// A port that was just bound and released: nothing listens on it.
	fd, _ := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
	sa, _ := unix.Getsockname(fd)
	unix.Close(fd)
	addr := fromSockaddr(sa)

	k, err := connectWait(t, s, addr, DefaultSockOpts(), time.Second)
	if k != nil {
		t.Fatalf("got a socket to %v, want refusal", addr)
	}
	var ce *ConnectError
	if !errors.As(err, &ce) || !errors.Is(err, unix.ECONNREFUSED) || ce.Addr != addr || ce.Timeout() {
		t.Fatalf("err = %#v, want *ConnectError for %v wrapping ECONNREFUSED", err, addr)
	}
	if n := totalConns(s); n != 0 {
		t.Fatalf("a failed connect still counts: NumConns total %d", n)
	}
}

// fullListener returns a raw listener with backlog 0 that never accepts,
// plus one connection that fills its accept queue. The kernel then drops
// further SYNs, so a new connect stays in SYN_SENT (on loopback, with no
// routing trick): only a timer can end it.
func fullListener(t *testing.T, s *Stack) (netip.AddrPort, func()) {
	t.Helper()
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(lfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(lfd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(lfd)
	addr := fromSockaddr(sa)
	filler, err := connectWait(t, s, addr, SockOpts{}, 2*time.Second)
	if err != nil {
		t.Fatalf("filler connection: %v", err)
	}
	return addr, func() { filler.Close(); unix.Close(lfd) }
}

func TestConnectTimeout(t *testing.T) { eachTransport(t, testConnectTimeout) }

func testConnectTimeout(t *testing.T, typ string) {
	s := newStarted(t, Options{Type: typ, Workers: 1})
	defer stop(t, s)
	addr, cleanup := fullListener(t, s)
	defer cleanup()

	const timeout = 300 * time.Millisecond
	start := time.Now()
	k, err := connectWait(t, s, addr, SockOpts{}, timeout)
	took := time.Since(start)
	if k != nil {
		k.Close()
		t.Fatalf("connect to a full backlog succeeded; want a timeout")
	}
	var ce *ConnectError
	if !errors.As(err, &ce) || !errors.Is(err, ErrConnectTimeout) || !ce.Timeout() {
		t.Fatalf("err = %v, want *ConnectError wrapping ErrConnectTimeout", err)
	}
	if took < timeout || took > timeout+2*time.Second {
		t.Fatalf("timed out after %v, want about %v", took, timeout)
	}
	waitFor(t, 2*time.Second, "count back to the filler only", func() bool { return totalConns(s) == 1 })
}

// Stop fails a connect still in progress through its callback, on time.
func TestStopFailsPendingConnect(t *testing.T) { eachTransport(t, testStopFailsPendingConnect) }

func testStopFailsPendingConnect(t *testing.T, typ string) {
	s := newStarted(t, Options{Type: typ, Workers: 1})
	addr, cleanup := fullListener(t, s)
	defer cleanup()
	got := make(chan error, 1)
	if err := s.Connect(addr, SockOpts{}, 0, func(k *Socket, err error) { got <- err }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let the SYN go out
	stop(t, s)
	select {
	case err := <-got:
		if !errors.Is(err, ErrStopped) {
			t.Fatalf("pending connect got %v, want ErrStopped", err)
		}
	default:
		t.Fatal("Stop returned before the pending connect's callback ran")
	}
	if err := s.Connect(addr, SockOpts{}, 0, func(*Socket, error) { t.Error("callback after a failed Connect") }); !errors.Is(err, ErrStopped) {
		t.Fatalf("Connect after Stop = %v, want ErrStopped", err)
	}
	if _, err := s.Listen(lo4, SockOpts{}, 0, func(*Socket) {}); !errors.Is(err, ErrStopped) {
		t.Fatalf("Listen after Stop = %v, want ErrStopped", err)
	}
}

// pair returns both ends of one connection on a one-worker stack, so both
// live on the same loop.
func pair(t *testing.T, s *Stack) (cli, srv *Socket, ln *Listener) {
	t.Helper()
	acc := make(chan *Socket, 1)
	ln, err := s.Listen(lo4, DefaultSockOpts(), 0, func(k *Socket) { acc <- k })
	if err != nil {
		t.Fatal(err)
	}
	cli, err = connectWait(t, s, ln.Addr(), DefaultSockOpts(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case srv = <-acc:
	case <-time.After(5 * time.Second):
		t.Fatal("no accept")
	}
	return cli, srv, ln
}

func onLoop(t *testing.T, k *Socket, fn func()) {
	t.Helper()
	if err := k.Worker().Center.SubmitWait(fn); err != nil {
		t.Fatal(err)
	}
}

// One Writev moves many buffers, in order; the count is capped at IOV_MAX.
func TestWritevManyBuffers(t *testing.T) { eachTransport(t, testWritevManyBuffers) }

func testWritevManyBuffers(t *testing.T, typ string) {
	s := newStarted(t, Options{Type: typ, Workers: 1})
	defer stop(t, s)
	cli, srv, _ := pair(t, s)

	var bufs [][]byte
	var want []byte
	for i := range 512 {
		b := []byte(fmt.Sprintf("<%013d>", i)) // 15 bytes each
		bufs = append(bufs, b, nil)            // empty buffers are skipped
		want = append(want, b...)
	}
	var n int
	var err error
	onLoop(t, cli, func() { n, err = cli.Writev(bufs) })
	if err != nil || n != len(want) {
		t.Fatalf("Writev of 512 buffers = %d, %v; want %d in one call", n, err, len(want))
	}
	done := make(chan []byte, 1)
	errc := make(chan error, 1)
	onLoop(t, srv, func() { readAllOnLoop(srv, len(want), done, errc) })
	select {
	case got := <-done:
		if !bytes.Equal(got, want) {
			t.Fatal("bytes differ from the buffers written")
		}
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("read timed out")
	}

	// 2000 one-byte buffers: one call takes IOV_MAX of them.
	many := make([][]byte, 2000)
	for i := range many {
		many[i] = []byte{byte(i)}
	}
	onLoop(t, cli, func() { n, err = cli.Writev(many) })
	if err != nil || n != iovMax {
		t.Fatalf("Writev of 2000 one-byte buffers = %d, %v; want %d (IOV_MAX)", n, err, iovMax)
	}

	// Readv scatters into several buffers in one call.
	r1, r2 := make([]byte, 1000), make([]byte, 1000)
	onLoop(t, srv, func() {
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if n, err = srv.Readv([][]byte{r1, r2}); err != ErrWouldBlock {
				return
			}
		}
	})
	if err != nil || n != iovMax {
		t.Fatalf("Readv = %d, %v; want %d", n, err, iovMax)
	}
	for i := range iovMax {
		b := r1
		if i >= 1000 {
			b = r2[:]
		}
		if b[i%1000] != byte(i) {
			t.Fatalf("byte %d = %d, want %d", i, b[i%1000], byte(i))
		}
	}
}

// Steady-state Readv/Writev allocate nothing (the iovec array is reused;
// with simple, neither do the reader and writer goroutines, which
// AllocsPerRun counts too since it counts the whole process).
func TestVectoredIOZeroAlloc(t *testing.T) { eachTransport(t, testVectoredIOZeroAlloc) }

func testVectoredIOZeroAlloc(t *testing.T, typ string) {
	s := newStarted(t, Options{Type: typ, Workers: 1})
	defer stop(t, s)
	cli, srv, _ := pair(t, s)
	out := [][]byte{make([]byte, 64), make([]byte, 64), make([]byte, 64)}
	in := [][]byte{make([]byte, 100), make([]byte, 100)}
	var allocs float64
	var ioErr error
	if typ == "io_uring" {
		// Its bytes move only when the loop waits on its ring: each call
		// is a separate loop event. Submit and a channel allocate nothing
		// (SubmitWait's pooled waiter may be dropped by the race
		// detector's sync.Pool).
		got := 0
		step := make(chan struct{}, 1)
		write := func() {
			if n, err := cli.Writev(out); err != nil || n != 192 {
				ioErr = fmt.Errorf("Writev = %d, %v", n, err)
			}
			step <- struct{}{}
		}
		read := func() {
			n, err := srv.Readv(in)
			switch {
			case err == ErrWouldBlock:
			case err != nil:
				ioErr = fmt.Errorf("Readv = %d, %v after %d bytes", n, err, got)
			default:
				got += n
			}
			step <- struct{}{}
		}
		c := cli.Worker().Center
		allocs = testing.AllocsPerRun(200, func() {
			got = 0
			c.Submit(write)
			<-step
			deadline := time.Now().Add(2 * time.Second)
			for got < 192 && ioErr == nil && time.Now().Before(deadline) {
				c.Submit(read)
				<-step
			}
			if got != 192 && ioErr == nil {
				ioErr = fmt.Errorf("read %d bytes, want 192", got)
			}
		})
	} else {
		onLoop(t, cli, func() {
			allocs = testing.AllocsPerRun(200, func() {
				if n, err := cli.Writev(out); err != nil || n != 192 {
					ioErr = fmt.Errorf("Writev = %d, %v", n, err)
				}
				// posix: loopback delivers during the send, so the bytes are
				// there at once. simple: they pass through the writer and the
				// reader goroutine first; wait for them (bounded).
				deadline := time.Now().Add(2 * time.Second)
				got := 0
				for got < 192 && ioErr == nil {
					n, err := srv.Readv(in)
					switch {
					case err == ErrWouldBlock && typ != "posix" && time.Now().Before(deadline):
						// Yield the P, or the goroutines just woken may
						// wait for a preemption tick behind this spin.
						runtime.Gosched()
					case err != nil:
						ioErr = fmt.Errorf("Readv = %d, %v after %d bytes", n, err, got)
					default:
						got += n
					}
				}
				if got != 192 && ioErr == nil {
					ioErr = fmt.Errorf("read %d bytes, want 192", got)
				}
			})
		})
	}
	if ioErr != nil {
		t.Fatal(ioErr)
	}
	if allocs != 0 {
		t.Fatalf("Readv+Writev allocate %.1f times per call pair, want 0", allocs)
	}
}

// Close from a goroutine that is not the loop: the peer sees EOF, the count
// drops, and later I/O on the loop reports ErrClosed.
func TestCloseFromOtherGoroutine(t *testing.T) { eachTransport(t, testCloseFromOtherGoroutine) }

func testCloseFromOtherGoroutine(t *testing.T, typ string) {
	s := newStarted(t, Options{Type: typ, Workers: 2})
	defer stop(t, s)
	cli, srv, _ := pair(t, s)
	eof := make(chan error, 1)
	onLoop(t, srv, func() { serveEcho(srv, func(err error) { eof <- err }) })

	before := totalConns(s)
	if err := cli.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cli.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	select {
	case err := <-eof:
		if err != io.EOF {
			t.Fatalf("peer read got %v, want io.EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("peer did not see the close")
	}
	waitFor(t, 2*time.Second, "both ends uncounted", func() bool { return totalConns(s) == before-2 })
	var err error
	onLoop(t, cli, func() { _, err = cli.Write([]byte("x")) })
	if err != ErrClosed {
		t.Fatalf("Write after Close = %v, want ErrClosed", err)
	}
	if err := cli.SetReadHandler(func() {}); err != ErrClosed {
		t.Fatalf("SetReadHandler after Close = %v, want ErrClosed", err)
	}
}

// A peer that closes in the middle of a message: the reader gets what was
// sent, then io.EOF.
func TestPeerCloseMidRead(t *testing.T) { eachTransport(t, testPeerCloseMidRead) }

func testPeerCloseMidRead(t *testing.T, typ string) {
	s := newStarted(t, Options{Type: typ, Workers: 1})
	defer stop(t, s)
	cli, srv, _ := pair(t, s)
	done := make(chan []byte, 1)
	errc := make(chan error, 1)
	onLoop(t, srv, func() { readAllOnLoop(srv, 1000, done, errc) }) // expects 1000 bytes
	onLoop(t, cli, func() {
		cli.Write(pattern(1, 100))
		cli.Close()
	})
	select {
	case got := <-done:
		if !bytes.Equal(got, pattern(1, 100)) {
			t.Fatalf("got %d bytes before EOF, want the 100 sent", len(got))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reader saw nothing")
	}
	if err := <-errc; err != io.EOF {
		t.Fatalf("after the data: %v, want io.EOF", err)
	}
	// EOF stays; the vectored read reports it too.
	var err error
	onLoop(t, srv, func() { _, err = srv.Readv([][]byte{make([]byte, 10), make([]byte, 10)}) })
	if err != io.EOF {
		t.Fatalf("Readv after EOF = %v, want io.EOF", err)
	}
}

// Stop with live listeners, sockets (with handlers) and nothing closed by
// the user leaves no fd and no goroutine.
func TestStopClosesEverything(t *testing.T) { eachTransport(t, testStopClosesEverything) }

func testStopClosesEverything(t *testing.T, typ string) {
	srv := newStarted(t, Options{Type: typ, Workers: 3})
	cli := newStarted(t, Options{Type: typ, Workers: 2})
	ln, err := srv.Listen(lo4, DefaultSockOpts(), 0, func(k *Socket) { serveEcho(k, nil) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Listen(netip.MustParseAddrPort("127.0.0.1:0"), DefaultSockOpts(), 0, func(*Socket) {}); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		k, err := connectWait(t, cli, ln.Addr(), DefaultSockOpts(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		k.Worker().Center.Submit(func() { runEchoClient(k, pattern(3, 10), done) })
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	stop(t, srv)
	stop(t, cli)
	stop(t, srv) // idempotent
	if totalConns(srv)+totalConns(cli) != 0 {
		t.Fatalf("counts after Stop: %d + %d", totalConns(srv), totalConns(cli))
	}
}

func TestBadInput(t *testing.T) { eachTransport(t, testBadInput) }

func testBadInput(t *testing.T, typ string) {
	for _, o := range []Options{{Workers: -1}, {Workers: MaxWorkers + 1}, {Type: "dpdk"}, {Driver: "kqueue-on-linux"}, {BusyPoll: -1}} {
		if o.Type == "" {
			o.Type = typ
		}
		if s, err := New(o); err == nil {
			s.Stop()
			t.Errorf("New(%+v) succeeded, want an error", o)
		}
	}
	s, err := New(Options{Type: typ, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Listen(lo4, SockOpts{}, 0, func(*Socket) {}); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Listen before Start = %v, want ErrNotStarted", err)
	}
	if err := s.Connect(lo4, SockOpts{}, 0, func(*Socket, error) {}); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Connect before Start = %v, want ErrNotStarted", err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer stop(t, s)
	cb := func(*Socket, error) { t.Error("callback ran although Connect returned an error") }
	if err := s.Connect(netip.AddrPort{}, SockOpts{}, 0, cb); !errors.Is(err, ErrBadAddr) {
		t.Errorf("Connect(invalid) = %v, want ErrBadAddr", err)
	}
	if err := s.Connect(netip.MustParseAddrPort("[fe80::1%no-such-if0]:1"), SockOpts{}, 0, cb); !errors.Is(err, ErrBadAddr) {
		t.Errorf("Connect(bad zone) = %v, want ErrBadAddr", err)
	}
	if err := s.Connect(lo4, SockOpts{}, -time.Second, cb); err == nil {
		t.Error("negative timeout accepted")
	}
	if err := s.Connect(lo4, SockOpts{}, 0, nil); err == nil {
		t.Error("nil callback accepted")
	}
	if err := s.Connect(lo4, SockOpts{RcvBuf: -1}, 0, cb); err == nil {
		t.Error("negative RcvBuf accepted")
	}
	if _, err := s.Listen(lo4, SockOpts{}, 0, nil); err == nil {
		t.Error("nil onAccept accepted")
	}
	if _, err := s.Listen(lo4, SockOpts{}, -1, func(*Socket) {}); err == nil {
		t.Error("negative backlog accepted")
	}
	if _, err := s.Listen(netip.AddrPort{}, SockOpts{}, 0, func(*Socket) {}); !errors.Is(err, ErrBadAddr) {
		t.Errorf("Listen(invalid) = %v, want ErrBadAddr", err)
	}
	ln, err := s.Listen(lo4, SockOpts{}, 0, func(*Socket) {})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Listen(ln.Addr(), SockOpts{}, 0, func(*Socket) {}); !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("second Listen on %v = %v, want EADDRINUSE", ln.Addr(), err)
	}
	cli, _, _ := pair(t, s)
	var werr error
	onLoop(t, cli, func() { werr = cli.WantWrite(true) })
	if werr == nil {
		t.Error("WantWrite(true) without a write handler accepted")
	}
	if err := cli.SetReadHandler(func() {}); err == nil {
		t.Error("SetReadHandler off the loop accepted")
	}
}

// The options reach the kernel, on both connected and accepted sockets.
func TestSockOptsApplied(t *testing.T) { eachTransport(t, testSockOptsApplied) }

func testSockOptsApplied(t *testing.T, typ string) {
	s := newStarted(t, Options{Type: typ, Workers: 1})
	defer stop(t, s)
	opts := SockOpts{NoDelay: true, RcvBuf: 64 << 10, SndBuf: 64 << 10, ReuseAddr: true, ReusePort: true, Priority: 3}
	acc := make(chan *Socket, 1)
	ln, err := s.Listen(lo4, opts, 0, func(k *Socket) { acc <- k })
	if err != nil {
		t.Fatal(err)
	}
	lfd := ln.impl.sysfd()
	for _, c := range []struct {
		name         string
		level, opt   int
		want, minVal int
	}{{"SO_REUSEADDR", unix.SOL_SOCKET, unix.SO_REUSEADDR, 1, 0}, {"SO_REUSEPORT", unix.SOL_SOCKET, unix.SO_REUSEPORT, 1, 0}} {
		if v, err := unix.GetsockoptInt(lfd, c.level, c.opt); err != nil || v != c.want {
			t.Errorf("listener %s = %d, %v; want %d", c.name, v, err, c.want)
		}
	}
	k, err := connectWait(t, s, ln.Addr(), opts, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	a := <-acc
	for _, fd := range []int{k.Fd(), a.Fd()} {
		if v, _ := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY); v != 1 {
			t.Errorf("fd %d TCP_NODELAY = %d, want 1", fd, v)
		}
		if v, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF); v < 64<<10 {
			t.Errorf("fd %d SO_RCVBUF = %d, want >= %d", fd, v, 64<<10)
		}
		if v, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF); v < 64<<10 {
			t.Errorf("fd %d SO_SNDBUF = %d, want >= %d", fd, v, 64<<10)
		}
		if v, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PRIORITY); v != 3 {
			t.Errorf("fd %d SO_PRIORITY = %d, want 3", fd, v)
		}
		if v, _ := unix.GetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TOS); v != dscpCS6 {
			t.Errorf("fd %d IP_TOS = %#x, want %#x", fd, v, dscpCS6)
		}
		// posix fds are nonblocking; simple's are blocking (its reader and
		// writer goroutines wait in the syscalls), and so are io_uring's
		// (the ring waits for the socket). All close-on-exec.
		fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		fdfl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if nb := typ == "posix"; (fl&unix.O_NONBLOCK != 0) != nb || fdfl&unix.FD_CLOEXEC == 0 {
			t.Errorf("fd %d flags %#x fdflags %#x: want O_NONBLOCK=%v and FD_CLOEXEC", fd, fl, fdfl, nb)
		}
	}
	if k.RemoteAddr() != ln.Addr() || a.RemoteAddr() != k.LocalAddr() {
		t.Errorf("addresses: client %v->%v, accepted remote %v", k.LocalAddr(), k.RemoteAddr(), a.RemoteAddr())
	}
}

func TestPickWorker(t *testing.T) {
	defer leakcheck.Take().Check(t)
	s := newStarted(t, Options{Workers: 3})
	defer stop(t, s)
	if w := s.PickWorker(); w.ID != 0 {
		t.Fatalf("all idle: picked worker %d, want 0 (ties go to the lowest ID)", w.ID)
	}
	s.Workers()[0].conns.Add(2)
	s.Workers()[1].conns.Add(1)
	s.Workers()[2].conns.Add(1)
	if w := s.PickWorker(); w.ID != 1 {
		t.Fatalf("counts 2,1,1: picked worker %d, want 1", w.ID)
	}
	for _, w := range s.Workers() {
		w.conns.Store(0)
	}
	if DefaultWorkers() < 1 || DefaultWorkers() > 8 {
		t.Fatalf("DefaultWorkers() = %d", DefaultWorkers())
	}
	d, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	if len(d.Workers()) != DefaultWorkers() {
		t.Fatalf("Workers: 0 gave %d workers, want DefaultWorkers() = %d", len(d.Workers()), DefaultWorkers())
	}
}

func TestSockaddrRoundTrip(t *testing.T) {
	for _, s := range []string{"127.0.0.1:80", "[::1]:6789", "[fe80::1%1]:3300", "10.1.2.3:0"} {
		ap := netip.MustParseAddrPort(s)
		sa, _, err := toSockaddr(ap)
		if err != nil {
			t.Fatal(err)
		}
		if got := fromSockaddr(sa); got != ap {
			t.Errorf("%s round-trips to %s", ap, got)
		}
	}
	// IPv4-mapped IPv6 is IPv4 on the wire.
	sa, fam, err := toSockaddr(netip.MustParseAddrPort("[::ffff:127.0.0.1]:5"))
	if err != nil || fam != unix.AF_INET || fromSockaddr(sa) != netip.MustParseAddrPort("127.0.0.1:5") {
		t.Errorf("mapped address: %v %v %v", sa, fam, err)
	}
}

// Where io_uring is unavailable, the io_uring transport falls back to posix
// over epoll, says so through Logf, and still carries traffic.
func TestUringFallback(t *testing.T) {
	defer leakcheck.Take().Check(t)
	saved := uringAvailable
	uringAvailable = func() error { return errors.New("io_uring_setup: operation not permitted") }
	defer func() { uringAvailable = saved }()
	var logged []string
	s := newStarted(t, Options{Type: "io_uring", Workers: 1, Logf: func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }})
	defer stop(t, s)
	if s.Type() != "posix" || s.Workers()[0].Center.DriverName() != "epoll" {
		t.Fatalf("Type %q driver %q, want posix over epoll", s.Type(), s.Workers()[0].Center.DriverName())
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "operation not permitted") {
		t.Fatalf("logged %q, want one line with the reason", logged)
	}
	ln, err := s.Listen(lo4, DefaultSockOpts(), 0, func(k *Socket) { serveEcho(k, nil) })
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := connectWait(t, s, ln.Addr(), DefaultSockOpts(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	c.Worker().Center.Submit(func() { runEchoClient(c, pattern(3, 1000), done) })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
