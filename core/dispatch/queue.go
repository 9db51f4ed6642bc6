package dispatch

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgr-dev/msgr/core/internal/prioq"
	"github.com/msgr-dev/msgr/core/msg"
)

// EventKind says what a queued item is.
type EventKind uint8

const (
	EventMessage EventKind = iota
	EventConnect
	EventAccept
	EventReset
	EventRemoteReset
	EventRefused
)

var kindNames = [...]string{"message", "connect", "accept", "reset", "remote_reset", "refused"}

func (k EventKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Releaser gives back the throttle budget a message held (Ceph's
// dispatch_throttle_release): called once, after the message was dispatched
// or dropped.
type Releaser interface {
	Release(cost int64)
}

// ErrStopped is returned by calls on a stopped Queue.
var ErrStopped = errors.New("dispatch: queue stopped")

// ErrInDispatch is returned by Stop when called from a dispatcher (it would
// wait for itself).
var ErrInDispatch = errors.New("dispatch: Wait called from a dispatch callback")

type item struct {
	kind EventKind
	conn Conn
	m    *msg.Message
	rel  Releaser
	cost int64
}

// connState keeps one connection's events in order with its messages: an
// event is queued only when nothing of that connection is still queued
// (it would otherwise overtake lower-priority messages); until then it,
// and everything after it, waits in deferred.
type connState struct {
	queued   int
	deferred []item
}

// Stats are the Queue's counters.
type Stats struct {
	Len            int           // items queued now
	Enqueued       uint64        // messages queued
	Dispatched     uint64        // messages taken by Dispatch
	FastDispatched uint64        // messages taken by FastDispatch
	Unclaimed      uint64        // messages no dispatcher took (released)
	Discarded      uint64        // messages dropped by Discard or Stop
	Events         uint64        // connection events delivered
	Panics         uint64        // dispatcher panics recovered
	DispatchTime   time.Duration // total time spent in dispatcher calls on the queue
}

// Options configure a Queue.
type Options struct {
	// Logf receives recovered panics; nil means log.Printf.
	Logf func(format string, args ...any)
}

// Queue is Ceph's DispatchQueue: a prioritized queue of messages and
// connection events, drained by one goroutine that calls the dispatcher
// chain. Enqueue, the Queue* event calls, Discard and the chain calls are
// safe from any goroutine.
type Queue struct {
	logf func(string, ...any)

	chain atomic.Pointer[chain] // copy-on-write: read lock-free on the fast path

	mu      sync.Mutex
	cond    sync.Cond
	q       *prioq.Queue[uint64, item]
	conns   map[uint64]*connState
	free    []*connState
	stopped bool
	started bool
	done    chan struct{}
	goid    atomic.Uint64

	enqueued, dispatched, fast, unclaimed, discarded, events, panics atomic.Uint64
	dispatchNs                                                       atomic.Int64
}

// New returns a stopped-until-Start Queue with an empty chain.
func New(opts Options) *Queue {
	q := &Queue{
		logf:  opts.Logf,
		q:     prioq.New[uint64, item](int(msg.PrioLow)),
		conns: map[uint64]*connState{},
		done:  make(chan struct{}),
	}
	if q.logf == nil {
		q.logf = log.Printf
	}
	q.cond.L = &q.mu
	q.chain.Store(&chain{})
	return q
}

// AddHead puts d first in the chain (Ceph add_dispatcher_head).
func (q *Queue) AddHead(d Dispatcher) { q.addDispatcher(d, true) }

// AddTail puts d last in the chain (Ceph add_dispatcher_tail).
func (q *Queue) AddTail(d Dispatcher) { q.addDispatcher(d, false) }

func (q *Queue) addDispatcher(d Dispatcher, head bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	old := q.chain.Load().ds
	n := make([]Dispatcher, 0, len(old)+1)
	if head {
		n = append(append(n, d), old...)
	} else {
		n = append(append(n, old...), d)
	}
	c := &chain{ds: n, bs: make([]BatchDispatcher, len(n)), all: make([]bool, len(n)), holds: make([]bool, len(n)),
		fastEv: make([]bool, len(n))}
	for i, d := range n {
		if f, ok := d.(FastEventer); ok && f.FastEvents() {
			c.fastEv[i] = true
			c.nFastEv++
		}
		c.bs[i], _ = d.(BatchDispatcher)
		if a, ok := d.(AllTaker); ok {
			c.all[i] = a.TakesAll()
		}
		if h, ok := d.(Holder); ok && c.bs[i] != nil {
			c.holds[i] = h.HoldsMessages()
		}
	}
	q.chain.Store(c)
}

// Start launches the dispatch goroutine.
func (q *Queue) Start() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.started || q.stopped {
		return
	}
	q.started = true
	go q.run()
}

// CanFastDispatch reports whether a dispatcher of the chain takes m on the
// worker thread (Ceph ms_can_fast_dispatch_any).
func (q *Queue) CanFastDispatch(m *msg.Message) bool {
	for _, d := range q.chain.Load().ds {
		if q.safeCan(d, m) {
			return true
		}
	}
	return false
}

// FastDispatch hands m to the first dispatcher that can fast-dispatch it,
// on the caller's (worker) thread. It reports false if none took it.
func (q *Queue) FastDispatch(c Conn, m *msg.Message) bool {
	for _, d := range q.chain.Load().ds {
		if q.tryFast(d, c, m) {
			q.fast.Add(1)
			return true
		}
	}
	return false
}

// tryFast offers m to d: CanFastDispatch, then FastDispatch if d accepts.
// One deferred recover covers both calls (this runs once per message): a
// panic in CanFastDispatch counts as a refusal (the next dispatcher is
// asked), one in FastDispatch as delivered.
func (q *Queue) tryFast(d Dispatcher, c Conn, m *msg.Message) (taken bool) {
	defer func() {
		if r := recover(); r != nil {
			q.panics.Add(1)
			if taken {
				q.logf("dispatch: dispatcher panicked: %v", r)
			} else {
				q.logf("dispatch: CanFastDispatch panicked: %v", r)
			}
		}
	}()
	if !d.CanFastDispatch(m) {
		return false
	}
	taken = true
	d.FastDispatch(c, m)
	return true
}

func (q *Queue) safeCan(d Dispatcher, m *msg.Message) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			q.panics.Add(1)
			q.logf("dispatch: CanFastDispatch panicked: %v", r)
			ok = false
		}
	}()
	return d.CanFastDispatch(m)
}

