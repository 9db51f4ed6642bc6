package conn

import (
	"math/bits"
	"sync"

	"github.com/msgr-dev/msgr/core/msg"
)

// maxPooled bounds the buffers kept for reuse: a buffer grown for a huge
// frame beyond this goes back to the collector.
const maxPooled = 16 << 20

// bufPool lends read and write buffers to connections while bytes are in
// flight: a connection takes one when it has something to read or write
// and gives it back once the buffer is empty, so idle connections hold no
// buffer and a busy messenger reuses a few. Buffers travel with a holder
// pointer so that lending and returning allocate nothing.
type bufPool struct {
	min int
	p   sync.Pool
}

// sharedPools are the buffer pools by minimum size, shared by every
// Config: messengers that share a stack (W5's client makes one per
// connection, as 100 clients would) then reuse the same few hot buffers
// instead of each keeping its own cold ones (measured, W5 over io_uring,
// medians of 11 interleaved runs: the client's CPU per round trip fell
// from 1.08 to 1.00 µs user and 5.44 to 5.24 µs system).
var (
	sharedMu    sync.Mutex
	sharedPools = map[int]*bufPool{}
)

// sharedPool returns the pool of buffers of min bytes.
func sharedPool(min int) *bufPool {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	bp := sharedPools[min]
	if bp == nil {
		bp = &bufPool{min: min}
		sharedPools[min] = bp
	}
	return bp
}

func (bp *bufPool) get() *[]byte {
	if v := bp.p.Get(); v != nil {
		return v.(*[]byte)
	}
	b := make([]byte, bp.min)
	return &b
}

func (bp *bufPool) put(h *[]byte) {
	if c := cap(*h); c < bp.min || c > maxPooled {
		return
	}
	*h = (*h)[:cap(*h)]
	bp.p.Put(h)
}

// takeRbuf makes sure the connection has a read buffer. mu held.
func (c *Connection) takeRbuf() {
	if c.rbuf == nil {
		c.rh = c.cfg.rpool.get()
		c.rbuf = *c.rh
		c.rstart, c.rend = 0, 0
	}
}

// giveRbuf returns the read buffer if it holds no unread byte. mu held.
func (c *Connection) giveRbuf() {
	if c.rbuf == nil || c.rstart != c.rend {
		return
	}
	if c.rh != nil {
		*c.rh = c.rbuf
		c.cfg.rpool.put(c.rh)
	}
	c.rbuf, c.rh = nil, nil
	c.rstart, c.rend = 0, 0
}

// takeWbuf makes sure the connection has an (empty) output buffer.
func (c *Connection) takeWbuf() {
	if c.wh == nil {
		c.wh = c.cfg.wpool.get()
		c.wbuf, c.wpos = (*c.wh)[:0], 0
	}
}

// giveWbuf returns the output buffer if everything in it was written.
func (c *Connection) giveWbuf() {
	if c.wh == nil || c.wpos != len(c.wbuf) {
		return
	}
	*c.wh = c.wbuf
	c.cfg.wpool.put(c.wh)
	c.wbuf, c.wh, c.wpos = nil, nil, 0
}

// Received messages come from rxPool: a message and its payload buffer
// travel together in an rxMsg, and the message's DataFree (called by
// msg.Release once the dispatcher is done) puts the pair back, so the
// receive path allocates nothing in steady state. The payload is copied
// out of the read buffer into the pooled one (for small messages that is
// cheaper than reference-counting the read buffer; large ones reuse a
// pooled buffer instead of a fresh allocation). A message the application
// never releases is simply not reused: the collector takes it.
type rxMsg struct {
	msg.Link[rxMsg]
	m    msg.Message
	buf  []byte
	free func() // bound to this rxMsg once, so Release allocates nothing
	cls  int
}

// rxClasses are payload size classes (powers of 4 from 256 B to 16 MiB):
// a pool per class keeps small messages from holding huge buffers.
const (
	rxMinShift = 8
	rxClasses  = 9 // 256 B, 1 KiB, ... 16 MiB (= maxPooled)
)

// rxPools are free lists, not sync.Pools: a worker takes and the
// application's thread (a C or Python receiver, the dispatch goroutine)
// gives back. The larger classes keep fewer buffers.
var rxPools [rxClasses]msg.FreeList[rxMsg, *rxMsg]

func init() {
	for c := range rxPools {
		rxPools[c].Max = max(8, int64(1<<16)>>(2*c))
	}
}

// rxClass returns the size class for n payload bytes, or -1 if too big to
// pool.
func rxClass(n int) int {
	if n <= 1<<rxMinShift {
		return 0
	}
	c := (bits.Len(uint(n-1)) - rxMinShift + 1) / 2
	if c >= rxClasses {
		return -1
	}
	return c
}

// newRxMessage is protocol.Config.NewMessage for every connection.
func newRxMessage(n int) (*msg.Message, []byte) {
	cls := rxClass(n)
	if cls < 0 {
		return &msg.Message{}, make([]byte, n)
	}
	r := rxPools[cls].Get()
	if r == nil {
		r = &rxMsg{cls: cls, buf: make([]byte, 1<<(rxMinShift+2*cls))}
		r.free = r.put
	}
	r.m.DataFree = r.free
	return &r.m, r.buf[:n:n]
}

// put returns the pair to its pool. msg.Release has already cleared the
// message's segments and DataFree; the rest is cleared here so the pool
// keeps no reference to what the last user hung on it.
func (r *rxMsg) put() {
	r.m = msg.Message{}
	rxPools[r.cls].Put(r)
}
