// Command msgr-bench runs the W1–W5 workloads of shared/bench/ADAPTER.md over
// the msgr messenger (msgr2 MESSAGE frames, crc mode), so it can be run side
// by side with the anchors:
//
//	msgr-bench server --addr 127.0.0.1:PORT [--max-seconds S]
//	msgr-bench client --addr 127.0.0.1:PORT --workload W1..W5 [--count N] [--size B] [--conns C]
//
// The client prints one JSON line. Both ends use fast dispatch: requests are
// answered, and W1/W5 round trips driven, on the connections' worker
// threads. Messages are MPing-type (2) with the payload in the data segment,
// as in the Ceph figures of shared/bench/README.md; the payload's first byte
// is the op: 'P' echo it back, 'S' count it, 'E' end (answered with 'C' and
// the 8-byte count).
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/msgr-dev/msgr/core/dispatch"
	"github.com/msgr-dev/msgr/core/messenger"
	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/stack"
)

// msgPing is CEPH_MSG_PING, what Ceph's own messenger benchmark sends.
const msgPing uint16 = 2

type config struct {
	addr       string
	msType     string
	workers    int
	busyPoll   time.Duration
	maxSeconds int
	workload   string
	count      int
	size       int
	conns      int
	lossy      bool
	timeout    time.Duration
	cpuprofile string
	zeroCopy   int
	procs      int
	window     int
	// stack, if not nil, is shared by every messenger of the process (W5).
	stack *stack.Stack
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "server" && os.Args[1] != "client") {
		fmt.Fprintln(os.Stderr, "usage: msgr-bench server|client --addr IP:PORT [options] (-h for options)")
		os.Exit(2)
	}
	mode := os.Args[1]
	var c config
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:6800", "address (Ceph syntax: IP:PORT, v2:IP:PORT)")
	fs.StringVar(&c.msType, "ms-type", "async+posix", "ms_type: async+posix, async+poll, async+select, async+io_uring or simple (SimpleMessenger: threads per connection)")
	// One worker by default: the anchors' client and server share this
	// machine's 2 cores, and only W5 uses more than one connection. With 2
	// workers per process W5 runs 4 busy loops on 2 cores; measured (W5,
	// median of 4, same run): 1 worker 97k round trips/s, p99 2.2 ms, 0.05
	// voluntary context switches per round trip; 2 workers 88k, p99 7.6 ms,
	// 0.24 (95k, p99 7.4 ms, 0.10 with the spare P below).
	fs.IntVar(&c.workers, "workers", 1, "ms_async_op_threads (worker event loops)")
	fs.DurationVar(&c.busyPoll, "busy-poll", -1, "bounded spin before a worker blocks (0: off; -1: the messenger's default)")
	fs.IntVar(&c.maxSeconds, "max-seconds", 120, "server: exit after this many seconds")
	fs.StringVar(&c.workload, "workload", "W1", "client: W1..W5")
	fs.IntVar(&c.count, "count", 0, "client: messages (W2-W4) or round trips (W1, W5 per connection); 0 = the workload's default")
	fs.IntVar(&c.size, "size", 0, "client: payload bytes; 0 = the workload's default")
	fs.IntVar(&c.conns, "conns", 100, "client: W5 connections")
	fs.BoolVar(&c.lossy, "lossy", false, "lossy sessions instead of lossless")
	fs.DurationVar(&c.timeout, "timeout", 240*time.Second, "client: give up (exit 1) after this long")
	fs.IntVar(&c.zeroCopy, "zero-copy-min", 0, "segments of at least this many bytes are written without a copy (0: default; -1: never) (hidden: for tuning)")
	fs.IntVar(&c.procs, "gomaxprocs", 0, "GOMAXPROCS; 0: workers+1 (hidden: for tuning)")
	fs.IntVar(&c.window, "window", 0, "client W2-W4: messages in flight (0: the default) (hidden: for tuning)")
	fs.StringVar(&c.cpuprofile, "cpuprofile", "", "write a CPU profile to this file (hidden: for tuning)")
	_ = fs.Parse(os.Args[2:])
	if c.procs <= 0 {
		// A worker loop blocks in epoll_wait inside a syscall, keeping its
		// P. When no other P is idle, sysmon retakes that P after ~20 µs
		// and wakes a spinning thread to hold it, and the loop must find a
		// P again when epoll returns: futex wake-ups and context switches
		// on every sleep. One P beyond the loops keeps one idle, so the
		// runtime leaves blocked loops alone. It adds no loop: the work
		// stays on the --workers threads (ADAPTER.md: at most 2 cores of
		// our own work), the spare P runs main and the runtime. Measured
		// (W5, 2 workers, median of 4): futex calls per round trip 0.07 ->
		// 0.015, context switches 0.41 -> 0.16.
		w := c.workers
		if w <= 0 {
			w = runtime.NumCPU() // the messenger's default: a worker per core
		}
		c.procs = w + 1
	}
	runtime.GOMAXPROCS(c.procs)

	if c.cpuprofile != "" {
		f, err := os.Create(c.cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "msgr-bench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "msgr-bench:", err)
			os.Exit(1)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	var err error
	if mode == "server" {
		err = server(c)
	} else {
		err = client(c)
	}
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "msgr-bench:", err)
		os.Exit(1)
	}
}

