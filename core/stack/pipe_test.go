package stack

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/msgr-dev/msgr/core/internal/leakcheck"
)

// Tests of the simple transport (pipe.go), and shared cases that matter
// most to it: level-triggered readiness, errors after staged bytes, close
// with bytes staged or with the kernel buffer full, long transfers through
// the rings.

// Readiness is level-triggered for both transports: a handler that reads
// one byte per call is called again until the socket is drained, with no
// new data arriving; and a read handler set again while bytes wait runs.
func TestLevelTriggeredRead(t *testing.T) { eachTransport(t, testLevelTriggeredRead) }

func testLevelTriggeredRead(t *testing.T, typ string) {
	s := newStarted(t, Options{Type: typ, Workers: 1})
	defer stop(t, s)
	cli, srv, _ := pair(t, s)
	want := pattern(7, 50)
	done := make(chan []byte, 1)
	var got []byte
	calls := 0
	onLoop(t, srv, func() {
		srv.SetReadHandler(func() {
			calls++
			var b [1]byte
			if n, err := srv.Read(b[:]); err == nil {
				got = append(got, b[:n]...)
			}
			if len(got) == len(want) {
				srv.SetReadHandler(nil)
				done <- got
			}
		})
	})
	onLoop(t, cli, func() {
		if n, err := cli.Write(want); n != len(want) || err != nil {
			t.Errorf("Write = %d, %v", n, err)
		}
	})
	select {
	case g := <-done:
		if !bytes.Equal(g, want) {
			t.Fatalf("got %q", g)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("handler drained %d of %d bytes one at a time", len(got), len(want))
	}
	if calls < len(want) {
		t.Fatalf("%d handler calls for %d one-byte reads", calls, len(want))
	}

	// Bytes arrive while no handler is set; setting one later delivers them.
	onLoop(t, cli, func() { cli.Write(want[:10]) })
	time.Sleep(50 * time.Millisecond) // let them arrive (and, for simple, be staged)
	late := make(chan []byte, 1)
	errc := make(chan error, 1)
	onLoop(t, srv, func() { readAllOnLoop(srv, 10, late, errc) })
	select {
	case g := <-late:
		if !bytes.Equal(g, want[:10]) {
			t.Fatalf("late handler got %q", g)
		}
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("a handler set while bytes waited never ran")
	}
}

// A shutdown(2) from outside the stack (core/conn's failure injection does
// this): the reader sees EOF, and writing fails with EPIPE (at once for
// posix; for simple at the latest on the Write after the writer's failed
// send).
func TestShutdownFromOutside(t *testing.T) { eachTransport(t, testShutdownFromOutside) }

func testShutdownFromOutside(t *testing.T, typ string) {
	s := newStarted(t, Options{Type: typ, Workers: 1})
	defer stop(t, s)
	cli, _, _ := pair(t, s)
	done := make(chan []byte, 1)
	errc := make(chan error, 1)
	onLoop(t, cli, func() { readAllOnLoop(cli, 1, done, errc) })
	if err := unix.Shutdown(cli.Fd(), unix.SHUT_RDWR); err != nil {
		t.Fatal(err)
	}
	select {
	case g := <-done:
		if len(g) != 0 {
			t.Fatalf("read %d bytes, want none", len(g))
		}
		if err := <-errc; err != io.EOF {
			t.Fatalf("read after shutdown: %v, want io.EOF", err)
		}
	case err := <-errc: // readAllOnLoop reports EOF on both channels
		if err != io.EOF {
			t.Fatalf("read after shutdown: %v, want io.EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the read handler did not see the shutdown")
	}
	err := writeUntilError(t, cli, 2*time.Second)
	if !errors.Is(err, unix.EPIPE) {
		t.Fatalf("write after shutdown: %v, want EPIPE", err)
	}
}

// writeUntilError writes on k's loop until Write fails, for up to d.
func writeUntilError(t *testing.T, k *Socket, d time.Duration) error {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		var err error
		onLoop(t, k, func() { _, err = k.Write([]byte("ping")) })
		if err != nil && err != ErrWouldBlock {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("Write still succeeds after %v", d)
	return nil
}

// A peer that resets the connection (close with SO_LINGER 0): a writer
// and a reader both learn of it with an error, in bounded time.
func TestPeerReset(t *testing.T) { eachTransport(t, testPeerReset) }

func testPeerReset(t *testing.T, typ string) {
	s := newStarted(t, Options{Type: typ, Workers: 1})
	defer stop(t, s)
	cli, srv, _ := pair(t, s)
	done := make(chan []byte, 1)
	errc := make(chan error, 1)
	onLoop(t, cli, func() { readAllOnLoop(cli, 1, done, errc) })
	if err := unix.SetsockoptLinger(srv.Fd(), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, unix.ECONNRESET) && err != io.EOF {
			t.Fatalf("read after reset: %v, want ECONNRESET or EOF", err)
		}
	case g := <-done:
		if len(g) != 0 {
			t.Fatalf("read %d bytes after reset", len(g))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reader did not learn of the reset")
	}
	err := writeUntilError(t, cli, 2*time.Second)
	if !errors.Is(err, unix.EPIPE) && !errors.Is(err, unix.ECONNRESET) {
		t.Fatalf("write after reset: %v, want EPIPE or ECONNRESET", err)
	}
}

// Close right after a Write larger than a small ring (so simple stages it
// in a large one): every byte still reaches the peer, then EOF.
func TestCloseAfterWriteDelivers(t *testing.T) { eachTransport(t, testCloseAfterWriteDelivers) }

func testCloseAfterWriteDelivers(t *testing.T, typ string) {
	s := newStarted(t, Options{Type: typ, Workers: 1})
	defer stop(t, s)
	cli, srv, _ := pair(t, s)
	want := pattern(9, 32<<10) // fits the loopback socket buffers whole
	done := make(chan []byte, 1)
	errc := make(chan error, 1)
	onLoop(t, srv, func() { readAllOnLoop(srv, len(want)+1, done, errc) })
	onLoop(t, cli, func() {
		if n, err := cli.Write(want); n != len(want) || err != nil {
			t.Errorf("Write = %d, %v; want %d", n, err, len(want))
		}
		cli.Close()
	})
	select {
	case g := <-done:
		if !bytes.Equal(g, want) {
			t.Fatalf("peer got %d bytes before EOF, want the %d written", len(g), len(want))
		}
		if err := <-errc; err != io.EOF {
			t.Fatalf("after the bytes: %v, want EOF", err)
		}
	case err := <-errc:
		if err != io.EOF {
			t.Fatalf("peer read: %v", err)
		}
		// readAllOnLoop sent the bytes on done before EOF on errc.
		if g := <-done; !bytes.Equal(g, want) {
			t.Fatalf("peer got %d bytes before EOF, want the %d written", len(g), len(want))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("peer got nothing")
	}
}

// Close (from another goroutine) and Stop while the kernel buffers are full
// and the peer does not read: for simple the writer goroutine is then
// blocked in sendmsg(2). Both return promptly and leave nothing behind.
func TestCloseWithFullBuffers(t *testing.T) { eachTransport(t, testCloseWithFullBuffers) }

func testCloseWithFullBuffers(t *testing.T, typ string) {
	s := newStarted(t, Options{Type: typ, Workers: 1})
	opts := SockOpts{NoDelay: true, SndBuf: 16 << 10, RcvBuf: 16 << 10}
	acc := make(chan *Socket, 2)
	ln, err := s.Listen(lo4, opts, 0, func(k *Socket) { acc <- k })
	if err != nil {
		t.Fatal(err)
	}
	fill := func(k *Socket) {
		t.Helper()
		chunk := make([]byte, 64<<10)
		total := 0
		deadline := time.Now().Add(5 * time.Second)
		for quiet := 0; quiet < 5; { // full once Write refuses several times in a row
			var n int
			var err error
			onLoop(t, k, func() { n, err = k.Write(chunk) })
			switch {
			case err == ErrWouldBlock:
				quiet++
				time.Sleep(10 * time.Millisecond)
			case err != nil:
				t.Fatalf("Write after %d bytes: %v", total, err)
			default:
				total += n
				quiet = 0
			}
			if total > 256<<20 || time.Now().After(deadline) {
				t.Fatalf("socket never filled (%d bytes written)", total)
			}
		}
		if typ == "simple" {
			waitFor(t, 2*time.Second, "writer blocked on the full kernel buffer", func() bool {
				p := k.impl.(*pipeConn)
				p.mu.Lock()
				defer p.mu.Unlock()
				return p.wStuck
			})
		}
	}
	a, err := connectWait(t, s, ln.Addr(), opts, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	<-acc
	fill(a)
	start := time.Now()
	a.Close() // from the test goroutine
	waitFor(t, 2*time.Second, "closed socket uncounted", func() bool { return totalConns(s) == 1 })
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close with full buffers took %v", took)
	}

	b, err := connectWait(t, s, ln.Addr(), opts, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	<-acc
	fill(b)
	start = time.Now()
	stop(t, s) // closes b, the idle accepted sockets and the listener
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Stop with full buffers took %v", took)
	}
}

// 4 MiB each way at once, written and read in odd sizes, verified byte for
// byte: the rings wrap and (simple) switch between small and large.
func TestBigTransferBothWays(t *testing.T) { eachTransport(t, testBigTransferBothWays) }

func testBigTransferBothWays(t *testing.T, typ string) {
	s := newStarted(t, Options{Type: typ, Workers: 2})
	defer stop(t, s)
	cli, srv, _ := pair(t, s)
	const size = 4 << 20
	type result struct {
		who string
		err error
	}
	done := make(chan result, 4)
	for i, k := range []*Socket{cli, srv} {
		out := pattern(11+i, size)
		want := pattern(12-i, size) // what the other side sends
		who := []string{"client", "server"}[i]
		rng := rand.New(rand.NewPCG(uint64(i), 1))
		onLoop(t, k, func() {
			// Sender: chunks of 1 B .. 70 KB, Write and Writev in turn.
			sent := 0
			var send func()
			send = func() {
				for sent < size {
					n := min(1+rng.IntN(70000), size-sent)
					var w int
					var err error
					if n%2 == 0 {
						w, err = k.Write(out[sent : sent+n])
					} else {
						h := n / 2
						w, err = k.Writev([][]byte{out[sent : sent+h], nil, out[sent+h : sent+n]})
					}
					if err == ErrWouldBlock {
						k.WantWrite(true)
						return
					}
					if err != nil {
						done <- result{who + " send", err}
						return
					}
					sent += w
				}
				k.WantWrite(false)
				done <- result{who + " send", nil}
			}
			k.SetWriteHandler(send)
			// Receiver: reads of 1 B .. 9000 B.
			var got int
			buf := make([]byte, 9000)
			k.SetReadHandler(func() {
				for range 32 {
					n, err := k.Read(buf[:1+rng.IntN(len(buf))])
					if err == ErrWouldBlock {
						return
					}
					if err != nil {
						done <- result{who + " recv", err}
						k.SetReadHandler(nil)
						return
					}
					if !bytes.Equal(buf[:n], want[got:got+n]) {
						done <- result{who + " recv", errors.New("bytes differ at offset " + strconv.Itoa(got))}
						k.SetReadHandler(nil)
						return
					}
					got += n
					if got == size {
						done <- result{who + " recv", nil}
						k.SetReadHandler(nil)
						return
					}
				}
			})
			send()
		})
	}
	for range 4 {
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatalf("%s: %v", r.who, r.err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("transfer did not finish in 30 s")
		}
	}
}

// --- simple only ---------------------------------------------------------------

// A write error with nothing to read (here the local side shut down for
// writing): simple reports it on the next Write and, once the staged bytes
// are read, on Read too, so a socket that only reads also learns of it.
func TestSimpleWriteErrorWakesReader(t *testing.T) {
	defer leakcheck.Take().Check(t)
	s := newStarted(t, Options{Type: "simple", Workers: 1})
	defer stop(t, s)
	cli, _, _ := pair(t, s)
	errc := make(chan error, 1)
	done := make(chan []byte, 1)
	onLoop(t, cli, func() { readAllOnLoop(cli, 1, done, errc) })
	if err := unix.Shutdown(cli.Fd(), unix.SHUT_WR); err != nil {
		t.Fatal(err)
	}
	var werr error
	onLoop(t, cli, func() { _, werr = cli.Write([]byte("x")) })
	if werr != nil {
		t.Fatalf("first Write = %v, want it staged", werr)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, unix.EPIPE) {
			t.Fatalf("Read after the writer failed: %v, want EPIPE", err)
		}
	case <-done:
		t.Fatal("read handler saw EOF, want the write error")
	case <-time.After(5 * time.Second):
		t.Fatal("the write error never woke the read handler")
	}
	onLoop(t, cli, func() { _, werr = cli.Write([]byte("x")) })
	if !errors.Is(werr, unix.EPIPE) {
		t.Fatalf("Write after the failure = %v, want EPIPE", werr)
	}
}

// Listener.Close wakes the accepter blocked in accept(2), from another
// goroutine or from the listener's loop; the port is then closed.
func TestSimpleListenerCloseWakesAccept(t *testing.T) {
	defer leakcheck.Take().Check(t)
	s := newStarted(t, Options{Type: "simple", Workers: 2})
	defer stop(t, s)
	for _, onItsLoop := range []bool{false, true} {
		ln, err := s.Listen(lo4, DefaultSockOpts(), 0, func(*Socket) {})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 2*time.Second, "accepter blocked in accept", func() bool { return countStacks("simpleServer).accepter") == 1 })
		time.Sleep(20 * time.Millisecond) // well inside accept4 by now
		start := time.Now()
		if onItsLoop {
			if err := ln.Worker().Center.SubmitWait(func() { ln.Close() }); err != nil {
				t.Fatal(err)
			}
		} else {
			ln.Close()
		}
		waitFor(t, 2*time.Second, "accepter gone", func() bool { return countStacks("simpleServer).accepter") == 0 })
		t.Logf("on its loop %v: accepter gone %v after Close", onItsLoop, time.Since(start))
		if _, err := connectWait(t, s, ln.Addr(), SockOpts{}, time.Second); !errors.Is(err, unix.ECONNREFUSED) {
			t.Fatalf("connect to a closed listener: %v, want ECONNREFUSED", err)
		}
	}
}

// Threads per connection: every socket has its reader and writer
// goroutine, each holding an OS thread in a syscall (seen in
// /proc/self/task/*/syscall): the reader in readv(2) on the socket's fd,
// the idle writer in futex(2) on the socket's word. Close ends them.
func TestSimpleThreadPerConnection(t *testing.T) {
	defer leakcheck.Take().Check(t)
	s := newStarted(t, Options{Type: "simple", Workers: 2})
	defer stop(t, s)
	accepted := make(chan *Socket, 100)
	ln, err := s.Listen(lo4, DefaultSockOpts(), 0, func(k *Socket) { serveEcho(k, nil); accepted <- k })
	if err != nil {
		t.Fatal(err)
	}
	const N = 50
	fds := map[int]*Socket{}
	var socks []*Socket
	for range N {
		k, err := connectWait(t, s, ln.Addr(), DefaultSockOpts(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		socks = append(socks, k)
		a := <-accepted
		fds[k.Fd()], fds[a.Fd()] = k, a
	}
	waitFor(t, 5*time.Second, "a reader and a writer per socket", func() bool {
		return countStacks("pipeConn).reader") == 2*N && countStacks("pipeConn).writer") == 2*N
	})
	var readers, writers map[int]int
	waitFor(t, 5*time.Second, "a thread in readv and one in futex for every socket", func() bool {
		readers = threadsInSyscall(t, unix.SYS_READV)
		writers = threadsInSyscall(t, unix.SYS_FUTEX)
		for fd, k := range fds {
			if readers[fd] != 1 || writers[int(uintptr(unsafe.Pointer(&k.impl.(*pipeConn).wseq)))] != 1 {
				return false
			}
		}
		return true
	})
	t.Logf("%d sockets: %d OS threads in all", 2*N, osThreads(t))
	for _, k := range socks {
		k.Close()
	}
	waitFor(t, 5*time.Second, "the peers' EOF closes the accepted sockets", func() bool { return totalConns(s) == 0 })
	waitFor(t, 2*time.Second, "pipe goroutines gone", func() bool {
		return countStacks("pipeConn).reader")+countStacks("pipeConn).writer") == 0
	})
	ln.Close()
}

// The ring against a plain byte queue, through many random puts and gets
// that wrap around.
func TestRing(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	r := ring{buf: make([]byte, 1000)}
	var ref []byte
	next := byte(0)
	for i := range 20000 {
		if rng.IntN(2) == 0 {
			p := make([]byte, rng.IntN(700))
			for j := range p {
				p[j] = next
				next++
			}
			k := r.put(p)
			if want := min(len(p), 1000-len(ref)); k != want {
				t.Fatalf("op %d: put %d of %d with %d held, want %d", i, k, len(p), len(ref), want)
			}
			ref = append(ref, p[:k]...)
			next -= byte(len(p) - k)
		} else {
			p := make([]byte, rng.IntN(700))
			k := r.get(p)
			if want := min(len(p), len(ref)); k != want || !bytes.Equal(p[:k], ref[:k]) {
				t.Fatalf("op %d: get %d bytes (want %d), equal=%v", i, k, want, bytes.Equal(p[:k], ref[:min(k, len(ref))]))
			}
			ref = ref[k:]
		}
		if r.n != len(ref) || r.free() != 1000-len(ref) {
			t.Fatalf("op %d: n=%d free=%d, want n=%d", i, r.n, r.free(), len(ref))
		}
	}
}

// --- helpers -------------------------------------------------------------------

// countStacks counts the goroutines whose stack mentions fn.
func countStacks(fn string) int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			n++
		}
	}
	return n
}

// osThreads is the process's thread count (/proc/self/status).
func osThreads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Skip("no Threads line in /proc/self/status")
	return 0
}

