package conn

import (
	"errors"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/msgr-dev/msgr/core/dispatch"
	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/protocol"
	"github.com/msgr-dev/msgr/core/stack"
)

// maxReadsPerEvent bounds the reads of one readable event, so one busy
// connection cannot starve the others of its worker (level-triggered: the
// loop comes back if bytes remain).
const maxReadsPerEvent = 8

// maxWritesPerFlush bounds the writes of one flush for the same reason.
const maxWritesPerFlush = 16

// --- starting -------------------------------------------------------------

// connectLocked starts a connection attempt: a new client machine over the
// session and a nonblocking connect (Ceph's START_CONNECT). mu held; any
// goroutine.
func (c *Connection) connectLocked() {
	if c.closed {
		return
	}
	if !c.target.AddrPort.IsValid() || c.target.Port() == 0 {
		c.cfg.dout(1, "%v: %v", c, ErrNoTarget)
		c.setState(StateStandby)
		return
	}
	if c.wasOpen || c.State() == StateBackoff || c.State() == StateStandby {
		c.cfg.Counters.Reconnects.Add(1)
	}
	c.gen++
	gen := c.gen
	var auth protocol.AuthClient
	if c.cfg.AuthClient != nil {
		auth = c.cfg.AuthClient()
	}
	m, err := newClientMachine(c.proto, protocol.Config{
		MyType:     c.cfg.Name.Type,
		MyGID:      c.cfg.Name.Num,
		MyAddrs:    c.host.MyAddrs(),
		Nonce:      c.cfg.Nonce,
		PeerType:   c.peerType,
		TargetAddr: c.target,
		Policy:     c.policy,
		AuthClient: auth,
		GlobalSeq:  c.host.GlobalSeq,
		Events:     c.ev,
		Release:    releaseMsg,
		NewMessage: newRxMessage,
		Limits:     c.cfg.Limits,
	}, c.sess)
	if err != nil {
		c.cfg.dout(0, "%v: cannot start a client machine: %v", c, err)
		c.stopLocked(true)
		return
	}
	c.m = m
	c.role = protocol.RoleClient
	c.setState(StateConnecting)
	c.setArmed(true) // Ready drains what Send stages meanwhile
	c.connectStart = time.Now()
	timeout := max(c.cfg.ReadyTimeout, 0)
	err = c.cfg.Stack.Connect(c.target.AddrPort, c.cfg.SockOpts, timeout, func(s *stack.Socket, err error) {
		c.onConnected(gen, s, err)
	})
	if err != nil {
		// The stack is stopping (messenger shutdown) or the address is
		// unusable: nothing will ever connect.
		c.cfg.dout(1, "%v: connect: %v", c, err)
		c.stopLocked(!errors.Is(err, stack.ErrStopped))
	}
}

// onConnected is the connect callback (Ceph's STATE_CONNECTING result).
func (c *Connection) onConnected(gen uint64, sock *stack.Socket, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen || c.closed || c.m == nil {
		if sock != nil {
			sock.Close()
		}
		return
	}
	if err != nil {
		if w := c.loopWorker(); w != nil {
			c.setWorker(w)
		}
		c.cfg.dout(1, "%v: connect failed: %v", c, err)
		if errors.Is(err, unix.ECONNREFUSED) {
			c.cfg.Counters.Refused.Add(1)
			_ = c.cfg.Queue.QueueRefused(c)
		}
		c.socketFault(err)
		return
	}
	c.attach(sock)
	if c.sock == sock {
		c.arm(&c.tHandshake, c.cfg.ReadyTimeout, c.onHandshakeTimeout)
	}
	c.settle()
}

