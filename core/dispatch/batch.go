package dispatch

import "github.com/msgr-dev/msgr/core/msg"

// BatchDispatcher is a fast dispatcher that also takes a run of one
// connection's messages in one call. A connection collects the messages
// such a dispatcher accepts while it decodes one read and hands them over
// when the read is done, so a dispatcher with a fixed cost per call (a C
// dispatcher crossing into C, a pull queue taking its lock) pays it once
// per read instead of once per message. Latency is unchanged: the batch is
// delivered before the worker does anything else.
type BatchDispatcher interface {
	Dispatcher
	// FastDispatchBatch is FastDispatch of every message of ms, in order,
	// on the connection's worker thread. It owns the messages; the slice
	// itself is reused after the call.
	FastDispatchBatch(c Conn, ms []*msg.Message)
}

// chain is the dispatcher chain, with each dispatcher's BatchDispatcher
// side looked up once (bs[i] is nil if ds[i] is not one).
type chain struct {
	ds      []Dispatcher
	bs      []BatchDispatcher
	all     []bool // ds[i] takes every message (AllTaker)
	holds   []bool // ds[i] keeps what it takes (Holder)
	fastEv  []bool // ds[i] takes connection events where they happen (FastEventer)
	nFastEv int
}

// FastEventer is a fast dispatcher that takes connection events (connect,
// accept, reset, remote reset, refused) on the thread that reports them,
// usually the connection's worker, instead of from the Queue's goroutine:
// so they reach it in order with the messages it fast-dispatches (Ceph's
// ms_handle_fast_connect and ms_handle_fast_accept). A pull queue needs
// this: queued, a connect could land behind the first replies it took.
// Every FastEventer is told of every event (a reset "handled" by one does
// not hide it from the next); the handlers must not block and may run on
// any goroutine.
type FastEventer interface {
	FastEvents() bool
}

// AllTaker is a fast dispatcher whose CanFastDispatch is true for every
// message (a C dispatcher with MSGR_DISPATCH_F_FAST_ALL, a pull queue): the
// queue does not ask it, saving an interface call and a deferred recover
// per message.
type AllTaker interface {
	TakesAll() bool
}

// Holder is a BatchDispatcher that keeps the messages it takes for
// another thread (a pull queue). The connection charges each one to its
// dispatch throttle (HeldCost bytes), as a message queued for the dispatch
// thread, and the holder gives the budget back with Conn.(HeldReleaser)
// once the message is consumed: a slow consumer then stops the connections
// from reading instead of letting the holder grow without bound.
type Holder interface {
	HoldsMessages() bool
}

// HeldReleaser is implemented by connections that charge held messages
// (core/conn.Connection).
type HeldReleaser interface {
	// HeldDone returns the budget of one held message of cost HeldCost.
	HeldDone(cost int64)
}

// heldOverhead is what a held message costs beyond its payload: the
// message and queue entry themselves, so small messages are bounded too.
const heldOverhead = 256

// HeldCost is what a held message costs its connection's throttle.
func HeldCost(m *msg.Message) int64 { return int64(m.PayloadLen()) + heldOverhead }

// maxBatch bounds one delivery (and the slice a connection keeps).
const maxBatch = 256

// Batch collects one connection's messages for a BatchDispatcher. A
// connection owns one and uses it on its worker only (never for another
// connection's messages); the zero value is ready.
type Batch struct {
	d  BatchDispatcher
	ch *chain // with i, names d cheaply (no interface comparison)
	i  int
	c  Conn
	ms []*msg.Message
}

// Len is the number of messages waiting in b.
func (b *Batch) Len() int { return len(b.ms) }

// FastDispatchBatched is FastDispatch for a caller that collects into b
// and calls Flush when its read is done: a message a BatchDispatcher
// accepts is appended to b; anything else first flushes b, so a
// connection's messages reach the dispatchers in order. It reports false
// if no dispatcher takes m (b is flushed then too, as the caller queues m);
// held says a Holder took it: the caller charges HeldCost(m) to its
// throttle (the holder gives it back through HeldReleaser).
func (q *Queue) FastDispatchBatched(c Conn, m *msg.Message, b *Batch) (taken, held bool) {
	ch := q.chain.Load()
	for i, d := range ch.ds {
		bd := ch.bs[i]
		if bd == nil {
			if len(b.ms) == 0 {
				if q.tryFast(d, c, m) {
					q.fast.Add(1)
					return true, false
				}
				continue
			}
			if !q.safeCan(d, m) {
				continue
			}
			q.Flush(b)
			q.safeFast(d, c, m)
			q.fast.Add(1)
			return true, false
		}
		if !ch.all[i] && !q.safeCan(d, m) {
			continue
		}
		if len(b.ms) > 0 && (b.ch != ch || b.i != i) {
			q.Flush(b)
		}
		b.d, b.ch, b.i, b.c = bd, ch, i, c
		b.ms = append(b.ms, m)
		if len(b.ms) >= maxBatch {
			q.Flush(b)
		}
		return true, ch.holds[i]
	}
	q.Flush(b)
	return false, false
}

// Flush delivers what b holds (a no-op when empty).
func (q *Queue) Flush(b *Batch) {
	if len(b.ms) == 0 {
		return
	}
	ms := b.ms
	q.fast.Add(uint64(len(ms)))
	q.safeBatch(b.d, b.c, ms)
	clear(ms)
	b.ms = ms[:0]
	b.d, b.ch, b.c = nil, nil, nil
}

// safeBatch calls FastDispatchBatch; a panic is recovered and counted (the
// messages were the dispatcher's, as with FastDispatch).
func (q *Queue) safeBatch(d BatchDispatcher, c Conn, ms []*msg.Message) {
	defer func() {
		if r := recover(); r != nil {
			q.panics.Add(1)
			q.logf("dispatch: dispatcher panicked in a batch: %v", r)
		}
	}()
	d.FastDispatchBatch(c, ms)
}

func (q *Queue) safeFast(d Dispatcher, c Conn, m *msg.Message) {
	defer func() {
		if r := recover(); r != nil {
			q.panics.Add(1)
			q.logf("dispatch: dispatcher panicked: %v", r)
		}
	}()
	d.FastDispatch(c, m)
}
