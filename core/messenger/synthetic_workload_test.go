package messenger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/conn"
	"github.com/msgr-dev/msgr/core/dispatch"
	"github.com/msgr-dev/msgr/core/internal/leakcheck"
	"github.com/msgr-dev/msgr/core/msg"
)

// The synthetic workload is Ceph's test_msgr SyntheticInjectTest rebuilt:
// many connections, mixed sizes and priorities, sockets failing at random
// on both sides, and a receiver that checks every message: its checksum,
// that it is not a duplicate, and that it comes in order for its
// connection and priority.
//
// Topology. A messenger keeps one connection per peer address, so 100
// connections between "two messengers" are 100 client messengers (one
// worker loop each, OpThreads 1) against one server messenger: the server
// side holds 100 accepted connections, each client one outgoing one. (A
// shared network stack would let the clients share worker loops; that
// option is not in the tree yet, and one loop per client is cheap.)
//
// Message layout: the front is a fixed header written by the sender
// (wlHdrLen bytes, little endian); the payload is in Data.
//
//	[0:4)   client index
//	[4:8)   generation (lossy: the n-th connection of this client)
//	[8:16)  sequence number within (client, generation, priority)
//	[16:20) crc32 (IEEE) of Data
//	[20:24) len(Data)
//	[24:26) priority (again, to catch a header mix-up)
//	[26]    1: the receiver takes it by fast dispatch
const wlHdrLen = 32

// wlPrios are the priorities the workload draws from: Ceph's four named
// ones plus two in between.
var wlPrios = []uint16{msg.PrioLow, 100, msg.PrioDefault, msg.PrioHigh, 230, msg.PrioHighest}

// wlSrc is a shared random buffer payloads are sliced from (read-only:
// the messenger borrows Data and must not write to it).
var wlSrc = func() []byte {
	b := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b
}()

// wlSize draws a payload size: mostly small, some up to 4 KiB, a few up
// to 64 KiB and a rare one up to 512 KiB (so frames span many reads).
func wlSize(r *rand.Rand) int {
	switch p := r.IntN(1000); {
	case p < 600:
		return r.IntN(129)
	case p < 965:
		return 129 + r.IntN(4<<10)
	case p < 999:
		return 4<<10 + r.IntN(60<<10+1)
	default:
		return 64<<10 + r.IntN(448<<10+1)
	}
}

type wlKey struct {
	client, gen uint32
	prio        uint16
}

type wlGenKey struct{ client, gen uint32 }

func wlMessage(r *rand.Rand, client, gen uint32, prio uint16, seq uint64, fast bool) *msg.Message {
	n := wlSize(r)
	off := r.IntN(len(wlSrc) - n + 1)
	data := wlSrc[off : off+n]
	f := make([]byte, wlHdrLen)
	binary.LittleEndian.PutUint32(f[0:], client)
	binary.LittleEndian.PutUint32(f[4:], gen)
	binary.LittleEndian.PutUint64(f[8:], seq)
	binary.LittleEndian.PutUint32(f[16:], crc32.ChecksumIEEE(data))
	binary.LittleEndian.PutUint32(f[20:], uint32(n))
	binary.LittleEndian.PutUint16(f[24:], prio)
	if fast {
		f[26] = 1
	}
	m := msg.New(101, f)
	m.Data = data
	m.Priority = prio
	return m
}

// wlSink is the receiving dispatcher: it checks each message and keeps
// per-stream counters. Half of the clients' messages (by client index)
// take the fast path, the others the dispatch queue, so both are checked;
// a connection always uses one path, since order is promised per path.
type wlSink struct {
	dispatch.Base

	mu      sync.Mutex
	next    map[wlKey]uint64   // next expected sequence number
	perGen  map[wlGenKey]int64 // messages received per (client, generation)
	total   atomic.Int64
	bad     []string // first problems seen
	nbad    int
	dups    int
	gaps    int
	badCRC  int
	clients []atomic.Int64 // messages received per client, for the senders' window
}

func newWLSink(clients int) *wlSink {
	return &wlSink{next: map[wlKey]uint64{}, perGen: map[wlGenKey]int64{},
		clients: make([]atomic.Int64, clients)}
}

func (s *wlSink) CanFastDispatch(m *msg.Message) bool {
	return len(m.Front) == wlHdrLen && m.Front[26] == 1
}
func (s *wlSink) FastDispatch(c dispatch.Conn, m *msg.Message)  { s.check(c, m) }
func (s *wlSink) Dispatch(c dispatch.Conn, m *msg.Message) bool { s.check(c, m); return true }

