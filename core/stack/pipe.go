package stack

// The simple transport (Options.Type "simple"): Ceph's SimpleMessenger
// model under the same Socket API as posix. Every connected fd is in
// blocking mode and served by two goroutines (Ceph's Pipe reader and writer
// threads); every listener by an accepter goroutine doing blocking
// accept(2) (Ceph's Accepter). A goroutine blocked in a syscall holds its OS
// thread, so a socket costs two threads, as Ceph's Pipe does: the reader's,
// blocked in read(2), and the writer's, blocked in sendmsg(2) or, when it
// has nothing to send, in futex(2) (see writer for why not a Go condition
// variable). That is the point of the model and its limit: past Go's cap
// (10,000 threads by default, runtime/debug.SetMaxThreads, which this
// package does not change) the runtime aborts the process. So the number
// of live simple sockets per process is capped (SetSimpleMaxConns, default
// 4,000); past the cap Connect fails with ErrTooManyConns and listeners
// stop accepting.
//
// The worker loop never blocks on the fd. It talks to the goroutines
// through two staging rings per socket, under one mutex:
//
//   - in: the reader does read(2) into the ring's free space, then Submits
//     the readiness callback to the socket's loop. Socket.Read/Readv on the
//     loop copy out of the ring and return ErrWouldBlock when it is empty;
//     freeing space wakes the reader. A read error or EOF is kept and
//     returned after the bytes staged before it.
//   - out: Socket.Write/Writev copy into the ring (short count, or
//     ErrWouldBlock when it is full) and wake the writer, which sends with
//     sendmsg(2). Its first try is MSG_DONTWAIT; only when the kernel buffer
//     is full does it block in sendmsg until the peer makes room. When it
//     frees space and Writable is wanted, the callback is Submitted. A send
//     error is returned by the next Write, and by Read once the staged bytes
//     are read (so a socket that only reads learns of it too).
//
// Readiness is level-triggered, as with the drivers: after a callback, if a
// wanted bit is still ready (bytes left unread, room left and Writable still
// wanted) it is Submitted again.
//
// Rings start small (pipeSmall, allocated with the socket) and switch to a
// pooled large buffer only while data streams: the reader when a read
// filled all its room, Write when the bytes do not fit and the writer is
// not mid-send; each goes back to its small ring when it drains. An idle
// socket thus holds 8 KiB of buffers, not the 384 KiB of the large rings.
//
// Close (on the loop): the writer is asked to stop; if it is idle it first
// pushes what is staged into the kernel without blocking, if it is blocked
// on a full kernel buffer shutdown(2) cuts it short (bytes still staged then
// are dropped: posix would have refused them with ErrWouldBlock). Then
// shutdown(SHUT_RDWR) wakes the reader, both goroutines are waited for, and
// the fd is closed, exactly once. Connect reuses the posix nonblocking
// connect on the loop (so refusal and timeout are reported identically) and
// switches the fd to blocking once connected.

import (
	"errors"
	"io"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/msgr-dev/msgr/core/event"
)

const (
	// pipeSmall is the size of each socket's own in and out rings.
	pipeSmall = 4 << 10
	// pipeBigIn and pipeBigOut are the pooled rings used while data streams.
	pipeBigIn  = 128 << 10
	pipeBigOut = 256 << 10
)

// DefaultSimpleMaxConns is the default process-wide limit on live sockets
// of the simple transport. Each holds two threads (reader and writer):
// 4,000 sockets stay below Go's default limit of 10,000 threads, past which
// the runtime aborts the whole process.
const DefaultSimpleMaxConns = 4000

// ErrTooManyConns is wrapped by the ConnectError of a simple-transport
// connect made while the process already has SimpleMaxConns live sockets.
// A simple listener at the limit stops accepting (the kernel's backlog
// holds new connections) until a socket closes.
var ErrTooManyConns = errors.New("stack: too many simple-transport connections (see SetSimpleMaxConns)")

var (
	livePipes atomic.Int64 // simple sockets open in this process
	maxPipes  atomic.Int64
)

func init() { maxPipes.Store(DefaultSimpleMaxConns) }