func options(c config) (messenger.Options, error) {
	o := messenger.DefaultOptions()
	if err := o.Set("ms_type", c.msType); err != nil {
		return o, err
	}
	o.OpThreads = c.workers
	switch {
	case c.busyPoll == 0:
		o.BusyPoll = -1 // --busy-poll 0 means off (Options' zero is the default)
	case c.busyPoll > 0:
		o.BusyPoll = c.busyPoll
	}
	if lv := os.Getenv("MSGR_DEBUG_MS"); lv != "" {
		if err := o.Set("debug_ms", lv); err != nil {
			return o, err
		}
		o.Logf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, "msgr: "+f+"\n", a...) }
	}
	o.Stack = c.stack
	o.ZeroCopyMin = c.zeroCopy
	return o, nil
}

func newMessenger(c config, name msg.EntityName, nonce uint32) (*messenger.Messenger, error) {
	o, err := options(c)
	if err != nil {
		return nil, err
	}
	m, err := messenger.New(name, nonce, o)
	if err != nil {
		return nil, err
	}
	if c.lossy {
		m.SetDefaultPolicy(msg.StatelessServer(0))
		m.SetPolicy(msg.EntityOSD, msg.LossyClient(0))
	} else {
		m.SetDefaultPolicy(msg.StatefulServer(0))
		m.SetPolicy(msg.EntityOSD, msg.LosslessClient(0))
	}
	return m, nil
}

// ---- server ----

// counter is the per-connection state of the server; it is only touched on
// the connection's worker thread.
type counter struct{ n uint64 }

type privConn interface {
	Priv() any
	SetPriv(any)
}

type serverDispatcher struct {
	dispatch.Base
	mu     sync.Mutex
	counts map[uint64]*counter // by connection id; only the owning worker touches a counter
}

func (d *serverDispatcher) CanFastDispatch(m *msg.Message) bool { return m.Type == msgPing }

func (d *serverDispatcher) counterOf(c dispatch.Conn) *counter {
	if pc, ok := c.(privConn); ok {
		if k, ok := pc.Priv().(*counter); ok {
			return k
		}
		k := &counter{}
		pc.SetPriv(k)
		return k
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	k := d.counts[c.ID()]
	if k == nil {
		k = &counter{}
		d.counts[c.ID()] = k
	}
	return k
}

func (d *serverDispatcher) FastDispatch(c dispatch.Conn, m *msg.Message) {
	if len(m.Data) == 0 {
		m.Release()
		return
	}
	switch m.Data[0] {
	case 'P':
		// Zero-copy echo: the received message goes back as the reply; its
		// buffer returns to the read pool once the connection is done with it.
		if err := c.Send(m); err != nil {
			m.Release()
		}
	case 'S':
		d.counterOf(c).n++
		m.Release()
	case 'E':
		k := d.counterOf(c)
		m.Release()
		rep := make([]byte, 9)
		rep[0] = 'C'
		binary.LittleEndian.PutUint64(rep[1:], k.n)
		k.n = 0
		r := msg.New(msgPing, nil)
		r.Data = rep
		_ = c.Send(r)
	default:
		m.Release()
	}
}

func server(c config) error {
	addr, err := msg.ParseAddr(c.addr)
	if err != nil {
		return err
	}
	// Nonce 0, as a monitor's: clients dial a bare IP:PORT, and the
	// server checks the target address, nonce included (Ceph does too).
	m, err := newMessenger(c, msg.EntityName{Type: msg.EntityOSD, Num: 0}, 0)
	if err != nil {
		return err
	}
	m.AddDispatcherTail(&serverDispatcher{counts: map[uint64]*counter{}})
	if err := m.Bind(addr); err != nil {
		return err
	}
	if err := m.Start(); err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case <-time.After(time.Duration(c.maxSeconds) * time.Second):
	}
	return m.Shutdown()
}

