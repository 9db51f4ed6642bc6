package stack

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/msgr-dev/msgr/core/event"
)

// acceptRetry is how long a listener pauses after accept ran out of fds or
// memory; accepting again at once would only spin on the same error.
const acceptRetry = 50 * time.Millisecond

// Socket is a connected TCP socket living on one worker (Ceph
// ConnectedSocket). Its I/O calls and handler setters are loop thread only;
// Close, Fd, Worker and the addresses are any goroutine.
type Socket struct {
	stack  *Stack
	w      *Worker
	impl   connImpl
	fd     int
	local  netip.AddrPort
	remote netip.AddrPort

	closeReq atomic.Bool // Close was called (any goroutine)

	// self is impl when the transport reports readiness itself (simple);
	// nil for posix, whose fd the Center watches.
	self selfNotifier

	// Loop thread only.
	closed  bool
	mask    event.Mask // events registered with the Center
	onRead  func()
	onWrite func()
	evfn    event.FileFunc // s.onEvent, bound once (no allocation per AddFile)
}

func newSock(st *Stack, w *Worker, c connImpl) *Socket {
	s := &Socket{stack: st, w: w, impl: c, fd: c.sysfd(), local: c.localAddr(), remote: c.remoteAddr()}
	s.evfn = s.onEvent
	if sn, ok := c.(selfNotifier); ok {
		s.self = sn
		sn.start(w.Center, s.evfn)
	}
	return s
}

// Fd is the kernel fd (for diagnostics; do not close it).
func (s *Socket) Fd() int { return s.fd }

// Worker is the worker whose loop owns the socket.
func (s *Socket) Worker() *Worker { return s.w }

// LocalAddr and RemoteAddr are the socket's addresses, read at creation.
func (s *Socket) LocalAddr() netip.AddrPort  { return s.local }
func (s *Socket) RemoteAddr() netip.AddrPort { return s.remote }

// Read reads into p without blocking: n > 0, or ErrWouldBlock, io.EOF (the
// peer closed), ErrClosed, or an *os.SyscallError. Loop thread only.
func (s *Socket) Read(p []byte) (int, error) {
	if s.closed {
		return 0, ErrClosed
	}
	return s.impl.read(p)
}

// Readv scatters one read over bufs (one readv(2); at most 1024 non-empty
// buffers are used). Results as for Read. No allocation. Loop thread only.
func (s *Socket) Readv(bufs [][]byte) (int, error) {
	if s.closed {
		return 0, ErrClosed
	}
	return s.impl.readv(bufs)
}

// Write writes what fits of p without blocking: n (possibly < len(p)), or
// ErrWouldBlock when nothing fits, or an error (EPIPE, ECONNRESET, ...;
// never SIGPIPE). Loop thread only.
func (s *Socket) Write(p []byte) (int, error) {
	if s.closed {
		return 0, ErrClosed
	}
	return s.impl.write(p)
}

// Writev gathers bufs into one write (one sendmsg(2); at most 1024 non-empty
// buffers per call). A short count is normal: resend the rest when the write
// handler runs. No allocation. Loop thread only.
func (s *Socket) Writev(bufs [][]byte) (int, error) {
	if s.closed {
		return 0, ErrClosed
	}
	return s.impl.writev(bufs)
}

// SetReadHandler registers fn to run on the loop whenever the socket is
// readable (data, EOF or error); nil stops watching. Loop thread only.
func (s *Socket) SetReadHandler(fn func()) error {
	if s.closed {
		return ErrClosed
	}
	s.onRead = fn
	if fn == nil {
		return s.unwatch(event.Readable)
	}
	return s.watch(event.Readable)
}

// SetWriteHandler sets the function run when the socket is writable while
// WantWrite(true) is in force. Loop thread only.
func (s *Socket) SetWriteHandler(fn func()) error {
	if s.closed {
		return ErrClosed
	}
	s.onWrite = fn
	return nil
}

// WantWrite turns the writable event on or off. Turn it on only while bytes
// wait to be sent (after a short write or ErrWouldBlock) and off once they
// are out: a socket is writable nearly always, and a registered writable
// event would wake the loop for nothing. Loop thread only.
func (s *Socket) WantWrite(on bool) error {
	if s.closed {
		return ErrClosed
	}
	if !on {
		return s.unwatch(event.Writable)
	}
	if s.onWrite == nil {
		return errors.New("stack: WantWrite(true) without a write handler")
	}
	return s.watch(event.Writable)
}