// SetSimpleMaxConns sets the process-wide limit on live simple-transport
// sockets (accepted and connected, all stacks together) and returns the
// previous one; n <= 0 restores the default. To go past about 4,000, raise
// Go's thread limit first (runtime/debug.SetMaxThreads, about 2 per socket
// plus a margin), and the kernel's (ulimit -u, kernel.threads-max).
// Any goroutine.
func SetSimpleMaxConns(n int) int {
	if n <= 0 {
		n = DefaultSimpleMaxConns
	}
	return int(maxPipes.Swap(int64(n)))
}

// reservePipe counts one more simple socket unless the limit is reached.
func reservePipe() bool {
	for {
		n := livePipes.Load()
		if n >= maxPipes.Load() {
			return false
		}
		if livePipes.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func releasePipe() { livePipes.Add(-1) }

var (
	bigInPool  = sync.Pool{New: func() any { return new([pipeBigIn]byte) }}
	bigOutPool = sync.Pool{New: func() any { return new([pipeBigOut]byte) }}
)

type simpleTransport struct{}

func (simpleTransport) name() string { return "simple" }

func (simpleTransport) listen(addr netip.AddrPort, opts SockOpts, backlog int) (serverImpl, error) {
	impl, err := posixTransport{}.listen(addr, opts, backlog)
	if err != nil {
		return nil, err
	}
	ps := impl.(*posixServer)
	// The accepter blocks in accept(2).
	if err := unix.SetNonblock(ps.fd, false); err != nil {
		ps.close()
		return nil, os.NewSyscallError("fcntl O_NONBLOCK", err)
	}
	return &simpleServer{posixServer: ps, stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// connect is posix's nonblocking connect, watched by the loop like posix's;
// the fd becomes blocking once connected (connectResult, or here when the
// kernel connected at once).
func (simpleTransport) connect(addr netip.AddrPort, opts SockOpts) (connImpl, bool, error) {
	if !reservePipe() {
		return nil, false, ErrTooManyConns
	}
	impl, inProgress, err := posixTransport{}.connect(addr, opts)
	if err != nil {
		releasePipe()
		return nil, false, err
	}
	p := newPipeConn(impl.(*posixConn).fd) // owns the reservation now
	if !inProgress {
		if err := p.setBlocking(); err != nil {
			p.close()
			return nil, false, err
		}
	}
	return p, inProgress, nil
}

// simpleServer is a blocking listening socket with its accepter goroutine.
type simpleServer struct {
	*posixServer

	mu      sync.Mutex
	started bool
	closing bool
	stop    chan struct{} // closed by close: ends a pause after an accept error
	done    chan struct{} // closed when the accepter has exited
}

var _ selfAccepter = (*simpleServer)(nil)

// acceptFD blocks until a connection arrives (accept4 without NONBLOCK:
// the new fd is blocking and close-on-exec) and sets its options.
func (l *simpleServer) acceptFD() (int, error) {
	for {
		fd, _, err := unix.Accept4(l.fd, unix.SOCK_CLOEXEC)
		switch err {
		case nil:
			if err := l.opts.apply(fd, l.family); err != nil {
				unix.Close(fd)
				return -1, err
			}
			return fd, nil
		case unix.EINTR, unix.ECONNABORTED:
			continue
		default:
			return -1, os.NewSyscallError("accept4", err)
		}
	}
}

// accept implements serverImpl (the accepter goroutine does the same in
// steps, waiting at the connection limit instead of failing).
func (l *simpleServer) accept() (connImpl, error) {
	fd, err := l.acceptFD()
	if err != nil {
		return nil, err
	}
	if !reservePipe() {
		unix.Close(fd)
		return nil, ErrTooManyConns
	}
	return newPipeConn(fd), nil
}

func (l *simpleServer) startAccepting(handOff func(connImpl), logf func(string, ...any)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing || l.started {
		return
	}
	l.started = true
	go l.accepter(handOff, logf)
}

// accepter is Ceph's Accepter thread: accept, hand the socket to the least
// loaded worker (handOff), repeat until close. At SimpleMaxConns it stops
// accepting, so new connections wait in the kernel's backlog.
func (l *simpleServer) accepter(handOff func(connImpl), logf func(string, ...any)) {
	defer close(l.done)
	for {
		if !l.waitForRoom(logf) {
			return
		}
		fd, err := l.acceptFD()
		if l.isClosing() {
			if err == nil {
				unix.Close(fd)
			}
			return
		}
		if err != nil {
			// Out of fds or memory, or anything unexpected: retrying at
			// once would spin on the same error.
			logf("stack: listener %s: %v", l.bound, err)
			if !l.pause() {
				return
			}
			continue
		}
		// A connect may have taken the last slot since waitForRoom.
		for logged := false; !reservePipe(); logged = true {
			if !logged {
				logf("stack: listener %s: %v", l.bound, ErrTooManyConns)
			}
			if !l.pause() {
				unix.Close(fd)
				return
			}
		}
		handOff(newPipeConn(fd))
	}
}

// waitForRoom waits while the process is at SimpleMaxConns; false means
// the listener is closing.
func (l *simpleServer) waitForRoom(logf func(string, ...any)) bool {
	for logged := false; livePipes.Load() >= maxPipes.Load(); logged = true {
		if !logged {
			logf("stack: listener %s: %v", l.bound, ErrTooManyConns)
		}
		if !l.pause() {
			return false
		}
	}
	return true
}

// pause sleeps acceptRetry; false means close cut it short.
func (l *simpleServer) pause() bool {
	t := time.NewTimer(acceptRetry)
	defer t.Stop()
	select {
	case <-l.stop:
		return false
	case <-t.C:
		return true
	}
}

func (l *simpleServer) isClosing() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closing
}

// close stops the accepter and closes the fd. On Linux, shutdown(2) of a
// listening socket takes it out of LISTEN and wakes a blocked accept(2)
// with EINVAL (TestSimpleListenerCloseWakesAccept checks it).
func (l *simpleServer) close() error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return nil
	}
	l.closing = true
	started := l.started
	close(l.stop)
	l.mu.Unlock()
	if started {
		_ = unix.Shutdown(l.fd, unix.SHUT_RDWR)
		<-l.done
	}
	return unix.Close(l.fd)
}

// ring is a byte ring buffer. The producer side calls space/put (and may
// swap buf while n == 0); the consumer side data/get/consume. Both sides
// hold pipeConn.mu, except for the bytes one side has taken to a syscall:
// those lie outside what the other side touches until it relocks.
type ring struct {
	buf  []byte
	head int // first held byte
	n    int // bytes held
}

func (r *ring) free() int { return len(r.buf) - r.n }

// data returns the held bytes as at most two slices.
func (r *ring) data() (a, b []byte) {
	end := r.head + r.n
	if end <= len(r.buf) {
		return r.buf[r.head:end], nil
	}
	return r.buf[r.head:], r.buf[:end-len(r.buf)]
}

// space returns the free room as at most two slices. Producer only: when
// the ring is empty it restarts at 0, so the room is one slice.
func (r *ring) space() (a, b []byte) {
	if r.n == 0 {
		r.head = 0
	}
	tail := r.head + r.n
	if tail >= len(r.buf) {
		return r.buf[tail-len(r.buf) : r.head], nil
	}
	return r.buf[tail:], r.buf[:r.head]
}

// put copies what fits of p in and returns how much.
func (r *ring) put(p []byte) int {
	a, b := r.space()
	k := copy(a, p)
	k += copy(b, p[k:])
	r.n += k
	return k
}

// get copies up to len(p) held bytes out and consumes them.
func (r *ring) get(p []byte) int {
	a, b := r.data()
	k := copy(p, a)
	k += copy(p[k:], b)
	r.consume(k)
	return k
}

// getv fills bufs in order from the held bytes (at most iovMax non-empty
// buffers, as posix's readv) and returns how many it copied.
func (r *ring) getv(bufs [][]byte) int {
	total, used := 0, 0
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		if used == iovMax || r.n == 0 {
			break
		}
		used++
		total += r.get(b)
	}
	return total
}