// startAccept begins the server handshake on an accepted socket. mu held,
// on the socket's loop.
func (c *Connection) startAccept(sock *stack.Socket) {
	c.pending = nil
	if c.closed {
		sock.Close()
		return
	}
	my := c.host.MyAddrs()
	if len(my) > 0 {
		// A wildcard bind: tell clients the address they reached.
		fixed := make(msg.AddrVec, len(my))
		for i, a := range my {
			if a.IsBlank() || a.AddrPort.Addr().IsUnspecified() {
				a.AddrPort = sockAddrPort(sock, a.Port())
			}
			fixed[i] = a
		}
		my = fixed
	}
	m, err := newServerMachine(c.proto, protocol.Config{
		MyType:         c.cfg.Name.Type,
		MyGID:          c.cfg.Name.Num,
		MyAddrs:        my,
		Nonce:          c.cfg.Nonce,
		PeerSocketAddr: msg.Addr{Type: c.proto, AddrPort: sock.RemoteAddr()},
		PolicyFor:      c.host.PolicyFor,
		AuthServer:     c.cfg.AuthServer,
		Registry:       c.reg,
		GlobalSeq:      c.host.GlobalSeq,
		Events:         c.ev,
		Release:        releaseMsg,
		NewMessage:     newRxMessage,
		Limits:         c.cfg.Limits,
	})
	if err != nil {
		c.cfg.dout(0, "%v: cannot start a server machine: %v", c, err)
		sock.Close()
		c.stopLocked(false)
		return
	}
	c.m = m
	c.role = protocol.RoleServer
	c.setState(StateAccepting)
	c.attach(sock)
	if c.sock == sock {
		c.arm(&c.tHandshake, c.cfg.ReadyTimeout, c.onHandshakeTimeout)
	}
	c.settle()
}

// newClientMachine and newServerMachine make the protocol machine for the
// connection's protocol: msgr2, or msgr1 for v1 addresses (Ceph picks
// ProtocolV1 or ProtocolV2 the same way, by the address type).
func newClientMachine(proto msg.AddrType, cfg protocol.Config, sess *protocol.Session) (protocol.Protocol, error) {
	if proto == msg.AddrLegacy {
		return protocol.NewClientV1(cfg, sess)
	}
	return protocol.NewClient(cfg, sess)
}

func newServerMachine(proto msg.AddrType, cfg protocol.Config) (protocol.Protocol, error) {
	if proto == msg.AddrLegacy {
		return protocol.NewServerV1(cfg)
	}
	return protocol.NewServer(cfg)
}

// --- sockets and workers ----------------------------------------------------

// attach makes sock the connection's socket; the connection now lives on
// the socket's worker. mu held, on that worker's loop.
func (c *Connection) attach(sock *stack.Socket) {
	c.sock = sock
	c.setWorker(sock.Worker())
	c.rstart, c.rend = 0, 0
	c.giveRbuf()
	c.endVec()
	c.wpos = len(c.wbuf)
	c.giveWbuf()
	c.wantWrite, c.readPaused = false, false
	c.readFn = func() { c.onReadable(sock) }
	c.writableFn = func() { c.onWritable(sock) }
	_ = sock.SetWriteHandler(c.writableFn)
	if err := sock.SetReadHandler(c.readFn); err != nil {
		c.socketFault(err)
	}
}

// detachSocket closes the current socket (if any) and forgets everything
// tied to it. Unwritten bytes are dropped: the session requeues the
// messages they carried if it is lossless. mu held.
func (c *Connection) detachSocket() {
	c.gen++
	if s := c.sock; s != nil {
		c.sock = nil
		s.Close()
	}
	c.readFn, c.writableFn = nil, nil
	c.rstart, c.rend = 0, 0
	c.giveRbuf()
	c.endVec()           // before the session may release what it references
	c.wpos = len(c.wbuf) // unwritten bytes are dropped
	c.giveWbuf()
	c.wantWrite, c.readPaused = false, false
	c.disarm(&c.tHandshake)
	c.disarm(&c.tIdle)
	if c.thrWaiting {
		c.budget.forget(c)
		c.thrWaiting = false
	}
}

func (c *Connection) setWorker(w *stack.Worker) {
	c.center = w.Center
	c.outMu.Lock()
	c.submitW = w
	c.outMu.Unlock()
}

// loopWorker returns the worker whose loop the caller runs on, or nil.
func (c *Connection) loopWorker() *stack.Worker {
	for _, w := range c.cfg.Stack.Workers() {
		if w.Center.InLoop() {
			return w
		}
	}
	return nil
}

func (c *Connection) setArmed(on bool) {
	c.outMu.Lock()
	c.armed = on
	c.outMu.Unlock()
}

// writeFnFor returns the write-event function bound to worker w (made once
// per worker, so a Send allocates nothing). outMu held.
func (c *Connection) writeFnFor(w *stack.Worker) func() {
	for len(c.wfns) <= w.ID {
		c.wfns = append(c.wfns, nil)
	}
	if c.wfns[w.ID] == nil {
		c.wfns[w.ID] = func() { c.onWriteEvent(w) }
	}
	return c.wfns[w.ID]
}

// --- read path --------------------------------------------------------------

