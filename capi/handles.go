package main

import (
	"sync"
	"sync/atomic"
)

// Handle tables: the ids behind msgr_messenger and msgr_conn (STYLE.md §5,
// nng's ids, libtailscale's handle table).
//
// An id is gen<<32 | index. The index picks a slot in fixed chunks that
// never move, so a lookup is two atomic loads and no lock (the send path
// looks up a connection per call). The entry itself records the id it was
// stored under, so a lookup of a stale id (the slot was freed, or reused
// under a new generation) sees a different id and fails: unknown and closed
// ids return nil, never panic. Generations start at a non-trivial value
// (libtailscale's 42<<16+1 idea) so small integers are never valid ids, and
// grow by one per reuse of a slot, so an id is not reused before 2^32 - 42
// reuses of the same slot.

const (
	chunkBits  = 8
	chunkSize  = 1 << chunkBits
	maxChunks  = 1 << 12 // 1,048,576 live handles per table
	firstGen   = 0x2A
	indexLimit = maxChunks * chunkSize
)

type handleEntry interface {
	handleID() uint64
}

type table[T any, P interface {
	*T
	handleEntry
}] struct {
	chunks [maxChunks]atomic.Pointer[[chunkSize]atomic.Pointer[T]]

	mu   sync.Mutex
	free []uint32          // freed indices, reused LIFO
	gens map[uint32]uint32 // next generation for a freed index
	next uint32            // next never-used index (index 0 is never used)
	live atomic.Int64
}

// reserve returns a new id, or 0 when the table is full. The caller then
// builds the entry with that id and calls set.
func (t *table[T, P]) reserve() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var idx, gen uint32
	if n := len(t.free); n > 0 {
		idx = t.free[n-1]
		t.free = t.free[:n-1]
		gen = t.gens[idx]
		delete(t.gens, idx)
	} else {
		if t.next == 0 {
			t.next = 1
		}
		if t.next >= indexLimit {
			return 0
		}
		idx = t.next
		t.next++
		gen = firstGen
		c := idx >> chunkBits
		if t.chunks[c].Load() == nil {
			t.chunks[c].Store(new([chunkSize]atomic.Pointer[T]))
		}
	}
	t.live.Add(1)
	return uint64(gen)<<32 | uint64(idx)
}

// set publishes e under its id (from reserve).
func (t *table[T, P]) set(e *T) {
	id := P(e).handleID()
	t.chunks[uint32(id)>>chunkBits].Load()[uint32(id)&(chunkSize-1)].Store(e)
}

// get returns the entry for id, or nil if id is unknown or stale.
func (t *table[T, P]) get(id uint64) *T {
	idx := uint32(id)
	c := idx >> chunkBits
	if c >= maxChunks {
		return nil
	}
	ch := t.chunks[c].Load()
	if ch == nil {
		return nil
	}
	e := ch[idx&(chunkSize-1)].Load()
	if e == nil || P(e).handleID() != id {
		return nil
	}
	return e
}

// remove makes id stale. It reports whether id was live.
func (t *table[T, P]) remove(id uint64) bool {
	idx := uint32(id)
	gen := uint32(id >> 32)
	t.mu.Lock()
	defer t.mu.Unlock()
	c := idx >> chunkBits
	if c >= maxChunks || t.chunks[c].Load() == nil {
		return false
	}
	slot := &t.chunks[c].Load()[idx&(chunkSize-1)]
	e := slot.Load()
	if e == nil || P(e).handleID() != id {
		return false
	}
	slot.Store(nil)
	if t.gens == nil {
		t.gens = make(map[uint32]uint32)
	}
	next := gen + 1
	if next < firstGen { // wrapped: skip the small values
		next = firstGen
	}
	t.gens[idx] = next
	t.free = append(t.free, idx)
	t.live.Add(-1)
	return true
}

// unreserve gives back an id from reserve that was never set.
func (t *table[T, P]) unreserve(id uint64) {
	idx := uint32(id)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gens == nil {
		t.gens = make(map[uint32]uint32)
	}
	t.gens[idx] = uint32(id>>32) + 1
	t.free = append(t.free, idx)
	t.live.Add(-1)
}

// each calls fn for every live entry (a snapshot; fn may call remove).
func (t *table[T, P]) each(fn func(*T)) {
	t.mu.Lock()
	n := t.next
	t.mu.Unlock()
	for idx := uint32(1); idx < n; idx++ {
		ch := t.chunks[idx>>chunkBits].Load()
		if ch == nil {
			continue
		}
		if e := ch[idx&(chunkSize-1)].Load(); e != nil {
			fn(e)
		}
	}
}