// putv stages bufs in order (at most iovMax non-empty buffers, as posix's
// writev) until the ring is full, and returns how many bytes it took.
func (r *ring) putv(bufs [][]byte) int {
	total, used := 0, 0
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		if used == iovMax {
			break
		}
		used++
		k := r.put(b)
		total += k
		if k < len(b) {
			break
		}
	}
	return total
}

// iovBytes is how many bytes a writev of bufs offers: those of the first
// iovMax non-empty buffers.
func iovBytes(bufs [][]byte) int {
	need, used := 0, 0
	for _, b := range bufs {
		if len(b) > 0 {
			if used == iovMax {
				break
			}
			used++
			need += len(b)
		}
	}
	return need
}

// moveTo makes buf the ring's buffer, the held bytes copied to its start
// in order (buf must hold them): a ring switching to a larger buffer.
func (r *ring) moveTo(buf []byte) {
	a, b := r.data()
	k := copy(buf, a)
	copy(buf[k:], b)
	*r = ring{buf: buf, n: r.n}
}

func (r *ring) consume(k int) {
	r.head += k
	if r.head >= len(r.buf) {
		r.head -= len(r.buf)
	}
	r.n -= k
}

// pipeConn is one connected socket of the simple transport (Ceph's Pipe).
// It holds one reservePipe count from creation until close.
type pipeConn struct {
	blockingFD

	// Set by start before the goroutines exist; read-only after.
	center   *event.Center
	fire     event.FileFunc
	notifyFn func() // p.notify, bound once so Submit does not allocate

	mu       sync.Mutex
	rcond    sync.Cond     // reader waits for room in in
	wseq     atomic.Uint32 // futex word of the writer's wait for bytes in out (see writer)
	in       ring
	inSmall  []byte
	inBig    *[pipeBigIn]byte // in.buf while streaming, else nil
	rerr     error            // reader's end (io.EOF or error), after the bytes in in
	rWait    bool
	out      ring
	outSmall []byte
	outBig   *[pipeBigOut]byte
	werr     error // writer's error: returned by Write, and by Read once in is empty
	wWait    bool
	wBusy    bool       // the writer has bytes of out in a sendmsg
	wStuck   bool       // ... a blocking one, on a full kernel buffer
	want     event.Mask // what the Socket watches
	pending  bool       // notify is queued on the loop
	started  bool
	closing  bool
	rdone    chan struct{}
	wdone    chan struct{}

	// Syscall arguments, one set per goroutine, reused (no allocation).
	riov [2]unix.Iovec
	wiov [2]unix.Iovec
	wmsg unix.Msghdr
}