// onReadable is the socket's read handler.
func (c *Connection) onReadable(sock *stack.Socket) {
	c.mu.Lock()
	defer c.unlockHandler()
	if c.sock != sock || c.closed {
		return
	}
	// A Send made meanwhile (from a fast dispatch on this loop, say) is
	// picked up by settle below: no write event needed.
	c.setArmed(true)
	c.readSome(sock)
	c.giveRbuf()
	c.settle()
}

// unlockHandler ends a handler: it also releases an existing connection
// left locked by a takeover that did not complete (a panic inside Feed).
func (c *Connection) unlockHandler() {
	if ex := c.takeover; ex != nil {
		c.takeover = nil
		ex.mu.Unlock()
	}
	c.mu.Unlock()
}

// readSome reads what the socket holds (bounded) and feeds it to the
// machine.
func (c *Connection) readSome(sock *stack.Socket) {
	for i := 0; i < maxReadsPerEvent; i++ {
		if c.readPaused {
			return
		}
		if c.budget.full() {
			c.pauseRead()
			return
		}
		c.makeRoom()
		if c.rng != nil {
			c.maybeInjectFailure(sock)
		}
		space := c.readRoom()
		n, err := sock.Read(c.rbuf[c.rend : c.rend+space])
		if err != nil {
			if err == stack.ErrWouldBlock {
				return
			}
			c.socketFault(err)
			return
		}
		c.rend += n
		c.activity++
		add(&c.bytesIn, uint64(n))
		if !c.feed() || c.sock != sock {
			return
		}
		if n < space {
			return // the socket is drained
		}
	}
}

// makeRoom makes the read buffer able to take more bytes and to hold the
// frame the machine waits for.
func (c *Connection) makeRoom() {
	def := c.cfg.ReadBuf
	if c.rstart == c.rend {
		c.rstart, c.rend = 0, 0
	}
	c.takeRbuf()
	want := 0
	if c.m != nil {
		want = c.m.Want()
	}
	if c.rstart > 0 && (len(c.rbuf)-c.rend < def/4 || c.rstart+want > len(c.rbuf)) {
		n := copy(c.rbuf, c.rbuf[c.rstart:c.rend])
		c.rstart, c.rend = 0, n
	}
	if c.rend == len(c.rbuf) {
		// Full, yet the machine made no progress: never read into an empty
		// slice (level-triggered, the loop would spin); take more room.
		want = max(want, c.rend-c.rstart+def)
	}
	if want > len(c.rbuf) {
		size := (want + def - 1) / def * def
		nb := make([]byte, size)
		copy(nb, c.rbuf[c.rstart:c.rend])
		c.rend -= c.rstart
		c.rstart = 0
		c.rbuf = nb
	}
}

// readRoom is how many bytes the next read may take: ReadBuf, or what the
// awaited frame still needs if that is more. The buffer may be larger (one
// grown for a large frame goes back to the pool, which every messenger
// shares): reading no more than this at once keeps what a connection holds
// for the dispatch throttle bounded by ReadBuf, whichever buffer it got.
func (c *Connection) readRoom() int {
	room := len(c.rbuf) - c.rend
	lim := c.cfg.ReadBuf
	if c.m != nil {
		lim = max(lim, c.rstart+c.m.Want()-c.rend)
	}
	return min(room, lim)
}

// feed gives the buffered bytes to the machine. It returns false when the
// connection no longer reads this socket (fault, takeover).
func (c *Connection) feed() bool {
	n, err := c.m.Feed(c.rbuf[c.rstart:c.rend])
	// The read's messages reach a batch dispatcher now, before a fault or
	// takeover below is reported.
	c.flushBatch()
	c.rstart += n
	if c.rstart == c.rend {
		c.rstart, c.rend = 0, 0
	}
	if c.takeover != nil {
		c.handOver(err)
		return false
	}
	if err != nil {
		c.cfg.Counters.ProtocolErrors.Add(1)
		c.machineFault(err)
		return false
	}
	if c.justReady {
		c.justReady = false
		c.opened()
	}
	return true
}

// --- write path -------------------------------------------------------------

// onWritable is the socket's write handler (registered only while bytes
// wait).
func (c *Connection) onWritable(sock *stack.Socket) {
	c.mu.Lock()
	defer c.unlockHandler()
	if c.sock != sock || c.closed {
		return
	}
	c.flush()
	c.settle()
}

