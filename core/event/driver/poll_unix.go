//go:build unix

package driver

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Poll is the poll(2) backend (Ceph's PollDriver), level-triggered.
//
// It keeps a dense pollfd array (what the syscall wants) plus an fd-indexed
// table of positions in it, so Add and Del are O(1) (deletion swaps the last
// entry into the hole) and Wait scans only registered fds. Wait costs O(n)
// in the kernel and here, which is poll's nature and why epoll is the
// default.
type Poll struct {
	pfds  []unix.PollFd
	pos   []int32 // fd -> index in pfds + 1; 0 = not registered
	start int     // where the next scan starts, for fairness when events overflow
	ts    unix.Timespec
	shut  bool
}

var _ Driver = (*Poll)(nil)

// NewPoll returns an empty poll backend. It owns no fd.
func NewPoll() (Driver, error) { return &Poll{}, nil }

// Name implements Driver.
func (d *Poll) Name() string { return "poll" }

func pollBits(m Mask) int16 {
	var e int16
	if m&Readable != 0 {
		e |= unix.POLLIN
	}
	if m&Writable != 0 {
		e |= unix.POLLOUT
	}
	return e
}

func (d *Poll) index(fd int) int {
	if fd < len(d.pos) {
		return int(d.pos[fd]) - 1
	}
	return -1
}

// Add implements Driver. The backend keeps its own record of each fd's
// mask, so cur is only advisory here.
func (d *Poll) Add(fd int, cur, add Mask) error {
	if err := checkArgs(fd, add); err != nil {
		return err
	}
	if d.shut {
		return errClosed
	}
	if i := d.index(fd); i >= 0 {
		d.pfds[i].Events |= pollBits(add)
		return nil
	}
	// poll(2) would accept any number and report POLLNVAL later; check now
	// so a bad fd fails at Add as it does with epoll, and so a bogus huge
	// number cannot make pos grow without bound.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return fmt.Errorf("driver: poll add fd %d: %w", fd, err)
	}
	if fd >= len(d.pos) {
		d.grow(fd + 1)
	}
	d.pfds = append(d.pfds, unix.PollFd{Fd: int32(fd), Events: pollBits(add)})
	d.pos[fd] = int32(len(d.pfds))
	return nil
}

func (d *Poll) grow(n int) {
	if n <= len(d.pos) {
		return
	}
	size := 2 * len(d.pos)
	if size < n {
		size = n
	}
	pos := make([]int32, size)
	copy(pos, d.pos)
	d.pos = pos
}

// Del implements Driver. A closed fd is deleted like any other: poll keeps
// no kernel state.
func (d *Poll) Del(fd int, cur, del Mask) error {
	if err := checkArgs(fd, del); err != nil {
		return err
	}
	i := d.index(fd)
	if i < 0 {
		return nil
	}
	d.pfds[i].Events &^= pollBits(del)
	if d.pfds[i].Events != 0 {
		return nil
	}
	last := len(d.pfds) - 1
	if i != last {
		d.pfds[i] = d.pfds[last]
		d.pos[d.pfds[i].Fd] = int32(i + 1)
	}
	d.pfds = d.pfds[:last]
	d.pos[fd] = 0
	return nil
}

// Wait implements Driver.
func (d *Poll) Wait(events []Event, timeout time.Duration) (int, error) {
	if len(events) == 0 {
		return 0, fmt.Errorf("%w: empty event slice", ErrInvalid)
	}
	if d.shut {
		return 0, errClosed
	}
	ready, err := d.poll(timeout)
	if err != nil {
		if errors.Is(err, unix.EINTR) {
			return 0, nil
		}
		return 0, fmt.Errorf("driver: poll: %w", err)
	}
	n := 0
	total := len(d.pfds)
	// Scan from a rotating start: if more fds are ready than events can
	// hold, the ones left out this time come first next time.
	for k := 0; k < total && n < ready && n < len(events); k++ {
		i := d.start + k
		if i >= total {
			i -= total
		}
		p := &d.pfds[i]
		if p.Revents == 0 {
			continue
		}
		var m Mask
		if p.Revents&unix.POLLIN != 0 {
			m |= Readable
		}
		if p.Revents&unix.POLLOUT != 0 {
			m |= Writable
		}
		if p.Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
			m |= Readable | Writable
		}
		events[n] = Event{Fd: int(p.Fd), Mask: m}
		n++
		if n == len(events) {
			d.start = i + 1
			if d.start >= total {
				d.start = 0
			}
		}
	}
	return n, nil
}

// Resize implements Driver: it sizes the fd table ahead of time.
func (d *Poll) Resize(n int) error {
	if n < 0 {
		return fmt.Errorf("%w: resize %d", ErrInvalid, n)
	}
	d.grow(n)
	return nil
}

// Close implements Driver. Poll owns no fd; Close only forgets the set.
func (d *Poll) Close() error {
	d.shut = true
	d.pfds, d.pos = nil, nil
	return nil
}