var _ selfNotifier = (*pipeConn)(nil)

func newPipeConn(fd int) *pipeConn {
	bufs := make([]byte, 2*pipeSmall)
	p := &pipeConn{blockingFD: blockingFD{fd}, inSmall: bufs[:pipeSmall:pipeSmall], outSmall: bufs[pipeSmall:]}
	p.in.buf, p.out.buf = p.inSmall, p.outSmall
	p.rcond.L = &p.mu
	p.notifyFn = p.notify
	return p
}

// blockingFD is the fd of a connected socket that is switched to blocking
// mode once connected (simple: its threads block in the syscalls;
// io_uring: the ring waits for it). Both transports connect through posix's
// nonblocking connect first.
type blockingFD struct{ fd int }

func (b blockingFD) sysfd() int                 { return b.fd }
func (b blockingFD) localAddr() netip.AddrPort  { return localAddr(b.fd) }
func (b blockingFD) remoteAddr() netip.AddrPort { return remoteAddr(b.fd) }

func (b blockingFD) setBlocking() error {
	return os.NewSyscallError("fcntl O_NONBLOCK", unix.SetNonblock(b.fd, false))
}

// connectResult is posix's, plus the switch to blocking once connected.
func (b blockingFD) connectResult() error {
	pc := posixConn{fd: b.fd}
	if err := pc.connectResult(); err != nil {
		return err
	}
	return b.setBlocking()
}

func (p *pipeConn) start(c *event.Center, fire event.FileFunc) {
	p.center, p.fire = c, fire
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing || p.started {
		return
	}
	p.started = true
	p.rdone, p.wdone = make(chan struct{}), make(chan struct{})
	go p.reader()
	go p.writer()
}

// --- loop side ---------------------------------------------------------------

// readyLocked returns the wanted bits that are ready now.
func (p *pipeConn) readyLocked() event.Mask {
	if p.closing {
		return event.None
	}
	var m event.Mask
	if p.want&event.Readable != 0 && (p.in.n > 0 || p.rerr != nil || p.werr != nil) {
		m |= event.Readable
	}
	if p.want&event.Writable != 0 && (p.out.free() > 0 || p.werr != nil) {
		m |= event.Writable
	}
	return m
}

