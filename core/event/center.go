// Package event is msgr's event loop (Ceph's EventCenter): one Center per
// worker, run by one goroutine locked to its OS thread.
//
// Each loop iteration (Ceph's process_events) does, in this order:
//
//  1. wait on the driver (epoll, poll, select or io_uring) for ready fds,
//     with a timeout equal to the time left to the next timer, or no limit
//     if there is none, or 0 while busy-polling (Options.BusyPoll) or when
//     work is already queued;
//  2. with io_uring, run the Done functions of the I/O operations that
//     wait reaped (driver.Completer; the io_uring sockets of core/stack);
//  3. run the file events: for each ready fd, the read and/or write handler
//     registered with AddFile;
//  4. run the timers whose deadline has passed, in deadline order;
//  5. run the external events queued by Submit/SubmitWait, in queue order.
//
// # Thread rules
//
// Loop-only (call them from a callback the Center runs, i.e. when InLoop()
// is true; before Start they may also be called by the goroutine that will
// call Start, since nothing runs yet): AddFile, DelFile, AddTimer,
// CancelTimer. Misuse is reported, never a data race: AddFile and DelFile
// return ErrNotInLoop, AddTimer returns the invalid TimerID 0 and CancelTimer
// false (both also log through Options.Logf).
//
// Any goroutine: Start, Stop, Submit, SubmitWait, InLoop, Name, Stats.
// Cross-thread work always goes through Submit: it queues fn and wakes the
// loop through an eventfd, and the wake-ups coalesce (a loop that is awake,
// or already signalled, is not signalled again).
//
// Callbacks run on the loop thread with no Center lock held, so they may
// call any method except Stop (which would wait for itself; it returns
// ErrStopInLoop instead). A callback that panics is recovered, logged,
// counted in Stats().Panics, and the loop goes on.
//
// # Stop
//
// Stop makes later Submit/SubmitWait calls return ErrStopped, lets the loop
// run every external event queued before it (so no SubmitWait caller is left
// waiting), drops pending timers without running them, cancels the
// io_uring operations still in flight and runs their completions (so their
// owners free what the kernel held), and closes the fds the Center owns
// (eventfd, epoll or ring fd). Registered file fds belong to their owners
// and stay open; their handlers simply never run again.
package event

import (
	"errors"
	"fmt"
	"log"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/msgr-dev/msgr/core/event/driver"
)

// Mask is a set of readiness events (re-exported from driver).
type Mask = driver.Mask

// Readiness bits.
const (
	None     = driver.None
	Readable = driver.Readable
	Writable = driver.Writable
)

// FileFunc handles readiness of fd; mask holds the bits that fired among
// those it was registered for. It runs on the loop thread.
type FileFunc func(fd int, mask Mask)

// TimerID names a pending timer of one Center (ids mean nothing to another
// Center). 0 is never a valid id. An id is never reused while its timer is
// pending, and a stale id (fired or cancelled) is harmless to cancel: the
// generation it carries no longer matches (it would take 2^32 reuses of the
// same slot to come back).
type TimerID uint64

// Options configure a Center.
type Options struct {
	// Name identifies the Center in logs.
	Name string
	// Driver is the readiness backend: "epoll" (default), "poll", "select"
	// or "io_uring" (see driver.Names).
	Driver string
	// MaxEvents bounds the fd events taken per wait; default 1024.
	MaxEvents int
	// BusyPoll: after the last activity (an fd event, a timer or an
	// external event), keep polling the driver with a zero timeout for up
	// to this long before blocking. A request that arrives while the loop
	// spins costs no eventfd write and no thread wake-up (~50 µs per side
	// on the reference machines) at the price of CPU. 0 never spins. Ceph
	// has no such knob; it is Go netpoll's spinning idea, bounded.
	BusyPoll time.Duration
	// Logf reports errors and recovered panics; nil means log.Printf.
	Logf func(format string, args ...any)
}

// Errors returned by the Center.
var (
	ErrStopped    = errors.New("event: center stopped")
	ErrNotInLoop  = errors.New("event: loop-only method called off the loop thread")
	ErrStopInLoop = errors.New("event: Stop called from the loop's own thread")
	ErrStarted    = errors.New("event: center already started")
	// ErrPanicked is returned by SubmitWait when fn panicked on the loop
	// (the panic itself was recovered and logged there).
	ErrPanicked = errors.New("event: callback panicked")
)