// Enqueue queues m from c at m.Priority. rel (may be nil) gets cost back
// once m is dispatched or dropped. After Stop, m is released at once and
// ErrStopped returned.
func (q *Queue) Enqueue(c Conn, m *msg.Message, rel Releaser, cost int64) error {
	return q.put(item{kind: EventMessage, conn: c, m: m, rel: rel, cost: cost})
}

// QueueConnect queues an ms_handle_connect for c (FastEventers get it at
// once, on the caller's thread; so do they every event below).
func (q *Queue) QueueConnect(c Conn) error { return q.event(item{kind: EventConnect, conn: c}) }

// QueueAccept queues an ms_handle_accept for c.
func (q *Queue) QueueAccept(c Conn) error { return q.event(item{kind: EventAccept, conn: c}) }

// QueueReset queues an ms_handle_reset for c.
func (q *Queue) QueueReset(c Conn) error { return q.event(item{kind: EventReset, conn: c}) }

// QueueRemoteReset queues an ms_handle_remote_reset for c.
func (q *Queue) QueueRemoteReset(c Conn) error { return q.event(item{kind: EventRemoteReset, conn: c}) }

// QueueRefused queues an ms_handle_refused for c.
func (q *Queue) QueueRefused(c Conn) error { return q.event(item{kind: EventRefused, conn: c}) }

// event tells the FastEventers of it now and queues it for the others.
func (q *Queue) event(it item) error {
	ch := q.chain.Load()
	if ch.nFastEv > 0 {
		for i, d := range ch.ds {
			if ch.fastEv[i] {
				q.tell(d, it)
			}
		}
		if ch.nFastEv == len(ch.ds) {
			return nil
		}
	}
	return q.put(it)
}

// tell delivers event it to d; it reports whether d handled it (reset and
// refused stop at the first dispatcher that did).
func (q *Queue) tell(d Dispatcher, it item) (handled bool) {
	c := it.conn
	switch it.kind {
	case EventConnect:
		q.call(func() { d.HandleConnect(c) })
	case EventAccept:
		q.call(func() { d.HandleAccept(c) })
	case EventReset:
		q.call(func() { handled = d.HandleReset(c) })
	case EventRemoteReset:
		q.call(func() { d.HandleRemoteReset(c) })
	case EventRefused:
		q.call(func() { handled = d.HandleRefused(c) })
	}
	return handled
}

func (q *Queue) put(it item) error {
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		q.drop(it)
		return ErrStopped
	}
	id := it.conn.ID()
	st := q.conns[id]
	if st == nil {
		if n := len(q.free); n > 0 {
			st, q.free = q.free[n-1], q.free[:n-1]
		} else {
			st = &connState{}
		}
		q.conns[id] = st
	}
	if it.kind == EventMessage {
		q.enqueued.Add(1)
	}
	if len(st.deferred) > 0 || (it.kind != EventMessage && st.queued > 0) {
		st.deferred = append(st.deferred, it)
	} else {
		q.push(st, id, it)
	}
	q.mu.Unlock()
	q.cond.Signal()
	return nil
}

func (q *Queue) push(st *connState, id uint64, it item) {
	prio := int(msg.PrioHighest)
	if it.kind == EventMessage {
		prio = int(it.m.Priority)
	}
	q.q.Push(prio, id, it)
	st.queued++
}

// popped updates the connection's state once one of its items left the
// queue, releasing deferred items that may now go.
func (q *Queue) popped(id uint64) {
	st := q.conns[id]
	st.queued--
	i := 0
	for ; i < len(st.deferred); i++ {
		it := st.deferred[i]
		if it.kind != EventMessage && st.queued > 0 {
			break
		}
		q.push(st, id, it)
	}
	if i > 0 {
		n := copy(st.deferred, st.deferred[i:])
		clear(st.deferred[n:])
		st.deferred = st.deferred[:n]
	}
	if st.queued == 0 && len(st.deferred) == 0 {
		delete(q.conns, id)
		q.free = append(q.free, st)
	}
}

