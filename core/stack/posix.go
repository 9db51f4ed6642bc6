package stack

// The posix transport: kernel TCP sockets driven by readiness events (Ceph's
// PosixNetworkStack, PosixServerSocketImpl and PosixConnectedSocketImpl).
// Every call here is nonblocking; none touches a Center.

import (
	"errors"
	"io"
	"net/netip"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The data calls (read, readv, send, sendmsg) use RawSyscall: every fd here
// is nonblocking, so a call never parks its thread, and skipping the
// runtime's entersyscall/exitsyscall saves about 0.1 µs a call and keeps
// sysmon from seeing the worker's P "in a syscall" and handing it off
// (measured: W5 round trips/s +9..11%, same run; W1..W4 unchanged).

// iovMax is the kernel's IOV_MAX: one readv/writev moves at most this many
// buffers; the caller sees a short count and sends the rest next time.
const iovMax = 1024

type posixTransport struct{}

func (posixTransport) name() string { return "posix" }

func (posixTransport) listen(addr netip.AddrPort, opts SockOpts, backlog int) (serverImpl, error) {
	sa, family, err := toSockaddr(addr)
	if err != nil {
		return nil, err
	}
	fd, err := openSocket(family)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (serverImpl, error) {
		unix.Close(fd)
		return nil, err
	}
	if family == unix.AF_INET6 {
		// One family per listener, as Ceph binds: [::] then does not also
		// take IPv4, so an IPv4 listener can share the port.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fail(os.NewSyscallError("setsockopt IPV6_V6ONLY", err))
		}
	}
	if err := opts.applyBeforeBind(fd); err != nil {
		return fail(err)
	}
	if err := opts.apply(fd, family); err != nil {
		return fail(err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail(os.NewSyscallError("bind", err))
	}
	if err := unix.Listen(fd, backlog); err != nil {
		return fail(os.NewSyscallError("listen", err))
	}
	return &posixServer{fd: fd, family: family, opts: opts, bound: localAddr(fd)}, nil
}

// connect starts a nonblocking connect (Ceph NetHandler::nonblock_connect).
// inProgress means the result comes later: wait for Writable, then call
// connectResult.
func (posixTransport) connect(addr netip.AddrPort, opts SockOpts) (c connImpl, inProgress bool, err error) {
	sa, family, err := toSockaddr(addr)
	if err != nil {
		return nil, false, err
	}
	fd, err := openSocket(family)
	if err != nil {
		return nil, false, err
	}
	if err := opts.applyBeforeBind(fd); err != nil {
		unix.Close(fd)
		return nil, false, err
	}
	if err := opts.apply(fd, family); err != nil {
		unix.Close(fd)
		return nil, false, err
	}
	pc := newPosixConn(fd)
	switch err := unix.Connect(fd, sa); err {
	case nil:
		return pc, false, nil
	case unix.EINPROGRESS, unix.EINTR, unix.EALREADY:
		// EINTR: the kernel carries on with the handshake; the result
		// arrives as for EINPROGRESS.
		return pc, true, nil
	default:
		unix.Close(fd)
		return nil, false, err // a bare errno: errors.Is(err, unix.ECONNREFUSED)
	}
}

type posixServer struct {
	fd     int
	family int
	opts   SockOpts
	bound  netip.AddrPort
}

func (l *posixServer) sysfd() int           { return l.fd }
func (l *posixServer) addr() netip.AddrPort { return l.bound }
func (l *posixServer) close() error         { return unix.Close(l.fd) }

// accept takes one connection (accept4 with NONBLOCK|CLOEXEC, so there is
// no window where the fd could leak into a child). It returns ErrWouldBlock
// when the queue is empty.
func (l *posixServer) accept() (connImpl, error) {
	for {
		fd, _, err := unix.Accept4(l.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch err {
		case nil:
			// Accepted sockets inherit buffer sizes from the listener; the
			// rest is set again, as Ceph's set_socket_options does.
			if err := l.opts.apply(fd, l.family); err != nil {
				unix.Close(fd)
				return nil, err
			}
			return newPosixConn(fd), nil
		case unix.EINTR, unix.ECONNABORTED:
			continue // the peer gave up before we took it; try the next
		case unix.EAGAIN:
			return nil, ErrWouldBlock
		default:
			return nil, os.NewSyscallError("accept4", err)
		}
	}
}

// posixConn is one connected TCP socket. The iovec array and msghdr are
// reused so steady-state readv/writev calls allocate nothing.
type posixConn struct {
	fd  int
	iov []unix.Iovec
	msg unix.Msghdr
}

func newPosixConn(fd int) *posixConn { return &posixConn{fd: fd} }

func (c *posixConn) sysfd() int                 { return c.fd }
func (c *posixConn) localAddr() netip.AddrPort  { return localAddr(c.fd) }
func (c *posixConn) remoteAddr() netip.AddrPort { return remoteAddr(c.fd) }
func (c *posixConn) close() error               { return unix.Close(c.fd) }

// connectResult reads the outcome of a nonblocking connect once the socket
// turned writable (SO_ERROR), as Ceph's NetHandler::reconnect does.
func (c *posixConn) connectResult() error {
	v, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return os.NewSyscallError("getsockopt SO_ERROR", err)
	}
	if v != 0 {
		return unix.Errno(v)
	}
	// SO_ERROR 0 and no peer yet: the wakeup came before the handshake
	// ended (Ceph's NetHandler::reconnect checks the same way).
	if _, err := unix.Getpeername(c.fd); err == unix.ENOTCONN {
		return errInProgress
	}
	return nil
}

func (c *posixConn) read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(c.fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch {
		case e == 0 && r == 0:
			return 0, io.EOF
		case e == 0:
			return int(r), nil
		case e == unix.EINTR:
			continue
		case e == unix.EAGAIN:
			return 0, ErrWouldBlock
		default:
			return 0, os.NewSyscallError("read", e)
		}
	}
}

