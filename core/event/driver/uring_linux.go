//go:build linux

package driver

// Uring is the io_uring backend ("io_uring"). It does two jobs:
//
//   - Readiness, like the other backends: each registered fd has one
//     one-shot IORING_OP_POLL_ADD armed; when it fires the fd is reported
//     and, if still registered, re-armed at the next Wait. A one-shot poll
//     armed on an fd that is still ready completes at once, so readiness
//     stays level-triggered as the Driver contract demands (multishot poll
//     fires on wake-ups, i.e. edge-triggered).
//   - I/O operations (Recv, Sendmsg, Cancel): the caller queues them with
//     an Op, Wait submits everything queued and waits in one
//     io_uring_enter, and their completions are handed back through
//     Completions for the Center to run. A socket served this way makes no
//     syscall of its own per message; that is the point (bench/w5-floor:
//     the same single-threaded server does 1.2x the round trips over
//     io_uring than over epoll).
//
// The ring is made with SINGLE_ISSUER|DEFER_TASKRUN where the kernel has
// them (6.1+): completions are then posted only when the owning thread
// enters the kernel to wait, with no interrupt of the loop in between.
// Such a ring may only be entered by one thread, so it is created disabled
// and enabled by the first Wait: call Wait from one OS thread only (the
// Center's loop is locked to its thread). Before that first Wait, Add, Del
// and the Op calls only fill the submission queue, so they may run on the
// goroutine that builds the Center.

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// io_uring ABI (include/uapi/linux/io_uring.h); x/sys/unix has only the
// syscall numbers.
const (
	uringSetupCQSize       = 1 << 3
	uringSetupRDisabled    = 1 << 6
	uringSetupSubmitAll    = 1 << 7
	uringSetupCoopTaskrun  = 1 << 8
	uringSetupSingleIssuer = 1 << 12
	uringSetupDeferTaskrun = 1 << 13

	uringFeatSingleMmap = 1 << 0
	uringFeatNoDrop     = 1 << 1
	uringFeatExtArg     = 1 << 8

	uringEnterGetEvents = 1 << 0
	uringEnterExtArg    = 1 << 3

	uringRegisterEnableRings = 12

	uringOffSQRing = 0
	uringOffCQRing = 0x8000000
	uringOffSQEs   = 0x10000000

	opPollAdd     = 6
	opPollRemove  = 7
	opSendmsg     = 9
	opAsyncCancel = 14
	opSend        = 26
	opRecv        = 27

	cqeFMore = 1 << 1
)

type uringSQOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type uringCQOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  uringSQOffsets
	cqOff                                                                  uringCQOffsets
}

type uringSQE struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	opFlags     uint32
	userData    uint64
	bufIndex    uint16
	personality uint16
	fileIndex   int32
	addr3       uint64
	pad         uint64
}

type uringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

type uringGeteventsArg struct {
	sigmask   uint64
	sigmaskSz uint32
	minWait   uint32
	ts        uint64
}

// user_data tags: the top two bits say what a completion belongs to.
const (
	tagPoll   = 0 << 62 // a readiness poll: gen<<32 | fd
	tagOp     = 1 << 62 // an Op: gen<<32 | slot
	tagIgnore = 2 << 62 // poll removals and cancels: their result says nothing new
	tagMask   = 3 << 62
	genMask   = 1<<30 - 1
)

func pollTag(fd int, gen uint32) uint64 {
	return tagPoll | uint64(gen&genMask)<<32 | uint64(uint32(fd))
}
func opTag(slot int, gen uint32) uint64 {
	return tagOp | uint64(gen&genMask)<<32 | uint64(uint32(slot))
}

// Sizes: the submission queue holds a burst of one loop iteration (it is
// flushed early when full); the completion queue is larger because every
// socket keeps a recv armed, and the kernel keeps any overflow (NODROP).
const (
	uringSQEntries = 1024
	uringCQEntries = 8192
)

type uringPoll struct {
	mask  Mask   // what is registered
	armed Mask   // what the poll in flight watches (None: no poll in flight)
	gen   uint32 // tag of the poll in flight
	rearm bool   // on the rearm list
}

