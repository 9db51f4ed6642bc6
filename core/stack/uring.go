//go:build linux

package stack

// The io_uring transport (Options.Type "io_uring"; the messenger's ms_type
// async+io_uring). Listening and connecting are posix's, watched by the
// worker's Center, whose driver is then io_uring (readiness by one-shot
// polls on the ring). A connected socket makes no syscall of its own per
// message: its reads and writes go through staging rings (the simple
// transport's `ring`), and the worker's ring moves the bytes:
//
//   - in: one recv is kept in flight into the free room of the in ring
//     (4 KiB; 512 KiB from the pool while data streams, see uringBigIn). Its
//     completion (run by the Center right after the wait that reaped it)
//     adds the bytes and fires the read handler; Socket.Read/Readv copy out
//     and re-arm the recv once a quarter of the ring is free. EOF or an
//     error is kept and returned after the bytes staged before it.
//   - out: Socket.Write/Writev copy into the out ring and, if no send is in
//     flight, queue one sendmsg of all the staged bytes; more bytes written
//     meanwhile go out with the next, so a busy socket batches by itself.
//     The queued operations of every socket of the worker are submitted
//     together by the loop's next wait: one io_uring_enter per loop
//     iteration instead of a read(2) and a sendmsg(2) per message, which is
//     what the transport is for (bench/w5-floor).
//
// Everything runs on the worker's loop thread, so, unlike simple, nothing
// is locked. Readiness is level-triggered as with the drivers: after the
// handlers ran, a wanted bit still ready (bytes left unread, room left and
// Writable still wanted) fires again from the loop's queue.
//
// The fd is in blocking mode once connected: io_uring then waits for the
// socket itself (it first tries without blocking and arms an internal
// poll), and the fallback flush at Close passes MSG_DONTWAIT.
//
// Close cancels the recv and the send in flight; when both have completed
// (the kernel then holds no byte of the rings) the staged bytes are pushed
// without blocking, as simple does, and the fd is closed. Until then the
// fd stays open, so its number cannot be reused under an operation. When a
// worker stops, its Center cancels whatever is still in flight and runs the
// completions, so no fd outlives Stack.Stop.
//
// Where io_uring cannot be used (kernel before 5.11, kernel.io_uring_disabled,
// a seccomp filter), New falls back to posix and says so through Logf.

import (
	"errors"
	"io"
	"net/netip"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/msgr-dev/msgr/core/event"
	"github.com/msgr-dev/msgr/core/event/driver"
)

type uringTransport struct{}

func (uringTransport) name() string { return "io_uring" }

func (uringTransport) listen(addr netip.AddrPort, opts SockOpts, backlog int) (serverImpl, error) {
	impl, err := posixTransport{}.listen(addr, opts, backlog)
	if err != nil {
		return nil, err
	}
	return uringServer{impl.(*posixServer)}, nil
}

func (uringTransport) connect(addr netip.AddrPort, opts SockOpts) (connImpl, bool, error) {
	impl, inProgress, err := posixTransport{}.connect(addr, opts)
	if err != nil {
		return nil, false, err
	}
	u := newUringConn(impl.(*posixConn).fd)
	if !inProgress {
		if err := u.setBlocking(); err != nil {
			u.close()
			return nil, false, err
		}
	}
	return u, inProgress, nil
}

// uringServer is posix's listening socket; accepted sockets become
// uringConns.
type uringServer struct{ *posixServer }

func (l uringServer) accept() (connImpl, error) {
	c, err := l.posixServer.accept()
	if err != nil {
		return nil, err
	}
	u := newUringConn(c.(*posixConn).fd)
	if err := u.setBlocking(); err != nil {
		u.close()
		return nil, err
	}
	return u, nil
}

// uringConn is one connected socket of the io_uring transport. Loop thread
// only, except close once the loop has exited (Stack.Stop's last sweep).
type uringConn struct {
	blockingFD
	center   *event.Center
	ring     *driver.Uring
	fire     event.FileFunc
	notifyFn func() // u.notifyQueued, bound once so Submit does not allocate

	in       ring
	inSmall  []byte
	inBig    *[uringBigIn]byte
	recvLen  int  // room given to the recv in flight
	filled   bool // the last recv filled all its room: data streams
	rerr     error
	out      ring
	outSmall []byte
	outBig   *[uringBigOut]byte
	werr     error

	want     event.Mask
	pending  bool // notifyQueued is queued on the loop
	started  bool
	closing  bool
	finished bool

	recv, send driver.Op
	msg        unix.Msghdr
	iov        [2]unix.Iovec
}

var _ selfNotifier = (*uringConn)(nil)

func newUringConn(fd int) *uringConn {
	bufs := make([]byte, 2*pipeSmall)
	u := &uringConn{blockingFD: blockingFD{fd}, inSmall: bufs[:pipeSmall:pipeSmall], outSmall: bufs[pipeSmall:]}
	u.in.buf, u.out.buf = u.inSmall, u.outSmall
	u.notifyFn = u.notifyQueued
	u.recv.Done = u.onRecv
	u.send.Done = u.onSend
	return u
}

