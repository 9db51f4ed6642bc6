package stack

// This file is Ceph's NetHandler: creating sockets and setting their options,
// and converting between netip.AddrPort and the kernel's sockaddr. Everything
// here is plain syscalls on an fd and may run on any goroutine.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// SockOpts are the per-socket options the stack sets (Ceph's ms_tcp_nodelay,
// ms_tcp_rcvbuf, ms_tcp_prio and SO_REUSEADDR on listeners). The zero value
// sets nothing and leaves the kernel's defaults; DefaultSockOpts is what a
// messenger normally wants.
type SockOpts struct {
	// NoDelay sets TCP_NODELAY (Ceph default: on). Small frames then leave at
	// once instead of waiting for Nagle's algorithm.
	NoDelay bool
	// RcvBuf and SndBuf set SO_RCVBUF / SO_SNDBUF in bytes when > 0 (the
	// kernel doubles the value and caps it at net.core.{r,w}mem_max).
	RcvBuf, SndBuf int
	// ReuseAddr sets SO_REUSEADDR, so a restarted server can bind a port that
	// still has connections in TIME_WAIT.
	ReuseAddr bool
	// ReusePort sets SO_REUSEPORT, so several listeners can share one port.
	ReusePort bool
	// Priority, when > 0, sets SO_PRIORITY to this value and marks packets
	// with DSCP class CS6 (IP_TOS for IPv4, IPV6_TCLASS for IPv6), as Ceph's
	// NetHandler::set_priority does for ms_tcp_prio. Values above 6 need
	// CAP_NET_ADMIN; without it the call fails with EPERM.
	Priority int
}

// DefaultSockOpts returns the options Ceph uses by default: TCP_NODELAY and
// SO_REUSEADDR, kernel-sized buffers, no priority.
func DefaultSockOpts() SockOpts {
	return SockOpts{NoDelay: true, ReuseAddr: true}
}

// Validate reports options that can never work.
func (o SockOpts) Validate() error {
	switch {
	case o.RcvBuf < 0:
		return fmt.Errorf("stack: negative RcvBuf %d", o.RcvBuf)
	case o.SndBuf < 0:
		return fmt.Errorf("stack: negative SndBuf %d", o.SndBuf)
	case o.Priority < 0:
		return fmt.Errorf("stack: negative Priority %d", o.Priority)
	}
	return nil
}

// dscpCS6 is DSCP class selector 6 in the TOS byte (IPTOS_CLASS_CS6 = 0xc0).
const dscpCS6 = 0xc0

// applyBeforeBind sets the options that must be in place before bind(2).
func (o SockOpts) applyBeforeBind(fd int) error {
	if o.ReuseAddr {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return os.NewSyscallError("setsockopt SO_REUSEADDR", err)
		}
	}
	if o.ReusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return os.NewSyscallError("setsockopt SO_REUSEPORT", err)
		}
	}
	return nil
}

// apply sets the per-connection options (Ceph NetHandler::set_socket_options
// and set_priority). Buffer sizes set on a listener are inherited by the
// sockets it accepts, which is how the kernel wants them set (before the
// handshake picks a window scale).
func (o SockOpts) apply(fd, family int) error {
	if o.NoDelay {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
			return os.NewSyscallError("setsockopt TCP_NODELAY", err)
		}
	}
	if o.RcvBuf > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, o.RcvBuf); err != nil {
			return os.NewSyscallError("setsockopt SO_RCVBUF", err)
		}
	}
	if o.SndBuf > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, o.SndBuf); err != nil {
			return os.NewSyscallError("setsockopt SO_SNDBUF", err)
		}
	}
	if o.Priority > 0 {
		var err error
		if family == unix.AF_INET6 {
			err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_TCLASS, dscpCS6)
		} else {
			err = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TOS, dscpCS6)
		}
		if err != nil {
			return os.NewSyscallError("setsockopt IP_TOS/IPV6_TCLASS", err)
		}
		// SO_PRIORITY after the TOS byte: setting IP_TOS resets the priority.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PRIORITY, o.Priority); err != nil {
			return os.NewSyscallError("setsockopt SO_PRIORITY", err)
		}
	}
	return nil
}

// openSocket creates a nonblocking, close-on-exec TCP socket (Ceph
// NetHandler::create_socket + set_nonblock + set_close_on_exec, in one call).
func openSocket(family int) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	return fd, nil
}

// setNonblock and setCloseOnExec are for fds that did not come from
// openSocket or accept4 (an fd handed in from outside, say).
func setNonblock(fd int) error {
	return os.NewSyscallError("fcntl O_NONBLOCK", unix.SetNonblock(fd, true))
}

func setCloseOnExec(fd int) error {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
	return os.NewSyscallError("fcntl FD_CLOEXEC", err)
}

// ErrBadAddr is wrapped by every error about an address the stack cannot use.
var ErrBadAddr = errors.New("stack: bad address")

// toSockaddr converts an address to the kernel's form. IPv4-mapped IPv6
// addresses (::ffff:a.b.c.d) are treated as IPv4, so one peer has one form.
func toSockaddr(ap netip.AddrPort) (unix.Sockaddr, int, error) {
	if !ap.IsValid() {
		return nil, 0, fmt.Errorf("%w: %q is not a valid address:port", ErrBadAddr, ap.String())
	}
	a := ap.Addr().Unmap()
	if a.Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}, unix.AF_INET, nil
	}
	sa := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
	if z := a.Zone(); z != "" {
		if idx, err := strconv.ParseUint(z, 10, 32); err == nil {
			sa.ZoneId = uint32(idx)
		} else {
			ifi, err := net.InterfaceByName(z)
			if err != nil {
				return nil, 0, fmt.Errorf("%w: zone %q of %s: %v", ErrBadAddr, z, ap, err)
			}
			sa.ZoneId = uint32(ifi.Index)
		}
	}
	return sa, unix.AF_INET6, nil
}

// fromSockaddr converts a kernel address back. Zones are given by index
// (the name lookup would cost a netlink round trip per accepted socket).
func fromSockaddr(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		a := netip.AddrFrom16(sa.Addr)
		if sa.ZoneId != 0 {
			a = a.WithZone(fmt.Sprint(sa.ZoneId))
		}
		return netip.AddrPortFrom(a, uint16(sa.Port))
	}
	return netip.AddrPort{}
}

// localAddr and remoteAddr read an fd's addresses; on error they return the
// zero AddrPort (a socket whose peer has already reset, say).
func localAddr(fd int) netip.AddrPort {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}
	}
	return fromSockaddr(sa)
}

func remoteAddr(fd int) netip.AddrPort {
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return netip.AddrPort{}
	}
	return fromSockaddr(sa)
}
