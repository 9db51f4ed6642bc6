// msgr-demo runs an echo server and a client on msgr's network stack
// (core/stack) over loopback, in one process, for a few seconds. Each client
// connection sends a message, waits for the echo, checks it byte for byte,
// and sends the next. Every second it prints messages per second, MB/s,
// round-trip p50/p99 and the number of connections; at the end a summary.
// It exits 1 if any echo differed (or nothing was echoed).
//
//	go run ./cmd/msgr-demo -seconds 5 -conns 8 -size 64 -workers 2 -busy-poll 0
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgr-dev/msgr/core/stack"
)

var (
	seconds  = flag.Int("seconds", 5, "how long to run")
	workers  = flag.Int("workers", 2, "workers (event loops) per stack; the server and the client each have a stack")
	busyPoll = flag.Duration("busy-poll", 0, "how long a worker polls before it sleeps (e.g. 50us: lower latency, more CPU)")
	conns    = flag.Int("conns", 8, "client connections")
	size     = flag.Int("size", 64, "message size in bytes (at least 8)")
)

// stats is shared by the client connections (on the client's workers) and
// the reporter (main goroutine).
type stats struct {
	msgs, bytes, bad atomic.Int64
	mu               sync.Mutex
	rtts             []time.Duration // since the last report
}

func (s *stats) record(rtt time.Duration, n int) {
	s.msgs.Add(1)
	s.bytes.Add(int64(n))
	s.mu.Lock()
	s.rtts = append(s.rtts, rtt)
	s.mu.Unlock()
}

func (s *stats) take() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rtts
	s.rtts = make([]time.Duration, 0, len(r))
	return r
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[(len(sorted)-1)*p/100]
}

func main() {
	flag.Parse()
	if *seconds < 1 || *conns < 1 || *size < 8 || *size > 16<<20 || *workers < 0 || *busyPoll < 0 {
		fmt.Fprintln(os.Stderr, "msgr-demo: need -seconds >= 1, -conns >= 1, 8 <= -size <= 16 MiB, -workers >= 0, -busy-poll >= 0")
		os.Exit(2)
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "msgr-demo:", err)
		os.Exit(1)
	}
}

func run() error {
	opts := stack.Options{Workers: *workers, BusyPoll: *busyPoll}
	srv, err := stack.New(opts)
	if err != nil {
		return err
	}
	cli, err := stack.New(opts)
	if err != nil {
		return err
	}
	for _, s := range []*stack.Stack{srv, cli} {
		if err := s.Start(); err != nil {
			return err
		}
		defer s.Stop() // closes every socket and listener left
	}

	ln, err := srv.Listen(netip.MustParseAddrPort("127.0.0.1:0"), stack.DefaultSockOpts(), 0, serveEcho)
	if err != nil {
		return err
	}
	fmt.Printf("echo server on %v: %d workers; client: %d workers, %d connections, %d-byte messages, busy-poll %v\n",
		ln.Addr(), len(srv.Workers()), len(cli.Workers()), *conns, *size, *busyPoll)

	st := &stats{}
	var stopping atomic.Bool
	var live sync.WaitGroup // client connections still running
	errs := make(chan error, *conns)
	for i := range *conns {
		live.Add(1)
		err := cli.Connect(ln.Addr(), stack.DefaultSockOpts(), 5*time.Second, func(s *stack.Socket, err error) {
			if err != nil {
				errs <- err
				live.Done()
				return
			}
			startClient(s, uint32(i), st, &stopping, &live)
		})
		if err != nil {
			return err
		}
	}

	var all []time.Duration
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastMsgs, lastBytes int64
	for sec := 1; sec <= *seconds; sec++ {
		select {
		case err := <-errs:
			return fmt.Errorf("connect: %w", err)
		case <-tick.C:
		}
		rtts := st.take()
		slices.Sort(rtts)
		all = append(all, rtts...)
		m, b := st.msgs.Load(), st.bytes.Load()
		open := 0
		for _, w := range cli.Workers() {
			open += w.NumConns()
		}
		fmt.Printf("%3ds  %10.0f msgs/s  %8.2f MB/s  rtt p50 %8v  p99 %8v  conns %d\n",
			sec, float64(m-lastMsgs), float64(b-lastBytes)/1e6, pct(rtts, 50).Round(100*time.Nanosecond),
			pct(rtts, 99).Round(100*time.Nanosecond), open)
		lastMsgs, lastBytes = m, b
	}

	// Let every connection finish its message in flight, then stop.
	stopping.Store(true)
	finished := make(chan struct{})
	go func() { live.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(5 * time.Second):
		return fmt.Errorf("connections did not finish within 5 s of the end")
	}
	elapsed := time.Since(start)
	all = append(all, st.take()...)
	slices.Sort(all)

	m, b, bad := st.msgs.Load(), st.bytes.Load(), st.bad.Load()
	fmt.Printf("summary: %d echoes in %v: %.0f msgs/s, %.2f MB/s, rtt p50 %v p99 %v, %d bad\n",
		m, elapsed.Round(time.Millisecond), float64(m)/elapsed.Seconds(), float64(b)/elapsed.Seconds()/1e6,
		pct(all, 50).Round(100*time.Nanosecond), pct(all, 99).Round(100*time.Nanosecond), bad)
	switch {
	case bad > 0:
		return fmt.Errorf("%d echoes differed from what was sent", bad)
	case m == 0:
		return fmt.Errorf("no echo came back")
	}
	fmt.Println("all echoes verified")
	return nil
}

