package event

import (
	"math"
	"time"
)

// timerEntry is one slot of the timer slab. Slots are reused, so adding and
// firing timers allocates nothing once the slab has grown to the peak
// number of pending timers.
type timerEntry struct {
	when int64  // deadline, ns since Center.base (monotonic)
	seq  uint64 // insertion order: equal deadlines fire first-in first-out
	fn   func()
	idx  int32  // position in heap; -1 while the slot is free
	gen  uint32 // bumped when the slot is freed, so old TimerIDs go stale
}

// timerHeap is a binary min-heap of slot numbers ordered by (when, seq),
// over a slab of entries. A TimerID is gen<<32 | slot+1, so CancelTimer
// finds its entry by index (no map) and the generation tells a live id from
// a stale one.
type timerHeap struct {
	slots []timerEntry
	free  []int32
	heap  []int32
	seq   uint64
}

// AddTimer runs fn on the loop after the given delay (Ceph
// create_time_event) and returns its id. A negative delay counts as 0.
// Timers fire in deadline order, equal deadlines in the order they were
// added; a timer added by a timer callback never fires in the same pass.
//
// Loop-only: off the loop it logs and returns 0 (never a valid id), as it
// does for a nil fn or a stopped Center.
func (c *Center) AddTimer(after time.Duration, fn func()) TimerID {
	if err := c.loopOnly(); err != nil {
		c.logf("event[%s]: AddTimer: %v", c.name, err)
		return 0
	}
	if fn == nil {
		c.logf("event[%s]: AddTimer: %v", c.name, errNilFunc)
		return 0
	}
	if after < 0 {
		after = 0
	}
	now := c.now()
	when := now + int64(after)
	if when < now { // overflow: "never", in practice
		when = math.MaxInt64
	}
	return c.timers.add(when, fn)
}

// CancelTimer removes a pending timer (Ceph delete_time_event) and reports
// whether it was pending. A fired, cancelled or unknown id returns false.
// Loop-only: off the loop it logs and returns false.
func (c *Center) CancelTimer(id TimerID) bool {
	if err := c.loopOnly(); err != nil {
		c.logf("event[%s]: CancelTimer: %v", c.name, err)
		return false
	}
	return c.timers.cancel(id)
}

func (h *timerHeap) add(when int64, fn func()) TimerID {
	var s int32
	if n := len(h.free); n > 0 {
		s = h.free[n-1]
		h.free = h.free[:n-1]
	} else {
		s = int32(len(h.slots))
		h.slots = append(h.slots, timerEntry{})
	}
	e := &h.slots[s]
	e.when, e.seq, e.fn = when, h.seq, fn
	h.seq++
	e.idx = int32(len(h.heap))
	h.heap = append(h.heap, s)
	h.up(int(e.idx))
	return TimerID(uint64(e.gen)<<32 | uint64(s+1))
}

func (h *timerHeap) cancel(id TimerID) bool {
	s := int64(uint32(id)) - 1
	if s < 0 || s >= int64(len(h.slots)) {
		return false
	}
	e := &h.slots[s]
	if e.gen != uint32(id>>32) || e.idx < 0 {
		return false
	}
	h.remove(int(e.idx))
	h.release(int32(s))
	return true
}

// next returns the earliest deadline, if any.
func (h *timerHeap) next() (int64, bool) {
	if len(h.heap) == 0 {
		return 0, false
	}
	return h.slots[h.heap[0]].when, true
}

// run fires the due timers (Ceph process_time_events) and returns how many
// ran. Only timers pending when the pass began fire in it, so a callback
// that re-arms itself with delay 0 cannot starve the rest of the loop.
func (h *timerHeap) run(c *Center, now int64) int {
	if len(h.heap) == 0 {
		return 0
	}
	limit := h.seq
	ran := 0
	for len(h.heap) > 0 {
		s := h.heap[0]
		e := &h.slots[s]
		if e.when > now || e.seq >= limit {
			break
		}
		fn := e.fn
		h.remove(0)
		// Free the slot before the call: the id is stale from now on
		// (cancelling it from fn returns false) and fn may reuse the slot.
		h.release(s)
		c.call(fn, "timer")
		ran++
	}
	if ran > 0 {
		c.stats.timers.Add(uint64(ran))
	}
	return ran
}

// reset drops every pending timer without running it (Stop).
func (h *timerHeap) reset() {
	for len(h.heap) > 0 {
		s := h.heap[0]
		h.remove(0)
		h.release(s)
	}
}

func (h *timerHeap) release(s int32) {
	e := &h.slots[s]
	e.fn = nil
	e.idx = -1
	e.gen++
	h.free = append(h.free, s)
}

func (h *timerHeap) less(i, j int) bool {
	a, b := &h.slots[h.heap[i]], &h.slots[h.heap[j]]
	return a.when < b.when || (a.when == b.when && a.seq < b.seq)
}

func (h *timerHeap) swap(i, j int) {
	h.heap[i], h.heap[j] = h.heap[j], h.heap[i]
	h.slots[h.heap[i]].idx = int32(i)
	h.slots[h.heap[j]].idx = int32(j)
}

func (h *timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h *timerHeap) down(i int) {
	n := len(h.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h.swap(i, m)
		i = m
	}
}

// remove takes the heap element at i out of the heap (its slot stays
// allocated; the caller releases it).
func (h *timerHeap) remove(i int) {
	last := len(h.heap) - 1
	if i != last {
		h.swap(i, last)
	}
	h.slots[h.heap[last]].idx = -1
	h.heap = h.heap[:last]
	if i < last {
		h.down(i)
		h.up(i)
	}
}