// maxMaxEvents bounds Options.MaxEvents so a typo cannot allocate gigabytes.
const maxMaxEvents = 1 << 16

// Center states.
const (
	stateNew int32 = iota
	stateRunning
	stateStopping // Stop called: Submit rejected, loop draining
	stateStopped  // loop gone, fds closed
)

// fileEntry is the registration of one fd, indexed by fd number.
type fileEntry struct {
	mask  Mask
	gen   uint64 // registration number: changes every time mask goes 0 -> non-0
	read  FileFunc
	write FileFunc
	// shared: one AddFile call registered read and write together, so a
	// single call covers both bits (Ceph calls read_cb once when
	// read_cb == write_cb; Go cannot compare funcs, so we remember it).
	shared bool
}

// Center is an event loop. Create it with New, run it with Start, end it
// with Stop. See the package comment for which methods are loop-only.
type Center struct {
	name      string
	logf      func(format string, args ...any)
	drv       driver.Driver
	ops       driver.Completer // drv, when it runs I/O operations too (io_uring)
	efd       int              // eventfd: the wake-up channel of Submit and Stop
	efdBuf    [8]byte
	events    []driver.Event
	busyPoll  int64 // ns
	base      time.Time
	lastBusy  int64 // ns since base of the last activity (for BusyPoll)
	tid       atomic.Int64
	state     atomic.Int32
	startOnce sync.Once
	stopOnce  sync.Once
	started   chan struct{}
	done      chan struct{}

	// File events (loop-owned).
	files  []fileEntry
	regSeq uint64 // last registration number handed out

	timers timerHeap // loop-owned
	ext    extQueue  // shared, see external.go

	stats counters
}

// counters are written by the loop (and Wakeups by submitters) and read by
// Stats from any goroutine, hence atomics. The loop adds per batch, not per
// event, so the atomics cost little.
type counters struct {
	wakeups  atomic.Uint64
	_        [56]byte // Wakeups is written by other threads: keep it off the loop's cache line
	loops    atomic.Uint64
	files    atomic.Uint64
	timers   atomic.Uint64
	external atomic.Uint64
	panics   atomic.Uint64
}

// Stats is a snapshot of a Center's counters.
type Stats struct {
	Wakeups     uint64 // eventfd writes (by Submit/SubmitWait and Stop)
	Loops       uint64 // loop iterations (driver waits)
	FileEvents  uint64 // file handlers run
	TimersRun   uint64 // timer callbacks run
	ExternalRun uint64 // external events taken off the queue to run (counted as a batch starts; inline SubmitWait calls are not queued)
	Panics      uint64 // callbacks that panicked and were recovered
}