// fill loads bufs into the reused iovec array, skipping empty buffers, and
// returns how many entries it used and how many bytes they cover.
func (c *posixConn) fill(bufs [][]byte) (int, int) {
	if c.iov == nil {
		c.iov = make([]unix.Iovec, 0, 64)
	}
	iov := c.iov[:0]
	total := 0
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		if len(iov) == iovMax {
			break
		}
		iov = append(iov, unix.Iovec{Base: &b[0]})
		iov[len(iov)-1].SetLen(len(b))
		total += len(b)
	}
	c.iov = iov
	return len(iov), total
}

// clear drops the references to the caller's buffers, so the reused array
// does not keep them alive after the call.
func (c *posixConn) clear(n int) {
	for i := range c.iov[:n] {
		c.iov[i] = unix.Iovec{}
	}
}

func (c *posixConn) readv(bufs [][]byte) (int, error) {
	n, total := c.fill(bufs)
	if total == 0 {
		return 0, nil
	}
	var r uintptr
	var e unix.Errno
	for {
		r, _, e = unix.RawSyscall(unix.SYS_READV, uintptr(c.fd), uintptr(unsafe.Pointer(&c.iov[0])), uintptr(n))
		if e != unix.EINTR {
			break
		}
	}
	c.clear(n)
	switch {
	case e == 0 && r == 0:
		return 0, io.EOF
	case e == 0:
		return int(r), nil
	case e == unix.EAGAIN:
		return 0, ErrWouldBlock
	default:
		return 0, os.NewSyscallError("readv", e)
	}
}

// write uses send(MSG_NOSIGNAL): a write to a reset peer must give EPIPE,
// not SIGPIPE, even when the process is a C program that loaded libmsgr.
func (c *posixConn) write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(c.fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
			unix.MSG_NOSIGNAL, 0, 0)
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, ErrWouldBlock
		default:
			return 0, os.NewSyscallError("send", e)
		}
	}
}

// writev is sendmsg(MSG_NOSIGNAL) over the reused iovec array: writev(2)
// with the no-SIGPIPE flag.
func (c *posixConn) writev(bufs [][]byte) (int, error) {
	n, total := c.fill(bufs)
	if total == 0 {
		return 0, nil
	}
	c.msg.Iov = &c.iov[0]
	c.msg.SetIovlen(n)
	var r uintptr
	var e unix.Errno
	for {
		r, _, e = unix.RawSyscall(unix.SYS_SENDMSG, uintptr(c.fd), uintptr(unsafe.Pointer(&c.msg)), unix.MSG_NOSIGNAL)
		if e != unix.EINTR {
			break
		}
	}
	c.msg.Iov = nil
	c.clear(n)
	switch e {
	case 0:
		return int(r), nil
	case unix.EAGAIN:
		return 0, ErrWouldBlock
	default:
		return 0, os.NewSyscallError("sendmsg", e)
	}
}

var errETIMEDOUT error = unix.ETIMEDOUT

// errInProgress is connectResult's answer when the socket woke up writable
// but the handshake has not finished (a spurious wakeup): keep waiting.
var errInProgress = unix.EINPROGRESS

// isResourceErr reports accept errors that mean "out of fds or memory":
// retrying at once would spin, so the listener pauses instead.
func isResourceErr(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) ||
		errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENOMEM)
}
