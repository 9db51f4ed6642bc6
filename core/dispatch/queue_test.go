package dispatch

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/internal/leakcheck"
	"github.com/msgr-dev/msgr/core/msg"
	"github.com/stretchr/testify/require"
)

type fakeConn struct{ id uint64 }

func (c *fakeConn) ID() uint64 { return c.id }
func (c *fakeConn) PeerName() msg.EntityName {
	return msg.EntityName{Type: msg.EntityClient, Num: int64(c.id)}
}
func (c *fakeConn) PeerAddr() msg.Addr      { return msg.Addr{} }
func (c *fakeConn) Features() uint64        { return 0 }
func (c *fakeConn) Send(*msg.Message) error { return nil }
func (c *fakeConn) SendKeepalive() error    { return nil }
func (c *fakeConn) MarkDown()               {}
func (c *fakeConn) IsLossy() bool           { return false }

type record struct {
	kind EventKind
	conn uint64
	prio uint16
	tid  uint64
}

// recorder records everything; gate blocks Dispatch until closed.
type recorder struct {
	Base
	mu   sync.Mutex
	got  []record
	gate chan struct{}
	take bool
}

func (r *recorder) add(x record) { r.mu.Lock(); r.got = append(r.got, x); r.mu.Unlock() }
func (r *recorder) list() []record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]record(nil), r.got...)
}
func (r *recorder) Dispatch(c Conn, m *msg.Message) bool {
	if r.gate != nil {
		<-r.gate
	}
	r.add(record{EventMessage, c.ID(), m.Priority, m.Tid})
	return r.take
}
func (r *recorder) HandleConnect(c Conn) { r.add(record{kind: EventConnect, conn: c.ID()}) }
func (r *recorder) HandleAccept(c Conn)  { r.add(record{kind: EventAccept, conn: c.ID()}) }
func (r *recorder) HandleReset(c Conn) bool {
	r.add(record{kind: EventReset, conn: c.ID()})
	return true
}
func (r *recorder) HandleRemoteReset(c Conn) { r.add(record{kind: EventRemoteReset, conn: c.ID()}) }
func (r *recorder) HandleRefused(c Conn) bool {
	r.add(record{kind: EventRefused, conn: c.ID()})
	return true
}