// Uring implements Driver over io_uring (see the comment at the top).
type Uring struct {
	fd       int
	enabled  bool // R_DISABLED ring enabled by the first Wait
	disabled bool // created with R_DISABLED
	extArg   bool

	ringMem []byte
	cqMem   []byte // same as ringMem with SINGLE_MMAP
	sqeMem  []byte

	sqHead    *atomic.Uint32
	sqTail    *atomic.Uint32
	sqMask    uint32
	sqEntries uint32
	sqes      []uringSQE
	tail      uint32 // our tail: SQEs written, published at submit
	toSubmit  uint32

	cqHead *atomic.Uint32
	cqTail *atomic.Uint32
	cqMask uint32
	cqes   []uringCQE

	polls  []uringPoll
	rearms []int
	pseq   uint32

	ops     []*Op
	free    []int32
	opSeq   uint32
	done    []Completion
	evArg   uringGeteventsArg
	ts      unix.Timespec
	closing bool
}

var (
	_ Driver    = (*Uring)(nil)
	_ Completer = (*Uring)(nil)
)

var (
	uringOnce  sync.Once
	uringError error
)

// UringAvailable reports whether io_uring can be used here, and if not
// why (kernel too old, disabled by kernel.io_uring_disabled or a seccomp
// filter). The answer is probed once per process.
func UringAvailable() error {
	uringOnce.Do(func() {
		d, err := NewUring()
		if err != nil {
			uringError = err
			return
		}
		d.Close()
	})
	return uringError
}

