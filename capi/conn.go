package main

/*
#include "msgr_impl.h"
*/
import "C"

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
	"weak"

	"github.com/msgr-dev/msgr/core/conn"
	"github.com/msgr-dev/msgr/core/dispatch"
)

// centry is the Go side of one msgr_conn handle: one per connection, kept
// in the connection's Priv so a callback finds its id in O(1).
//
// Lifetime: the handle stays valid while Go can still reach the connection
// (the messenger's sets, queued events, a callback in progress) or C holds
// references (msgr_messenger_connect, msgr_conn_get). References make the
// entry hold the connection strongly; otherwise it holds it weakly, and a
// cleanup removes the entry once the collector finds the connection gone.
// So a handle goes stale only when nothing can report on that connection
// any more, and a callback never sees a stale handle for a live connection.
type centry struct {
	id   uint64
	ms   *mentry
	weak weak.Pointer[conn.Connection]

	refMu  sync.Mutex
	crefs  int32                           // C references
	strong atomic.Pointer[conn.Connection] // set while crefs > 0

	priv atomic.Uintptr // msgr_conn_set_priv (a C pointer; never dereferenced)
}

func (e *centry) handleID() uint64 { return e.id }

var conns table[centry, *centry]

// Connection handles go stale when the collector has found their
// connections gone, and a messenger that allocates little may not collect
// for minutes (Go forces a cycle every two). So handle creation asks for a
// cycle, in the background, once per max(gcEveryConns, handles live at the
// last request) new handles: a program that keeps opening and closing
// connections keeps about that many stale ones at most, and a collection's
// cost is amortized over as many connections.
var (
	liveConns    atomic.Int64
	connsSinceGC atomic.Int64
	liveAtGC     atomic.Int64
)

const gcEveryConns = 512

func noteNewConn() {
	n := liveConns.Add(1)
	if k := connsSinceGC.Add(1); k >= max(gcEveryConns, liveAtGC.Load()) && connsSinceGC.CompareAndSwap(k, 0) {
		liveAtGC.Store(n)
		go runtime.GC()
	}
}

// conn returns the connection, or nil once it is gone.
func (e *centry) conn() *conn.Connection {
	if c := e.strong.Load(); c != nil {
		return c
	}
	return e.weak.Value()
}

// ref takes a C reference on the entry of c.
func (e *centry) ref(c *conn.Connection) {
	e.refMu.Lock()
	e.crefs++
	if e.crefs == 1 {
		e.strong.Store(c)
	}
	e.refMu.Unlock()
}

// unref drops a C reference; false if C held none.
func (e *centry) unref() bool {
	e.refMu.Lock()
	defer e.refMu.Unlock()
	if e.crefs == 0 {
		return false
	}
	e.crefs--
	if e.crefs == 0 {
		e.strong.Store(nil)
	}
	return true
}

// drop makes the handle stale (messenger destroyed).
func (e *centry) drop() {
	if conns.remove(e.id) {
		liveConns.Add(-1)
	}
	e.strong.Store(nil)
}

// connGone is the cleanup of a collected connection: its handle goes
// stale (unless destroy already removed it).
func connGone(id uint64) {
	e := conns.get(id)
	if e == nil {
		return
	}
	if conns.remove(id) {
		liveConns.Add(-1)
	}
	e.ms.connMu.Lock()
	delete(e.ms.conns, id)
	e.ms.connMu.Unlock()
}

// entryFor returns the handle entry of dc, creating it on first sight;
// nil if dc is not a *conn.Connection or handles ran out.
func (ms *mentry) entryFor(dc dispatch.Conn) *centry {
	c, ok := dc.(*conn.Connection)
	if !ok || c == nil {
		return nil
	}
	if e, ok := c.Priv().(*centry); ok {
		return e
	}
	ms.connMu.Lock()
	defer ms.connMu.Unlock()
	if e, ok := c.Priv().(*centry); ok {
		return e
	}
	id := conns.reserve()
	if id == 0 {
		return nil
	}
	e := &centry{id: id, ms: ms, weak: weak.Make(c)}
	conns.set(e)
	ms.conns[id] = e
	c.SetPriv(e)
	runtime.AddCleanup(c, connGone, id)
	noteNewConn()
	return e
}

// connID is the id C sees for dc (0 if none: calls with it get EBADF).
func (ms *mentry) connID(dc dispatch.Conn) (uint64, uintptr) {
	if e := ms.entryFor(dc); e != nil {
		return e.id, e.priv.Load()
	}
	return 0, 0
}

func connOf(id C.uint64_t) (*centry, *conn.Connection, C.int) {
	e := conns.get(uint64(id))
	if e != nil {
		if c := e.conn(); c != nil {
			return e, c, 0
		}
	}
	return nil, nil, fail(C.MSGR_EBADF, "connection handle %#x is closed or unknown", uint64(id))
}

//export msgrgo_conn_ref
func msgrgo_conn_ref(id C.uint64_t, delta C.int) (rc C.int) {
	defer guard(&rc)
	e, c, rc := connOf(id)
	if e == nil {
		return rc
	}
	if delta > 0 {
		e.ref(c)
		return 0
	}
	if !e.unref() {
		return fail(C.MSGR_EINVAL, "msgr_conn_put without a reference")
	}
	return 0
}

//export msgrgo_conn_send
func msgrgo_conn_send(id C.uint64_t, cm *C.struct_msgr_msg) (rc C.int) {
	defer guard(&rc)
	e, c, rc := connOf(id)
	if e == nil {
		return rc
	}
	m, copied := goMessage(cm)
	if err := c.Send(m); err != nil {
		return failErr(err)
	}
	e.ms.countSend(copied, 1)
	if copied {
		return 1
	}
	return 0
}