// ---- client ----

// pool hands out messages whose DataFree puts them back: the window of
// messages in flight is the pool size, so a sender that outruns the wire
// waits here instead of queueing without bound. One goroutine at a time
// gets (the sender, or a connection's worker); any goroutine puts (the
// worker, once the peer acks).
//
// Not a channel nor a mutex: the W2 sender gets a message per send and
// the worker puts them back one by one as acks arrive, while the sender
// keeps looking for free ones (measured, W2 client CPU profile: channel
// send + receive 19%; a mutex-protected list 13%, 7.5% in the put's
// Unlock; this stack's CAS 4%). A put pushes on a lock-free stack; the
// getter takes the whole stack with one swap (so no ABA) and pops from its
// own list.
type pool struct {
	head    atomic.Pointer[pooled] // released, not yet taken by the getter
	waiting atomic.Bool            // the getter sleeps (or is about to) on wake
	wake    chan struct{}
	local   *pooled // the getter's own list
}

// pooled is a pool message with its DataFree made once, so a send
// allocates nothing.
type pooled struct {
	m    msg.Message
	free func()
	next *pooled
}

func newPool(n int) *pool {
	p := &pool{wake: make(chan struct{}, 1)}
	for i := 0; i < n; i++ {
		e := &pooled{next: p.local}
		e.free = func() { p.put(e) }
		p.local = e
	}
	return p
}

func (p *pool) put(e *pooled) {
	for {
		h := p.head.Load()
		e.next = h
		if p.head.CompareAndSwap(h, e) {
			break
		}
	}
	// Dekker with get: we pushed, then look at waiting; get sets waiting,
	// then looks at head. One of the two sees the other.
	if p.waiting.Load() && p.waiting.CompareAndSwap(true, false) {
		p.wake <- struct{}{} // one token per claimed wait: never blocks
	}
}

func (p *pool) get(payload []byte) *msg.Message {
	for p.local == nil {
		if p.local = p.head.Swap(nil); p.local != nil {
			break
		}
		p.waiting.Store(true)
		if p.head.Load() != nil && p.waiting.CompareAndSwap(true, false) {
			continue // something came meanwhile, and no put claimed the wait
		}
		<-p.wake // a put claimed the wait: its token comes
	}
	e := p.local
	p.local, e.next = e.next, nil
	e.m = msg.Message{Header: msg.Header{Type: msgPing, Priority: msg.PrioDefault, Version: 1, CompatVersion: 1, Flags: msg.FlagsDefault}}
	e.m.Data = payload
	e.m.DataFree = e.free
	return &e.m
}

func payload(size int, op byte) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	b[0] = op
	return b
}

type result struct {
	Impl     string   `json:"impl"`
	Workload string   `json:"workload"`
	Msgs     int      `json:"msgs"`
	Bytes    int      `json:"bytes"`
	Seconds  float64  `json:"seconds"`
	MsgsPerS float64  `json:"msgs_per_s"`
	MBPerS   float64  `json:"mb_per_s"`
	P50      *float64 `json:"p50_us"`
	P99      *float64 `json:"p99_us"`
}

// rtState drives ping-pong round trips of one connection from the worker
// thread: each reply records a latency and sends the next request.
type rtState struct {
	conn    dispatch.Conn
	pool    *pool
	req     []byte
	warmup  int
	left    int
	sent    time.Duration // monoNow when the request was sent
	lat     []float64
	bad     bool
	done    chan<- *rtState
	started bool
}