// NewUring creates an io_uring instance (close-on-exec).
func NewUring() (*Uring, error) {
	var p uringParams
	var fd uintptr
	var errno unix.Errno
	// The best flags first; older kernels refuse newer flags with EINVAL.
	for _, flags := range []uint32{
		uringSetupSingleIssuer | uringSetupDeferTaskrun | uringSetupRDisabled | uringSetupSubmitAll | uringSetupCQSize,
		uringSetupCoopTaskrun | uringSetupSubmitAll | uringSetupCQSize,
		uringSetupCQSize,
	} {
		p = uringParams{flags: flags, cqEntries: uringCQEntries}
		fd, _, errno = unix.Syscall(unix.SYS_IO_URING_SETUP, uringSQEntries, uintptr(unsafe.Pointer(&p)), 0)
		if errno != unix.EINVAL {
			break
		}
	}
	if errno != 0 {
		return nil, fmt.Errorf("driver: io_uring_setup: %w", errno)
	}
	d := &Uring{fd: int(fd), disabled: p.flags&uringSetupRDisabled != 0, extArg: p.features&uringFeatExtArg != 0}
	if p.features&uringFeatSingleMmap == 0 || p.features&uringFeatNoDrop == 0 || !d.extArg {
		unix.Close(d.fd)
		return nil, fmt.Errorf("driver: io_uring: kernel lacks features %#x (need single mmap, nodrop, ext arg: Linux 5.11+)", p.features)
	}
	if err := d.mmap(&p); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func (d *Uring) mmap(p *uringParams) error {
	size := max(int(p.sqOff.array+p.sqEntries*4), int(p.cqOff.cqes+p.cqEntries*uint32(unsafe.Sizeof(uringCQE{}))))
	mem, err := unix.Mmap(d.fd, uringOffSQRing, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("driver: io_uring mmap rings: %w", err)
	}
	d.ringMem, d.cqMem = mem, mem
	sqeSize := int(p.sqEntries) * int(unsafe.Sizeof(uringSQE{}))
	sqeMem, err := unix.Mmap(d.fd, uringOffSQEs, sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("driver: io_uring mmap sqes: %w", err)
	}
	d.sqeMem = sqeMem
	u32 := func(off uint32) *atomic.Uint32 { return (*atomic.Uint32)(unsafe.Pointer(&mem[off])) }
	d.sqHead, d.sqTail = u32(p.sqOff.head), u32(p.sqOff.tail)
	d.sqMask, d.sqEntries = *(*uint32)(unsafe.Pointer(&mem[p.sqOff.ringMask])), p.sqEntries
	d.cqHead, d.cqTail = u32(p.cqOff.head), u32(p.cqOff.tail)
	d.cqMask = *(*uint32)(unsafe.Pointer(&mem[p.cqOff.ringMask]))
	d.sqes = unsafe.Slice((*uringSQE)(unsafe.Pointer(&sqeMem[0])), p.sqEntries)
	d.cqes = unsafe.Slice((*uringCQE)(unsafe.Pointer(&mem[p.cqOff.cqes])), p.cqEntries)
	// The SQ array maps ring positions to SQE indexes: identity, set once.
	arr := unsafe.Slice((*uint32)(unsafe.Pointer(&mem[p.sqOff.array])), p.sqEntries)
	for i := range arr {
		arr[i] = uint32(i)
	}
	d.tail = d.sqTail.Load()
	return nil
}

// Name implements Driver.
func (d *Uring) Name() string { return "io_uring" }

// sqe returns a zeroed SQE to fill, flushing the queue first if it is full.
func (d *Uring) sqe() (*uringSQE, error) {
	if d.tail-d.sqHead.Load() >= d.sqEntries {
		if err := d.enter(0, 0, -1); err != nil && !errors.Is(err, unix.EINTR) {
			return nil, err
		}
		if d.tail-d.sqHead.Load() >= d.sqEntries {
			return nil, fmt.Errorf("driver: io_uring: submission queue full")
		}
	}
	s := &d.sqes[d.tail&d.sqMask]
	*s = uringSQE{}
	d.tail++
	d.toSubmit++
	return s, nil
}

// enter publishes the queued SQEs and calls io_uring_enter, waiting for
// minComplete completions or timeout (< 0: no limit; only with
// minComplete > 0).
func (d *Uring) enter(minComplete uint32, flags uintptr, timeout time.Duration) error {
	if d.disabled && !d.enabled {
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(d.fd), uringRegisterEnableRings, 0, 0, 0, 0)
		if errno != 0 {
			return fmt.Errorf("driver: io_uring enable: %w", errno)
		}
		d.enabled = true
	}
	d.sqTail.Store(d.tail)
	var arg unsafe.Pointer
	var argSz uintptr
	if minComplete > 0 && timeout >= 0 {
		d.ts = unix.NsecToTimespec(int64(timeout))
		d.evArg = uringGeteventsArg{ts: uint64(uintptr(unsafe.Pointer(&d.ts)))}
		arg, argSz = unsafe.Pointer(&d.evArg), unsafe.Sizeof(d.evArg)
		flags |= uringEnterExtArg
	}
	sys := unix.Syscall6
	if minComplete == 0 {
		sys = unix.RawSyscall6 // cannot block: skip the runtime's syscall bookkeeping (as epoll's Wait(0))
	}
	_, _, errno := sys(unix.SYS_IO_URING_ENTER, uintptr(d.fd), uintptr(d.toSubmit), uintptr(minComplete), flags, uintptr(arg), argSz)
	d.evArg.ts = 0
	// The kernel's head says what it took, whatever the wait's outcome.
	d.toSubmit = d.tail - d.sqHead.Load()
	switch errno {
	case 0, unix.ETIME:
		return nil
	case unix.EINTR:
		return errno
	case unix.EBUSY, unix.EAGAIN:
		return nil // completions wait in the overflow list: reap and go on
	}
	return fmt.Errorf("driver: io_uring_enter: %w", errno)
}

// Add implements Driver.
func (d *Uring) Add(fd int, cur, add Mask) error {
	if err := checkArgs(fd, add); err != nil {
		return err
	}
	if d.fd < 0 {
		return errClosed
	}
	// The poll is only submitted at the next Wait: check now that fd is
	// open, as the other backends do.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return fmt.Errorf("driver: io_uring add fd %d: %w", fd, err)
	}
	if fd >= len(d.polls) {
		d.Resize(fd + 1)
	}
	p := &d.polls[fd]
	p.mask = cur | add
	return d.arm(fd)
}

// Del implements Driver.
func (d *Uring) Del(fd int, cur, del Mask) error {
	if err := checkArgs(fd, del); err != nil {
		return err
	}
	if d.fd < 0 {
		return errClosed
	}
	if fd >= len(d.polls) {
		return nil
	}
	p := &d.polls[fd]
	p.mask = cur &^ del
	return d.arm(fd)
}