// start is called once, when the Socket is made: on the socket's loop for
// a connect, on the listener's (maybe another worker's) for an accept.
func (u *uringConn) start(c *event.Center, fire event.FileFunc) {
	u.center, u.fire = c, fire
	if c.InLoop() {
		u.begin()
		return
	}
	// An error means the stack is stopping; its sweep closes the socket.
	_ = c.Submit(u.begin)
}

// begin arms the first recv, on the loop.
func (u *uringConn) begin() {
	if u.closing || u.started {
		return
	}
	u.started = true
	r, ok := u.center.Driver().(*driver.Uring)
	if !ok {
		u.rerr = errors.New("stack: io_uring socket on a worker without an io_uring driver")
		u.kick()
		return
	}
	u.ring = r
	u.armRecv()
}

// --- readiness ------------------------------------------------------------------

// ready returns the wanted bits that are ready now.
func (u *uringConn) ready() event.Mask {
	if u.closing {
		return event.None
	}
	var m event.Mask
	if u.want&event.Readable != 0 && (u.in.n > 0 || u.rerr != nil || u.werr != nil) {
		m |= event.Readable
	}
	// Writable once a quarter of out is free, as the kernel reports a
	// socket writable only with a third of its buffer free: a handler
	// woken for a few bytes would refill them and be woken again, spinning
	// the loop while the send in flight drains the ring.
	if u.want&event.Writable != 0 && (u.out.free() >= max(len(u.out.buf)/4, 1) || u.werr != nil) {
		m |= event.Writable
	}
	return m
}

// notify runs the handlers of the ready bits now (from a completion, so no
// handler of this socket is running), then queues itself while they stay
// ready.
func (u *uringConn) notify() {
	if u.pending {
		return // the queued notify will see this too
	}
	if m := u.ready(); m != event.None {
		u.fire(u.fd, m)
		u.kick()
	}
}

func (u *uringConn) notifyQueued() {
	u.pending = false
	u.notify()
}

// kick queues notify if a wanted bit is ready and none is queued: from
// inside a handler, firing again at once would recurse.
func (u *uringConn) kick() {
	if u.pending || u.ready() == event.None {
		return
	}
	u.pending = true
	// An error means the loop is stopping; Stop's sweep closes the socket.
	_ = u.center.Submit(u.notifyFn)
}

func (u *uringConn) setWant(m event.Mask) {
	u.want = m
	u.kick()
}

// --- receiving ------------------------------------------------------------------

// armRecv keeps one recv in flight while there is room for it.
func (u *uringConn) armRecv() {
	if u.ring == nil || u.recv.InFlight() || u.closing || u.rerr != nil {
		return
	}
	// No recv is in flight, so the kernel holds no slice of in: the buffer
	// may change. Large while data streams (the last recv filled its room),
	// with the staged bytes moved along: a reader that takes exact
	// segments may never empty the ring, and one stuck on the small ring
	// received a 1 MiB stream 4 KiB a completion (W4 at a fifth of its
	// rate). Back to small once drained and no longer streaming.
	switch {
	case u.filled && u.inBig == nil:
		u.inBig = uringInPool.Get().(*[uringBigIn]byte)
		u.in.moveTo(u.inBig[:])
	case !u.filled && u.inBig != nil && u.in.n == 0:
		uringInPool.Put(u.inBig)
		u.inBig = nil
		u.in = ring{buf: u.inSmall}
	}
	if u.in.free() < max(len(u.in.buf)/4, 1) {
		return // Read re-arms once it has made room
	}
	a, _ := u.in.space()
	if err := u.ring.Recv(&u.recv, u.fd, a); err != nil {
		u.rerr = err
		return
	}
	u.recvLen = len(a)
}

func (u *uringConn) onRecv(res int32) {
	switch {
	case res > 0:
		u.in.n += int(res)
		u.filled = int(res) == u.recvLen
	case u.closing:
	case res == 0:
		u.rerr = io.EOF
	default:
		u.rerr = os.NewSyscallError("recv", unix.Errno(-res))
	}
	if u.closing {
		u.finish()
		return
	}
	u.armRecv()
	u.notify()
}

func (u *uringConn) endErr() error {
	switch {
	case u.rerr != nil:
		return u.rerr
	case u.werr != nil:
		return u.werr
	}
	return ErrWouldBlock
}

func (u *uringConn) read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if u.in.n == 0 {
		return 0, u.endErr()
	}
	k := u.in.get(b)
	u.armRecv()
	return k, nil
}

func (u *uringConn) readv(bufs [][]byte) (int, error) {
	if u.in.n == 0 {
		if !hasData(bufs) {
			return 0, nil
		}
		return 0, u.endErr()
	}
	k := u.in.getv(bufs)
	u.armRecv()
	return k, nil
}

// --- sending --------------------------------------------------------------------