// kickLocked reports whether the caller must Submit notify (then does so
// after unlocking): a wanted bit is ready and no notify is queued.
func (p *pipeConn) kickLocked() bool {
	if p.pending || p.readyLocked() == event.None {
		return false
	}
	p.pending = true
	return true
}

func (p *pipeConn) submit() {
	// An error means the loop is stopping; Stop's sweep closes the socket.
	_ = p.center.Submit(p.notifyFn)
}

// notify runs on the loop: it calls the Socket's handlers for the ready
// bits, and queues itself again while they stay ready (level-triggered).
func (p *pipeConn) notify() {
	p.mu.Lock()
	p.pending = false
	m := p.readyLocked()
	p.mu.Unlock()
	if m == event.None {
		return
	}
	p.fire(p.fd, m)
	p.mu.Lock()
	again := p.kickLocked()
	p.mu.Unlock()
	if again {
		p.submit()
	}
}

func (p *pipeConn) setWant(m event.Mask) {
	p.mu.Lock()
	p.want = m
	kick := p.kickLocked()
	p.mu.Unlock()
	if kick {
		p.submit()
	}
}

// endErrLocked is what a read of an empty ring returns.
func (p *pipeConn) endErrLocked() error {
	switch {
	case p.rerr != nil:
		return p.rerr
	case p.werr != nil:
		return p.werr
	}
	return ErrWouldBlock
}

// wakeReaderLocked lets the reader go on once a quarter of in is free, so
// it does not make tiny reads into the last few bytes.
func (p *pipeConn) wakeReaderLocked() {
	if p.rWait && p.in.free() >= len(p.in.buf)/4 {
		p.rWait = false
		p.rcond.Signal()
	}
}

func (p *pipeConn) read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.in.n == 0 {
		return 0, p.endErrLocked()
	}
	k := p.in.get(b)
	p.wakeReaderLocked()
	return k, nil
}

// readv fills bufs in order (at most iovMax non-empty ones, as posix).
func (p *pipeConn) readv(bufs [][]byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.in.n == 0 {
		if !hasData(bufs) {
			return 0, nil
		}
		return 0, p.endErrLocked()
	}
	total := p.in.getv(bufs)
	p.wakeReaderLocked()
	return total, nil
}

func hasData(bufs [][]byte) bool {
	for _, b := range bufs {
		if len(b) > 0 {
			return true
		}
	}
	return false
}

// wakeWriterLocked reports whether the writer waits for bytes; the caller
// then calls wakeWriter after unlocking (so the woken thread does not at
// once block on mu).
func (p *pipeConn) wakeWriterLocked() bool {
	if !p.wWait {
		return false
	}
	p.wWait = false
	p.wseq.Add(1)
	return true
}

func (p *pipeConn) wakeWriter() { futexWake(&p.wseq) }

// growOutLocked moves out to the large ring when need bytes do not fit and
// the writer holds none of out in a syscall (so the bytes can move).
func (p *pipeConn) growOutLocked(need int) {
	if p.outBig != nil || p.wBusy || need <= p.out.free() {
		return
	}
	p.outBig = bigOutPool.Get().(*[pipeBigOut]byte)
	p.out.moveTo(p.outBig[:])
}

func (p *pipeConn) write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	p.mu.Lock()
	if err := p.werr; err != nil {
		p.mu.Unlock()
		return 0, err
	}
	p.growOutLocked(len(b))
	k := p.out.put(b)
	wake := k > 0 && p.wakeWriterLocked()
	p.mu.Unlock()
	if k == 0 {
		return 0, ErrWouldBlock
	}
	if wake {
		p.wakeWriter()
	}
	return k, nil
}

// writev stages bufs in order (at most iovMax non-empty ones, as posix).
func (p *pipeConn) writev(bufs [][]byte) (int, error) {
	p.mu.Lock()
	total, wake, err := p.writevLocked(bufs)
	p.mu.Unlock()
	if wake {
		p.wakeWriter()
	}
	return total, err
}

func (p *pipeConn) writevLocked(bufs [][]byte) (total int, wake bool, err error) {
	if p.werr != nil {
		return 0, false, p.werr
	}
	need := iovBytes(bufs)
	if need == 0 {
		return 0, false, nil
	}
	p.growOutLocked(need)
	if total = p.out.putv(bufs); total == 0 {
		return 0, false, ErrWouldBlock
	}
	return total, p.wakeWriterLocked(), nil
}