// client is one connection of the load generator; its methods run on the
// socket's worker loop.
type client struct {
	s        *stack.Socket
	id       uint32
	seq      uint32
	msg, in  []byte
	out      []byte // unsent part of msg
	got      int
	sentAt   time.Time
	st       *stats
	stopping *atomic.Bool
	live     *sync.WaitGroup
	ended    bool
}

func startClient(s *stack.Socket, id uint32, st *stats, stopping *atomic.Bool, live *sync.WaitGroup) {
	c := &client{s: s, id: id, msg: make([]byte, *size), in: make([]byte, *size), st: st, stopping: stopping, live: live}
	s.SetWriteHandler(c.flush)
	s.SetReadHandler(c.onRead)
	c.sendNext()
}

// sendNext fills the message with this connection's id, a sequence number
// and bytes derived from both, so a misrouted or corrupted echo shows.
func (c *client) sendNext() {
	c.seq++
	binary.LittleEndian.PutUint32(c.msg[0:], c.id)
	binary.LittleEndian.PutUint32(c.msg[4:], c.seq)
	for i := 8; i < len(c.msg); i++ {
		c.msg[i] = byte(uint32(i)*31 + c.seq + c.id*7)
	}
	c.out, c.got = c.msg, 0
	c.sentAt = time.Now()
	c.flush()
}

func (c *client) flush() {
	for len(c.out) > 0 {
		n, err := c.s.Write(c.out)
		if err == stack.ErrWouldBlock {
			c.s.WantWrite(true)
			return
		}
		if err != nil {
			c.end(true)
			return
		}
		c.out = c.out[n:]
	}
	c.s.WantWrite(false)
}

func (c *client) onRead() {
	for {
		n, err := c.s.Read(c.in[c.got:])
		if err == stack.ErrWouldBlock {
			return
		}
		if err != nil {
			c.end(true)
			return
		}
		c.got += n
		if c.got < len(c.in) {
			continue
		}
		c.st.record(time.Since(c.sentAt), len(c.in))
		if !bytes.Equal(c.in, c.msg) {
			c.st.bad.Add(1)
		}
		if c.stopping.Load() {
			c.end(false)
			return
		}
		c.sendNext()
		return // one message per wakeup keeps connections fair
	}
}

func (c *client) end(failed bool) {
	if c.ended {
		return
	}
	c.ended = true
	if failed {
		c.st.bad.Add(1)
	}
	c.s.Close()
	c.live.Done()
}

// serveEcho runs on the server worker that owns the accepted socket: it
// writes back whatever it reads, and while bytes wait to go out it stops
// reading and waits for the socket to become writable.
func serveEcho(s *stack.Socket) {
	buf := make([]byte, 64<<10)
	var pending []byte
	var onRead func()
	flush := func() {
		n, err := s.Write(pending)
		if err == stack.ErrWouldBlock {
			return
		}
		if err != nil {
			s.Close()
			return
		}
		if pending = pending[n:]; len(pending) == 0 {
			s.WantWrite(false)
			s.SetReadHandler(onRead)
		}
	}
	onRead = func() {
		n, err := s.Read(buf)
		if err == stack.ErrWouldBlock {
			return
		}
		if err != nil { // io.EOF when the client closes
			s.Close()
			return
		}
		w, err := s.Write(buf[:n])
		if err == stack.ErrWouldBlock {
			w, err = 0, nil
		}
		if err != nil {
			s.Close()
			return
		}
		if w < n {
			pending = append(pending[:0], buf[w:n]...)
			s.SetReadHandler(nil)
			s.WantWrite(true)
		}
	}
	s.SetWriteHandler(flush)
	s.SetReadHandler(onRead)
}
