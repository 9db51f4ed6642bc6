//go:build unix

package driver

import (
	"errors"
	"fmt"
	"math/bits"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FDSetSize is select(2)'s FD_SETSIZE: the Select backend can watch fds
// 0..FDSetSize-1 only (1024 on every platform Go supports).
const FDSetSize = len(unix.FdSet{}.Bits) * wordBits

// wordBits is the width of one word of unix.FdSet.Bits (int64 or int32,
// depending on the platform).
const wordBits = int(unsafe.Sizeof(unix.FdSet{}.Bits[0])) * 8

// wordMask keeps the low wordBits bits of a word widened to uint64 (an
// int32 word with its top bit set would otherwise sign-extend).
const wordMask = ^uint64(0) >> (64 - wordBits)

// Select is the select(2) backend (Ceph's EventSelect), level-triggered.
//
// It keeps the registered interest as two fd_sets and copies them into the
// argument sets before each call (select overwrites its arguments), so Add
// and Del are O(1) and Wait costs O(highest fd), which is select's nature.
// Only fds below FDSetSize can be watched: writing a larger fd into an
// fd_set would overrun it, so Add refuses it with ErrFDRange.
//
// Differences from poll that the contract allows: select reports only the
// bits that were registered (an error or hang-up sets the registered ones),
// and an fd closed while registered makes the whole select(2) call fail
// with EBADF; Wait then finds the closed fds and reports each of them as
// Readable|Writable, as poll does for POLLNVAL, until it is deleted.
type Select struct {
	rset, wset unix.FdSet // registered interest
	rout, wout unix.FdSet // select's in/out arguments, reused
	maxfd      int        // highest registered fd, -1 when none
	start      int        // where the next scan starts, for fairness when events overflow
	tv         unix.Timeval
	shut       bool
}

var (
	_ Driver  = (*Select)(nil)
	_ Limiter = (*Select)(nil)
)

// NewSelect returns an empty select backend. It owns no fd.
func NewSelect() (Driver, error) { return &Select{maxfd: -1}, nil }

// Name implements Driver.
func (d *Select) Name() string { return "select" }

// MaxFD implements Limiter: fds must be below FD_SETSIZE.
func (d *Select) MaxFD() int { return FDSetSize }

// Add implements Driver. The backend keeps its own record of each fd's
// mask, so cur is only advisory here.
func (d *Select) Add(fd int, cur, add Mask) error {
	if err := checkArgs(fd, add); err != nil {
		return err
	}
	if d.shut {
		return errClosed
	}
	if fd >= FDSetSize {
		return fmt.Errorf("%w: select add fd %d: select(2) watches fds below FD_SETSIZE (%d) only; use epoll or poll",
			ErrFDRange, fd, FDSetSize)
	}
	if !d.rset.IsSet(fd) && !d.wset.IsSet(fd) {
		// select(2) would fail the whole call with EBADF later; check now so
		// a bad fd fails at Add, as with epoll and poll.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return fmt.Errorf("driver: select add fd %d: %w", fd, err)
		}
	}
	if add&Readable != 0 {
		d.rset.Set(fd)
	}
	if add&Writable != 0 {
		d.wset.Set(fd)
	}
	if fd > d.maxfd {
		d.maxfd = fd
	}
	return nil
}

// Del implements Driver. A closed fd is deleted like any other: select
// keeps no kernel state. An fd beyond FD_SETSIZE was never registered, so
// deleting it is a no-op.
func (d *Select) Del(fd int, cur, del Mask) error {
	if err := checkArgs(fd, del); err != nil {
		return err
	}
	if fd >= FDSetSize || d.shut {
		return nil
	}
	if del&Readable != 0 {
		d.rset.Clear(fd)
	}
	if del&Writable != 0 {
		d.wset.Clear(fd)
	}
	if fd == d.maxfd && !d.rset.IsSet(fd) && !d.wset.IsSet(fd) {
		d.maxfd = d.highest(fd)
	}
	return nil
}

