package main

/*
#include <stdlib.h>
#include "msgr_impl.h"
*/
import "C"

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/msgr-dev/msgr/core/dispatch"
	"github.com/msgr-dev/msgr/core/msg"
)

// pullQueue is pull mode (msgr_messenger_add_pull): a dispatcher that takes
// every message on the worker thread (fast dispatch, so it never waits
// behind the dispatch thread) and every connection event, and holds them
// for msgr_messenger_recv.
//
// Readiness: an eventfd is readable while the queue is non-empty (or the
// messenger is shut down), as seen by whoever waits on it. It is written on
// the empty -> non-empty transition only, and only when someone can be
// waiting (a receiver asleep in poll, or an application that took the fd
// with msgr_messenger_event_fd), and drained when a receive empties the
// queue: a busy queue costs no syscall per message. A receiving C thread
// that finds the queue empty first polls the count for as long as the
// workers busy-poll (ms_async_busy_poll), then sleeps in poll() on the fd,
// in C.
//
// Conversion to C messages happens on the receiving thread, a batch at a
// time (one crossing to allocate every message of the batch), not on the
// worker thread.
type pullQueue struct {
	ms   *mentry
	spin time.Duration // how long a receiver polls before it sleeps
	n    atomic.Int64  // items queued: lets a polling receiver look without the lock
	done atomic.Bool   // shut or closed, for the same look
	// word mirrors n and done in C memory (bit 62: done) so that a polling
	// C thread can watch it without entering Go: a crossing from a foreign
	// thread needs a P, and busy-polling workers hold them, so polling
	// through Go made every pull-mode round trip hundreds of µs.
	word *C.int64_t

	mu        sync.Mutex
	items     []pullItem
	head      int
	fd        int
	signaled  bool
	extFD     bool // the application polls fd itself: keep it exact
	sleepers  int  // receivers asleep in poll(fd)
	shut      bool
	closed    bool // destroy: fd to be closed when the last waiter leaves
	waiters   int  // receivers between EAGAIN-with-fd and unwait
	delivered uint64
}

type pullItem struct {
	kind int // MSGR_EVENT_*
	conn dispatch.Conn
	m    *msg.Message
	held bool // m is charged to conn's throttle until consumed (dispatch.Holder)
}

// done releases the item's message, first giving its connection back the
// budget it was charged while held.
func (it *pullItem) done() {
	if it.m == nil {
		return
	}
	if it.held {
		if r, ok := it.conn.(dispatch.HeldReleaser); ok {
			r.HeldDone(dispatch.HeldCost(it.m))
		}
	}
	it.m.Release()
}

var (
	waitMu  sync.Mutex
	waitFDs = map[int]*pullQueue{} // fd -> queue, while C threads poll it
)

// wordDone is the done bit of pullQueue.word.
const wordDone = 1 << 62

// Readiness words are never freed: a C thread may still be polling one
// when its messenger is destroyed. They go back to this free list and are
// reused (a stale poller then sees another queue's count: a spurious look,
// which the pull call that follows answers correctly).
var (
	wordMu   sync.Mutex
	wordFree []*C.int64_t
)

func newWord() *C.int64_t {
	wordMu.Lock()
	defer wordMu.Unlock()
	if n := len(wordFree); n > 0 {
		w := wordFree[n-1]
		wordFree = wordFree[:n-1]
		return w
	}
	return (*C.int64_t)(C.calloc(1, 8))
}

func (q *pullQueue) wordAdd(d int64) { atomic.AddInt64((*int64)(unsafe.Pointer(q.word)), d) }

func newPullQueue(ms *mentry) (*pullQueue, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, err
	}
	w := newWord()
	if w == nil {
		unix.Close(fd)
		return nil, unix.ENOMEM
	}
	atomic.StoreInt64((*int64)(unsafe.Pointer(w)), 0)
	return &pullQueue{ms: ms, fd: fd, word: w, spin: max(ms.m.Options().BusyPoll, 0)}, nil
}

// signalLocked makes the fd readable if someone may be waiting on it.
func (q *pullQueue) signalLocked() {
	if q.signaled || q.closed || !(q.extFD || q.sleepers > 0 || q.shut) {
		return
	}
	q.signaled = true
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(q.fd, one[:])
}

func (q *pullQueue) drainLocked() {
	if !q.signaled || q.closed {
		return
	}
	q.signaled = false
	var b [8]byte
	_, _ = unix.Read(q.fd, b[:])
}

func (q *pullQueue) push(it pullItem) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, it)
	q.n.Add(1)
	q.wordAdd(1)
	q.signalLocked()
	q.mu.Unlock()
	return true
}