//export msgrgo_conn_send_many
func msgrgo_conn_send_many(id C.uint64_t, msgs **C.struct_msgr_msg, n C.size_t,
	copied *C.uchar, took *C.size_t) (rc C.int) {
	defer guard(&rc)
	*took = 0
	e, c, rc := connOf(id)
	if e == nil {
		return rc
	}
	in := unsafe.Slice(msgs, int(n))
	flags := unsafe.Slice(copied, int(n))
	ncopy, sent := 0, 0
	defer func() {
		e.ms.sends.Add(uint64(sent))
		e.ms.sendCopies.Add(uint64(ncopy))
		e.ms.sendZeroCopy.Add(uint64(sent - ncopy))
	}()
	for i, cm := range in {
		m, cp := goMessage(cm)
		if err := c.Send(m); err != nil {
			return failErr(err)
		}
		flags[i] = 0
		if cp {
			flags[i] = 1
			ncopy++
		}
		sent = i + 1
		*took = C.size_t(sent)
	}
	return 0
}

//export msgrgo_conn_send_copy
func msgrgo_conn_send_copy(id C.uint64_t, msgs *C.msgr_outmsg, n, size C.size_t, took *C.size_t) (rc C.int) {
	defer guard(&rc)
	*took = 0
	e, c, rc := connOf(id)
	if e == nil {
		return rc
	}
	sent := 0
	defer func() { e.ms.countSend(true, sent) }()
	// In chunks of one pack: the connection's loop builds the messages.
	base := unsafe.Pointer(msgs)
	for sent < int(n) {
		k := min(int(n)-sent, packMax)
		sl := getPack(k)
		sl.unused(len(sl.msgs) - k)
		sl.pack(unsafe.Add(base, uintptr(sent)*uintptr(size)), uintptr(size), k)
		if err := c.SendPacked(sl); err != nil {
			sl.Discard() // nothing of the caller's is held
			return failErr(err)
		}
		sent += k
		*took = C.size_t(sent)
	}
	return 0
}

//export msgrgo_conn_wait_held
func msgrgo_conn_wait_held(id C.uint64_t, max C.uint64_t, timeoutMS C.int) (rc C.int) {
	defer guard(&rc)
	_, c, rc := connOf(id)
	if c == nil {
		return rc
	}
	limit := int(min(uint64(max), 1<<62))
	t := time.Duration(timeoutMS) * time.Millisecond
	if timeoutMS < 0 {
		t = -1
	}
	if err := c.WaitHeld(limit, t); err != nil {
		return failErr(err)
	}
	return 0
}

func (ms *mentry) countSend(copied bool, n int) {
	if n == 0 {
		return
	}
	ms.sends.Add(uint64(n))
	if copied {
		ms.sendCopies.Add(uint64(n))
	} else {
		ms.sendZeroCopy.Add(uint64(n))
	}
}

//export msgrgo_conn_op
func msgrgo_conn_op(id C.uint64_t, op C.int) (rc C.int) {
	defer guard(&rc)
	e, c, rc := connOf(id)
	if e == nil {
		return rc
	}
	if op == 0 {
		if err := c.SendKeepalive(); err != nil {
			return failErr(err)
		}
		return 0
	}
	c.MarkDown()
	return 0
}

//export msgrgo_conn_get_info
func msgrgo_conn_get_info(id C.uint64_t, info *C.msgr_conn_info) (rc C.int) {
	defer guard(&rc)
	e, c, rc := connOf(id)
	if e == nil {
		return rc
	}
	info.state = C.int32_t(c.State())
	info.features = C.uint64_t(c.Features())
	pn := c.PeerName()
	info.peer_num = C.int64_t(pn.Num)
	info.peer_type = C.uint8_t(pn.Type)
	if c.IsLossy() {
		info.lossy = 1
	}
	if c.IsLocal() {
		info.local = 1
	}
	st := c.Stats()
	info.msgs_sent = C.uint64_t(st.MsgsOut)
	info.msgs_recv = C.uint64_t(st.MsgsIn)
	info.bytes_sent = C.uint64_t(st.BytesOut)
	info.bytes_recv = C.uint64_t(st.BytesIn)
	info.queued = C.uint64_t(max(st.Queued, 0))
	info.unacked = C.uint64_t(max(st.Unacked, 0))
	if f := c.LastFault(); f != nil {
		info.last_fault = C.int32_t(errCode(f)) // the mapping sees through the Fault to its cause
	}
	info.faults = C.uint32_t(min(c.Faults(), 1<<32-1))
	return 0
}

//export msgrgo_conn_string
func msgrgo_conn_string(id C.uint64_t, what C.int, buf *C.char, n C.size_t) (rc C.int) {
	defer guard(&rc)
	e, c, rc := connOf(id)
	if e == nil {
		return rc
	}
	switch what {
	case 0:
		return writeCString(buf, n, c.PeerAddr().String())
	case 2:
		if f := c.LastFault(); f != nil {
			return writeCString(buf, n, f.Error())
		}
		return writeCString(buf, n, "")
	}
	return writeCString(buf, n, c.PeerName().String())
}

//export msgrgo_conn_priv
func msgrgo_conn_priv(id C.uint64_t, set C.int, v C.uintptr_t, out *C.uintptr_t) (rc C.int) {
	defer guard(&rc)
	e, _, rc := connOf(id)
	if e == nil {
		return rc
	}
	if set != 0 {
		e.priv.Store(uintptr(v))
	} else {
		*out = C.uintptr_t(e.priv.Load())
	}
	return 0
}
