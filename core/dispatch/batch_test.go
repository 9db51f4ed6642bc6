package dispatch

import (
	"testing"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/stretchr/testify/require"
)

// batcher takes messages whose Tid it accepts, in batches; log is shared
// with plainFast so the test sees the order across both.
type batcher struct {
	Base
	accept  func(tid uint64) bool
	log     *[]uint64
	batches []int
	panicAt int // panic in the batch call number panicAt (1-based; 0 never)
}

func (b *batcher) CanFastDispatch(m *msg.Message) bool { return b.accept(m.Tid) }
func (b *batcher) FastDispatch(c Conn, m *msg.Message) {
	b.FastDispatchBatch(c, []*msg.Message{m})
}
func (b *batcher) FastDispatchBatch(_ Conn, ms []*msg.Message) {
	b.batches = append(b.batches, len(ms))
	for _, m := range ms {
		*b.log = append(*b.log, m.Tid)
	}
	if b.panicAt == len(b.batches) {
		panic("batcher")
	}
}

type plainFast struct {
	Base
	log *[]uint64
}

func (p *plainFast) CanFastDispatch(*msg.Message) bool { return true }
func (p *plainFast) FastDispatch(_ Conn, m *msg.Message) {
	*p.log = append(*p.log, m.Tid+1000)
}

func tidMsg(tid uint64) *msg.Message {
	m := msg.New(1, nil)
	m.Tid = tid
	return m
}

// A batch dispatcher gets a connection's messages in runs; a message
// another dispatcher takes (or none does) first flushes the run, so the
// order of the connection's messages holds across dispatchers.
func TestBatchKeepsOrder(t *testing.T) {
	var log []uint64
	q := New(Options{Logf: t.Logf})
	b := &batcher{accept: func(tid uint64) bool { return tid%10 != 5 }, log: &log}
	q.AddTail(b)
	q.AddTail(&plainFast{log: &log})
	c := &fakeConn{id: 1}
	var bt Batch
	for tid := uint64(0); tid < 12; tid++ {
		require.True(t, taken(q.FastDispatchBatched(c, tidMsg(tid), &bt)))
	}
	require.Equal(t, 6, bt.Len(), "6..11 wait for the flush")
	q.Flush(&bt)
	require.Equal(t, 0, bt.Len())
	q.Flush(&bt) // empty: no call
	require.Equal(t, []uint64{0, 1, 2, 3, 4, 1005, 6, 7, 8, 9, 10, 11}, log)
	require.Equal(t, []int{5, 6}, b.batches)
	require.Equal(t, uint64(12), q.Stats().FastDispatched)
}

// Nobody takes the message: false, and what was collected is delivered
// first (the caller queues the message next).
func TestBatchFlushedWhenUnclaimed(t *testing.T) {
	var log []uint64
	q := New(Options{Logf: t.Logf})
	b := &batcher{accept: func(tid uint64) bool { return tid != 3 }, log: &log}
	q.AddTail(b)
	c := &fakeConn{id: 1}
	var bt Batch
	for tid := uint64(0); tid < 3; tid++ {
		require.True(t, taken(q.FastDispatchBatched(c, tidMsg(tid), &bt)))
	}
	require.False(t, taken(q.FastDispatchBatched(c, tidMsg(3), &bt)))
	require.Equal(t, 0, bt.Len())
	require.Equal(t, []uint64{0, 1, 2}, log)
}

// A batch never grows past maxBatch; a panicking batch call is recovered
// and counted, and the next batch is delivered.
func TestBatchBoundAndPanic(t *testing.T) {
	var log []uint64
	q := New(Options{Logf: t.Logf})
	b := &batcher{accept: func(uint64) bool { return true }, log: &log, panicAt: 1}
	q.AddTail(b)
	c := &fakeConn{id: 1}
	var bt Batch
	n := maxBatch + 3
	for tid := 0; tid < n; tid++ {
		require.True(t, taken(q.FastDispatchBatched(c, tidMsg(uint64(tid)), &bt)))
	}
	q.Flush(&bt)
	require.Equal(t, []int{maxBatch, 3}, b.batches)
	require.Len(t, log, n)
	require.Equal(t, uint64(1), q.Stats().Panics)
}

type allBatcher struct{ batcher }

func (allBatcher) TakesAll() bool                    { return true }
func (allBatcher) CanFastDispatch(*msg.Message) bool { panic("asked although it takes all") }

// An AllTaker is not asked CanFastDispatch.
func TestBatchAllTakerNotAsked(t *testing.T) {
	var log []uint64
	q := New(Options{Logf: t.Logf})
	b := &allBatcher{batcher{log: &log}}
	q.AddTail(b)
	var bt Batch
	for tid := uint64(0); tid < 3; tid++ {
		require.True(t, taken(q.FastDispatchBatched(&fakeConn{id: 1}, tidMsg(tid), &bt)))
	}
	q.Flush(&bt)
	require.Equal(t, []uint64{0, 1, 2}, log)
	require.Equal(t, uint64(0), q.Stats().Panics)
}

func taken(ok, _ bool) bool { return ok }

type holdBatcher struct{ batcher }

func (holdBatcher) HoldsMessages() bool { return true }

// A Holder's messages are reported held (the connection charges them).
func TestBatchHolderReportsHeld(t *testing.T) {
	var log []uint64
	q := New(Options{Logf: t.Logf})
	q.AddTail(&holdBatcher{batcher{accept: func(uint64) bool { return true }, log: &log}})
	var bt Batch
	ok, held := q.FastDispatchBatched(&fakeConn{id: 1}, tidMsg(0), &bt)
	require.True(t, ok)
	require.True(t, held)
	q.Flush(&bt)
	require.Equal(t, int64(256+3), HeldCost(msg.New(1, []byte("abc"))))
}