// Discard drops every message of connection id still queued (Ceph
// discard_queue, used when a connection is marked down); its connection
// events stay and are delivered in order.
func (q *Queue) Discard(id uint64) int {
	q.mu.Lock()
	st := q.conns[id]
	if st == nil {
		q.mu.Unlock()
		return 0
	}
	removed := q.q.RemoveClass(id, nil)
	var dropped []item
	var events []item
	for _, it := range removed {
		if it.kind == EventMessage {
			dropped = append(dropped, it)
		} else {
			events = append(events, it)
		}
	}
	for _, it := range st.deferred {
		if it.kind == EventMessage {
			dropped = append(dropped, it)
		} else {
			events = append(events, it)
		}
	}
	st.queued = 0
	st.deferred = st.deferred[:0]
	for _, it := range events {
		if st.queued > 0 {
			st.deferred = append(st.deferred, it)
		} else {
			q.push(st, id, it)
		}
	}
	if st.queued == 0 {
		delete(q.conns, id)
		q.free = append(q.free, st)
	}
	q.mu.Unlock()
	for _, it := range dropped {
		q.drop(it)
	}
	return len(dropped)
}

func (q *Queue) drop(it item) {
	if it.kind != EventMessage {
		return
	}
	q.discarded.Add(1)
	it.m.Release()
	if it.rel != nil {
		it.rel.Release(it.cost)
	}
}

func (q *Queue) run() {
	q.goid.Store(curGoid())
	defer close(q.done)
	for {
		q.mu.Lock()
		for q.q.Len() == 0 && !q.stopped {
			q.cond.Wait()
		}
		if q.stopped {
			q.mu.Unlock()
			return
		}
		it, _ := q.q.Pop()
		q.popped(it.conn.ID())
		q.mu.Unlock()
		q.deliver(it)
	}
}

func (q *Queue) deliver(it item) {
	start := time.Now()
	defer func() { q.dispatchNs.Add(int64(time.Since(start))) }()
	ch := q.chain.Load()
	chain := ch.ds
	c := it.conn
	switch it.kind {
	case EventMessage:
		taken := false
		for _, d := range chain {
			q.call(func() { taken = d.Dispatch(c, it.m) })
			if taken {
				break
			}
		}
		if taken {
			q.dispatched.Add(1)
		} else {
			q.unclaimed.Add(1)
			it.m.Release()
		}
		if it.rel != nil {
			it.rel.Release(it.cost)
		}
		return
	default: // a connection event
		for i, d := range chain {
			if ch.fastEv[i] {
				continue // told when it happened (FastEventer)
			}
			if q.tell(d, it) {
				break
			}
		}
	}
	q.events.Add(1)
}

// call runs a dispatcher method; a panic is recovered, logged and counted
// so one bad dispatcher cannot take the messenger down.
func (q *Queue) call(fn func()) {
	defer func() {
		if r := recover(); r != nil {
			q.panics.Add(1)
			q.logf("dispatch: dispatcher panicked: %v", r)
		}
	}()
	fn()
}

// Stop stops delivery: the item being delivered finishes, queued messages
// are released without delivery (their throttle budget returned), and
// later Enqueue calls get ErrStopped. It does not wait; see Wait.
func (q *Queue) Stop() {
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		return
	}
	q.stopped = true
	var rest []item
	for {
		it, ok := q.q.Pop()
		if !ok {
			break
		}
		rest = append(rest, it)
	}
	for _, st := range q.conns {
		rest = append(rest, st.deferred...)
	}
	clear(q.conns)
	started := q.started
	q.mu.Unlock()
	q.cond.Broadcast()
	for _, it := range rest {
		q.drop(it)
	}
	if !started {
		close(q.done)
	}
}

// Wait blocks until the dispatch goroutine has exited after Stop. From a
// dispatcher callback it returns ErrInDispatch at once.
func (q *Queue) Wait() error {
	if g := q.goid.Load(); g != 0 && g == curGoid() {
		return ErrInDispatch
	}
	<-q.done
	return nil
}

// Stats returns a snapshot of the counters.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	n := q.q.Len()
	for _, st := range q.conns {
		n += len(st.deferred)
	}
	q.mu.Unlock()
	return Stats{
		Len: n, Enqueued: q.enqueued.Load(), Dispatched: q.dispatched.Load(),
		FastDispatched: q.fast.Load(), Unclaimed: q.unclaimed.Load(),
		Discarded: q.discarded.Load(), Events: q.events.Load(), Panics: q.panics.Load(),
		DispatchTime: time.Duration(q.dispatchNs.Load()),
	}
}

// curGoid returns the current goroutine's id; used only to detect Wait
// from inside a callback, never on a hot path.
func curGoid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		panic(fmt.Sprintf("dispatch: cannot parse goroutine id: %q", b))
	}
	return id
}