func (s *wlSink) problem(format string, args ...any) {
	s.nbad++
	if len(s.bad) < 20 {
		s.bad = append(s.bad, fmt.Sprintf(format, args...))
	}
}

func (s *wlSink) check(c dispatch.Conn, m *msg.Message) {
	defer m.Release()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(m.Front) != wlHdrLen {
		s.problem("conn %d: front of %d bytes", c.ID(), len(m.Front))
		return
	}
	f := m.Front
	client := binary.LittleEndian.Uint32(f[0:])
	gen := binary.LittleEndian.Uint32(f[4:])
	seq := binary.LittleEndian.Uint64(f[8:])
	crc := binary.LittleEndian.Uint32(f[16:])
	n := binary.LittleEndian.Uint32(f[20:])
	prio := binary.LittleEndian.Uint16(f[24:])
	if int(client) >= len(s.clients) {
		s.problem("conn %d: client index %d", c.ID(), client)
		return
	}
	if prio != m.Priority {
		s.problem("client %d gen %d seq %d: header priority %d, sent at %d", client, gen, seq, m.Priority, prio)
	}
	if uint32(len(m.Data)) != n || crc32.ChecksumIEEE(m.Data) != crc {
		s.badCRC++
		s.problem("client %d gen %d prio %d seq %d: data of %d bytes (sent %d) fails its checksum", client, gen, prio, seq, len(m.Data), n)
	}
	k := wlKey{client, gen, prio}
	switch want := s.next[k]; {
	case seq < want:
		s.dups++
		s.problem("client %d gen %d prio %d: seq %d after %d: duplicate or reordered", client, gen, prio, seq, want-1)
	case seq > want:
		s.gaps++
		s.problem("client %d gen %d prio %d: seq %d, expected %d: %d message(s) missing before it", client, gen, prio, seq, want, seq-want)
		s.next[k] = seq + 1
	default:
		s.next[k] = seq + 1
	}
	s.perGen[wlGenKey{client, gen}]++
	s.clients[client].Add(1)
	s.total.Add(1)
}

// wlConfig describes one synthetic run.
type wlConfig struct {
	clients, perClient int
	lossy              bool
	inject             uint64
	seed               int64
}

// wlClient is one client's sending side.
type wlClient struct {
	m   *Messenger
	rec *rec
	// gens[g] is the connection of generation g, and sent[g] the messages
	// Send accepted on it, per priority.
	gens []*conn.Connection
	sent []map[uint16]uint64
}

