package main

/*
#include "msgr_impl.h"
*/
import "C"

import (
	"math/bits"
	"sync/atomic"
	"unsafe"

	"github.com/msgr-dev/msgr/core/msg"
)

// sendPack carries the messages of one msgr_conn_send_copy call (up to
// packMax) and is a conn.Packed: the C thread only copies each message's
// header fields (descs) and payload (arena) in one sequential sweep, and
// the connection's loop builds the msg.Messages (msgs) when it drains
// them, on the core that frames and releases them, so a message's own
// cache lines never cross cores. (Measured, W2 C client: building pooled
// messages one by one on the C thread while the worker released them on
// the other core was 16% of the profile, mostly cache misses.) A pack
// goes back to its free list when its last message is released, so the
// list moves once per call, not once per message. Packs come in
// power-of-two sizes up to packMax: a call never holds more than twice
// the slots it uses.
type sendPack struct {
	msg.Link[sendPack]
	refs  atomic.Int32 // messages still held
	class int
	n     int // messages described: descs[:n], payloads back to back in arena
	descs []outDesc
	arena []byte
	msgs  []msg.Message // built by the loop; segments alias the arena
	free  func()        // put, bound once: every message's DataFree
}

// outDesc is a msgr_outmsg's header, as send_copy copies it.
type outDesc struct {
	tid                          uint64
	typ, prio, version, compat   uint16
	frontLen, middleLen, dataLen uint32
}

const (
	packClasses = 7
	packMax     = 1 << (packClasses - 1) // 64
	// arenaKeepPerMsg bounds the arena a free pack keeps (per slot), and
	// packKeep the messages' worth of packs each class keeps: what idle
	// packs hold stays under 7 classes x 16384 x (144+32+256) B, about 50 MB,
	// and a W2 window (16384 messages of 64 B) is recycled whole.
	arenaKeepPerMsg = 256
	packKeep        = 1 << 14
)

// packFree holds the released packs by class: a C thread takes them and a
// worker gives them back, the pattern msg.FreeList is for (sync.Pool's
// per-P caches missed on nearly every get).
var packFree [packClasses]msg.FreeList[sendPack, *sendPack]

func init() {
	for c := range packFree {
		packFree[c].Max = int64(packKeep >> c)
	}
}

// getPack returns a pack of at least n (1..packMax) messages, all of them
// held: the caller gives back those it does not use with unused.
func getPack(n int) *sendPack {
	c := bits.Len(uint(n - 1))
	s := packFree[c].Get()
	if s == nil {
		s = &sendPack{class: c, msgs: make([]msg.Message, 1<<c), descs: make([]outDesc, 1<<c)}
		s.free = s.put
	}
	s.refs.Store(int32(len(s.msgs)))
	return s
}

// unused gives back k slots the caller took and will not send.
func (s *sendPack) unused(k int) {
	if k > 0 && s.refs.Add(int32(-k)) == 0 {
		s.n = 0
		if cap(s.arena) > arenaKeepPerMsg*len(s.msgs) {
			s.arena = nil
		}
		packFree[s.class].Put(s)
	}
}

func (s *sendPack) put() { s.unused(1) }

// pack copies k msgr_outmsgs (size bytes apart from base) into the pack,
// which holds exactly k slots. The caller checked the lengths (the shim).
func (s *sendPack) pack(base unsafe.Pointer, size uintptr, k int) {
	total := 0
	for i := 0; i < k; i++ {
		o := (*C.msgr_outmsg)(unsafe.Add(base, uintptr(i)*size))
		total += int(o.front_len) + int(o.middle_len) + int(o.data_len)
	}
	if cap(s.arena) < total {
		s.arena = make([]byte, total)
	}
	buf := s.arena[:total]
	off := 0
	for i := 0; i < k; i++ {
		o := (*C.msgr_outmsg)(unsafe.Add(base, uintptr(i)*size))
		fl, ml, dl := int(o.front_len), int(o.middle_len), int(o.data_len)
		s.descs[i] = outDesc{
			tid: uint64(o.tid), typ: uint16(o._type), prio: uint16(o.priority),
			version: uint16(o.version), compat: uint16(o.compat_version),
			frontLen: uint32(fl), middleLen: uint32(ml), dataLen: uint32(dl),
		}
		off += copy(buf[off:], unsafe.Slice((*byte)(o.front), fl))
		off += copy(buf[off:], unsafe.Slice((*byte)(o.middle), ml))
		off += copy(buf[off:], unsafe.Slice((*byte)(o.data), dl))
	}
	s.n = k
}

// Len, Unpack and Discard make a pack a conn.Packed.
func (s *sendPack) Len() int { return s.n }

// Unpack builds the pack's messages (on the connection's loop); their
// segments alias the arena, which stays until the last is released.
func (s *sendPack) Unpack(out []*msg.Message) []*msg.Message {
	off := 0
	for i := 0; i < s.n; i++ {
		d := &s.descs[i]
		m := &s.msgs[i]
		m.Header = msg.Header{
			Tid: d.tid, Type: d.typ, Priority: d.prio,
			Version: d.version, CompatVersion: d.compat, Flags: msg.FlagsDefault,
		}
		if m.Priority == 0 {
			m.Priority = msg.PrioDefault
		}
		if m.Version == 0 {
			m.Version = 1
		}
		if m.CompatVersion == 0 {
			m.CompatVersion = 1
		}
		m.Src = msg.EntityName{}
		m.DataFree = s.free
		m.Front, off = segment(s.arena, off, int(d.frontLen))
		m.Middle, off = segment(s.arena, off, int(d.middleLen))
		m.Data, off = segment(s.arena, off, int(d.dataLen))
		out = append(out, m)
	}
	return out
}

// segment is arena[off:off+n] (nil if n is 0) and the offset after it.
func segment(arena []byte, off, n int) ([]byte, int) {
	if n == 0 {
		return nil, off
	}
	return arena[off : off+n : off+n], off + n
}

func (s *sendPack) Discard() { s.unused(s.n) }
