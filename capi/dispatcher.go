package main

/*
#include <stdlib.h>
#include "msgr_impl.h"
*/
import "C"

import (
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/msgr-dev/msgr/core/dispatch"
	"github.com/msgr-dev/msgr/core/msg"
)

// cDispatcher adapts a C msgr_dispatcher_ops (copied into C memory by the
// shim) to dispatch.Dispatcher. Every call crosses into C through the
// shim's trampolines; the received message is lent to C for the call
// (its segments passed as arguments, never stored by Go in C memory).
type cDispatcher struct {
	d  *C.struct_msgrc_dispatcher
	ms *mentry

	hasDispatch, hasFast, fastAll, hasCopy bool
	hasEv                                  [7]bool // by MSGR_EVENT_*

	// No answer of can_fast_dispatch is cached by message address: received
	// messages are pooled, so an address comes back as another message (a
	// cached "no" for a slow message sent the next fast one, reusing its
	// struct, to the slow path, where no dispatcher took it: lost).
	released atomic.Bool

	// The worker that dispatches takes these with one swap and gives them
	// back with one CAS (a second worker dispatching at once uses the
	// shared pools): cheaper than a pool per call on the W1 path.
	rxSpare   atomic.Pointer[[rxChunk]C.struct_msgrc_rx]
	copySpare atomic.Pointer[rxCopy]
}

func newCDispatcher(ms *mentry, d *C.struct_msgrc_dispatcher) *cDispatcher {
	x := &cDispatcher{d: d, ms: ms}
	ops := &d.ops
	x.hasDispatch = ops.dispatch != nil
	canTake := ops.fast_dispatch != nil || ops.fast_dispatch_copy != nil
	x.fastAll = ops.flags&C.MSGR_DISPATCH_F_FAST_ALL != 0 && canTake
	x.hasCopy = ops.fast_dispatch_copy != nil
	x.hasFast = x.fastAll || ops.can_fast_dispatch != nil && canTake
	x.hasEv[C.MSGR_EVENT_CONNECT] = ops.handle_connect != nil
	x.hasEv[C.MSGR_EVENT_ACCEPT] = ops.handle_accept != nil
	x.hasEv[C.MSGR_EVENT_RESET] = ops.handle_reset != nil
	x.hasEv[C.MSGR_EVENT_REMOTE_RESET] = ops.handle_remote_reset != nil
	x.hasEv[C.MSGR_EVENT_REFUSED] = ops.handle_refused != nil
	return x
}

// release calls the C release callback once (destroy, after every thread
// that could call this dispatcher has stopped).
func (x *cDispatcher) release() {
	if x.released.Swap(true) {
		return
	}
	C.msgrc_call_release(x.d)
	x.d = nil
	if b := x.copySpare.Swap(nil); b != nil {
		putRxCopy(b) // C memory: back to the shared list, not lost
	}
	dispatchers.Add(-1)
}

func (x *cDispatcher) callMsg(kind C.int, c dispatch.Conn, m *msg.Message) bool {
	var cid uint64
	var priv uintptr
	if c != nil {
		cid, priv = x.ms.connID(c)
	}
	packed := uint64(m.Type) | uint64(m.Priority)<<16 | uint64(m.Version)<<32 | uint64(m.CompatVersion)<<48
	packed2 := uint64(m.Src.Type) | uint64(m.Flags)<<8 | uint64(m.DataOff)<<16
	// The segments go as integers, not pointers: cgo's default check of
	// every pointer argument cost about a tenth of a small message's
	// receive. The memory is Go heap (the collector does not move it) kept
	// alive by m until after the call, and C only reads it during the call
	// (msgr_msg_ref copies it out), which is exactly the rule the check
	// enforces for pointer arguments; the cgocheck2 test build still
	// checks that Go never stores Go pointers in C memory.
	r := C.msgrc_call_msg(x.d, kind, C.uint64_t(cid), C.uintptr_t(priv), C.uint64_t(m.Seq), C.uint64_t(m.Tid),
		C.int64_t(m.Src.Num), C.uint64_t(packed), C.uint64_t(packed2),
		bytesAddr(m.Front), C.size_t(len(m.Front)),
		bytesAddr(m.Middle), C.size_t(len(m.Middle)),
		bytesAddr(m.Data), C.size_t(len(m.Data))) != 0
	runtime.KeepAlive(m)
	return r
}

func (x *cDispatcher) callEvent(ev int, c dispatch.Conn) bool {
	if !x.hasEv[ev] {
		return false
	}
	cid, priv := x.ms.connID(c)
	return C.msgrc_call_event(x.d, C.int(ev), C.uint64_t(cid), C.uintptr_t(priv)) != 0
}