// onWriteEvent is the external event a Send submits to worker w.
func (c *Connection) onWriteEvent(w *stack.Worker) {
	c.mu.Lock()
	defer c.unlockHandler()
	if c.closed {
		return
	}
	if c.center != w.Center {
		// The connection moved to another worker since: follow it.
		c.outMu.Lock()
		nw := c.submitW
		var fn func()
		if nw != nil {
			fn = c.writeFnFor(nw)
		}
		c.outMu.Unlock()
		if fn != nil && nw.Center.Submit(fn) == nil {
			return
		}
		c.setArmed(false)
		return
	}
	c.settle()
}

// settle ends every handler: it drains what Send staged into the session
// and writes it, then decides whether the next Send must submit a write
// event (armed == false) or the loop will look anyway (armed == true).
func (c *Connection) settle() {
	c.flushBatch() // every handler ends here: nothing stays collected
	for i := 0; ; i++ {
		if c.sock != nil && c.m != nil && !c.wantWrite {
			if c.State() == StateOpen {
				c.drain()
			}
			c.flush()
		}
		st := c.State()
		c.outMu.Lock()
		more := len(c.staged) > 0 || c.stagedKA
		if more && st == StateOpen && c.sock != nil && !c.wantWrite && i < 4 {
			c.outMu.Unlock()
			continue
		}
		if more && st == StateStandby && !c.policy.Server && !c.closed && i < 4 {
			// Ceph: a message sent to a standby session reconnects it.
			c.outMu.Unlock()
			c.connectLocked()
			continue
		}
		var kick *stack.Worker
		switch {
		case c.closed:
			c.armed = false
		case st == StateOpen:
			switch {
			case c.wantWrite:
				c.armed = true // the write handler drains
			case more:
				c.armed = true // bounded above: finish in a later event
				kick = c.submitW
			default:
				c.armed = false
			}
		case st == StateStandby:
			c.armed = false // the next Send must wake us to reconnect
		default:
			c.armed = true // connecting or backing off: Ready drains
		}
		var fn func()
		if kick != nil {
			fn = c.writeFnFor(kick)
		}
		c.outMu.Unlock()
		if fn != nil && kick.Center.Submit(fn) != nil {
			c.setArmed(false)
		}
		return
	}
}

// drain moves the staged messages into the session's out queue. mu held.
func (c *Connection) drain() {
	if c.sess == nil {
		return
	}
	c.outMu.Lock()
	// They move from staged to the session's queue: count them as queued
	// before Stats can see staged empty (the next write stores the exact
	// count), so Queued+Unacked never dips to 0 while messages are held.
	c.queued.Add(int64(c.stagedLocked()))
	st, packs := c.staged, c.packs
	c.staged, c.packs, c.packedN = c.spare[:0], c.packSpare[:0], 0
	ka := c.stagedKA
	c.stagedKA = false
	c.outMu.Unlock()
	j := 0
	for i, m := range st {
		if m == nil { // a pack: built here, on the loop that sends it
			c.unpacked = packs[j].Unpack(c.unpacked[:0])
			packs[j] = nil
			j++
			for k, m := range c.unpacked {
				c.sess.Enqueue(m)
				c.unpacked[k] = nil
			}
			continue
		}
		c.sess.Enqueue(m)
		st[i] = nil
	}
	c.spare, c.packSpare = st[:0], packs[:0]
	if ka {
		c.sess.SendKeepalive()
	}
}

// flush encodes what the machine has to send into the output buffer and
// writes it, one syscall per batch, until the socket would block (then it
// registers for writability) or nothing is left (then it unregisters).
// Large message segments are not copied: they are written from the
// messages' buffers with writev (see buildVec). Ceph's _try_send. mu held,
// on the socket's loop.
func (c *Connection) flush() {
	sock := c.sock
	m := c.m
	for round := 0; round < maxWritesPerFlush; round++ {
		if c.wvi == len(c.wvec) && c.wpos == len(c.wbuf) {
			c.endVec()
			c.wbuf, c.wpos = c.wbuf[:0], 0
			if !m.Pending() {
				break
			}
			c.takeWbuf()
			s := m.Session()
			var before uint64
			if s != nil {
				before = s.OutSeq()
			}
			c.wbuf, c.wrefs = m.AppendOutputV(c.wbuf, c.wrefs[:0], c.cfg.WriteBatch, c.cfg.ZeroCopyMin)
			if s != nil {
				if out := s.OutSeq(); out > before {
					add(&c.msgsOut, out-before)
				}
				c.queued.Store(int64(s.Queued()))
				c.unacked.Store(int64(s.Unacked()))
				c.noteHeld()
			}
			if len(c.wrefs) > 0 {
				c.buildVec()
			}
			if len(c.wbuf) == 0 {
				break
			}
		}
		if c.rng != nil {
			c.maybeInjectFailure(sock)
		}
		vec := c.wvi < len(c.wvec)
		var n int
		var err error
		if vec {
			n, err = sock.Writev(c.wvec[c.wvi:])
		} else {
			n, err = sock.Write(c.wbuf[c.wpos:])
		}
		if err != nil {
			if err == stack.ErrWouldBlock {
				c.setWantWrite(true)
				return
			}
			c.socketFault(err)
			return
		}
		c.activity++
		add(&c.bytesOut, uint64(n))
		if vec {
			c.advanceVec(n)
			if c.wvi < len(c.wvec) {
				c.setWantWrite(true)
				return
			}
			c.wpos = len(c.wbuf) // every piece of wbuf is written
			continue
		}
		c.wpos += n
		if c.wpos < len(c.wbuf) {
			c.setWantWrite(true)
			return
		}
	}
	// Done, or the round limit: then the writable event brings us back.
	c.giveWbuf()
	c.setWantWrite(c.wpos < len(c.wbuf) || m.Pending())
}

