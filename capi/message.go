package main

/*
#include "msgr_impl.h"
*/
import "C"

import (
	"unsafe"

	"github.com/msgr-dev/msgr/core/msg"
)

// copyMax is the largest payload a send copies into Go memory. Larger
// payloads are sent straight from the C message's buffers (no copy), which
// stay referenced until the connection releases the Go message; that costs
// one call back into C at release, which only pays off for larger payloads.
const copyMax = 2048

// cSlice views n bytes of C memory at p as a Go slice (no copy).
func cSlice(p *C.uchar, n C.size_t) []byte {
	if n == 0 || p == nil {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))
}

// sendMsg is a Go message built for a C send. They are pooled: the
// connection calls Release once it is done with a message (written, or
// acknowledged on a lossless session), and Release calls DataFree as its
// last touch of the message, which puts it back. A small payload is copied
// into inline, next to the header just written (one less cache line to
// fetch per message than a separate buffer: the sender and the worker
// touch every message on different cores), a medium one into buf; a
// larger one is sent from the C message's buffers, whose reference cm
// holds until the release. (Received messages are lent to C by address,
// never as Go pointers, so payload memory may sit inside this struct.)
type sendMsg struct {
	msg.Link[sendMsg]
	m      msg.Message
	buf    []byte
	cm     *C.struct_msgr_msg
	free   func() // s.release, bound once
	inline [inlineMax]byte
}

// inlineMax is the payload a sendMsg carries inside itself.
const inlineMax = 128

// space returns n bytes of the message's own storage for a copied payload.
func (s *sendMsg) space(n int) []byte {
	if n <= inlineMax {
		return s.inline[:n]
	}
	if cap(s.buf) < n {
		s.buf = make([]byte, n)
	}
	return s.buf[:n]
}

// sendFree holds the released sendMsgs: a C thread takes them and a worker
// releases them, the pattern msg.FreeList is for (sync.Pool's per-P caches
// missed on nearly every get: ~4% of each thread in a W2 C client profile).
var sendFree msg.FreeList[sendMsg, *sendMsg]

func getSendMsg() *sendMsg {
	s := sendFree.Get()
	if s == nil {
		s = &sendMsg{}
		s.free = s.release
	}
	return s
}

func (s *sendMsg) release() {
	if cm := s.cm; cm != nil {
		s.cm = nil
		C.msgrc_msg_put_from_go(cm)
	}
	s.m = msg.Message{}
	if cap(s.buf) > copyMax {
		s.buf = nil
	}
	sendFree.Put(s)
}

func payloadLen(cm *C.struct_msgr_msg) int {
	return int(cm.seg[0].len) + int(cm.seg[1].len) + int(cm.seg[2].len)
}

// goMessage builds the msg.Message to send for the C message cm. If it
// reports copied, the payload was copied and the caller drops cm's
// reference; else the Go message's segments alias cm's buffers and its
// release drops the reference once the connection is done with them.
func goMessage(cm *C.struct_msgr_msg) (m *msg.Message, copied bool) {
	s := getSendMsg()
	m = &s.m
	m.Header = msg.Header{
		Tid:           uint64(cm.tid),
		Type:          uint16(cm._type),
		Priority:      uint16(cm.priority),
		Version:       uint16(cm.version),
		CompatVersion: uint16(cm.compat_version),
		DataOff:       uint16(cm.data_off),
		Flags:         uint8(cm.hflags),
	}
	m.DataFree = s.free
	f, mi, d := &cm.seg[0], &cm.seg[1], &cm.seg[2]
	total := payloadLen(cm)
	if total > copyMax {
		s.cm = cm
		m.Front = cSlice(f.p, f.len)
		m.Middle = cSlice(mi.p, mi.len)
		m.Data = cSlice(d.p, d.len)
		return m, false
	}
	buf := s.space(total)
	n := copy(buf, cSlice(f.p, f.len))
	n2 := n + copy(buf[n:], cSlice(mi.p, mi.len))
	copy(buf[n2:], cSlice(d.p, d.len))
	if f.len > 0 {
		m.Front = buf[:n:n]
	}
	if mi.len > 0 {
		m.Middle = buf[n:n2:n2]
	}
	if d.len > 0 {
		m.Data = buf[n2:total:total]
	}
	return m, true
}

// fillRx writes the received message m into the C message cm whose
// payload storage (front+middle+data bytes) starts at tail.
func fillRx(cm *C.struct_msgr_msg, tail unsafe.Pointer, m *msg.Message) {
	cm._type = C.uint16_t(m.Type)
	cm.priority = C.uint16_t(m.Priority)
	cm.version = C.uint16_t(m.Version)
	cm.compat_version = C.uint16_t(m.CompatVersion)
	cm.data_off = C.uint16_t(m.DataOff)
	cm.hflags = C.uint8_t(m.Flags)
	cm.src_type = C.uint8_t(m.Src.Type)
	cm.src_num = C.int64_t(m.Src.Num)
	cm.seq = C.uint64_t(m.Seq)
	cm.tid = C.uint64_t(m.Tid)
	off := 0
	for i, b := range [3][]byte{m.Front, m.Middle, m.Data} {
		if len(b) == 0 {
			continue
		}
		p := unsafe.Add(tail, off)
		copy(unsafe.Slice((*byte)(p), len(b)), b)
		cm.seg[i].p = (*C.uchar)(p)
		cm.seg[i].len = C.size_t(len(b))
		off += len(b)
	}
}

// bytesAddr is the address C gets for a Go byte slice lent for one call
// (see cDispatcher.callMsg).
func bytesAddr(b []byte) C.uintptr_t {
	if len(b) == 0 {
		return 0
	}
	return C.uintptr_t(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}
