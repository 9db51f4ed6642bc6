package conn

import "sync"

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