func (s *Socket) watch(m event.Mask) error {
	if s.mask&m != 0 {
		return nil
	}
	if s.self != nil {
		return s.setSelfMask(s.mask | m)
	}
	if err := s.w.Center.AddFile(s.fd, m, s.evfn); err != nil {
		return err
	}
	s.mask |= m
	return nil
}

func (s *Socket) unwatch(m event.Mask) error {
	if s.mask&m == 0 {
		return nil
	}
	if s.self != nil {
		return s.setSelfMask(s.mask &^ m)
	}
	if err := s.w.Center.DelFile(s.fd, m); err != nil {
		return err
	}
	s.mask &^= m
	return nil
}

// setSelfMask is watch/unwatch for a self-notifying transport. It keeps the
// loop-thread-only rule that AddFile enforces for posix.
func (s *Socket) setSelfMask(m event.Mask) error {
	if !s.w.Center.InLoop() {
		return event.ErrNotInLoop
	}
	s.mask = m
	s.self.setWant(m)
	return nil
}

func (s *Socket) onEvent(_ int, m event.Mask) {
	if m&event.Readable != 0 && s.onRead != nil && !s.closed {
		s.onRead()
	}
	// The read handler may have closed the socket or stopped writing.
	if m&event.Writable != 0 && s.mask&event.Writable != 0 && s.onWrite != nil && !s.closed {
		s.onWrite()
	}
}

// Close closes the socket. On the loop thread it closes at once; from any
// other goroutine it hops to the loop (Submit) and returns before the fd is
// closed, so no handler of the socket ever runs against a closed fd. After
// Close no handler runs again. Idempotent; always returns nil.
func (s *Socket) Close() error {
	if !s.closeReq.CompareAndSwap(false, true) {
		return nil
	}
	if s.w.Center.InLoop() {
		s.closeNow(true)
		return nil
	}
	// An error means the stack is stopping; its sweep closes the socket.
	_ = s.w.Center.Submit(func() { s.closeNow(true) })
	return nil
}

// closeNow closes the fd once: whoever takes the socket out of the stack's
// set does it. inLoop says we are on the worker's running loop.
func (s *Socket) closeNow(inLoop bool) {
	st := s.stack
	st.mu.Lock()
	_, ok := st.sockets[s]
	delete(st.sockets, s)
	st.mu.Unlock()
	if !ok {
		return
	}
	s.closed = true
	if inLoop && s.mask != 0 && s.self == nil {
		_ = s.w.Center.DelFile(s.fd, s.mask)
	}
	s.mask = 0
	s.onRead, s.onWrite = nil, nil
	_ = s.impl.close()
	s.w.conns.Add(-1)
}

// Listener is a listening socket watched by one worker (Ceph ServerSocket).
type Listener struct {
	stack    *Stack
	w        *Worker
	impl     serverImpl
	onAccept func(*Socket)

	closeReq atomic.Bool

	// Loop thread only.
	closed     bool
	registered bool
	paused     bool
	timer      event.TimerID
	evfn       event.FileFunc
}