// shutdown wakes every receiver for good: the fd stays readable.
func (q *pullQueue) shutdown() {
	q.mu.Lock()
	q.shut = true
	if !q.done.Swap(true) {
		q.wordAdd(wordDone)
	}
	q.signalLocked()
	q.mu.Unlock()
}

// close (destroy) releases what is queued and closes the fd once no C
// thread polls it.
func (q *pullQueue) close() {
	q.mu.Lock()
	q.shut = true
	q.done.Store(true)
	q.signalLocked()
	rest := q.items[q.head:]
	q.items, q.head = nil, 0
	q.n.Store(0)
	atomic.StoreInt64((*int64)(unsafe.Pointer(q.word)), wordDone)
	wordMu.Lock()
	wordFree = append(wordFree, q.word)
	wordMu.Unlock()
	q.closed = true
	closeNow := q.waiters == 0
	q.mu.Unlock()
	for i := range rest {
		rest[i].done()
	}
	if closeNow {
		unix.Close(q.fd)
	}
}

func (q *pullQueue) stats() (queued int, delivered uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head, q.delivered
}

// take moves up to n items out of the queue.
// take removes up to n items (room >= 0: only as many as have that many
// payload bytes in all) into dst's storage.
func (q *pullQueue) take(n, room int, dst []pullItem) ([]pullItem, C.int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	avail := len(q.items) - q.head
	if avail == 0 {
		if q.shut || q.closed {
			return nil, C.MSGR_ESHUTDOWN
		}
		return nil, C.MSGR_EAGAIN
	}
	k := min(n, avail)
	if room >= 0 {
		// Copy mode: stop before the first payload that does not fit.
		used := 0
		for i, it := range q.items[q.head : q.head+k] {
			if it.m != nil {
				used += it.m.PayloadLen()
				if used > room {
					k = i
					break
				}
			}
		}
		if k == 0 {
			return nil, C.MSGR_ERANGE
		}
	}
	out := append(dst[:0], q.items[q.head:q.head+k]...)
	clear(q.items[q.head : q.head+k])
	q.head += k
	q.n.Add(int64(-k))
	q.wordAdd(int64(-k))
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
		if !q.shut {
			q.drainLocked()
		}
	} else if q.head > 4096 && q.head > len(q.items)/2 {
		q.items = append(q.items[:0], q.items[q.head:]...)
		q.head = 0
	}
	q.delivered += uint64(k)
	return out, 0
}

// unshift puts items back at the head (a C allocation failed).
func (q *pullQueue) unshift(items []pullItem) {
	q.mu.Lock()
	defer q.mu.Unlock()
	rest := q.items[q.head:]
	q.items = append(append(make([]pullItem, 0, len(items)+len(rest)), items...), rest...)
	q.head = 0
	q.n.Add(int64(len(items)))
	q.wordAdd(int64(len(items)))
	q.delivered -= uint64(len(items))
	q.signalLocked()
}

// dispatch.Dispatcher: take everything.

func (q *pullQueue) Dispatch(c dispatch.Conn, m *msg.Message) bool {
	if !q.push(pullItem{kind: C.MSGR_EVENT_MESSAGE, conn: c, m: m}) {
		return false
	}
	return true
}
func (q *pullQueue) CanFastDispatch(*msg.Message) bool { return true }
func (q *pullQueue) TakesAll() bool                    { return true }
func (q *pullQueue) FastDispatch(c dispatch.Conn, m *msg.Message) {
	if !q.push(pullItem{kind: C.MSGR_EVENT_MESSAGE, conn: c, m: m}) {
		m.Release()
	}
}

// HoldsMessages (dispatch.Holder): what the queue holds is charged to the
// connections' throttles until a receiver takes it, so a receiver that
// falls behind stops the connections from reading (bounded memory).
func (q *pullQueue) HoldsMessages() bool { return true }

// FastDispatchBatch (dispatch.BatchDispatcher): a read's messages go in
// under one lock, one count update and at most one wake-up. They come
// charged (Holder).
func (q *pullQueue) FastDispatchBatch(c dispatch.Conn, ms []*msg.Message) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		for _, m := range ms {
			it := pullItem{conn: c, m: m, held: true}
			it.done()
		}
		return
	}
	for _, m := range ms {
		q.items = append(q.items, pullItem{kind: C.MSGR_EVENT_MESSAGE, conn: c, m: m, held: true})
	}
	q.n.Add(int64(len(ms)))
	q.wordAdd(int64(len(ms)))
	q.signalLocked()
	q.mu.Unlock()
}

// FastEvents (dispatch.FastEventer): events join the queue when they
// happen, in order with the messages taken on the worker (queued, a
// connect could land behind the first replies).
func (q *pullQueue) FastEvents() bool { return true }