// arm makes the poll in flight for fd match its mask: remove a poll that
// watches other bits (an armed poll also keeps the file open, so a closed
// fd must not keep one) and add one if bits are registered.
func (d *Uring) arm(fd int) error {
	p := &d.polls[fd]
	if p.armed != None && p.armed != p.mask {
		s, err := d.sqe()
		if err != nil {
			return err
		}
		s.opcode = opPollRemove
		s.fd = -1
		s.addr = pollTag(fd, p.gen)
		s.userData = tagIgnore
		p.armed = None
	}
	if p.armed == None && p.mask != None {
		s, err := d.sqe()
		if err != nil {
			return err
		}
		d.pseq++
		p.gen = d.pseq & genMask
		s.opcode = opPollAdd
		s.fd = int32(fd)
		s.opFlags = uint32(uint16(pollBits(p.mask))) // poll(2) bits, as for the poll backend
		s.userData = pollTag(fd, p.gen)
		p.armed = p.mask
	}
	return nil
}

// Wait implements Driver: re-arm the polls that fired, submit what is
// queued, wait, and reap. Op completions go to the list Completions returns.
func (d *Uring) Wait(events []Event, timeout time.Duration) (int, error) {
	if len(events) == 0 {
		return 0, fmt.Errorf("%w: empty event slice", ErrInvalid)
	}
	if d.fd < 0 {
		return 0, errClosed
	}
	for _, fd := range d.rearms {
		d.polls[fd].rearm = false
		if err := d.arm(fd); err != nil {
			return 0, err
		}
	}
	d.rearms = d.rearms[:0]
	d.done = d.done[:0]
	var minComplete uint32
	if timeout != 0 && d.cqTail.Load() == d.cqHead.Load() {
		minComplete = 1
	}
	err := d.enter(minComplete, uringEnterGetEvents, timeout)
	n := d.reap(events)
	if err != nil && !errors.Is(err, unix.EINTR) {
		return n, err
	}
	return n, nil
}

// reap takes completions until the queue is empty or events is full.
func (d *Uring) reap(events []Event) int {
	n := 0
	head := d.cqHead.Load()
	tail := d.cqTail.Load()
	for ; head != tail && n < len(events); head++ {
		c := d.cqes[head&d.cqMask]
		switch c.userData & tagMask {
		case tagPoll:
			fd := int(uint32(c.userData))
			if fd >= len(d.polls) {
				continue
			}
			p := &d.polls[fd]
			if p.armed == None || uint32(c.userData>>32)&genMask != p.gen {
				continue // a poll since removed
			}
			p.armed = None
			if p.mask != None && !p.rearm {
				p.rearm = true
				d.rearms = append(d.rearms, fd)
			}
			var m Mask
			switch {
			case c.res < 0:
				m = Readable | Writable // the fd's error is for its handler to read
			default:
				if c.res&unix.POLLIN != 0 {
					m |= Readable
				}
				if c.res&unix.POLLOUT != 0 {
					m |= Writable
				}
				if c.res&(unix.POLLERR|unix.POLLHUP) != 0 {
					m |= Readable | Writable
				}
			}
			if m != None {
				events[n] = Event{Fd: fd, Mask: m}
				n++
			}
		case tagOp:
			slot := int(uint32(c.userData))
			if slot >= len(d.ops) {
				continue
			}
			op := d.ops[slot]
			if op == nil || uint32(c.userData>>32)&genMask != op.gen {
				continue
			}
			more := c.flags&cqeFMore != 0
			if !more {
				// The slot may serve another Op now; op itself stays in
				// flight until Completion.Run applies its result.
				d.ops[slot] = nil
				d.free = append(d.free, int32(slot))
			}
			d.done = append(d.done, Completion{Op: op, Res: c.res, More: more})
		}
	}
	d.cqHead.Store(head)
	return n
}

// Completions returns the Op completions reaped by the last Wait (valid
// until the next Wait). The Center runs their Done functions.
func (d *Uring) Completions() []Completion { return d.done }