// growOut moves out to the large ring when need bytes do not fit. A send
// in flight may still read the small ring: it stays allocated and is not
// written again until out drains, and the moved bytes keep their order, so
// the send's count consumes the right ones.
func (u *uringConn) growOut(need int) {
	if u.outBig != nil || need <= u.out.free() {
		return
	}
	u.outBig = uringOutPool.Get().(*[uringBigOut]byte)
	u.out.moveTo(u.outBig[:])
}

func (u *uringConn) write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if u.werr != nil {
		return 0, u.werr
	}
	u.growOut(len(b))
	k := u.out.put(b)
	if k == 0 {
		return 0, ErrWouldBlock
	}
	u.armSend()
	return k, nil
}

func (u *uringConn) writev(bufs [][]byte) (int, error) {
	if u.werr != nil {
		return 0, u.werr
	}
	need := iovBytes(bufs)
	if need == 0 {
		return 0, nil
	}
	u.growOut(need)
	k := u.out.putv(bufs)
	if k == 0 {
		return 0, ErrWouldBlock
	}
	u.armSend()
	return k, nil
}

// armSend queues one sendmsg of everything staged, unless one is in flight.
func (u *uringConn) armSend() {
	if u.ring == nil || u.send.InFlight() || u.out.n == 0 || u.werr != nil || u.closing {
		return
	}
	a, b := u.out.data()
	var err error
	if len(b) == 0 {
		err = u.ring.Send(&u.send, u.fd, a, unix.MSG_NOSIGNAL)
	} else {
		fillMsg(&u.msg, &u.iov, a, b)
		err = u.ring.Sendmsg(&u.send, u.fd, &u.msg, unix.MSG_NOSIGNAL)
	}
	if err != nil {
		u.werr = err
	}
}

func (u *uringConn) onSend(res int32) {
	switch {
	case res > 0:
		u.out.consume(int(res))
		u.dropBigOut()
	case u.closing:
	case res < 0:
		u.werr = os.NewSyscallError("sendmsg", unix.Errno(-res))
	}
	if u.closing {
		u.finish()
		return
	}
	u.armSend()
	u.notify()
}

// dropBigOut returns a drained large out ring to its pool (no send holds
// it: bytes in flight count in out.n until they complete).
func (u *uringConn) dropBigOut() {
	if u.out.n == 0 && u.outBig != nil {
		uringOutPool.Put(u.outBig)
		u.outBig = nil
		u.out = ring{buf: u.outSmall}
	}
}

// --- closing --------------------------------------------------------------------

// close cancels what is in flight; the fd is closed once both operations
// have completed (finish). Off the loop (Stop's last sweep) the ring is
// gone with its operations, so it finishes at once.
func (u *uringConn) close() error {
	if u.closing {
		return nil
	}
	u.closing = true
	u.want = event.None
	if u.ring != nil && u.center.InLoop() {
		if u.recv.InFlight() {
			_ = u.ring.Cancel(&u.recv)
		}
		if u.send.InFlight() {
			_ = u.ring.Cancel(&u.send)
		}
		u.finish()
		return nil
	}
	u.finishNow()
	return nil
}

// finish closes the fd once no operation is in flight.
func (u *uringConn) finish() {
	if u.recv.InFlight() || u.send.InFlight() {
		return
	}
	u.finishNow()
}

func (u *uringConn) finishNow() {
	if u.finished {
		return
	}
	u.finished = true
	u.flush()
	if u.inBig != nil {
		uringInPool.Put(u.inBig)
		u.inBig = nil
	}
	if u.outBig != nil {
		uringOutPool.Put(u.outBig)
		u.outBig = nil
	}
	u.in, u.out = ring{buf: u.inSmall}, ring{buf: u.outSmall}
	_ = unix.Close(u.fd)
}

// flush pushes what is staged into the kernel without blocking, so bytes
// Write accepted reach the peer as they would with posix, unless the
// kernel buffer is full.
func (u *uringConn) flush() {
	for u.out.n > 0 && u.werr == nil {
		a, b := u.out.data()
		fillMsg(&u.msg, &u.iov, a, b)
		r, _, e := unix.Syscall(unix.SYS_SENDMSG, uintptr(u.fd), uintptr(unsafe.Pointer(&u.msg)), unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
		if e == unix.EINTR {
			continue
		}
		if e != 0 || r == 0 {
			break
		}
		u.out.consume(int(r))
	}
	u.msg.Iov = nil
	u.iov = [2]unix.Iovec{}
}

// The large rings of a streaming socket. Larger than simple's: with one
// send and one recv in flight at a time, a ring is what the kernel moves
// per trip through the loop. Measured (W3 and W4 over io_uring, medians of
// 5 interleaved): simple's 128/256 KiB gave 1,924 and 2,438 MB/s, these
// 512 KiB/1 MiB 2,972 and 3,984, 1/2 MiB 2,502 and 3,271.
const (
	uringBigIn  = 512 << 10
	uringBigOut = 1 << 20
)

var (
	uringInPool  = sync.Pool{New: func() any { return new([uringBigIn]byte) }}
	uringOutPool = sync.Pool{New: func() any { return new([uringBigOut]byte) }}
)
