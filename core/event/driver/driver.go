// Package driver is the readiness-notification layer under event.Center
// (Ceph's EventDriver): one backend per file, syscalls only.
//
// The contract, for every backend:
//
//   - Add(fd, cur, add) makes the driver report the events in cur|add for fd.
//     cur is the mask already registered (0 for a new fd), add the bits to
//     add (at least one). Adding a bit already present is not an error. An
//     fd that is not open is an error (EBADF) in every backend.
//   - Del(fd, cur, del) stops reporting the bits in del; cur is the mask
//     registered before the call. When nothing is left the fd is forgotten.
//     Deleting an fd that was closed under the driver is not an error: the
//     kernel may already have dropped it. Deleting bits that are not
//     registered is a no-op.
//   - Wait(events, timeout) blocks until at least one registered fd is ready
//     or timeout passes (timeout < 0 blocks without limit, 0 returns at
//     once), fills events[:n] and returns n. It never allocates: events is
//     the caller's reused slice, and at most len(events) are returned. EINTR
//     returns 0, nil. Error and hang-up conditions are reported as Readable|
//     Writable so the handler's read or write sees the error; the caller
//     filters the bits it did not register. (select can only report the
//     registered bits: it sets those.)
//   - Readiness is level-triggered in every backend: an fd stays reported
//     while it is ready, so a handler may stop before draining a socket and
//     Writable must only be registered while there is something to write.
//     (Ceph's epoll backend is edge-triggered; level-triggered is what poll
//     can do, and one semantics for all backends is what makes the
//     conformance suite and the layers above portable between them.)
//   - An fd closed while registered: epoll forgets it silently (the kernel
//     removes closed files from the interest set); poll reports it as
//     Readable|Writable (POLLNVAL) at every Wait until it is deleted, and so
//     does select (whose call fails with EBADF; Wait then finds it). So
//     callers must Del before close(2); either way nothing panics or hangs.
//   - Resize(n) lets the backend grow its tables for n fds ahead of time.
//   - Name() is the backend's name as ms_type spells it ("epoll", "poll",
//     "select").
//   - A backend that can only watch fds below some bound (select: FD_SETSIZE)
//     implements Limiter; its Add refuses a larger fd with ErrFDRange, never
//     writing past its tables.
//   - Close() releases the backend's own fds; registered fds stay open
//     (they belong to the caller). Close is idempotent.
//
// A Driver is used by one goroutine (the Center's loop); it is not safe for
// concurrent use. io_uring's Wait must moreover always run on the same OS
// thread (the Center's loop is locked to one). Generation tags against fd reuse live one layer up, in
// event.Center, which knows when a registration ends.
package driver

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Mask is a set of readiness events.
type Mask uint8

const (
	// None is the empty mask.
	None Mask = 0
	// Readable means a read would not block (data, EOF or error).
	Readable Mask = 1 << 0
	// Writable means a write would not block (space, or an error).
	Writable Mask = 1 << 1
)

// String names the bits, for logs.
func (m Mask) String() string {
	switch m {
	case None:
		return "none"
	case Readable:
		return "r"
	case Writable:
		return "w"
	case Readable | Writable:
		return "rw"
	}
	return "invalid"
}

// Event is one ready fd.
type Event struct {
	Fd   int
	Mask Mask
}

// Driver is a readiness backend. See the package comment for the contract.
type Driver interface {
	Name() string
	Add(fd int, cur, add Mask) error
	Del(fd int, cur, del Mask) error
	Wait(events []Event, timeout time.Duration) (int, error)
	Resize(n int) error
	Close() error
}

// ErrInvalid reports a bad argument (negative fd, empty or unknown mask bits,
// empty event slice).
var ErrInvalid = errors.New("driver: invalid argument")

// ErrFDRange is wrapped by Add when the fd is beyond what the backend can
// watch (see Limiter).
var ErrFDRange = errors.New("driver: fd out of range for this backend")

// Limiter is implemented by backends that can only watch fds below MaxFD()
// (select: FD_SETSIZE, 1024). Backends without it have no such limit.
type Limiter interface {
	MaxFD() int
}

// errClosed is returned by calls on a closed backend.
var errClosed = errors.New("driver: closed")

// New returns the backend called name: "epoll" (Linux only), "poll",
// "select" (fds below FD_SETSIZE only) or "io_uring" (Linux 5.11+, where
// not disabled; see Uring). An empty name picks the platform
// default (epoll on Linux, else poll).
func New(name string) (Driver, error) {
	switch name {
	case "":
		if hasEpoll {
			return newEpoll()
		}
		return NewPoll()
	case "epoll":
		if !hasEpoll {
			return nil, fmt.Errorf("driver: %q is not available on this platform", name)
		}
		return newEpoll()
	case "poll":
		return NewPoll()
	case "select":
		return NewSelect()
	case "io_uring":
		return newUringDriver()
	}
	return nil, fmt.Errorf("driver: unknown driver %q (want \"epoll\", \"poll\", \"select\" or \"io_uring\")", name)
}

// Names lists the backends available on this platform, default first
// (io_uring only where the kernel lets this process use it).
func Names() []string {
	var names []string
	if hasEpoll {
		names = append(names, "epoll")
	}
	names = append(names, "poll", "select")
	if UringAvailable() == nil {
		names = append(names, "io_uring")
	}
	return names
}

// checkArgs validates the arguments shared by Add and Del.
func checkArgs(fd int, m Mask) error {
	if fd < 0 {
		return fmt.Errorf("%w: fd %d", ErrInvalid, fd)
	}
	if m == None || m&^(Readable|Writable) != 0 {
		return fmt.Errorf("%w: mask %#x", ErrInvalid, uint8(m))
	}
	return nil
}

// durationToMs converts a Wait timeout to poll(2)-style milliseconds,
// rounding up so a short timeout does not become a busy 0.
func durationToMs(t time.Duration) int {
	if t < 0 {
		return -1
	}
	ms := (t + time.Millisecond - 1) / time.Millisecond
	if ms > math.MaxInt32 {
		return math.MaxInt32
	}
	return int(ms)
}

// Op is one I/O operation on a Uring. The caller owns it, keeps it (and
// the memory the operation uses) alive while it is in flight, and learns
// the result when the Center runs Done. An Op carries one operation at a
// time.
type Op struct {
	// Done runs on the loop with the operation's result: bytes moved, or
	// -errno (-ECANCELED after Cancel or when the ring closes).
	Done func(res int32)
	slot int32 // index+1 in the ring while in flight; 0 when idle
	gen  uint32
}

// InFlight reports whether the operation is in flight: submitted, or
// completed in the kernel but its Done not yet run (its result is not
// applied yet, so the owner must not start another on the same bytes).
func (o *Op) InFlight() bool { return o.slot != 0 }

// Completion is one finished Op, as returned by Completions.
type Completion struct {
	Op   *Op
	Res  int32
	More bool // the operation goes on (multishot): more completions follow
}

// Run marks the Op idle (unless More) and runs its Done.
func (c Completion) Run() {
	if !c.More {
		c.Op.slot = 0
	}
	c.Op.Done(c.Res)
}

// Completer is implemented by a backend that also runs I/O operations
// (io_uring): Wait reaps their completions with the readiness events, and
// the Center runs them.
type Completer interface {
	// Completions returns the Op completions reaped by the last Wait, valid
	// until the next Wait; their Ops are idle again.
	Completions() []Completion
	// Drain cancels every Op in flight and waits (up to timeout) until they
	// have completed, so the kernel holds none of their buffers; the
	// completions are then in Completions. Later operations fail.
	Drain(timeout time.Duration)
}