// monoBase and monoNow: a monotonic clock read costs one vDSO call, where
// time.Now reads the wall clock too; a round trip reads it once, the reply's
// reading stamping the next request.
var monoBase = time.Now()

func monoNow() time.Duration { return time.Since(monoBase) }

func (s *rtState) send() { s.sendAt(monoNow()) }

func (s *rtState) sendAt(now time.Duration) {
	s.sent = now
	m := s.pool.get(s.req)
	if err := s.conn.Send(m); err != nil {
		s.bad = true
		s.done <- s
	}
}

func (s *rtState) reply(m *msg.Message) {
	now := monoNow()
	d := now - s.sent
	if !bytes.Equal(m.Data, s.req) {
		m.Release()
		s.bad = true
		s.done <- s
		return
	}
	if s.warmup > 0 {
		s.warmup--
	} else {
		s.lat = append(s.lat, float64(d.Nanoseconds())/1e3)
		s.left--
	}
	if s.left == 0 {
		m.Release()
		s.done <- s
		return
	}
	// The verified reply goes back as the next request, as the server
	// echoes the request: no message to take from the pool and fill.
	s.sent = now
	if err := s.conn.Send(m); err != nil {
		m.Release()
		s.bad = true
		s.done <- s
	}
}

type clientDispatcher struct {
	dispatch.Base
	// rts: W1/W5 state per connection, read-only once traffic starts.
	// Keyed by the connection itself: ids are per messenger, and W5 has a
	// messenger per connection, so ids repeat.
	rts     map[dispatch.Conn]*rtState
	count   chan uint64 // W2-W4: the server's count
	refused chan error  // the first refused connect: no server, fail now rather than at --timeout
	bad     atomic.Bool
}

func (d *clientDispatcher) CanFastDispatch(m *msg.Message) bool { return m.Type == msgPing }

// state finds a connection's round-trip state: in the connection's Priv
// (no map lookup per reply), else in rts.
func (d *clientDispatcher) state(c dispatch.Conn) *rtState {
	if pc, ok := c.(privConn); ok {
		if s, ok := pc.Priv().(*rtState); ok {
			return s
		}
	}
	return d.rts[c]
}

func (d *clientDispatcher) FastDispatch(c dispatch.Conn, m *msg.Message) {
	if len(m.Data) == 0 {
		d.bad.Store(true)
		m.Release()
		return
	}
	switch m.Data[0] {
	case 'P':
		if s := d.state(c); s != nil {
			s.reply(m)
			return
		}
		d.bad.Store(true)
		m.Release()
	case 'C':
		if len(m.Data) != 9 {
			d.bad.Store(true)
		}
		n := binary.LittleEndian.Uint64(m.Data[1:])
		m.Release()
		d.count <- n
	default:
		d.bad.Store(true)
		m.Release()
	}
}

func (d *clientDispatcher) HandleReset(c dispatch.Conn) bool {
	d.bad.Store(true) // a lossy reset loses messages: the run cannot verify
	return true
}

func (d *clientDispatcher) HandleRefused(c dispatch.Conn) bool {
	select {
	case d.refused <- fmt.Errorf("connection to %v refused: is a server listening there?", c.PeerAddr()):
	default:
	}
	return true
}

