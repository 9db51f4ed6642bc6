// msgr-demo runs two messengers over loopback in one process: a server
// (osd.0) that echoes every message, and a client (client.1) whose
// connections keep a window of requests in flight, each numbered. Every
// second it prints messages per second, MB/s, round-trip p50/p99, and the
// reconnects and faults the messengers counted; at the end a summary. It
// checks that every echo comes back once, in order, byte for byte, and exits
// 1 if not.
//
// With -inject N both messengers drop a socket about every N socket
// operations (Ceph's ms_inject_socket_failures): the lossless sessions
// reconnect and replay, and the check above still holds.
//
//	go run ./cmd/msgr-demo -seconds 10 -conns 4 -window 32 -size 64 -inject 0
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgr-dev/msgr/core/conn"
	"github.com/msgr-dev/msgr/core/dispatch"
	"github.com/msgr-dev/msgr/core/messenger"
	"github.com/msgr-dev/msgr/core/msg"
)

var (
	seconds = flag.Int("seconds", 10, "how long to run")
	conns   = flag.Int("conns", 4, "client connections (one client messenger each)")
	window  = flag.Int("window", 32, "requests in flight per connection")
	size    = flag.Int("size", 64, "payload bytes per message (at least 16)")
	inject  = flag.Uint64("inject", 0, "ms_inject_socket_failures on both sides (0: off)")
	msType  = flag.String("ms-type", "async+posix", "ms_type: async+posix, async+poll, async+select, async+io_uring or simple")
	verbose = flag.Bool("v", false, "print the messengers' log (each injected failure, each fault)")
)

const msgDemo uint16 = 0x5e00 // an application message type of our own

// echo is the server's dispatcher: every message goes straight back, on
// the connection's worker thread, without a copy.
type echo struct{ dispatch.Base }

func (echo) CanFastDispatch(m *msg.Message) bool { return m.Type == msgDemo }
func (echo) FastDispatch(c dispatch.Conn, m *msg.Message) {
	if err := c.Send(m); err != nil {
		m.Release()
	}
}

// flow is one client connection's state. Its worker thread handles the
// replies; the main goroutine sends the first window, hence the lock.
type flow struct {
	mu      sync.Mutex
	c       *conn.Connection
	next    uint64 // next request number to send
	expect  uint64 // next reply number expected
	sent    map[uint64]time.Time
	payload []byte
}

type stats struct {
	msgs, bytes, bad atomic.Int64
	mu               sync.Mutex
	rtts             []time.Duration
}

func (s *stats) take() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rtts
	s.rtts = nil
	return r
}

// client checks each echo and sends the next request.
type client struct {
	dispatch.Base
	st    *stats
	flows map[dispatch.Conn]*flow // fixed before traffic starts
}

func (client) CanFastDispatch(m *msg.Message) bool { return m.Type == msgDemo }