// Dispatch (ms_dispatch): C sees a borrowed message; if it took it, the
// message is released here (C kept a copy if it wanted one).
func (x *cDispatcher) Dispatch(c dispatch.Conn, m *msg.Message) bool {
	if !x.hasDispatch {
		return false
	}
	if x.callMsg(2, c, m) {
		m.Release()
		return true
	}
	return false
}

// TakesAll (dispatch.AllTaker): MSGR_DISPATCH_F_FAST_ALL.
func (x *cDispatcher) TakesAll() bool { return x.fastAll }

func (x *cDispatcher) CanFastDispatch(m *msg.Message) bool {
	if !x.hasFast {
		return false
	}
	if x.fastAll {
		return true
	}
	return x.callMsg(0, nil, m)
}

func (x *cDispatcher) FastDispatch(c dispatch.Conn, m *msg.Message) {
	if x.hasCopy {
		one := [1]*msg.Message{m}
		x.fastCopy(c, one[:])
		return
	}
	x.callMsg(1, c, m)
	m.Release()
}

// rxChunk is how many messages one crossing into C carries (a connection's
// batch is at most dispatch's 256).
const rxChunk = 256

// rxPool holds the descriptor arrays FastDispatchBatch fills (Go memory
// without Go pointers, so C may read it during the call).
var rxPool = sync.Pool{New: func() any { return new([rxChunk]C.struct_msgrc_rx) }}

// FastDispatchBatch (dispatch.BatchDispatcher): one read's messages go to
// C in one crossing per rxChunk (measured: one crossing per message cost
// the C server ~14% of W2). With fast_dispatch_copy, Go writes what C is
// given; otherwise a loop in the shim lends each message to fast_dispatch.
func (x *cDispatcher) FastDispatchBatch(c dispatch.Conn, ms []*msg.Message) {
	if x.hasCopy {
		x.fastCopy(c, ms)
		return
	}
	cid, priv := x.ms.connID(c)
	rx := x.rxSpare.Swap(nil)
	if rx == nil {
		rx = rxPool.Get().(*[rxChunk]C.struct_msgrc_rx)
	}
	for len(ms) > 0 {
		k := min(len(ms), rxChunk)
		for i, m := range ms[:k] {
			r := &rx[i]
			r.seq = C.uint64_t(m.Seq)
			r.tid = C.uint64_t(m.Tid)
			r.src_num = C.int64_t(m.Src.Num)
			r.packed = C.uint64_t(uint64(m.Type) | uint64(m.Priority)<<16 | uint64(m.Version)<<32 | uint64(m.CompatVersion)<<48)
			r.packed2 = C.uint64_t(uint64(m.Src.Type) | uint64(m.Flags)<<8 | uint64(m.DataOff)<<16)
			r.seg[0], r.len[0] = bytesAddr(m.Front), C.size_t(len(m.Front))
			r.seg[1], r.len[1] = bytesAddr(m.Middle), C.size_t(len(m.Middle))
			r.seg[2], r.len[2] = bytesAddr(m.Data), C.size_t(len(m.Data))
		}
		// As an integer, like the segments (see callMsg): Go memory
		// without pointers, kept alive by rx, read by C during the call.
		C.msgrc_call_fast_batch(x.d, C.uint64_t(cid), C.uintptr_t(priv),
			C.uintptr_t(uintptr(unsafe.Pointer(&rx[0]))), C.size_t(k))
		runtime.KeepAlive(rx)
		// The segments were Go memory lent for the call: release after.
		for i, m := range ms[:k] {
			m.Release()
			rx[i] = C.struct_msgrc_rx{}
		}
		ms = ms[k:]
		if len(ms) > 0 {
			// A callback may have set priv: the next chunk starts from it.
			cid, priv = x.ms.connID(c)
		}
	}
	if !x.rxSpare.CompareAndSwap(nil, rx) {
		rxPool.Put(rx)
	}
}

// rxCopy is the C memory a fast_dispatch_copy call reads: the msgr_rxmsg
// array and the payloads back to back. Go fills both in one pass and
// releases each message as soon as it is copied, so C reads nothing of
// Go's and the messages go back to their pool hot.
type rxCopy struct {
	rx     *C.msgr_rxmsg // rxChunk of them
	buf    *C.uchar
	bufCap int
}

// rxCopyKeep: a buffer grown past this is freed after its call.
const rxCopyKeep = 1 << 22

// rxCopies holds the idle rxCopy: each dispatcher keeps one spare while it
// lives, and workers dispatching at once take more; never freed, so there
// are at most as many as dispatchers plus workers that ever ran at once.
var rxCopies struct {
	mu   sync.Mutex
	free []*rxCopy
}