// Listen binds addr and accepts connections. The listening fd is watched by
// one worker (simple: served by an accepter goroutine blocked in accept(2),
// the worker only owns the Listener); every accepted socket goes to the
// worker with the fewest connections (PickWorker) and onAccept runs on that
// worker's loop. The listener always uses one address family (IPv6
// listeners set IPV6_V6ONLY). backlog 0 means DefaultBacklog. Any
// goroutine; from a worker loop of this stack the listener is placed on
// that worker.
func (s *Stack) Listen(addr netip.AddrPort, opts SockOpts, backlog int, onAccept func(*Socket)) (*Listener, error) {
	if onAccept == nil {
		return nil, errors.New("stack: Listen with a nil onAccept")
	}
	if backlog < 0 {
		return nil, fmt.Errorf("stack: negative backlog %d", backlog)
	}
	if backlog == 0 {
		backlog = DefaultBacklog
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	err := s.checkRunning()
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	impl, err := s.tr.listen(addr, opts, backlog)
	if err != nil {
		return nil, fmt.Errorf("stack: listen %s: %w", addr, err)
	}
	l := &Listener{stack: s, impl: impl, onAccept: onAccept}
	l.evfn = l.onEvent

	s.mu.Lock()
	if err := s.checkRunning(); err != nil {
		s.mu.Unlock()
		impl.close()
		return nil, err
	}
	l.w = s.onLoop()
	if l.w == nil {
		l.w = s.pickLocked()
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()

	var regErr error
	reg := func() { regErr = l.register() }
	if l.w.Center.InLoop() {
		reg()
	} else if err := l.w.Center.SubmitWait(reg); err != nil {
		regErr = err
	}
	if regErr != nil {
		// Not registered, so nothing on the loop refers to it.
		l.closeNow(false)
		return nil, fmt.Errorf("stack: listen %s: %w", addr, regErr)
	}
	return l, nil
}

// Addr is the bound address (a requested port 0 resolved). Any goroutine.
func (l *Listener) Addr() netip.AddrPort { return l.impl.addr() }

// Worker is the worker that watches the listening fd.
func (l *Listener) Worker() *Worker { return l.w }

// Close stops accepting and closes the listening fd; from another goroutine
// it hops to the loop, as Socket.Close does. Sockets already accepted stay
// open. Idempotent; always returns nil.
func (l *Listener) Close() error {
	if !l.closeReq.CompareAndSwap(false, true) {
		return nil
	}
	if l.w.Center.InLoop() {
		l.closeNow(true)
		return nil
	}
	_ = l.w.Center.Submit(func() { l.closeNow(true) })
	return nil
}

func (l *Listener) register() error {
	if l.closed {
		return ErrClosed
	}
	if a, ok := l.impl.(selfAccepter); ok {
		// simple: an accepter goroutine; nothing on the Center (registered
		// stays false), impl.close stops it.
		a.startAccepting(l.handOff, l.stack.logf)
		return nil
	}
	if err := l.w.Center.AddFile(l.impl.sysfd(), event.Readable, l.evfn); err != nil {
		return err
	}
	l.registered = true
	return nil
}

func (l *Listener) closeNow(inLoop bool) {
	st := l.stack
	st.mu.Lock()
	_, ok := st.listeners[l]
	delete(st.listeners, l)
	st.mu.Unlock()
	if !ok {
		return
	}
	l.closed = true
	if inLoop {
		if l.registered {
			_ = l.w.Center.DelFile(l.impl.sysfd(), event.Readable)
		}
		if l.paused {
			l.w.Center.CancelTimer(l.timer)
		}
	}
	l.registered, l.paused = false, false
	_ = l.impl.close()
}

// onEvent accepts until the queue is empty (Ceph's accept loop), so one
// wakeup takes a whole burst whatever the driver's triggering mode.
func (l *Listener) onEvent(int, event.Mask) {
	for !l.closed {
		c, err := l.impl.accept()
		if err == ErrWouldBlock {
			return
		}
		if err != nil {
			l.stack.logf("stack: listener %s: %v", l.Addr(), err)
			if isResourceErr(err) {
				l.pause()
			}
			return
		}
		l.handOff(c)
	}
}

// pause stops watching the listening fd for acceptRetry.
func (l *Listener) pause() {
	if l.paused || !l.registered {
		return
	}
	if err := l.w.Center.DelFile(l.impl.sysfd(), event.Readable); err != nil {
		return
	}
	l.registered, l.paused = false, true
	l.timer = l.w.Center.AddTimer(acceptRetry, func() {
		l.paused = false
		if !l.closed {
			if err := l.register(); err != nil {
				l.stack.logf("stack: listener %s: re-arm: %v", l.Addr(), err)
			}
		}
	})
}

// handOff counts the socket against the least-loaded worker at once (so the
// next accept of a burst sees it) and runs onAccept on that worker's loop.
func (l *Listener) handOff(c connImpl) {
	st := l.stack
	st.mu.Lock()
	if st.state != stateStarted {
		st.mu.Unlock()
		_ = c.close()
		return
	}
	w := st.pickLocked()
	w.conns.Add(1)
	sock := newSock(st, w, c)
	st.sockets[sock] = struct{}{}
	st.mu.Unlock()

	deliver := func() {
		if !sock.closed {
			l.onAccept(sock)
		}
	}
	if w.Center.InLoop() {
		deliver()
		return
	}
	// An error means the stack is stopping; its sweep closes the socket.
	_ = w.Center.Submit(deliver)
}

// dialer is one Connect in progress. Loop thread only, apart from Stop's
// final sweep once the loop has exited.
type dialer struct {
	stack   *Stack
	w       *Worker
	addr    netip.AddrPort
	opts    SockOpts
	timeout time.Duration
	cb      func(*Socket, error)

	c          connImpl
	registered bool
	hasTimer   bool
	timer      event.TimerID
	done       bool
}

// Connect starts a nonblocking connection to addr on the least-loaded
// worker and returns at once. cb runs exactly once, on that worker's loop,
// with the connected socket or a *ConnectError (wrapping unix.ECONNREFUSED,
// EHOSTUNREACH, ENETUNREACH, ErrConnectTimeout after timeout, or ErrStopped
// when Stop cut it short; only a connect still queued when the loops have
// exited is failed on Stop's goroutine). timeout 0 leaves the limit to the
// kernel (minutes). If Connect itself returns an error, cb never runs. Any
// goroutine.
func (s *Stack) Connect(addr netip.AddrPort, opts SockOpts, timeout time.Duration, cb func(*Socket, error)) error {
	if cb == nil {
		return errors.New("stack: Connect with a nil callback")
	}
	if timeout < 0 {
		return fmt.Errorf("stack: negative connect timeout %v", timeout)
	}
	if err := opts.Validate(); err != nil {
		return err
	}
	if _, _, err := toSockaddr(addr); err != nil {
		return err
	}
	s.mu.Lock()
	if err := s.checkRunning(); err != nil {
		s.mu.Unlock()
		return err
	}
	w := s.pickLocked()
	w.conns.Add(1)
	d := &dialer{stack: s, w: w, addr: addr, opts: opts, timeout: timeout, cb: cb}
	s.pending[d] = struct{}{}
	s.mu.Unlock()

	if err := w.Center.Submit(d.start); err != nil {
		s.mu.Lock()
		_, mine := s.pending[d]
		delete(s.pending, d)
		s.mu.Unlock()
		if mine {
			w.conns.Add(-1)
			return ErrStopped
		}
		// Stop's sweep already failed it through cb.
	}
	return nil
}

func (d *dialer) start() {
	if d.done {
		return
	}
	c, inProgress, err := d.stack.tr.connect(d.addr, d.opts)
	if err != nil {
		d.finish(nil, err, true)
		return
	}
	d.c = c
	if !inProgress {
		d.finish(c, nil, true)
		return
	}
	if err := d.w.Center.AddFile(c.sysfd(), event.Writable, d.onWritable); err != nil {
		d.finish(nil, err, true)
		return
	}
	d.registered = true
	if d.timeout > 0 {
		d.timer = d.w.Center.AddTimer(d.timeout, d.onTimeout)
		d.hasTimer = true
	}
}

func (d *dialer) onWritable(int, event.Mask) {
	if d.done {
		return
	}
	err := d.c.connectResult()
	if err == errInProgress {
		return // woken before the handshake ended
	}
	d.finish(d.c, err, true)
}

func (d *dialer) onTimeout() {
	d.hasTimer = false
	d.finish(nil, ErrConnectTimeout, true)
}

// finish ends the connect once: with err == nil the socket joins the stack
// and cb gets it; otherwise the fd is closed, the worker's count dropped and
// cb gets a *ConnectError.
func (d *dialer) finish(c connImpl, err error, inLoop bool) {
	if d.done {
		return
	}
	d.done = true
	if inLoop {
		if d.registered {
			_ = d.w.Center.DelFile(d.c.sysfd(), event.Writable)
		}
		if d.hasTimer {
			d.w.Center.CancelTimer(d.timer)
		}
	}
	d.registered, d.hasTimer = false, false

	st := d.stack
	var sock *Socket
	st.mu.Lock()
	_, mine := st.pending[d]
	delete(st.pending, d)
	if mine && err == nil {
		sock = newSock(st, d.w, c)
		st.sockets[sock] = struct{}{}
	}
	st.mu.Unlock()
	if !mine {
		return
	}
	if sock == nil {
		if d.c != nil {
			_ = d.c.close()
		}
		d.w.conns.Add(-1)
		d.cb(nil, &ConnectError{Addr: d.addr, Err: err})
		return
	}
	d.cb(sock, nil)
}