// New creates a stopped Center with its driver and eventfd.
func New(opts Options) (*Center, error) {
	if opts.Driver == "" {
		opts.Driver = "epoll"
	}
	if opts.MaxEvents == 0 {
		opts.MaxEvents = 1024
	}
	if opts.MaxEvents < 0 || opts.MaxEvents > maxMaxEvents {
		return nil, fmt.Errorf("event: MaxEvents %d out of range [1, %d]", opts.MaxEvents, maxMaxEvents)
	}
	if opts.BusyPoll < 0 {
		return nil, fmt.Errorf("event: negative BusyPoll %v", opts.BusyPoll)
	}
	drv, err := driver.New(opts.Driver)
	if err != nil {
		return nil, fmt.Errorf("event: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		drv.Close()
		return nil, fmt.Errorf("event: eventfd: %w", err)
	}
	if err := drv.Add(efd, None, Readable); err != nil {
		unix.Close(efd)
		drv.Close()
		return nil, fmt.Errorf("event: register eventfd: %w", err)
	}
	c := &Center{
		name:     opts.Name,
		logf:     opts.Logf,
		drv:      drv,
		efd:      efd,
		events:   make([]driver.Event, opts.MaxEvents),
		busyPoll: int64(opts.BusyPoll),
		base:     time.Now(),
		started:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	if c.logf == nil {
		c.logf = log.Printf
	}
	c.ops, _ = drv.(driver.Completer)
	return c, nil
}

// Name returns Options.Name.
func (c *Center) Name() string { return c.name }

// DriverName returns the backend's name ("epoll", "poll", "select" or
// "io_uring").
func (c *Center) DriverName() string { return c.drv.Name() }

// Driver returns the backend, for a transport that uses its own operations
// (the io_uring socket queues its recvs and sends on the Center's ring).
// Loop-only, like AddFile: the backend is not safe for concurrent use.
func (c *Center) Driver() driver.Driver { return c.drv }

// InLoop reports whether the caller runs on the loop goroutine. Any thread.
//
// The loop goroutine is locked to its OS thread, and a locked thread runs no
// other goroutine, so comparing thread ids identifies it exactly (Go has no
// goroutine ids). gettid(2) costs one raw syscall, ~0.1 µs.
func (c *Center) InLoop() bool {
	tid := c.tid.Load()
	return tid != 0 && int64(unix.Gettid()) == tid
}

// loopOnly reports whether a loop-only method may run now: on the loop, or
// before Start (nothing else runs yet).
func (c *Center) loopOnly() error {
	switch c.state.Load() {
	case stateNew:
		return nil
	case stateStopped:
		return ErrStopped
	}
	if !c.InLoop() {
		return ErrNotInLoop
	}
	return nil
}

// Start runs the loop on a new goroutine locked to its OS thread and
// returns once it runs. Any thread; a second Start returns ErrStarted, a
// Start after Stop ErrStopped.
func (c *Center) Start() error {
	err := ErrStarted
	c.startOnce.Do(func() {
		c.ext.mu.Lock()
		ok := c.state.CompareAndSwap(stateNew, stateRunning)
		c.ext.mu.Unlock()
		if !ok {
			err = ErrStopped
		} else {
			err = nil
		}
		// Even when Stop got in first the loop runs, just to drain the
		// queue and close the fds: Stop waits for it.
		c.spawn()
	})
	if err == ErrStarted && c.state.Load() >= stateStopping {
		err = ErrStopped
	}
	return err
}

func (c *Center) spawn() {
	go c.run()
	<-c.started
}

// Stop ends the loop and waits until it has exited and closed its fds (see
// the package comment for what happens to pending work). Any goroutine but
// the loop's own, where it returns ErrStopInLoop and does nothing.
// Idempotent: later calls wait for the first to finish and return nil.
// Stop on a Center that was never started still runs the events queued by
// Submit, on a loop goroutine started just for that, so no SubmitWait
// caller is left blocked.
func (c *Center) Stop() error {
	if c.InLoop() {
		return ErrStopInLoop
	}
	c.stopOnce.Do(func() {
		// Under the queue lock, so that every Submit either queued its
		// event before this point (and the loop will run it) or sees the
		// new state and returns ErrStopped.
		c.ext.mu.Lock()
		c.state.Store(stateStopping)
		// Unconditional write: the loop may be asleep with nothing
		// queued. It rechecks the state after every wake-up.
		c.signal()
		c.ext.mu.Unlock()
		c.startOnce.Do(c.spawn) // never started: run once to drain
	})
	<-c.done
	return nil
}

// Stats returns a snapshot of the counters. Any thread.
func (c *Center) Stats() Stats {
	return Stats{
		Wakeups:     c.stats.wakeups.Load(),
		Loops:       c.stats.loops.Load(),
		FileEvents:  c.stats.files.Load(),
		TimersRun:   c.stats.timers.Load(),
		ExternalRun: c.stats.external.Load(),
		Panics:      c.stats.panics.Load(),
	}
}

func (c *Center) now() int64 { return int64(time.Since(c.base)) }

// run is the loop goroutine.
func (c *Center) run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c.tid.Store(int64(unix.Gettid()))
	close(c.started)
	defer func() {
		c.tid.Store(0) // the thread may be reused by others once unlocked
		// Under the queue lock: Submit writes the eventfd under it, and
		// only while the state is running, so no write can hit a closed
		// (or reused) fd number.
		c.ext.mu.Lock()
		c.closeFDs()
		c.state.Store(stateStopped)
		c.ext.mu.Unlock()
		close(c.done)
	}()

	var werrs int
	// One clock read per iteration, right after the wait: the timers, the
	// busy-poll mark and the next timeout all use it. A timer due during
	// the handlers then runs one iteration later (late by their running
	// time, never early). Reading it three times an iteration was 3% of
	// the loop's user time in W5.
	now := c.now()
	for {
		timeout := c.timeout(now)
		sleeping := false
		if timeout != 0 {
			// Dekker with Submit: publish "about to sleep", then recheck
			// the queue. A submitter pushes, then reads sleeping; with
			// sequentially consistent atomics at least one side sees the
			// other, so either we see its event here or it signals us.
			c.ext.sleeping.Store(true)
			sleeping = true
			if c.ext.count.Load() > 0 || c.state.Load() != stateRunning {
				timeout = 0
			}
		}
		n, err := c.drv.Wait(c.events, timeout)
		if sleeping {
			c.ext.sleeping.Store(false)
		}
		now = c.now()
		c.stats.loops.Add(1)
		if err != nil {
			// Should not happen with a valid epoll fd; back off so a
			// persistent error cannot turn the loop into a hot spin.
			werrs++
			if werrs <= 3 || werrs%1000 == 0 {
				c.logf("event[%s]: wait: %v (%d in a row)", c.name, err, werrs)
			}
			time.Sleep(time.Millisecond)
		} else {
			werrs = 0
		}

		active := c.runOps()
		active += c.processFiles(n)
		active += c.timers.run(c, now)
		active += c.runExternal()
		if active > 0 {
			c.lastBusy = now
		}

		if c.state.Load() != stateRunning {
			// Drain: run what was queued before Stop (and anything those
			// events submit inline). Submit now fails, so this ends.
			for c.runExternal() > 0 {
			}
			if c.ops != nil {
				// Operations still in flight (sockets closed by the
				// events above) are cancelled and their completions run,
				// so their owners can close their fds.
				c.ops.Drain(time.Second)
				c.runOps()
				for c.runExternal() > 0 {
				}
			}
			c.timers.reset()
			return
		}
	}
}

// timeout is how long the next wait may block.
func (c *Center) timeout(now int64) time.Duration {
	if c.busyPoll > 0 && now-c.lastBusy < c.busyPoll {
		return 0
	}
	if when, ok := c.timers.next(); ok {
		if when <= now {
			return 0
		}
		return time.Duration(when - now)
	}
	return -1
}

// AddFile registers fn for the bits in mask of fd (Ceph
// create_file_event). Read and write may have separate handlers: register
// each bit with its own call; registering a bit again replaces its handler.
// A call with Readable|Writable registers one handler that is called once
// with both bits when both fire.
//
// Loop-only (ErrNotInLoop otherwise). The fd stays the caller's: DelFile it
// before closing it, so a reused fd number is never confused with this one.
func (c *Center) AddFile(fd int, mask Mask, fn FileFunc) error {
	if err := c.loopOnly(); err != nil {
		return err
	}
	if fd < 0 || mask == None || mask&^(Readable|Writable) != 0 || fn == nil {
		return fmt.Errorf("event: AddFile(fd %d, mask %#x, fn nil=%v): invalid argument", fd, uint8(mask), fn == nil)
	}
	if fd == c.efd {
		return fmt.Errorf("event: AddFile: fd %d is the center's own eventfd", fd)
	}
	var cur Mask
	if fd < len(c.files) {
		cur = c.files[fd].mask
	}
	// The driver first: it rejects fds that are not open, so a bogus
	// number never grows the table.
	if err := c.drv.Add(fd, cur, mask); err != nil {
		return fmt.Errorf("event: %w", err)
	}
	if fd >= len(c.files) {
		c.growFiles(fd + 1)
	}
	e := &c.files[fd]
	if e.mask == None {
		c.regSeq++
		e.gen = c.regSeq
	}
	e.mask |= mask
	if mask&Readable != 0 {
		e.read = fn
	}
	if mask&Writable != 0 {
		e.write = fn
	}
	e.shared = mask == Readable|Writable // a later single-bit AddFile splits them
	return nil
}

func (c *Center) growFiles(n int) {
	size := 2 * len(c.files)
	if size < n {
		size = n
	}
	files := make([]fileEntry, size)
	copy(files, c.files)
	c.files = files
	if err := c.drv.Resize(size); err != nil {
		c.logf("event[%s]: driver resize %d: %v", c.name, size, err)
	}
}

// DelFile stops watching the bits in mask of fd (Ceph delete_file_event).
// Bits that are not registered are ignored; an fd closed under the Center
// is fine. Events of this fd already returned by the current wait are not
// delivered to its handlers any more, nor to a later registration of the
// same fd number. Loop-only (ErrNotInLoop otherwise).
func (c *Center) DelFile(fd int, mask Mask) error {
	if err := c.loopOnly(); err != nil {
		return err
	}
	if fd < 0 || mask == None || mask&^(Readable|Writable) != 0 {
		return fmt.Errorf("event: DelFile(fd %d, mask %#x): invalid argument", fd, uint8(mask))
	}
	if fd >= len(c.files) || c.files[fd].mask&mask == None {
		return nil
	}
	e := &c.files[fd]
	err := c.drv.Del(fd, e.mask, mask)
	// Forget the handlers even if the driver failed: the caller asked for
	// them to stop, and a handler left behind would outlive its owner.
	e.mask &^= mask
	if mask&Readable != 0 {
		e.read = nil
	}
	if mask&Writable != 0 {
		e.write = nil
	}
	e.shared = false
	if err != nil {
		return fmt.Errorf("event: %w", err)
	}
	return nil
}

// processFiles runs the handlers of the n events from the last wait and
// returns how many handlers ran.
func (c *Center) processFiles(n int) int {
	// Registrations made from now on are newer than this batch: an event in
	// it for their fd number belongs to a closed predecessor (STYLE §12,
	// like the runtime's fdseq tags), so it is dropped.
	batch := c.regSeq
	ran := 0
	for i := 0; i < n; i++ {
		ev := c.events[i]
		if ev.Fd == c.efd {
			c.drainWakeup()
			continue
		}
		if ev.Fd >= len(c.files) {
			continue
		}
		// Index afresh after each handler: handlers may grow c.files.
		e := &c.files[ev.Fd]
		gen := e.gen
		fired := ev.Mask & e.mask
		if fired == None || gen > batch {
			continue
		}
		if e.shared && fired == Readable|Writable {
			c.callFile(e.read, ev.Fd, fired)
			ran++
			continue
		}
		if fired&Readable != 0 {
			c.callFile(e.read, ev.Fd, Readable)
			ran++
		}
		if fired&Writable != 0 {
			// The read handler may have removed the write interest or
			// ended the registration (and a new one taken the number).
			e = &c.files[ev.Fd]
			if e.gen == gen && e.mask&Writable != 0 {
				c.callFile(e.write, ev.Fd, Writable)
				ran++
			}
		}
	}
	if ran > 0 {
		c.stats.files.Add(uint64(ran))
	}
	return ran
}

// runOps runs the Done functions of the operations the last Wait reaped
// (io_uring only) and returns how many ran.
func (c *Center) runOps() int {
	if c.ops == nil {
		return 0
	}
	done := c.ops.Completions()
	for i := range done {
		c.callOp(done[i])
	}
	if len(done) > 0 {
		c.stats.files.Add(uint64(len(done)))
	}
	return len(done)
}

func (c *Center) callOp(cp driver.Completion) {
	defer c.recoverPanic("completion")
	cp.Run()
}

func (c *Center) callFile(fn FileFunc, fd int, m Mask) {
	defer c.recoverPanic("file handler")
	fn(fd, m)
}

func (c *Center) call(fn func(), what string) {
	defer c.recoverPanic(what)
	fn()
}

// recoverPanic is deferred around every callback: one bad callback must not
// take down a loop that serves many connections.
func (c *Center) recoverPanic(what string) {
	if r := recover(); r != nil {
		c.reportPanic(what, r)
	}
}

func (c *Center) reportPanic(what string, r any) {
	c.stats.panics.Add(1)
	c.logf("event[%s]: %s panicked: %v\n%s", c.name, what, r, debug.Stack())
}

func (c *Center) closeFDs() {
	if err := c.drv.Close(); err != nil {
		c.logf("event[%s]: close driver: %v", c.name, err)
	}
	if c.efd >= 0 {
		if err := unix.Close(c.efd); err != nil {
			c.logf("event[%s]: close eventfd: %v", c.name, err)
		}
		c.efd = -1
	}
}
