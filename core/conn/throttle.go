package conn

import (
	"sync"
	"sync/atomic"
)

// Throttle is a budget of bytes or messages (Ceph's Throttle, as used by
// the policy throttlers and ms_dispatch_throttle_bytes) that never blocks:
// a connection takes budget for what it has read, and when a throttle is
// full it stops reading (it drops Readable interest on its socket) and
// registers as a waiter. Put gives budget back; when the level falls below
// the maximum the waiters are woken, and each resumes reading on its own
// loop. Nothing is ever dropped.
//
// Budget is taken after the frames are decoded, so a connection can
// overshoot the maximum by at most one read buffer's worth of messages
// before it stops (Ceph takes it before reading each message body; here a
// read fills one buffer with many frames).
//
// A nil *Throttle is unlimited: every method is a no-op. All methods are
// safe from any goroutine.
type Throttle struct {
	name string
	max  int64
	cur  atomic.Int64

	nwait   atomic.Int32 // len(waiters), read without the lock by Put
	mu      sync.Mutex
	waiters map[*Connection]struct{}

	waits atomic.Uint64
}

// NewThrottle returns a throttle of max units; max <= 0 means unlimited
// and returns nil.
func NewThrottle(name string, max int64) *Throttle {
	if max <= 0 {
		return nil
	}
	return &Throttle{name: name, max: max, waiters: map[*Connection]struct{}{}}
}

// Name is the throttle's name (for perf counters).
func (t *Throttle) Name() string {
	if t == nil {
		return ""
	}
	return t.name
}

// Max is the throttle's limit (0 for nil: unlimited).
func (t *Throttle) Max() int64 {
	if t == nil {
		return 0
	}
	return t.max
}

// Current is the budget in use.
func (t *Throttle) Current() int64 {
	if t == nil {
		return 0
	}
	return t.cur.Load()
}

// Waits counts how many times a connection had to stop reading on t.
func (t *Throttle) Waits() uint64 {
	if t == nil {
		return 0
	}
	return t.waits.Load()
}

// Take uses n units. It never fails or blocks: the caller checks Full
// before reading more.
func (t *Throttle) Take(n int64) {
	if t == nil || n == 0 {
		return
	}
	t.cur.Add(n)
}

// Full reports whether the budget is used up.
func (t *Throttle) Full() bool {
	return t != nil && t.cur.Load() >= t.max
}

// Put returns n units and wakes the waiters once the level is below the
// maximum.
func (t *Throttle) Put(n int64) {
	if t == nil || n == 0 {
		return
	}
	v := t.cur.Add(-n)
	if t.nwait.Load() > 0 && v < t.max {
		t.wake()
	}
}

// wait registers c to be woken (c.throttleWake) when t is no longer full.
// It returns false when t is not full any more (c may then get one
// spurious wake-up, which it ignores). The check after registering pairs
// with Put's check of nwait after its Add, so a wake-up cannot be missed.
func (t *Throttle) wait(c *Connection) bool {
	if t == nil {
		return false
	}
	t.mu.Lock()
	if _, ok := t.waiters[c]; !ok {
		t.waiters[c] = struct{}{}
		t.nwait.Add(1)
		t.waits.Add(1)
	}
	t.mu.Unlock()
	if !t.Full() {
		t.wake()
		return false
	}
	return true
}

// forget drops c from the waiters (c closed).
func (t *Throttle) forget(c *Connection) {
	if t == nil || t.nwait.Load() == 0 {
		return
	}
	t.mu.Lock()
	if _, ok := t.waiters[c]; ok {
		delete(t.waiters, c)
		t.nwait.Add(-1)
	}
	t.mu.Unlock()
}

func (t *Throttle) wake() {
	t.mu.Lock()
	if t.cur.Load() >= t.max || len(t.waiters) == 0 {
		t.mu.Unlock()
		return
	}
	ws := make([]*Connection, 0, len(t.waiters))
	for c := range t.waiters {
		ws = append(ws, c)
	}
	clear(t.waiters)
	t.nwait.Store(0)
	t.mu.Unlock()
	for _, c := range ws {
		c.throttleWake()
	}
}

// Budget is the set of throttles a message from one peer type takes
// budget from: the messenger-wide dispatch throttle (ms_dispatch_throttle_
// bytes) and the peer type's policy throttles (Policy.ThrottleBytes /
// ThrottleMessages). The budget of a message is returned once it has been
// dispatched (fast or queued) or dropped; Budget implements
// dispatch.Releaser for that. Nil fields are unlimited.
type Budget struct {
	Dispatch *Throttle // bytes, shared by every connection of the messenger
	Bytes    *Throttle // bytes, per policy (peer type)
	Msgs     *Throttle // messages, per policy (peer type)
}

// Take uses the budget of one message of cost bytes.
func (b *Budget) Take(cost int64) {
	if b == nil {
		return
	}
	b.Dispatch.Take(cost)
	b.Bytes.Take(cost)
	b.Msgs.Take(1)
}

// Release returns the budget of one message of cost bytes
// (dispatch.Releaser).
func (b *Budget) Release(cost int64) {
	if b == nil {
		return
	}
	b.Dispatch.Put(cost)
	b.Bytes.Put(cost)
	b.Msgs.Put(1)
}

// full reports whether any throttle is used up.
func (b *Budget) full() bool {
	return b != nil && (b.Dispatch.Full() || b.Bytes.Full() || b.Msgs.Full())
}

// wait registers c with every full throttle; false means none is full.
func (b *Budget) wait(c *Connection) bool {
	if b == nil {
		return false
	}
	w := false
	for _, t := range [3]*Throttle{b.Dispatch, b.Bytes, b.Msgs} {
		if t.Full() && t.wait(c) {
			w = true
		}
	}
	return w
}

func (b *Budget) forget(c *Connection) {
	if b == nil {
		return
	}
	b.Dispatch.forget(c)
	b.Bytes.forget(c)
	b.Msgs.forget(c)
}
