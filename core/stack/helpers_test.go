package stack

import (
	"errors"
	"github.com/msgr-dev/msgr/core/event/driver"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/internal/leakcheck"
)

// Test helpers. Callbacks on a loop must never call t.Fatal (it would end
// the loop goroutine): they report through channels or t.Errorf.

var lo4 = netip.MustParseAddrPort("127.0.0.1:0")

// transports are the Options.Type values the shared tests run against.
var transports = []string{"posix", "simple", "io_uring"}

// eachTransport runs fn once per transport, as subtests named after it,
// each with its own leak check.
func eachTransport(t *testing.T, fn func(t *testing.T, typ string)) {
	t.Helper()
	for _, typ := range transports {
		t.Run(typ, func(t *testing.T) {
			if typ == "io_uring" {
				if err := driver.UringAvailable(); err != nil {
					t.Skipf("this machine cannot use io_uring: %v", err)
				}
			}
			defer leakcheck.Take().Check(t)
			fn(t, typ)
		})
	}
}

func newStarted(t testing.TB, opts Options) *Stack {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	return s
}

func stop(t testing.TB, s *Stack) {
	t.Helper()
	if err := s.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// echoConn echoes everything it reads. While bytes wait to go out it stops
// reading (backpressure) and watches Writable instead.
type echoConn struct {
	s       *Socket
	buf     []byte
	pending []byte
	onEOF   func(error)
}

func serveEcho(s *Socket, onEOF func(error)) {
	e := &echoConn{s: s, buf: make([]byte, 16<<10), onEOF: onEOF}
	if err := s.SetWriteHandler(e.flush); err != nil {
		panic(err)
	}
	if err := s.SetReadHandler(e.onRead); err != nil {
		panic(err)
	}
}

func (e *echoConn) onRead() {
	for range 64 { // bounded: let other sockets of the loop run
		n, err := e.s.Read(e.buf)
		if err == ErrWouldBlock {
			return
		}
		if err != nil {
			e.s.Close()
			if e.onEOF != nil {
				e.onEOF(err)
			}
			return
		}
		w, err := e.s.Write(e.buf[:n])
		if err == ErrWouldBlock {
			w, err = 0, nil
		}
		if err != nil {
			e.s.Close()
			return
		}
		if w < n {
			e.pending = append(e.pending[:0], e.buf[w:n]...)
			e.s.SetReadHandler(nil)
			e.s.WantWrite(true)
			return
		}
	}
}

func (e *echoConn) flush() {
	n, err := e.s.Write(e.pending)
	if err == ErrWouldBlock {
		return
	}
	if err != nil {
		e.s.Close()
		return
	}
	e.pending = e.pending[n:]
	if len(e.pending) == 0 {
		e.s.WantWrite(false)
		e.s.SetReadHandler(e.onRead)
	}
}

// echoClient sends payload, reads it back and reports the comparison.
type echoClient struct {
	s        *Socket
	out      []byte // still to send
	want     []byte
	got      []byte
	buf      []byte
	done     chan<- error
	finished bool
}

func runEchoClient(s *Socket, payload []byte, done chan<- error) {
	c := &echoClient{s: s, out: payload, want: payload, buf: make([]byte, 16<<10), done: done}
	s.SetWriteHandler(c.send)
	s.SetReadHandler(c.recv)
	c.send()
}

func (c *echoClient) finish(err error) {
	if !c.finished {
		c.finished = true
		c.done <- err
	}
}

func (c *echoClient) send() {
	for len(c.out) > 0 {
		// Split in three to exercise Writev with several buffers.
		a := c.out[:len(c.out)/3]
		b := c.out[len(c.out)/3 : 2*len(c.out)/3]
		d := c.out[2*len(c.out)/3:]
		n, err := c.s.Writev([][]byte{a, b, d})
		if err == ErrWouldBlock {
			c.s.WantWrite(true)
			return
		}
		if err != nil {
			c.finish(err)
			return
		}
		c.out = c.out[n:]
	}
	c.s.WantWrite(false)
}

func (c *echoClient) recv() {
	for {
		n, err := c.s.Read(c.buf)
		if err == ErrWouldBlock {
			return
		}
		if err != nil {
			c.finish(err)
			return
		}
		c.got = append(c.got, c.buf[:n]...)
		if len(c.got) > len(c.want) {
			c.finish(errors.New("echo longer than sent"))
			return
		}
		if len(c.got) == len(c.want) {
			if string(c.got) != string(c.want) {
				c.finish(errors.New("echo differs from what was sent"))
			} else {
				c.finish(nil)
			}
			return
		}
	}
}

// connectWait connects and waits for the callback.
func connectWait(t testing.TB, s *Stack, addr netip.AddrPort, opts SockOpts, timeout time.Duration) (*Socket, error) {
	t.Helper()
	type res struct {
		s   *Socket
		err error
	}
	ch := make(chan res, 1)
	if err := s.Connect(addr, opts, timeout, func(k *Socket, err error) { ch <- res{k, err} }); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r.s, r.err
	case <-time.After(10 * time.Second):
		t.Fatal("connect callback did not run within 10 s")
	}
	return nil, nil
}

// readAll reads from a socket on its loop until n bytes or an error.
func readAllOnLoop(s *Socket, n int, done chan<- []byte, errc chan<- error) {
	var got []byte
	buf := make([]byte, 4096)
	s.SetReadHandler(func() {
		for {
			k, err := s.Read(buf)
			if err == ErrWouldBlock {
				return
			}
			if err != nil {
				s.SetReadHandler(nil)
				if err == io.EOF {
					done <- got
				}
				errc <- err
				return
			}
			got = append(got, buf[:k]...)
			if len(got) >= n {
				s.SetReadHandler(nil)
				done <- got
				return
			}
		}
	})
}