// highest returns the highest registered fd below limit, or -1.
func (d *Select) highest(limit int) int {
	for i := (limit - 1) / wordBits; i >= 0 && limit > 0; i-- {
		w := (uint64(d.rset.Bits[i]) | uint64(d.wset.Bits[i])) & wordMask
		if top := i*wordBits + wordBits; top > limit {
			w &= wordMask >> (top - limit) // only fds below limit
		}
		if w != 0 {
			return i*wordBits + 63 - bits.LeadingZeros64(w)
		}
	}
	return -1
}

// Wait implements Driver.
func (d *Select) Wait(events []Event, timeout time.Duration) (int, error) {
	if len(events) == 0 {
		return 0, fmt.Errorf("%w: empty event slice", ErrInvalid)
	}
	if d.shut {
		return 0, errClosed
	}
	d.rout, d.wout = d.rset, d.wset
	var tv *unix.Timeval
	if timeout >= 0 {
		// Rounded up to a microsecond; refilled every call because Linux
		// writes the time left back into it.
		d.tv = unix.NsecToTimeval(int64(timeout))
		tv = &d.tv
	}
	nfd := d.maxfd + 1
	ready, err := unix.Select(nfd, &d.rout, &d.wout, nil, tv)
	if err != nil {
		switch {
		case errors.Is(err, unix.EINTR):
			return 0, nil
		case errors.Is(err, unix.EBADF):
			return d.closedFDs(events), nil
		}
		return 0, fmt.Errorf("driver: select: %w", err)
	}
	if ready <= 0 || nfd == 0 {
		return 0, nil
	}
	// Scan from a rotating start: if more fds are ready than events can
	// hold, the ones left out this time come first next time.
	if d.start >= nfd {
		d.start = 0
	}
	n := d.scan(events, 0, d.start, nfd)
	if n < len(events) && d.start > 0 {
		n = d.scan(events, n, 0, d.start)
	}
	return n, nil
}

// scan appends to events[n:] the ready fds in [lo, hi), stopping when
// events is full. It skips empty words, so it costs at most FD_SETSIZE/64
// word tests plus one step per ready fd.
func (d *Select) scan(events []Event, n, lo, hi int) int {
	for i := lo / wordBits; i*wordBits < hi && n < len(events); i++ {
		r := uint64(d.rout.Bits[i]) & wordMask
		w := uint64(d.wout.Bits[i]) & wordMask
		u := r | w
		if base := i * wordBits; base < lo {
			u &^= (uint64(1) << (lo - base)) - 1 // fds below lo
		}
		if top := i*wordBits + wordBits; top > hi {
			u &= wordMask >> (top - hi) // fds from hi on
		}
		for u != 0 && n < len(events) {
			b := bits.TrailingZeros64(u)
			u &= u - 1
			fd := i*wordBits + b
			var m Mask
			if r&(1<<b) != 0 {
				m |= Readable
			}
			if w&(1<<b) != 0 {
				m |= Writable
			}
			events[n] = Event{Fd: fd, Mask: m}
			n++
			if n == len(events) {
				d.start = fd + 1
			}
		}
	}
	return n
}

// closedFDs handles select's EBADF: it reports every registered fd that is
// no longer open as Readable|Writable (poll's POLLNVAL), so the caller's
// handler runs and deletes it. No allocation: one fcntl per registered fd.
func (d *Select) closedFDs(events []Event) int {
	n := 0
	for fd := 0; fd <= d.maxfd && n < len(events); fd++ {
		if !d.rset.IsSet(fd) && !d.wset.IsSet(fd) {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); errors.Is(err, unix.EBADF) {
			events[n] = Event{Fd: fd, Mask: Readable | Writable}
			n++
		}
	}
	return n
}

// Resize implements Driver. The tables are fixed at FD_SETSIZE; a larger n
// is not an error (the Center sizes ahead by doubling), Add reports fds
// that do not fit.
func (d *Select) Resize(n int) error {
	if n < 0 {
		return fmt.Errorf("%w: resize %d", ErrInvalid, n)
	}
	return nil
}

// Close implements Driver. Select owns no fd; Close only forgets the set.
func (d *Select) Close() error {
	d.shut = true
	d.rset.Zero()
	d.wset.Zero()
	d.maxfd = -1
	return nil
}