// threadsInSyscall maps fd -> number of this process's threads now inside
// syscall nr with that fd as first argument (/proc/self/task/*/syscall).
func threadsInSyscall(t *testing.T, nr int) map[int]int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Skipf("no /proc/self/task: %v", err)
	}
	m := map[int]int{}
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/syscall")
		if err != nil {
			continue // the thread may have exited; or no access
		}
		f := strings.Fields(string(b))
		if len(f) < 2 || f[0] != strconv.Itoa(nr) {
			continue
		}
		if fd, err := strconv.ParseInt(strings.TrimPrefix(f[1], "0x"), 16, 64); err == nil {
			m[int(fd)]++
		}
	}
	return m
}

// The process-wide limit on simple sockets: a connect past it fails with
// ErrTooManyConns, a listener at it stops accepting (the connection waits
// in the backlog) and resumes once a socket closes.
func TestSimpleMaxConns(t *testing.T) {
	defer leakcheck.Take().Check(t)
	var logs []string
	var logMu sync.Mutex
	logf := func(f string, args ...any) {
		logMu.Lock()
		logs = append(logs, fmt.Sprintf(f, args...))
		logMu.Unlock()
	}
	s := newStarted(t, Options{Type: "simple", Workers: 1, Logf: logf})
	defer stop(t, s)
	base := int(livePipes.Load())
	defer SetSimpleMaxConns(SetSimpleMaxConns(base + 2))
	accepted := make(chan *Socket, 2)
	ln, err := s.Listen(lo4, DefaultSockOpts(), 0, func(k *Socket) { accepted <- k })
	if err != nil {
		t.Fatal(err)
	}
	a, err := connectWait(t, s, ln.Addr(), DefaultSockOpts(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	<-accepted // a and its peer: the limit is reached
	var ce *ConnectError
	if _, err := connectWait(t, s, ln.Addr(), DefaultSockOpts(), time.Second); !errors.As(err, &ce) || !errors.Is(err, ErrTooManyConns) {
		t.Fatalf("connect past the limit: %v, want *ConnectError wrapping ErrTooManyConns", err)
	}
	if n := totalConns(s); n != 2 {
		t.Fatalf("a refused connect still counts: %d connections", n)
	}
	// One more allowed: the client side gets it, the listener stays full.
	SetSimpleMaxConns(base + 3)
	b, err := connectWait(t, s, ln.Addr(), DefaultSockOpts(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-accepted:
		t.Fatal("accepted past the limit")
	case <-time.After(3 * acceptRetry):
	}
	a.Close()
	select {
	case k := <-accepted: // a's slot freed: b's peer comes out of the backlog
		if k.RemoteAddr() != b.LocalAddr() {
			t.Fatalf("accepted %v, want b's peer %v", k.RemoteAddr(), b.LocalAddr())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the listener did not resume after a socket closed")
	}
	logMu.Lock()
	defer logMu.Unlock()
	// One line per time the listener found the limit reached (once or
	// twice here, depending on when it looked), nothing else.
	if len(logs) == 0 || len(logs) > 2 {
		t.Fatalf("logs %q, want one or two lines about the limit", logs)
	}
	for _, l := range logs {
		if !strings.Contains(l, "too many") {
			t.Fatalf("log line %q, want only lines about the limit", l)
		}
	}
}

// moveTo keeps the held bytes, in order, when they wrap around the old
// buffer, and the ring goes on from them in the new one.
func TestRingMoveTo(t *testing.T) {
	r := ring{buf: make([]byte, 8)}
	r.put([]byte("abcdef"))
	var got [4]byte
	r.get(got[:4])        // head at 4, "ef" held
	r.put([]byte("ghij")) // wraps: "ef" at the end, "ghij" at the start
	if a, b := r.data(); len(b) == 0 {
		t.Fatalf("setup did not wrap: %q %q", a, b)
	}
	r.moveTo(make([]byte, 32))
	if a, b := r.data(); string(a) != "efghij" || len(b) != 0 || len(r.buf) != 32 {
		t.Fatalf("after moveTo: %q %q (buf %d)", a, b, len(r.buf))
	}
	r.put([]byte("kl"))
	out := make([]byte, 16)
	if n := r.get(out); string(out[:n]) != "efghijkl" {
		t.Fatalf("read back %q", out[:n])
	}
}
