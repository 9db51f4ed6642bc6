package messenger

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/dispatch"
	"github.com/msgr-dev/msgr/core/msg"
)

// rec is a dispatcher that records what it is told. With fast set it takes
// messages on the worker thread.
type rec struct {
	dispatch.Base
	fast bool

	mu       sync.Mutex
	cond     *sync.Cond
	msgs     []*msg.Message
	from     []uint64 // conn id per message
	conns    map[uint64]dispatch.Conn
	connects int
	accepts  int
	resets   int
	resetIDs []uint64
	openIDs  map[uint64]bool // connections seen by HandleConnect/HandleAccept
	rresets  int
	refused  int
	onMsg    func(c dispatch.Conn, m *msg.Message) // called outside the lock
}

func newRec(fast bool) *rec {
	r := &rec{fast: fast, conns: map[uint64]dispatch.Conn{}, openIDs: map[uint64]bool{}}
	r.cond = sync.NewCond(&r.mu)
	return r
}

func (r *rec) take(c dispatch.Conn, m *msg.Message) {
	if f := r.onMsg; f != nil {
		f(c, m)
	}
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.from = append(r.from, c.ID())
	r.conns[c.ID()] = c
	r.mu.Unlock()
	r.cond.Broadcast()
}

func (r *rec) Dispatch(c dispatch.Conn, m *msg.Message) bool { r.take(c, m); return true }
func (r *rec) CanFastDispatch(*msg.Message) bool             { return r.fast }
func (r *rec) FastDispatch(c dispatch.Conn, m *msg.Message)  { r.take(c, m) }

func (r *rec) event(f func()) {
	r.mu.Lock()
	f()
	r.mu.Unlock()
	r.cond.Broadcast()
}

func (r *rec) HandleConnect(c dispatch.Conn) {
	r.event(func() { r.connects++; r.conns[c.ID()] = c; r.openIDs[c.ID()] = true })
}
func (r *rec) HandleAccept(c dispatch.Conn) {
	r.event(func() { r.accepts++; r.conns[c.ID()] = c; r.openIDs[c.ID()] = true })
}
func (r *rec) HandleReset(c dispatch.Conn) bool {
	r.event(func() { r.resets++; r.resetIDs = append(r.resetIDs, c.ID()) })
	return true
}

// openResets counts resets of connections that had been reported open.
func (r *rec) openResets() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, id := range r.resetIDs {
		if r.openIDs[id] {
			n++
		}
	}
	return n
}
func (r *rec) HandleRemoteReset(dispatch.Conn)    { r.event(func() { r.rresets++ }) }
func (r *rec) HandleRefused(c dispatch.Conn) bool { r.event(func() { r.refused++ }); return true }

// waitFor waits (bounded) until cond holds, with r.mu held while it is
// evaluated.
func (r *rec) waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	stop := time.AfterFunc(d, func() { r.cond.Broadcast() })
	defer stop.Stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		// Wake up periodically: some conditions depend on state outside r.
		go func() { time.Sleep(10 * time.Millisecond); r.cond.Broadcast() }()
		r.cond.Wait()
	}
}

func (r *rec) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// numbered returns a message whose front carries n (8 bytes) plus pad
// bytes of payload.
func numbered(n uint64, pad int) *msg.Message {
	b := make([]byte, 8+pad)
	binary.LittleEndian.PutUint64(b, n)
	m := msg.New(100, b)
	return m
}

func num(m *msg.Message) uint64 { return binary.LittleEndian.Uint64(m.Front) }

// testOpts returns quiet options for tests.
func testOpts(t testing.TB) Options {
	o := DefaultOptions()
	o.OpThreads = 2
	o.BusyPoll = -1 // tests share 2 cores with others: do not spin
	o.ShutdownTimeout = 200 * time.Millisecond
	o.Logf = t.Logf
	return o
}

// newServer makes a bound, started messenger named osd.n.
func newServer(t testing.TB, o Options, n int64, d dispatch.Dispatcher) *Messenger {
	t.Helper()
	m, err := New(msg.EntityName{Type: msg.EntityOSD, Num: n}, uint32(1000+n), o)
	if err != nil {
		t.Fatal(err)
	}
	if d != nil {
		m.AddDispatcherTail(d)
	}
	if err := m.Bind(msg.MustParseAddr(testBindPrefix + "127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	return m
}

// newClient makes a started, unbound messenger named client.n.
func newClient(t testing.TB, o Options, n int64, d dispatch.Dispatcher) *Messenger {
	t.Helper()
	m, err := New(msg.EntityName{Type: msg.EntityClient, Num: n}, uint32(5000+n), o)
	if err != nil {
		t.Fatal(err)
	}
	if d != nil {
		m.AddDispatcherTail(d)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	return m
}

func shutdown(t testing.TB, ms ...*Messenger) {
	t.Helper()
	for _, m := range ms {
		if err := m.Shutdown(); err != nil {
			t.Errorf("shutdown %v: %v", m.Name(), err)
		}
	}
}

// isPeer reports whether a connection's view of its peer's name is right:
// msgr1's handshake carries the peer's type but not its number (Ceph learns
// a client's from authentication), msgr2's carries both.
func isPeer(got, want msg.EntityName) bool {
	if testBindPrefix == "v1:" && got.Num == msg.NumNew {
		return got.Type == want.Type
	}
	return got == want
}