// wrel is a lossy message whose last segment is wvec[at]: it is released
// once that iovec is written.
type wrel struct {
	at int
	m  *msg.Message
}

// buildVec turns wbuf and wrefs into iovecs; wpos stays 0 until all are
// written. mu held.
func (c *Connection) buildVec() {
	off := 0
	for i := range c.wrefs {
		r := &c.wrefs[i]
		if r.Off > off {
			c.wvec = append(c.wvec, c.wbuf[off:r.Off])
		}
		c.wvec = append(c.wvec, r.Data)
		if r.Msg != nil {
			c.wrel = append(c.wrel, wrel{at: len(c.wvec) - 1, m: r.Msg})
		}
		off = r.Off
		*r = protocol.OutRef{}
	}
	if off < len(c.wbuf) {
		c.wvec = append(c.wvec, c.wbuf[off:])
	}
	c.wrefs = c.wrefs[:0]
	c.wvi, c.wpos = 0, 0
}

// advanceVec accounts for n bytes written from wvec[wvi:] and releases the
// lossy messages now fully written. mu held.
func (c *Connection) advanceVec(n int) {
	for n > 0 && c.wvi < len(c.wvec) {
		b := c.wvec[c.wvi]
		if n < len(b) {
			c.wvec[c.wvi] = b[n:]
			break
		}
		n -= len(b)
		c.wvec[c.wvi] = nil
		c.wvi++
	}
	for c.wreli < len(c.wrel) && c.wrel[c.wreli].at < c.wvi {
		m := c.wrel[c.wreli].m
		c.wrel[c.wreli] = wrel{}
		c.wreli++
		releaseMsg(m)
	}
}

// endVec forgets the iovecs, releasing the lossy messages they still
// reference (unwritten bytes are dropped, as with wbuf). mu held.
func (c *Connection) endVec() {
	for i := c.wreli; i < len(c.wrel); i++ {
		releaseMsg(c.wrel[i].m)
		c.wrel[i] = wrel{}
	}
	clear(c.wvec[c.wvi:])
	c.wvec, c.wrel = c.wvec[:0], c.wrel[:0]
	c.wvi, c.wreli = 0, 0
}

func (c *Connection) setWantWrite(on bool) {
	if c.wantWrite == on || c.sock == nil {
		return
	}
	if err := c.sock.WantWrite(on); err != nil {
		c.socketFault(err)
		return
	}
	c.wantWrite = on
}

// --- faults -----------------------------------------------------------------

// socketFault faults the machine for an error outside the protocol (socket
// error, timeout, connect failure). mu held.
func (c *Connection) socketFault(err error) {
	if c.m == nil {
		return
	}
	// Staged messages count as queued for the protocol's decision.
	c.drain()
	c.applyFault(c.m.Fault(err))
}

// machineFault handles the error Feed returned.
func (c *Connection) machineFault(err error) {
	var f *protocol.Fault
	if !errors.As(err, &f) {
		f = c.m.Fault(err)
	}
	c.applyFault(f)
}