// close ends both goroutines and closes the fd. Loop thread (or Stop's
// sweep once the loops are gone); called once, by Socket.closeNow or on a
// connect that failed.
func (p *pipeConn) close() error {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		return nil
	}
	p.closing = true
	started, stuck := p.started, p.wStuck
	p.rcond.Broadcast()
	wake := p.wakeWriterLocked()
	p.mu.Unlock()
	if wake {
		p.wakeWriter()
	}
	if started {
		if stuck {
			// Blocked on a full kernel buffer: only shutdown ends it.
			_ = unix.Shutdown(p.fd, unix.SHUT_RDWR)
		}
		<-p.wdone
		// FIN after what the writer pushed; wakes the reader's read(2).
		_ = unix.Shutdown(p.fd, unix.SHUT_RDWR)
		<-p.rdone
	}
	p.mu.Lock()
	p.releaseLocked()
	p.mu.Unlock()
	releasePipe()
	return unix.Close(p.fd)
}

// releaseLocked returns the large rings to their pools.
func (p *pipeConn) releaseLocked() {
	if p.inBig != nil {
		bigInPool.Put(p.inBig)
		p.inBig = nil
	}
	if p.outBig != nil {
		bigOutPool.Put(p.outBig)
		p.outBig = nil
	}
	p.in, p.out = ring{buf: p.inSmall}, ring{buf: p.outSmall}
}

// --- the reader goroutine -------------------------------------------------------

func (p *pipeConn) reader() {
	defer close(p.rdone)
	filled := false // the last read took all the room it was given
	for {
		p.mu.Lock()
		for !p.closing && p.in.free() < max(len(p.in.buf)/4, 1) {
			p.rWait = true
			p.rcond.Wait()
		}
		if p.closing {
			p.mu.Unlock()
			return
		}
		if p.in.n == 0 {
			// Nothing staged, so nobody holds a slice of in: the buffer
			// may change. Large while data streams, small when it does not.
			switch {
			case filled && p.inBig == nil:
				p.inBig = bigInPool.Get().(*[pipeBigIn]byte)
				p.in = ring{buf: p.inBig[:]}
			case !filled && p.inBig != nil:
				bigInPool.Put(p.inBig)
				p.inBig = nil
				p.in = ring{buf: p.inSmall}
			}
		}
		a, b := p.in.space()
		p.mu.Unlock()

		n, errno := p.readv2(a, b)

		p.mu.Lock()
		filled = n == len(a)+len(b)
		if n > 0 {
			p.in.n += n
		}
		switch {
		case errno != 0:
			p.rerr = os.NewSyscallError("read", errno)
		case n == 0:
			p.rerr = io.EOF
		}
		end := p.rerr != nil
		kick := p.kickLocked()
		p.mu.Unlock()
		if kick {
			p.submit()
		}
		if end {
			return
		}
	}
}