func client(c config) error {
	addr, err := msg.ParseAddr(c.addr)
	if err != nil {
		return err
	}
	def := func(v, d int) int {
		if v > 0 {
			return v
		}
		return d
	}
	if c.workload == "W5" {
		// W5's client messengers (one per connection) share one stack of
		// --workers loops, as Ceph's messengers share a CephContext's
		// NetworkStack, instead of making --workers threads each.
		o, err := options(c)
		if err != nil {
			return err
		}
		if c.stack, err = messenger.NewStack(o); err != nil {
			return err
		}
		defer c.stack.Stop() //nolint:errcheck // after every messenger's Shutdown (defers run last-in first-out)
	}
	m, err := newMessenger(c, msg.EntityName{Type: msg.EntityClient, Num: int64(os.Getpid())}, uint32(os.Getpid()))
	if err != nil {
		return err
	}
	d := &clientDispatcher{rts: map[dispatch.Conn]*rtState{}, count: make(chan uint64, 1), refused: make(chan error, 1)}
	m.AddDispatcherTail(d)
	if err := m.Start(); err != nil {
		return err
	}
	defer m.Shutdown()
	peer := msg.AddrVec{addr}
	deadline := time.After(c.timeout)
	res := result{Impl: "msgr", Workload: c.workload}
	var lat []float64

	switch c.workload {
	case "W1", "W5":
		size := def(c.size, 64)
		rts := def(c.count, map[string]int{"W1": 20000, "W5": 2000}[c.workload])
		nconn, warm := 1, 1000
		if c.workload == "W5" {
			nconn, warm = def(c.conns, 100), 10
		}
		done := make(chan *rtState, nconn)
		var states []*rtState
		for i := 0; i < nconn; i++ {
			// One messenger keeps one connection per peer address, so W5
			// dials from a messenger per connection, as 100 clients would.
			mm := m
			if i > 0 {
				if mm, err = newMessenger(c, msg.EntityName{Type: msg.EntityClient, Num: int64(os.Getpid())*1000 + int64(i)}, uint32(os.Getpid())+uint32(i)); err != nil {
					return err
				}
				mm.AddDispatcherTail(d)
				if err := mm.Start(); err != nil {
					return err
				}
				defer mm.Shutdown()
			}
			cn, err := mm.ConnectTo(msg.EntityOSD, peer)
			if err != nil {
				return err
			}
			s := &rtState{conn: cn, pool: newPool(2), req: payload(size, 'P'), warmup: warm, left: rts,
				lat: make([]float64, 0, rts), done: done}
			d.rts[cn] = s
			cn.SetPriv(s)
			states = append(states, s)
		}
		start := time.Now()
		for _, s := range states {
			s.send()
		}
		for range states {
			select {
			case s := <-done:
				if s.bad {
					return errors.New("echo mismatch or send failure")
				}
			case err := <-d.refused:
				return err
			case <-deadline:
				return fmt.Errorf("timed out after %v", c.timeout)
			}
		}
		res.Seconds = time.Since(start).Seconds()
		for _, s := range states {
			lat = append(lat, s.lat...)
		}
		res.Msgs, res.Bytes = len(lat), len(lat)*size
	default:
		size := def(c.size, map[string]int{"W2": 64, "W3": 4096, "W4": 1 << 20}[c.workload])
		n := def(c.count, map[string]int{"W2": 1000000, "W3": 200000, "W4": 2000}[c.workload])
		if size == 0 || n == 0 {
			return fmt.Errorf("unknown workload %q", c.workload)
		}
		cn, err := m.ConnectTo(msg.EntityOSD, peer)
		if err != nil {
			return err
		}
		window := max(4, min(16384, (64<<20)/size))
		if c.window > 0 {
			window = c.window
		}
		p := newPool(window)
		req, end := payload(size, 'S'), payload(1, 'E')
		start := time.Now()
		// The sender waits for room in the window, which a peer that is not
		// there never makes: it runs apart so the waits below still end.
		sendErr := make(chan error, 1)
		go func() {
			for i := 0; i < n; i++ {
				if err := cn.Send(p.get(req)); err != nil {
					sendErr <- err
					return
				}
			}
			if err := cn.Send(p.get(end)); err != nil {
				sendErr <- err
			}
		}()
		select {
		case err := <-sendErr:
			return err
		case got := <-d.count:
			if got != uint64(n) {
				return fmt.Errorf("server counted %d of %d", got, n)
			}
		case err := <-d.refused:
			return err
		case <-deadline:
			return fmt.Errorf("timed out after %v", c.timeout)
		}
		res.Seconds = time.Since(start).Seconds()
		res.Msgs, res.Bytes = n, n*size
	}
	if d.bad.Load() {
		return errors.New("verification failed (bad reply or connection reset)")
	}
	res.MsgsPerS = float64(res.Msgs) / res.Seconds
	res.MBPerS = float64(res.Bytes) / res.Seconds / 1e6
	if len(lat) > 0 {
		sort.Float64s(lat)
		p50, p99 := lat[int(0.5*float64(len(lat)-1))], lat[int(0.99*float64(len(lat)-1))]
		res.P50, res.P99 = &p50, &p99
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}