// applyFault carries out the protocol's decision after a fault (Ceph's
// ProtocolV2::_fault tail). mu held, on the connection's loop.
func (c *Connection) applyFault(f *protocol.Fault) {
	if c.closed {
		return
	}
	c.cfg.Counters.Faults.Add(1)
	c.lastFault.Store(&faultRec{f}) // before the count: a reader seeing it up finds the fault
	c.faults.Add(1)
	c.cfg.dout(1, "%v: fault: %v", c, f)
	c.detachSocket()
	c.m = nil
	switch f.Action {
	case protocol.ActionClose:
		c.stopLocked(true)
	case protocol.ActionStandby:
		c.setState(StateStandby)
		c.setArmed(false)
		if !c.policy.Server && c.hasOutgoing() {
			c.connectLocked()
		}
	case protocol.ActionReconnect:
		var d time.Duration
		switch f.Backoff {
		case protocol.BackoffNone:
			c.backoff = 0
		case protocol.BackoffGrow:
			if c.backoff == 0 {
				c.backoff = c.cfg.InitialBackoff
			} else {
				c.backoff = min(2*c.backoff, c.cfg.MaxBackoff)
			}
			d = c.backoff
		case protocol.BackoffMax:
			c.backoff = c.cfg.MaxBackoff
			d = c.backoff
		}
		if d == 0 {
			c.connectLocked()
			return
		}
		c.setState(StateBackoff)
		c.setArmed(true)
		c.arm(&c.tBackoff, d, c.connectLocked)
	}
}

// hasOutgoing reports whether messages wait to be sent. mu held.
func (c *Connection) hasOutgoing() bool {
	c.outMu.Lock()
	n := len(c.staged)
	c.outMu.Unlock()
	return n > 0 || (c.sess != nil && c.sess.Queued() > 0)
}

// stopLocked closes the connection for good (Ceph's _stop): socket, timers
// and queues go, the messenger forgets it, and a reset is reported if
// asked. mu held; any goroutine.
func (c *Connection) stopLocked(reset bool) {
	if c.closed {
		return
	}
	c.cfg.dout(1, "%v: stop (reset=%v)", c, reset)
	c.closed = true
	c.setState(StateClosed)
	c.detachSocket()
	if c.pending != nil {
		c.pending.Close()
		c.pending = nil
	}
	if c.m != nil {
		c.m.Close()
		c.m = nil
	}
	c.disarm(&c.tBackoff)
	c.disarm(&c.tDelay)
	c.outMu.Lock()
	c.outClosed = true
	st, packs := c.staged, c.packs
	c.staged, c.packs, c.packedN = nil, nil, 0
	c.stagedKA = false
	c.armed = false
	c.outMu.Unlock()
	for _, m := range st {
		if m != nil {
			m.Release()
		}
	}
	for _, p := range packs {
		p.Discard()
	}
	if c.sess != nil {
		c.sess.Discard()
	}
	c.queued.Store(0)
	c.unacked.Store(0)
	c.wakeHeld() // waiters see the connection closed
	for _, d := range c.delayQ {
		d.m.Release()
		c.budget.Release(d.cost)
	}
	c.delayQ = nil
	c.budget.forget(c)
	c.cfg.Queue.Discard(c.id)
	c.host.Closed(c)
	if reset {
		c.flushBatch() // FastEventers are told now: collected messages first
		_ = c.cfg.Queue.QueueReset(c)
	}
}

// --- timers -----------------------------------------------------------------

// arm (re)starts timer t to run fire after d on the connection's loop,
// with mu held. A timer made stale by disarm never fires.
func (c *Connection) arm(t *ctimer, d time.Duration, fire func()) {
	c.disarm(t)
	if c.center == nil || d <= 0 {
		return
	}
	center := c.center
	seq := t.seq
	cb := func() {
		c.mu.Lock()
		defer c.unlockHandler()
		if t.seq != seq || c.closed {
			return
		}
		t.id, t.center = 0, nil
		fire()
	}
	if center.InLoop() {
		t.center = center
		t.id = center.AddTimer(d, cb)
		return
	}
	_ = center.Submit(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if t.seq == seq && !c.closed {
			t.center = center
			t.id = center.AddTimer(d, cb)
		}
	})
}

// disarm cancels timer t (a pending fire becomes stale). mu held.
func (c *Connection) disarm(t *ctimer) {
	t.seq++
	if t.id == 0 {
		return
	}
	center, id := t.center, t.id
	t.id, t.center = 0, nil
	if center.InLoop() {
		center.CancelTimer(id)
		return
	}
	_ = center.Submit(func() { center.CancelTimer(id) })
}

func (c *Connection) onHandshakeTimeout() {
	if c.m == nil || c.m.State() == protocol.StateReady {
		return
	}
	c.cfg.Counters.ReadyTimeouts.Add(1)
	c.cfg.dout(1, "%v: no progress during handshake for %v", c, c.cfg.ReadyTimeout)
	c.socketFault(ErrReadyTimeout)
}