func (cl *client) FastDispatch(c dispatch.Conn, m *msg.Message) {
	f := cl.flows[c]
	defer m.Release()
	if f == nil || len(m.Front) < 8 {
		cl.st.bad.Add(1)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := binary.LittleEndian.Uint64(m.Front)
	t0, ok := f.sent[n]
	if !ok || n != f.expect || !bytes.Equal(m.Front[8:], f.payload[8:]) {
		cl.st.bad.Add(1)
		return
	}
	delete(f.sent, n)
	f.expect++
	rtt := time.Since(t0)
	cl.st.msgs.Add(1)
	cl.st.bytes.Add(int64(len(m.Front)))
	cl.st.mu.Lock()
	cl.st.rtts = append(cl.st.rtts, rtt)
	cl.st.mu.Unlock()
	f.send()
}

func (f *flow) send() {
	b := make([]byte, len(f.payload))
	copy(b, f.payload)
	binary.LittleEndian.PutUint64(b, f.next)
	f.sent[f.next] = time.Now()
	f.next++
	_ = f.c.Send(msg.New(msgDemo, b))
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[int(p*float64(len(d)-1))]
}

func opts() messenger.Options {
	o := messenger.DefaultOptions()
	o.OpThreads = 1
	o.InjectSocketFailures = *inject
	o.InitialBackoff = 10 * time.Millisecond
	o.MaxBackoff = 100 * time.Millisecond
	if !*verbose {
		o.Logf = func(string, ...any) {}
	}
	if err := o.Set("ms_type", *msType); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	return o
}

func main() {
	flag.Parse()
	if *size < 16 || *conns < 1 || *window < 1 {
		fmt.Fprintln(os.Stderr, "need -size >= 16, -conns >= 1, -window >= 1")
		os.Exit(2)
	}
	srv, err := messenger.New(msg.EntityName{Type: msg.EntityOSD, Num: 0}, 0, opts())
	check(err)
	srv.SetDefaultPolicy(msg.StatefulServer(0))
	srv.AddDispatcherTail(echo{})
	check(srv.Bind(msg.MustParseAddr("v2:127.0.0.1:0/0")))
	check(srv.Start())

	st := &stats{}
	cl := &client{st: st, flows: map[dispatch.Conn]*flow{}}
	var clients []*messenger.Messenger
	payload := bytes.Repeat([]byte("msgr-demo "), *size/10+1)[:*size]
	for i := 0; i < *conns; i++ {
		m, err := messenger.New(msg.EntityName{Type: msg.EntityClient, Num: int64(i + 1)}, uint32(i+1), opts())
		check(err)
		m.SetPolicy(msg.EntityOSD, msg.LosslessClient(0))
		m.AddDispatcherTail(cl)
		check(m.Start())
		c, err := m.ConnectTo(msg.EntityOSD, srv.Addrs())
		check(err)
		cl.flows[c] = &flow{c: c, sent: map[uint64]time.Time{}, payload: payload}
		clients = append(clients, m)
	}
	fmt.Printf("server %v at %v; %d client messengers, window %d, %d-byte messages, %s, inject %d\n",
		srv.Name(), srv.Addrs(), *conns, *window, *size, *msType, *inject)
	for _, f := range cl.flows {
		f.mu.Lock()
		for j := 0; j < *window; j++ {
			f.send()
		}
		f.mu.Unlock()
	}

	var all []time.Duration
	start := time.Now()
	var lastMsgs, lastBytes int64
	for s := 1; s <= *seconds; s++ {
		time.Sleep(time.Until(start.Add(time.Duration(s) * time.Second)))
		r := st.take()
		slices.Sort(r)
		all = append(all, r...)
		m, b := st.msgs.Load(), st.bytes.Load()
		ps := srv.Perf()
		var reconnects, faults uint64
		for _, c := range clients {
			p := c.Perf()
			reconnects += p.Reconnects
			faults += p.Faults
		}
		fmt.Printf("%3ds %9d msgs/s %7.2f MB/s  rtt p50 %8v p99 %8v  reconnects %d faults %d (server %d)\n",
			s, m-lastMsgs, float64(b-lastBytes)/1e6, pct(r, .5).Round(100*time.Nanosecond),
			pct(r, .99).Round(100*time.Nanosecond), reconnects, faults, ps.Faults)
		lastMsgs, lastBytes = m, b
	}
	el := time.Since(start)
	for _, c := range clients {
		check(c.Shutdown())
	}
	check(srv.Shutdown())
	slices.Sort(all)
	n := st.msgs.Load()
	fmt.Printf("summary: %d echoes in %.1fs: %.0f msgs/s, %.2f MB/s, rtt p50 %v p99 %v, %d bad\n",
		n, el.Seconds(), float64(n)/el.Seconds(), float64(st.bytes.Load())/el.Seconds()/1e6,
		pct(all, .5).Round(100*time.Nanosecond), pct(all, .99).Round(100*time.Nanosecond), st.bad.Load())
	if st.bad.Load() > 0 || n == 0 {
		fmt.Println("FAILED: echoes missing, duplicated, out of order or corrupted")
		os.Exit(1)
	}
	fmt.Println("every echo came back once, in order, intact")
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "msgr-demo:", err)
		os.Exit(1)
	}
}