// start queues an SQE for op (which must be idle) and returns it.
func (d *Uring) start(op *Op, opcode uint8, fd int) (*uringSQE, error) {
	if d.fd < 0 || d.closing {
		return nil, errClosed
	}
	if op.slot != 0 {
		return nil, fmt.Errorf("%w: op already in flight", ErrInvalid)
	}
	s, err := d.sqe()
	if err != nil {
		return nil, err
	}
	var slot int
	if k := len(d.free); k > 0 {
		slot = int(d.free[k-1])
		d.free = d.free[:k-1]
	} else {
		slot = len(d.ops)
		d.ops = append(d.ops, nil)
	}
	d.opSeq++
	op.gen = d.opSeq & genMask
	op.slot = int32(slot + 1)
	d.ops[slot] = op
	s.opcode = opcode
	s.fd = int32(fd)
	s.userData = opTag(slot, op.gen)
	return s, nil
}

// Recv queues a recv(2) of up to len(buf) bytes from fd into buf. buf must
// stay untouched until op completes.
func (d *Uring) Recv(op *Op, fd int, buf []byte) error {
	s, err := d.start(op, opRecv, fd)
	if err != nil {
		return err
	}
	s.addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(buf))))
	s.len = uint32(len(buf))
	return nil
}

// Send queues a send(2) of buf on fd with flags. buf must stay untouched
// until op completes. Cheaper than Sendmsg for one buffer: the kernel
// copies no msghdr.
func (d *Uring) Send(op *Op, fd int, buf []byte, flags int) error {
	s, err := d.start(op, opSend, fd)
	if err != nil {
		return err
	}
	s.addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(buf))))
	s.len = uint32(len(buf))
	s.opFlags = uint32(flags)
	return nil
}

// Sendmsg queues a sendmsg(2) of msg on fd with flags. msg, its iovecs and
// their bytes must stay untouched until op completes.
func (d *Uring) Sendmsg(op *Op, fd int, msg *unix.Msghdr, flags int) error {
	s, err := d.start(op, opSendmsg, fd)
	if err != nil {
		return err
	}
	s.addr = uint64(uintptr(unsafe.Pointer(msg)))
	s.len = 1
	s.opFlags = uint32(flags)
	return nil
}

// Cancel asks the kernel to cancel op if it is still in flight; op then
// completes with -ECANCELED, or with its result if it finished first.
func (d *Uring) Cancel(op *Op) error {
	if op.slot == 0 || d.fd < 0 || int(op.slot) > len(d.ops) || d.ops[op.slot-1] != op {
		return nil // idle, or completed and waiting for its Run
	}
	s, err := d.sqe()
	if err != nil {
		return err
	}
	s.opcode = opAsyncCancel
	s.fd = -1
	s.addr = opTag(int(op.slot-1), op.gen)
	s.userData = tagIgnore
	return nil
}

// Drain cancels every Op in flight and waits (up to timeout) for their
// completions, so no buffer is still the kernel's once it returns; the
// completions are then in Completions. Later Recv and Sendmsg calls fail.
// Loop thread; called by the Center when it stops.
func (d *Uring) Drain(timeout time.Duration) {
	if d.fd < 0 {
		return
	}
	d.closing = true
	d.done = d.done[:0]
	for _, op := range d.ops {
		if op != nil {
			_ = d.Cancel(op)
		}
	}
	deadline := time.Now().Add(timeout)
	var evs [64]Event
	for d.inFlight() > 0 && time.Now().Before(deadline) {
		if err := d.enter(1, uringEnterGetEvents, 10*time.Millisecond); err != nil && !errors.Is(err, unix.EINTR) {
			break
		}
		d.reap(evs[:]) // appends to d.done
	}
}

func (d *Uring) inFlight() int { return len(d.ops) - len(d.free) }

// Resize implements Driver.
func (d *Uring) Resize(n int) error {
	if n > len(d.polls) {
		polls := make([]uringPoll, max(n, 2*len(d.polls)))
		copy(polls, d.polls)
		d.polls = polls
	}
	return nil
}

// Close implements Driver. Closing the ring cancels whatever is still in
// flight (call Drain first to learn of it).
func (d *Uring) Close() error {
	if d.fd < 0 {
		return nil
	}
	if d.sqeMem != nil {
		unix.Munmap(d.sqeMem)
		d.sqeMem, d.sqes = nil, nil
	}
	if d.ringMem != nil {
		unix.Munmap(d.ringMem)
		d.ringMem, d.cqMem, d.cqes = nil, nil, nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	if err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}

func newUringDriver() (Driver, error) { return NewUring() }