// onIdleTick checks for traffic since the last tick; none for a whole
// period faults the connection (Ceph's tick with inactive_timeout), so an
// idle connection is detected after one to two periods.
func (c *Connection) onIdleTick() {
	if c.sock == nil || c.State() != StateOpen {
		return
	}
	if c.activity == c.idleSeen {
		c.cfg.Counters.IdleTimeouts.Add(1)
		c.cfg.dout(1, "%v: idle for more than %v", c, c.cfg.IdleTimeout)
		c.socketFault(ErrIdleTimeout)
		return
	}
	c.idleSeen = c.activity
	c.arm(&c.tIdle, c.cfg.IdleTimeout, c.onIdleTick)
}

// opened runs on the connection's loop once the session is READY.
func (c *Connection) opened() {
	c.disarm(&c.tHandshake)
	if c.cfg.IdleTimeout > 0 && c.sock != nil {
		c.idleSeen = c.activity
		c.arm(&c.tIdle, c.cfg.IdleTimeout, c.onIdleTick)
	}
}

// --- throttling ---------------------------------------------------------------

// pauseRead stops reading until the budget is back. mu held.
func (c *Connection) pauseRead() {
	if c.readPaused || c.sock == nil {
		return
	}
	if err := c.sock.SetReadHandler(nil); err != nil {
		c.socketFault(err)
		return
	}
	c.readPaused = true
	c.cfg.Counters.ThrottleStalls.Add(1)
	c.waitBudget()
}

func (c *Connection) waitBudget() {
	c.thrWaiting = true
	if !c.budget.wait(c) {
		c.thrWaiting = false
		c.submitResume()
	}
}

// throttleWake is called by a Throttle (any goroutine, no lock held).
func (c *Connection) throttleWake() { c.submitResume() }

func (c *Connection) submitResume() {
	c.outMu.Lock()
	w := c.submitW
	c.outMu.Unlock()
	if w != nil {
		_ = w.Center.Submit(c.resumeFn)
	}
}

// onResume restarts reading once the budget is back.
func (c *Connection) onResume() {
	c.mu.Lock()
	defer c.unlockHandler()
	c.thrWaiting = false
	if c.closed || !c.readPaused || c.sock == nil {
		return
	}
	sock := c.sock
	if !sock.Worker().Center.InLoop() {
		c.submitResume() // moved meanwhile
		return
	}
	if c.budget.full() {
		c.waitBudget()
		return
	}
	if err := sock.SetReadHandler(c.readFn); err != nil {
		c.socketFault(err)
		return
	}
	c.readPaused = false
	c.setArmed(true)
	if c.rend > c.rstart && !c.feed() {
		c.settle()
		return
	}
	if c.sock == sock {
		c.readSome(sock)
	}
	c.giveRbuf()
	c.settle()
}

// --- delivery -----------------------------------------------------------------

// deliver hands a received message to fast dispatch on this thread when a
// dispatcher takes it there, else to the dispatch queue with its throttle
// budget (returned by the queue once dispatched). A fast-dispatched
// message would hold budget only for the length of the call, so it takes
// none. taken says the budget was already taken (delayed messages hold
// theirs while they wait).
func (c *Connection) deliver(m *msg.Message, cost int64, taken bool) {
	q := c.cfg.Queue
	if ok, held := q.FastDispatchBatched(c, m, &c.fb); ok {
		switch {
		case held:
			// Kept for another thread: charged until it is consumed.
			hc := dispatch.HeldCost(m)
			if taken {
				c.budget.Release(cost)
			}
			c.budget.Take(hc)
		case taken:
			c.budget.Release(cost)
		}
		return
	}
	if c.budget == nil {
		_ = q.Enqueue(c, m, nil, cost)
		return
	}
	if !taken {
		c.budget.Take(cost)
	}
	_ = q.Enqueue(c, m, c.budget, cost)
}

// HeldDone (dispatch.HeldReleaser) returns the budget of a message a
// holder (pull queue) kept, once it is consumed. Any goroutine.
func (c *Connection) HeldDone(cost int64) { c.budget.Release(cost) }

// flushBatch hands the messages collected for a batch dispatcher over.
// mu held, on the connection's loop.
func (c *Connection) flushBatch() {
	if c.fb.Len() > 0 {
		c.cfg.Queue.Flush(&c.fb)
	}
}