// readv2 is a blocking readv(2) into up to two slices.
func (p *pipeConn) readv2(a, b []byte) (int, unix.Errno) {
	iov := p.riov[:1]
	iov[0] = unix.Iovec{Base: &a[0]}
	iov[0].SetLen(len(a))
	if len(b) > 0 {
		iov = p.riov[:2]
		iov[1] = unix.Iovec{Base: &b[0]}
		iov[1].SetLen(len(b))
	}
	for {
		r, _, e := unix.Syscall(unix.SYS_READV, uintptr(p.fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		if e == unix.EINTR {
			continue
		}
		p.riov = [2]unix.Iovec{}
		if e != 0 {
			return 0, e
		}
		return int(r), 0
	}
}

// --- the writer goroutine -------------------------------------------------------

// writer is the Pipe's writer thread. While out is empty it waits in
// futex(2), not on a Go condition variable: it then keeps its OS thread (a
// second thread per connection, as Ceph's Pipe has), but the loop wakes it
// with one syscall. Readying a parked goroutine from the loop's locked
// thread instead goes through the Go scheduler, which on the 2-core
// reference VM added about 100 µs per message (BenchmarkPingPong/simple:
// ~350 µs a round trip with a sync.Cond, ~130 µs with the futex).
func (p *pipeConn) writer() {
	defer close(p.wdone)
	block := false // the kernel buffer was full: wait in the next sendmsg
	for {
		p.mu.Lock()
		for !p.closing && p.out.n == 0 {
			p.wWait = true
			seq := p.wseq.Load()
			p.mu.Unlock()
			futexWait(&p.wseq, seq) // returns at once if a wake-up came since
			p.mu.Lock()
		}
		if p.closing {
			p.flushLocked()
			p.mu.Unlock()
			return
		}
		a, b := p.out.data()
		p.wBusy, p.wStuck = true, block
		p.mu.Unlock()

		n, errno := p.sendmsg2(a, b, block)

		p.mu.Lock()
		p.wBusy, p.wStuck = false, false
		p.consumeOutLocked(n)
		block = errno == unix.EAGAIN || (errno == 0 && n < len(a)+len(b))
		if errno != 0 && errno != unix.EAGAIN {
			p.werr = os.NewSyscallError("sendmsg", errno)
		}
		kick := p.kickLocked()
		end := p.werr != nil
		p.mu.Unlock()
		if kick {
			p.submit()
		}
		if end {
			return
		}
	}
}

// consumeOutLocked drops n sent bytes; a drained large ring goes back to
// the pool (the writer holds no slice of it now).
func (p *pipeConn) consumeOutLocked(n int) {
	if n > 0 {
		p.out.consume(n)
	}
	if p.out.n == 0 && p.outBig != nil {
		bigOutPool.Put(p.outBig)
		p.outBig = nil
		p.out = ring{buf: p.outSmall}
	}
}

// flushLocked pushes what is staged into the kernel without blocking, at
// Close: bytes Write accepted reach the peer as they would with posix,
// unless the kernel buffer is full.
func (p *pipeConn) flushLocked() {
	for p.out.n > 0 && p.werr == nil {
		a, b := p.out.data()
		n, errno := p.sendmsg2(a, b, false)
		p.consumeOutLocked(n)
		if errno != 0 || n == 0 {
			return
		}
	}
}

// sendmsg2 is sendmsg(2) of up to two slices, MSG_NOSIGNAL (a reset peer
// gives EPIPE, never SIGPIPE) and MSG_DONTWAIT unless block.
func (p *pipeConn) sendmsg2(a, b []byte, block bool) (int, unix.Errno) {
	fillMsg(&p.wmsg, &p.wiov, a, b)
	flags := uintptr(unix.MSG_NOSIGNAL)
	if !block {
		flags |= unix.MSG_DONTWAIT
	}
	for {
		r, _, e := unix.Syscall(unix.SYS_SENDMSG, uintptr(p.fd), uintptr(unsafe.Pointer(&p.wmsg)), flags)
		if e == unix.EINTR {
			continue
		}
		p.wmsg.Iov = nil
		p.wiov = [2]unix.Iovec{}
		if e != 0 {
			return 0, e
		}
		return int(r), 0
	}
}

// fillMsg points msg at a and (if not empty) b.
func fillMsg(msg *unix.Msghdr, iov *[2]unix.Iovec, a, b []byte) {
	iov[0] = unix.Iovec{Base: unsafe.SliceData(a)}
	iov[0].SetLen(len(a))
	n := 1
	if len(b) > 0 {
		iov[1] = unix.Iovec{Base: unsafe.SliceData(b)}
		iov[1].SetLen(len(b))
		n = 2
	}
	msg.Iov = &iov[0]
	msg.SetIovlen(n)
}

// futex(2) operations (linux/futex.h; x/sys/unix does not name them).
const (
	futexWaitPrivate = 0 | 128 // FUTEX_WAIT | FUTEX_PRIVATE_FLAG
	futexWakePrivate = 1 | 128 // FUTEX_WAKE | FUTEX_PRIVATE_FLAG
)

// futexWait sleeps while *addr == val (or until a wake-up or a signal).
// The word lives in a heap object, which Go never moves.
func futexWait(addr *atomic.Uint32, val uint32) {
	_, _, _ = unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWaitPrivate, uintptr(val), 0, 0, 0)
}

// futexWake wakes one thread sleeping in futexWait on addr.
func futexWake(addr *atomic.Uint32) {
	_, _, _ = unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWakePrivate, 1, 0, 0, 0)
}