func mk(prio uint16, tid uint64) *msg.Message {
	m := msg.New(1, nil)
	m.Priority = prio
	m.Tid = tid
	return m
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPriorityOrderWithBlockedDispatcher(t *testing.T) {
	defer leakcheck.Take().Check(t)
	q := New(Options{})
	r := &recorder{gate: make(chan struct{}), take: true}
	q.AddTail(r)
	q.Start()
	c := &fakeConn{1}
	// the first message blocks the dispatcher; the rest queue behind it
	require.NoError(t, q.Enqueue(c, mk(msg.PrioDefault, 0), nil, 0))
	waitFor(t, func() bool { return q.Stats().Len == 0 })
	prios := []uint16{msg.PrioLow, msg.PrioHighest, msg.PrioDefault, msg.PrioHigh, msg.PrioLow, msg.PrioHighest}
	for i, p := range prios {
		require.NoError(t, q.Enqueue(c, mk(p, uint64(i+1)), nil, 0))
	}
	close(r.gate)
	waitFor(t, func() bool { return len(r.list()) == 7 })
	var tids []uint64
	for _, x := range r.list()[1:] {
		tids = append(tids, x.tid)
	}
	require.Equal(t, []uint64{2, 6, 4, 3, 1, 5}, tids)
	q.Stop()
	require.NoError(t, q.Wait())
}

func TestWRRFairnessAcrossConnections(t *testing.T) {
	defer leakcheck.Take().Check(t)
	q := New(Options{})
	r := &recorder{gate: make(chan struct{}), take: true}
	q.AddTail(r)
	q.Start()
	a, b := &fakeConn{1}, &fakeConn{2}
	require.NoError(t, q.Enqueue(a, mk(msg.PrioDefault, 0), nil, 0)) // blocks the dispatcher
	waitFor(t, func() bool { return q.Stats().Len == 0 })
	for i := 1; i <= 50; i++ {
		require.NoError(t, q.Enqueue(a, mk(msg.PrioDefault, uint64(i)), nil, 0))
	}
	for i := 1; i <= 5; i++ {
		require.NoError(t, q.Enqueue(b, mk(msg.PrioDefault, uint64(i)), nil, 0))
	}
	close(r.gate)
	waitFor(t, func() bool { return len(r.list()) == 56 })
	got := r.list()[1:]
	// b's five messages are interleaved with a's, not stuck behind 50
	var firstTen []uint64
	for _, x := range got[:10] {
		firstTen = append(firstTen, x.conn)
	}
	require.Equal(t, []uint64{1, 2, 1, 2, 1, 2, 1, 2, 1, 2}, firstTen)
	// FIFO per connection
	last := map[uint64]uint64{}
	for _, x := range got {
		require.Equal(t, last[x.conn]+1, x.tid)
		last[x.conn] = x.tid
	}
	q.Stop()
	require.NoError(t, q.Wait())
}

func TestEventsStayInOrderWithMessages(t *testing.T) {
	defer leakcheck.Take().Check(t)
	q := New(Options{})
	r := &recorder{gate: make(chan struct{}), take: true}
	q.AddTail(r)
	q.Start()
	c := &fakeConn{7}
	require.NoError(t, q.QueueAccept(c))
	require.NoError(t, q.Enqueue(c, mk(msg.PrioLow, 1), nil, 0))
	require.NoError(t, q.Enqueue(c, mk(msg.PrioDefault, 2), nil, 0))
	require.NoError(t, q.QueueReset(c)) // must not overtake the low-priority messages
	require.NoError(t, q.Enqueue(c, mk(msg.PrioHighest, 3), nil, 0))
	close(r.gate)
	waitFor(t, func() bool { return len(r.list()) == 5 })
	got := r.list()
	require.Equal(t, EventAccept, got[0].kind)
	require.Equal(t, EventMessage, got[1].kind)
	require.Equal(t, EventMessage, got[2].kind)
	require.Equal(t, EventReset, got[3].kind)
	require.Equal(t, uint64(3), got[4].tid)
	q.Stop()
	require.NoError(t, q.Wait())
}

type countRel struct{ n atomic.Int64 }

func (c *countRel) Release(cost int64) { c.n.Add(cost) }

func TestChainOrderUnclaimedAndRelease(t *testing.T) {
	defer leakcheck.Take().Check(t)
	q := New(Options{})
	tail := &recorder{take: true}
	head := &recorder{take: false}
	q.AddTail(tail)
	q.AddHead(head)
	q.Start()
	rel := &countRel{}
	c := &fakeConn{1}
	for i := 0; i < 10; i++ {
		require.NoError(t, q.Enqueue(c, mk(msg.PrioDefault, uint64(i)), rel, 100))
	}
	waitFor(t, func() bool { return len(tail.list()) == 10 })
	require.Len(t, head.list(), 10) // asked first, declined
	waitFor(t, func() bool { return rel.n.Load() == 1000 })
	st := q.Stats()
	require.EqualValues(t, 10, st.Dispatched)
	require.EqualValues(t, 0, st.Unclaimed)
	q.Stop()
	require.NoError(t, q.Wait())
	// after stop: rejected, budget returned at once
	require.ErrorIs(t, q.Enqueue(c, mk(msg.PrioDefault, 0), rel, 5), ErrStopped)
	require.EqualValues(t, 1005, rel.n.Load())
}

type panicky struct{ Base }

func (panicky) Dispatch(Conn, *msg.Message) bool { panic("boom") }

func TestPanickingDispatcherIsRecovered(t *testing.T) {
	defer leakcheck.Take().Check(t)
	var logged atomic.Int32
	q := New(Options{Logf: func(string, ...any) { logged.Add(1) }})
	r := &recorder{take: true}
	q.AddTail(panicky{})
	q.AddTail(r)
	q.Start()
	c := &fakeConn{1}
	for i := 0; i < 3; i++ {
		require.NoError(t, q.Enqueue(c, mk(msg.PrioDefault, uint64(i)), nil, 0))
	}
	waitFor(t, func() bool { return len(r.list()) == 3 })
	require.EqualValues(t, 3, q.Stats().Panics)
	require.EqualValues(t, 3, logged.Load())
	q.Stop()
	require.NoError(t, q.Wait())
}

type fastD struct {
	Base
	n atomic.Int32
}

func (f *fastD) CanFastDispatch(m *msg.Message) bool { return m.Type == 99 }
func (f *fastD) FastDispatch(Conn, *msg.Message)     { f.n.Add(1) }

func TestFastDispatchAndDiscard(t *testing.T) {
	defer leakcheck.Take().Check(t)
	q := New(Options{})
	f := &fastD{}
	r := &recorder{gate: make(chan struct{}), take: true}
	q.AddTail(f)
	q.AddTail(r)
	q.Start()
	c := &fakeConn{3}
	m := msg.New(99, nil)
	require.True(t, q.CanFastDispatch(m))
	require.True(t, q.FastDispatch(c, m))
	require.False(t, q.CanFastDispatch(msg.New(1, nil)))
	require.EqualValues(t, 1, f.n.Load())

	rel := &countRel{}
	require.NoError(t, q.Enqueue(c, mk(msg.PrioDefault, 0), rel, 1)) // blocks the dispatcher
	waitFor(t, func() bool { return q.Stats().Len == 0 })
	for i := 1; i <= 5; i++ {
		require.NoError(t, q.Enqueue(c, mk(msg.PrioDefault, uint64(i)), rel, 1))
	}
	require.NoError(t, q.QueueReset(c))
	require.Equal(t, 5, q.Discard(c.ID()))
	require.EqualValues(t, 5, rel.n.Load())
	close(r.gate)
	waitFor(t, func() bool { return len(r.list()) == 2 })
	require.Equal(t, EventReset, r.list()[1].kind)
	q.Stop()
	require.NoError(t, q.Wait())
}

type waitInside struct {
	Base
	q   *Queue
	err chan error
}

func (w *waitInside) Dispatch(Conn, *msg.Message) bool { w.err <- w.q.Wait(); return true }

func TestWaitFromCallbackDoesNotDeadlock(t *testing.T) {
	defer leakcheck.Take().Check(t)
	q := New(Options{})
	w := &waitInside{q: q, err: make(chan error, 1)}
	q.AddTail(w)
	q.Start()
	require.NoError(t, q.Enqueue(&fakeConn{1}, mk(msg.PrioDefault, 0), nil, 0))
	require.ErrorIs(t, <-w.err, ErrInDispatch)
	q.Stop()
	require.NoError(t, q.Wait())
}

func BenchmarkEnqueueDispatch(b *testing.B) {
	q := New(Options{})
	var n atomic.Int64
	done := make(chan struct{})
	q.AddTail(&benchD{n: &n, target: int64(b.N), done: done})
	q.Start()
	c := &fakeConn{1}
	m := mk(msg.PrioDefault, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = q.Enqueue(c, m, nil, 0)
	}
	<-done
	b.StopTimer()
	q.Stop()
	_ = q.Wait()
}

type benchD struct {
	Base
	n      *atomic.Int64
	target int64
	done   chan struct{}
}

func (d *benchD) Dispatch(Conn, *msg.Message) bool {
	if d.n.Add(1) == d.target {
		close(d.done)
	}
	return true
}

// fastEv is a FastEventer that records the events it is told.
type fastEv struct {
	Base
	mu  sync.Mutex
	got []EventKind
}

func (f *fastEv) FastEvents() bool { return true }
func (f *fastEv) add(k EventKind)  { f.mu.Lock(); f.got = append(f.got, k); f.mu.Unlock() }
func (f *fastEv) list() []EventKind {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]EventKind(nil), f.got...)
}
func (f *fastEv) HandleConnect(Conn)    { f.add(EventConnect) }
func (f *fastEv) HandleReset(Conn) bool { f.add(EventReset); return true }

// A FastEventer is told of an event before QueueX returns, and only then;
// the other dispatchers get it from the queue (a reset the FastEventer
// handled included).
func TestFastEventer(t *testing.T) {
	defer leakcheck.Take().Check(t)
	q := New(Options{Logf: t.Logf})
	fe, r := &fastEv{}, &recorder{}
	q.AddTail(fe)
	q.AddTail(r)
	c := &fakeConn{1}
	require.NoError(t, q.QueueConnect(c))
	require.NoError(t, q.QueueReset(c))
	require.Equal(t, []EventKind{EventConnect, EventReset}, fe.list()) // the queue is not started
	require.Empty(t, r.list())
	q.Start()
	waitFor(t, func() bool { return len(r.list()) == 2 })
	require.Equal(t, []record{{kind: EventConnect, conn: 1}, {kind: EventReset, conn: 1}}, r.list())
	q.Stop()
	require.NoError(t, q.Wait())
	require.Len(t, fe.list(), 2) // not told again by the queue
}