// sendLocal delivers a message sent to oneself.
func (c *Connection) sendLocal(m *msg.Message) error {
	if c.State() == StateClosed {
		return ErrClosed
	}
	m.Src = c.cfg.Name
	c.msgsOut.Add(1)
	c.msgsIn.Add(1)
	n := uint64(m.PayloadLen())
	c.bytesOut.Add(n)
	c.bytesIn.Add(n)
	q := c.cfg.Queue
	if c.cfg.Stack != nil && q.CanFastDispatch(m) {
		// Fast dispatch runs on a worker thread, as for a remote message;
		// worker 0 keeps local messages in order.
		// FastDispatch asks the chain again: if no dispatcher takes it
		// this time, it is queued, never dropped.
		fast := func() {
			if !q.FastDispatch(c, m) {
				_ = q.Enqueue(c, m, nil, 0)
			}
		}
		if err := c.cfg.Stack.Workers()[0].Center.Submit(fast); err != nil {
			return ErrClosed
		}
		return nil
	}
	_ = q.Enqueue(c, m, nil, 0)
	return nil
}

// CloseLocal closes the local connection (messenger shutdown).
func (c *Connection) CloseLocal() {
	if c.local {
		c.setState(StateClosed)
	}
}

// --- fault injection ------------------------------------------------------------

// maybeInjectFailure shuts the socket down with probability
// 1/InjectSocketFailures (Ceph's ms_inject_socket_failures, checked on each
// socket read and write). The operation that follows then fails as a real
// failure would.
func (c *Connection) maybeInjectFailure(sock *stack.Socket) {
	n := c.cfg.InjectSocketFailures
	if n == 0 || c.rng.Uint64N(n) != 0 {
		return
	}
	c.cfg.Counters.InjectedFailures.Add(1)
	c.cfg.dout(1, "%v: injecting socket failure", c) // Ceph: level 0; 1 keeps injection runs quiet
	_ = unix.Shutdown(sock.Fd(), unix.SHUT_RDWR)
}

// delayMsg queues a received message behind the delayed ones (Ceph's
// DelayedDelivery): with probability InjectDelayProbability it waits up to
// InjectDelayMax; order is kept, so a message waits at least as long as
// the ones before it.
func (c *Connection) delayMsg(m *msg.Message, cost int64) {
	now := time.Now()
	at := now
	if c.delayOn && c.rng.Float64() < c.cfg.InjectDelayProbability {
		at = now.Add(time.Duration(c.rng.Float64() * float64(c.cfg.InjectDelayMax)))
		c.cfg.Counters.InjectedDelays.Add(1)
	}
	if len(c.delayQ) == 0 && !at.After(now) {
		c.deliver(m, cost, false)
		return
	}
	c.budget.Take(cost)
	c.delayQ = append(c.delayQ, delayed{m: m, cost: cost, at: at})
	if len(c.delayQ) == 1 || c.tDelay.id == 0 {
		c.armDelay()
	}
}

func (c *Connection) armDelay() {
	if len(c.delayQ) == 0 {
		return
	}
	d := max(time.Until(c.delayQ[0].at), time.Microsecond)
	// The delay timer lives on whichever loop we are on (the queue
	// survives reconnects, which may move the connection).
	if w := c.loopWorkerFast(); w != nil && w.Center != c.center {
		old := c.center
		c.center = w.Center
		c.arm(&c.tDelay, d, c.onDelayTimer)
		c.center = old
		return
	}
	c.arm(&c.tDelay, d, c.onDelayTimer)
}

// loopWorkerFast returns the current loop's worker, trying the
// connection's own first.
func (c *Connection) loopWorkerFast() *stack.Worker {
	if c.center != nil && c.center.InLoop() {
		c.outMu.Lock()
		w := c.submitW
		c.outMu.Unlock()
		return w
	}
	return c.loopWorker()
}

func (c *Connection) onDelayTimer() {
	now := time.Now()
	i := 0
	for ; i < len(c.delayQ) && !c.delayQ[i].at.After(now); i++ {
		d := c.delayQ[i]
		c.delayQ[i] = delayed{}
		c.deliver(d.m, d.cost, true)
	}
	c.flushBatch()
	n := copy(c.delayQ, c.delayQ[i:])
	clear(c.delayQ[n:])
	c.delayQ = c.delayQ[:n]
	c.armDelay()
}

// --- helpers ----------------------------------------------------------------------

func sockAddrPort(sock *stack.Socket, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(sock.LocalAddr().Addr(), port)
}