func (q *pullQueue) HandleConnect(c dispatch.Conn) {
	q.push(pullItem{kind: C.MSGR_EVENT_CONNECT, conn: c})
}
func (q *pullQueue) HandleAccept(c dispatch.Conn) {
	q.push(pullItem{kind: C.MSGR_EVENT_ACCEPT, conn: c})
}
func (q *pullQueue) HandleReset(c dispatch.Conn) bool {
	return q.push(pullItem{kind: C.MSGR_EVENT_RESET, conn: c})
}
func (q *pullQueue) HandleRemoteReset(c dispatch.Conn) {
	q.push(pullItem{kind: C.MSGR_EVENT_REMOTE_RESET, conn: c})
}
func (q *pullQueue) HandleRefused(c dispatch.Conn) bool {
	return q.push(pullItem{kind: C.MSGR_EVENT_REFUSED, conn: c})
}

//export msgrgo_messenger_add_pull
func msgrgo_messenger_add_pull(id C.uint64_t, where C.int) (rc C.int) {
	defer guard(&rc)
	e, rc := messengerOf(id)
	if e == nil {
		return rc
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state != msNew {
		return fail(C.MSGR_ESTATE, "add_pull after start")
	}
	if e.pull != nil {
		return fail(C.MSGR_ESTATE, "pull mode already added")
	}
	q, err := newPullQueue(e)
	if err != nil {
		return failErr(err)
	}
	e.pull = q
	if where == C.MSGR_HEAD {
		e.m.AddDispatcherHead(q)
	} else {
		e.m.AddDispatcherTail(q)
	}
	return 0
}

func pullOf(id C.uint64_t) (*pullQueue, C.int) {
	e, rc := messengerOf(id)
	if e == nil {
		return nil, rc
	}
	e.mu.Lock()
	q := e.pull
	e.mu.Unlock()
	if q == nil {
		return nil, fail(C.MSGR_ESTATE, "pull mode not enabled (msgr_messenger_add_pull)")
	}
	return q, 0
}

//export msgrgo_messenger_event_fd
func msgrgo_messenger_event_fd(id C.uint64_t, fd *C.int) (rc C.int) {
	defer guard(&rc)
	q, rc := pullOf(id)
	if q == nil {
		return rc
	}
	q.mu.Lock()
	q.extFD = true
	if len(q.items) > q.head {
		q.signalLocked()
	}
	q.mu.Unlock()
	*fd = C.int(q.fd)
	return 0
}

// msgrgo_messenger_pull fills up to n events without waiting and returns
// the count or an error. With nothing queued it returns MSGR_EAGAIN and
// *spinNs, how long the caller may keep polling, and *word, a C word it can
// poll meanwhile without entering Go (non-zero: something to take, or
// done); if sleep is set it also
// registers the caller as a sleeper and sets *fd: the caller then polls fd
// and must call msgrgo_pull_unwait(*fd) afterwards.
//
//export msgrgo_messenger_pull
func msgrgo_messenger_pull(id C.uint64_t, evs unsafe.Pointer, n, evSize C.size_t,
	buf *C.uchar, bufLen C.size_t, used *C.size_t, sleep C.int,
	fd *C.int, spinNs *C.int64_t, word **C.int64_t) (rc C.int) {
	defer guard(&rc)
	q, rc := pullOf(id)
	if q == nil {
		return rc
	}
	*word = q.word
	if sleep == 0 && q.n.Load() == 0 && !q.done.Load() {
		*spinNs = C.int64_t(q.spin) // the common case while polling: no lock
		return C.MSGR_EAGAIN
	}
	var items []pullItem
	if sleep != 0 {
		q.mu.Lock()
		if len(q.items) == q.head && !q.shut && !q.closed {
			// Nothing: sleep on the fd; pushes from now on signal it.
			q.sleepers++
			q.waiters++
			q.mu.Unlock()
			waitMu.Lock()
			waitFDs[q.fd] = q
			waitMu.Unlock()
			*fd = C.int(q.fd)
			return C.MSGR_EAGAIN
		}
		q.mu.Unlock()
	}
	room := -1
	if buf != nil {
		room = int(min(bufLen, 1<<62))
	}
	sp := takeScratch.Get().(*[]pullItem)
	defer func() {
		clear((*sp)[:cap(*sp)])
		takeScratch.Put(sp)
	}()
	items, rc = q.take(int(min(n, 1<<20)), room, *sp)
	if cap(items) > cap(*sp) && cap(items) <= 4096 {
		*sp = items[:0] // grown: keep the larger array
	}
	if rc == C.MSGR_EAGAIN {
		*spinNs = C.int64_t(q.spin)
		return C.MSGR_EAGAIN
	}
	if rc == C.MSGR_ESHUTDOWN {
		return fail(rc, "messenger shut down and nothing left to receive")
	}
	if rc == C.MSGR_ERANGE {
		return fail(rc, "the next message is larger than buf (%d bytes): take it with msgr_messenger_recv", room)
	}
	if buf != nil {
		*used = C.size_t(q.copyOut(items, evs, evSize, unsafe.Slice((*byte)(unsafe.Pointer(buf)), room)))
		return C.int(len(items))
	}
	// One crossing allocates every C message of the batch.
	var sizes []C.size_t
	var idx []int
	for i, it := range items {
		if it.m != nil {
			sizes = append(sizes, C.size_t(it.m.PayloadLen()))
			idx = append(idx, i)
		}
	}
	ptrs := make([]*C.struct_msgr_msg, len(sizes))
	tails := make([]*C.uchar, len(sizes))
	if len(sizes) > 0 {
		C.msgrc_msg_new_rx_batch(C.size_t(len(sizes)), &sizes[0], &ptrs[0], &tails[0])
	}
	cms := make([]*C.struct_msgr_msg, len(items))
	for j, i := range idx {
		if ptrs[j] == nil {
			// Out of memory: deliver what we have, requeue the rest.
			for _, p := range ptrs[j+1:] {
				if p != nil {
					C.msgrc_msg_discard(p)
				}
			}
			q.unshift(items[i:])
			items = items[:i]
			if i == 0 {
				return fail(C.MSGR_ENOMEM, "out of memory")
			}
			break
		}
		cm := ptrs[j]
		fillRx(cm, unsafe.Pointer(tails[j]), items[i].m)
		cms[i] = cm
	}
	base := evs
	for i, it := range items {
		ev := (*C.msgr_event)(unsafe.Add(base, uintptr(i)*uintptr(evSize)))
		cid, priv := q.ms.connID(it.conn)
		ev._type = C.int32_t(it.kind)
		ev.reserved = 0
		ev.conn.id = C.uint64_t(cid)
		*(*uintptr)(unsafe.Pointer(&ev.conn_priv)) = priv // a C pointer, as C set it
		ev.msg = cms[i]
		items[i].done()
	}
	return C.int(len(items))
}

// takeScratch holds the slices pulls take items into (cleared after each
// call: they hold messages and connections only during it).
var takeScratch = sync.Pool{New: func() any { s := make([]pullItem, 0, 256); return &s }}

// copyOut writes items as msgr_rxmsg descriptors at out (stride size),
// copies the payloads into buf back to back (take made sure they fit),
// releases the messages, and returns the bytes written.
func (q *pullQueue) copyOut(items []pullItem, out unsafe.Pointer, size C.size_t, buf []byte) int {
	off := 0
	var lastConn dispatch.Conn
	var cid uint64
	var priv uintptr
	for i, it := range items {
		rx := (*C.msgr_rxmsg)(unsafe.Add(out, uintptr(i)*uintptr(size)))
		*rx = C.msgr_rxmsg{}
		if it.conn != lastConn || i == 0 {
			cid, priv = q.ms.connID(it.conn) // runs of one connection: look once
			lastConn = it.conn
		}
		rx._type = C.int32_t(it.kind)
		rx.conn.id = C.uint64_t(cid)
		*(*uintptr)(unsafe.Pointer(&rx.conn_priv)) = priv // a C pointer, as C set it
		m := it.m
		if m == nil {
			continue
		}
		rx.msg_type = C.uint16_t(m.Type)
		rx.priority = C.uint16_t(m.Priority)
		rx.tid = C.uint64_t(m.Tid)
		rx.seq = C.uint64_t(m.Seq)
		rx.src_num = C.int64_t(m.Src.Num)
		rx.version = C.uint16_t(m.Version)
		rx.compat_version = C.uint16_t(m.CompatVersion)
		rx.src_type = C.uint8_t(m.Src.Type)
		rx.data_off = C.uint16_t(m.DataOff)
		rx.off = C.uint64_t(off)
		rx.front_len = C.uint32_t(len(m.Front))
		rx.middle_len = C.uint32_t(len(m.Middle))
		rx.data_len = C.uint32_t(len(m.Data))
		off += copy(buf[off:], m.Front)
		off += copy(buf[off:], m.Middle)
		off += copy(buf[off:], m.Data)
		items[i].done()
	}
	return off
}

//export msgrgo_pull_unwait
func msgrgo_pull_unwait(fd C.int) {
	defer recoverVoid()
	waitMu.Lock()
	q := waitFDs[int(fd)]
	waitMu.Unlock()
	if q == nil {
		return
	}
	q.mu.Lock()
	q.waiters--
	q.sleepers--
	last := q.waiters == 0
	closeNow := last && q.closed
	q.mu.Unlock()
	if last {
		waitMu.Lock()
		if waitFDs[int(fd)] == q {
			delete(waitFDs, int(fd))
		}
		waitMu.Unlock()
	}
	if closeNow {
		unix.Close(q.fd)
	}
}