func getRxCopy() *rxCopy {
	rxCopies.mu.Lock()
	var b *rxCopy
	if n := len(rxCopies.free); n > 0 {
		b = rxCopies.free[n-1]
		rxCopies.free = rxCopies.free[:n-1]
	}
	rxCopies.mu.Unlock()
	if b == nil {
		b = &rxCopy{rx: (*C.msgr_rxmsg)(C.calloc(rxChunk, C.size_t(unsafe.Sizeof(C.msgr_rxmsg{}))))}
		if b.rx == nil {
			return nil
		}
	}
	return b
}

func putRxCopy(b *rxCopy) {
	if b.bufCap > rxCopyKeep {
		C.free(unsafe.Pointer(b.buf))
		b.buf, b.bufCap = nil, 0
	}
	rxCopies.mu.Lock()
	rxCopies.free = append(rxCopies.free, b)
	rxCopies.mu.Unlock()
}

// fastCopy hands ms to fast_dispatch_copy, rxChunk messages a call, and
// releases them. Out of C memory, the messages are dropped (as the
// per-message path drops one it cannot lend).
func (x *cDispatcher) fastCopy(c dispatch.Conn, ms []*msg.Message) {
	b := x.copySpare.Swap(nil)
	if b == nil {
		b = getRxCopy()
	}
	for len(ms) > 0 {
		k := min(len(ms), rxChunk)
		total := 0
		for _, m := range ms[:k] {
			total += len(m.Front) + len(m.Middle) + len(m.Data)
		}
		// A buffer even for no payload bytes: C is promised a valid one.
		if b != nil && (b.bufCap < total || b.buf == nil) {
			C.free(unsafe.Pointer(b.buf))
			b.bufCap = max(total, 4096)
			if b.buf = (*C.uchar)(C.malloc(C.size_t(b.bufCap))); b.buf == nil {
				b.bufCap = 0
			}
		}
		if b == nil || b.buf == nil {
			for _, m := range ms[:k] {
				m.Release()
			}
			ms = ms[k:]
			continue
		}
		// A callback may set priv: each call starts from the current one.
		cid, priv := x.ms.connID(c)
		rx := unsafe.Slice(b.rx, k)
		buf := unsafe.Slice((*byte)(unsafe.Pointer(b.buf)), total)
		off := 0
		for i, m := range ms[:k] {
			r := &rx[i]
			// Field by field: a composite literal is built on the stack
			// and copied. The reserved fields stay zero from calloc.
			r._type = C.MSGR_EVENT_MESSAGE
			r.msg_type, r.priority = C.uint16_t(m.Type), C.uint16_t(m.Priority)
			r.conn.id = C.uint64_t(cid)
			*(*uintptr)(unsafe.Pointer(&r.conn_priv)) = priv // C's pointer, kept as an integer
			r.tid, r.seq, r.src_num = C.uint64_t(m.Tid), C.uint64_t(m.Seq), C.int64_t(m.Src.Num)
			r.version, r.compat_version = C.uint16_t(m.Version), C.uint16_t(m.CompatVersion)
			r.src_type, r.data_off = C.uint8_t(m.Src.Type), C.uint16_t(m.DataOff)
			r.off = C.uint64_t(off)
			r.front_len, r.middle_len, r.data_len = C.uint32_t(len(m.Front)), C.uint32_t(len(m.Middle)), C.uint32_t(len(m.Data))
			off += copy(buf[off:], m.Front)
			off += copy(buf[off:], m.Middle)
			off += copy(buf[off:], m.Data)
			m.Release()
		}
		C.msgrc_call_copy(x.d, C.uint64_t(cid), C.uintptr_t(priv),
			C.uintptr_t(uintptr(unsafe.Pointer(b.rx))), C.size_t(k), C.uintptr_t(uintptr(unsafe.Pointer(b.buf))))
		ms = ms[k:]
	}
	if b != nil && (b.bufCap > rxCopyKeep || !x.copySpare.CompareAndSwap(nil, b)) {
		putRxCopy(b)
	}
}

func (x *cDispatcher) HandleConnect(c dispatch.Conn) { x.callEvent(C.MSGR_EVENT_CONNECT, c) }
func (x *cDispatcher) HandleAccept(c dispatch.Conn)  { x.callEvent(C.MSGR_EVENT_ACCEPT, c) }
func (x *cDispatcher) HandleReset(c dispatch.Conn) bool {
	return x.callEvent(C.MSGR_EVENT_RESET, c)
}
func (x *cDispatcher) HandleRemoteReset(c dispatch.Conn) { x.callEvent(C.MSGR_EVENT_REMOTE_RESET, c) }
func (x *cDispatcher) HandleRefused(c dispatch.Conn) bool {
	return x.callEvent(C.MSGR_EVENT_REFUSED, c)
}