func runSyntheticWorkload(t *testing.T, cfg wlConfig) {
	defer leakcheck.Take().Check(t)
	start := time.Now()
	o := testOpts(t)
	o.InjectSocketFailures = cfg.inject
	o.InjectSeed = cfg.seed
	o.InitialBackoff = 5 * time.Millisecond
	o.MaxBackoff = 50 * time.Millisecond
	o.Logf = func(string, ...any) {}
	sink := newWLSink(cfg.clients)
	srv := newServer(t, o, 1, sink)
	if cfg.lossy {
		srv.SetPolicy(msg.EntityClient, msg.StatelessServer(0))
	} else {
		srv.SetPolicy(msg.EntityClient, msg.StatefulServer(0))
	}
	defer shutdown(t, srv)

	co := o
	co.OpThreads = 1
	cls := make([]*wlClient, cfg.clients)
	for i := range cls {
		co.InjectSeed = cfg.seed*1000 + int64(i) // distinct streams per client
		r := newRec(false)
		m := newClient(t, co, int64(i+1), r)
		if cfg.lossy {
			m.SetPolicy(msg.EntityOSD, msg.LossyClient(0))
		} else {
			m.SetPolicy(msg.EntityOSD, msg.LosslessClient(0))
		}
		cls[i] = &wlClient{m: m, rec: r}
		defer shutdown(t, m)
	}

	// Each client sends perClient messages from its own goroutine, at
	// most window messages ahead of what the server has received (so
	// the in-flight memory stays bounded), pacing 1 ms per batch so the
	// traffic spreads over many sockets and many injected failures.
	const window, batch = 200, 50
	sendDeadline := time.Now().Add(60 * time.Second)
	var wg sync.WaitGroup
	var sendErrs atomic.Int64
	for i, cl := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(cfg.seed), uint64(i)))
			fast := i%2 == 0
			connect := func() bool {
				// A closed connection stays registered until it is
				// reaped: retry (bounded) until a new one is given.
				for k := 0; k < 500; k++ {
					c, err := cl.m.ConnectTo(msg.EntityOSD, srv.Addrs())
					if err != nil {
						t.Errorf("client %d: ConnectTo: %v", i, err)
						return false
					}
					if len(cl.gens) == 0 || c != cl.gens[len(cl.gens)-1] {
						cl.gens = append(cl.gens, c)
						cl.sent = append(cl.sent, map[uint16]uint64{})
						return true
					}
					time.Sleep(2 * time.Millisecond)
				}
				t.Errorf("client %d: ConnectTo kept returning the closed connection %v", i, cl.gens[len(cl.gens)-1])
				return false
			}
			if !connect() {
				return
			}
			var accepted int64
			for accepted < int64(cfg.perClient) {
				if time.Now().After(sendDeadline) {
					t.Errorf("client %d: sending took over 60 s (%d sent)", i, accepted)
					return
				}
				g := len(cl.gens) - 1
				c := cl.gens[g]
				prio := wlPrios[r.IntN(len(wlPrios))]
				m := wlMessage(r, uint32(i), uint32(g), prio, cl.sent[g][prio], fast)
				if err := c.Send(m); err != nil {
					if !cfg.lossy || !errors.Is(err, conn.ErrClosed) {
						sendErrs.Add(1)
						t.Errorf("client %d: Send: %v", i, err)
						return
					}
					// Lossy: the connection faulted; open the next one.
					if !connect() {
						return
					}
					continue
				}
				cl.sent[g][prio]++
				accepted++
				if accepted%batch == 0 {
					time.Sleep(time.Millisecond)
					// Window. Lossy sessions lose messages, so there
					// the wait is short and the window advisory.
					wait := time.Now().Add(20 * time.Second)
					if cfg.lossy {
						wait = time.Now().Add(50 * time.Millisecond)
					}
					for sink.clients[i].Load() < accepted-window && time.Now().Before(wait) {
						time.Sleep(time.Millisecond)
					}
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	var want int64
	for _, cl := range cls {
		for _, s := range cl.sent {
			for _, n := range s {
				want += int64(n)
			}
		}
	}
	sendTime := time.Since(start)

	// Wait (bounded) until every message is in, or, lossy, until every
	// client's last connection is either complete or reported reset.
	settled := func() bool {
		if !cfg.lossy {
			return sink.total.Load() >= want
		}
		for i, cl := range cls {
			g := len(cl.gens) - 1
			var n int64
			for _, x := range cl.sent[g] {
				n += int64(x)
			}
			sink.mu.Lock()
			got := sink.perGen[wlGenKey{uint32(i), uint32(g)}]
			sink.mu.Unlock()
			if got < n && !wlResetSeen(cl.rec, cl.gens[g].ID()) {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(60 * time.Second)
	for !settled() {
		if time.Now().After(deadline) {
			t.Errorf("seed %d: timed out: %d of %d messages received", cfg.seed, sink.total.Load(), want)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // duplicates would show up now

	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.nbad > 0 {
		t.Errorf("seed %d: %d bad deliveries (%d duplicate/reordered, %d gaps, %d bad checksums); first ones:\n%s",
			cfg.seed, sink.nbad, sink.dups, sink.gaps, sink.badCRC, joinLines(sink.bad))
	}
	var lost, lostUnreported int64
	var resetGens int
	for i, cl := range cls {
		for g, c := range cl.gens {
			var n int64
			for prio, x := range cl.sent[g] {
				n += int64(x)
				got := sink.next[wlKey{uint32(i), uint32(g), prio}]
				if got > x {
					t.Errorf("seed %d: client %d gen %d prio %d: received up to seq %d, only %d sent", cfg.seed, i, g, prio, got-1, x)
				}
			}
			got := sink.perGen[wlGenKey{uint32(i), uint32(g)}]
			reset := wlResetSeen(cl.rec, c.ID())
			if reset {
				resetGens++
			}
			if got < n {
				lost += n - got
				if !cfg.lossy || !reset {
					lostUnreported += n - got
					t.Errorf("seed %d: client %d gen %d (conn %d, %v): %d of %d messages lost, reset reported: %v",
						cfg.seed, i, g, c.ID(), c.State(), n-got, n, reset)
				}
			}
		}
	}
	if !cfg.lossy && sink.total.Load() != want {
		t.Errorf("seed %d: received %d messages, sent %d", cfg.seed, sink.total.Load(), want)
	}
	var cp Perf
	for _, cl := range cls {
		p := cl.m.Perf()
		cp.InjectedFailures += p.InjectedFailures
		cp.Reconnects += p.Reconnects
		cp.Faults += p.Faults
		if !cfg.lossy && cl.rec.openResets() != 0 {
			t.Errorf("seed %d: lossless client %v reported a reset of an open session", cfg.seed, cl.m.Name())
		}
	}
	sp := srv.Perf()
	if cfg.inject > 0 && (cp.InjectedFailures == 0 || sp.InjectedFailures == 0) {
		t.Errorf("seed %d: injected failures: clients %d, server %d; want some on both sides", cfg.seed, cp.InjectedFailures, sp.InjectedFailures)
	}
	if cfg.inject > 0 && cfg.lossy && resetGens == 0 {
		t.Errorf("seed %d: no lossy connection was ever reset", cfg.seed)
	}
	if cfg.inject > 0 && !cfg.lossy && cp.Reconnects == 0 {
		t.Errorf("seed %d: no client ever reconnected", cfg.seed)
	}
	gens := 0
	for _, cl := range cls {
		gens += len(cl.gens)
	}
	t.Logf("seed %d lossy=%v: %d messages sent over %d connections (%d sessions by the clients), %d received, %d lost (all reported: %v); "+
		"injected %d client + %d server failures, client faults %d, reconnects %d, server faults %d, resumed %d; send %v, total %v",
		cfg.seed, cfg.lossy, want, cfg.clients, gens, sink.total.Load(), lost, lostUnreported == 0,
		cp.InjectedFailures, sp.InjectedFailures, cp.Faults, cp.Reconnects, sp.Faults, sp.Replaced, sendTime, time.Since(start))
}

func wlResetSeen(r *rec, id uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.resetIDs {
		if x == id {
			return true
		}
	}
	return false
}

func joinLines(s []string) string {
	out := ""
	for _, l := range s {
		out += "  " + l + "\n"
	}
	return out
}

// TestSyntheticWorkloadLossless: 100 lossless connections, 100,000
// messages, sockets failing about every 50 socket operations on both
// sides: every message arrives exactly once, intact, in order per
// connection and priority.
func TestSyntheticWorkloadLossless(t *testing.T) {
	runSyntheticWorkload(t, wlConfig{clients: 100, perClient: 1000, inject: 50, seed: 1})
}

// TestSyntheticWorkloadLossy: the same over lossy connections. Messages
// may be lost, but only on a connection whose loss was reported by
// HandleReset; none is delivered twice and those that arrive are intact
// and in order per connection and priority (with no hole: a fault loses
// the tail of a stream, never its middle).
func TestSyntheticWorkloadLossy(t *testing.T) {
	runSyntheticWorkload(t, wlConfig{clients: 100, perClient: 1000, lossy: true, inject: 50, seed: 2})
}

// idConn is a dispatch.Conn that only knows its id (the workload checker
// asks for nothing else).
type idConn struct {
	dispatch.Conn
	id uint64
}

func (c idConn) ID() uint64 { return c.id }

// TestWorkloadCheckerDetects: the synthetic workload's receiver does
// catch a duplicate, a hole, a corrupted payload and a priority mix-up
// (so a pass of the workload means something).
func TestWorkloadCheckerDetects(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	s := newWLSink(1)
	c := idConn{id: 1}
	for seq := uint64(0); seq < 3; seq++ {
		s.check(c, wlMessage(r, 0, 0, msg.PrioHigh, seq, false))
	}
	if s.nbad != 0 {
		t.Fatalf("clean stream flagged: %v", s.bad)
	}
	s.check(c, wlMessage(r, 0, 0, msg.PrioHigh, 1, false)) // duplicate
	s.check(c, wlMessage(r, 0, 0, msg.PrioHigh, 5, false)) // 3 and 4 missing
	m := wlMessage(r, 0, 0, msg.PrioLow, 0, false)
	m.Data = append([]byte{1}, m.Data...) // corrupted
	s.check(c, m)
	m = wlMessage(r, 0, 1, msg.PrioLow, 0, false)
	m.Priority = msg.PrioHighest // header says otherwise
	s.check(c, m)
	if s.dups != 1 || s.gaps != 1 || s.badCRC != 1 || s.nbad != 4 {
		t.Errorf("checker found %d dups, %d gaps, %d bad crcs, %d problems in all; want 1, 1, 1, 4: %v", s.dups, s.gaps, s.badCRC, s.nbad, s.bad)
	}
}
