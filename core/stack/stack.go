// Package stack is Ceph's NetworkStack: a fixed set of workers, each one
// event.Center (one goroutine locked to its OS thread), plus listening,
// accepting and connecting TCP sockets whose I/O then runs on one worker for
// the socket's whole life.
//
// Threads. Calls marked "loop thread only" must run on the socket's worker
// loop (inside a handler, an onAccept or Connect callback, or a function
// given to w.Center.Submit). Calls marked "any goroutine" hop to the loop
// themselves. Nothing here takes a lock on the I/O path.
//
// Transports. Ceph runs DPDK and RDMA stacks behind the same interface as
// the posix one. Here a transport is the small set of unexported interfaces
// at the end of this file (transport, serverImpl, connImpl). posix.go is the
// event-driven one; pipe.go is "simple" (Ceph's SimpleMessenger model:
// blocking fds, a reader and a writer goroutine per socket, an accepter
// goroutine per listener), which also implements the two optional hooks
// (selfNotifier, selfAccepter). Stack, Worker, Listener and Socket stay the
// same for both, so the layers above run unchanged on either.
//
// Addresses are net/netip.AddrPort (IPv4 and IPv6, IPv4-mapped IPv6 treated
// as IPv4); this layer knows nothing of Ceph's entity_addr_t.
package stack

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/msgr-dev/msgr/core/event"
	"github.com/msgr-dev/msgr/core/event/driver"
)

// Options configure a Stack. The zero value is usable.
type Options struct {
	// Type selects the transport: "" or "posix" (kernel TCP driven by each
	// worker's event loop; Ceph's async+posix), or "simple" (blocking fds
	// served by a reader and a writer goroutine per socket and an accepter
	// goroutine per listener; Ceph's ms_type=simple). The Socket API and its
	// semantics are the same for both; with "simple" each connected socket
	// keeps about one OS thread blocked in read(2). "io_uring": posix's
	// listening and connecting, but each worker's Center runs the io_uring
	// driver and sockets read and write through its ring (uring.go); where
	// io_uring is unavailable it falls back to posix over epoll (Logf says
	// so, Stack.Type tells).
	Type string
	// Workers is the number of workers (Ceph ms_async_op_threads); 0 means
	// DefaultWorkers().
	Workers int
	// Driver is the readiness backend of every Center: "epoll" (default on
	// Linux), "poll" or "select" (fds below 1024 only).
	Driver string
	// BusyPoll lets each worker poll for up to this long before it blocks in
	// the kernel, trading CPU for round-trip latency (0 = never spin).
	BusyPoll time.Duration
	// MaxEvents is the event batch size per wait (0 = the Center's default).
	MaxEvents int
	// Logf receives rare diagnostics (accept failures and the like); nil
	// discards them.
	Logf func(format string, args ...any)
}

// uringAvailable is driver.UringAvailable; tests replace it to take the
// fallback path on a machine that has io_uring.
var uringAvailable = driver.UringAvailable

// MaxWorkers bounds Options.Workers (Ceph caps ms_async_op_threads at 24).
const MaxWorkers = 24

// DefaultWorkers is the worker count used when Options.Workers is 0: one per
// core (runtime.NumCPU), at least 1 and at most 8. One loop per core lets
// every core move bytes at once; more loops than cores only add context
// switches, and past 8 a messenger is rarely bound by its loops (Ceph's own
// default is 3).
func DefaultWorkers() int {
	return min(max(runtime.NumCPU(), 1), 8)
}

// DefaultBacklog is the listen backlog used when Listen is given 0 (Ceph's
// ms_tcp_listen_backlog).
const DefaultBacklog = 512

var (
	// ErrStopped is returned by calls on a stopped (or stopping) stack, and
	// wrapped by the ConnectError of a connect that Stop cut short.
	ErrStopped = event.ErrStopped
	// ErrNotStarted is returned by Listen and Connect before Start.
	ErrNotStarted = errors.New("stack: not started")
	// ErrWouldBlock is returned by Read, Readv, Write and Writev when the
	// socket has nothing to read or no room to write (EAGAIN). Wait for the
	// read handler, or call WantWrite(true) and wait for the write handler.
	ErrWouldBlock = errors.New("stack: operation would block")
	// ErrClosed is returned by I/O on a socket after Close.
	ErrClosed = errors.New("stack: socket closed")
	// ErrConnectTimeout is wrapped by the ConnectError of a connect that did
	// not complete within its timeout.
	ErrConnectTimeout = errors.New("stack: connect timed out")
)

// ConnectError is what a failed Connect reports. Err is a unix.Errno from
// the kernel (ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, ETIMEDOUT, ...),
// ErrConnectTimeout, ErrStopped, or a setup error; errors.Is sees through.
type ConnectError struct {
	Addr netip.AddrPort
	Err  error
}

func (e *ConnectError) Error() string { return fmt.Sprintf("stack: connect %s: %v", e.Addr, e.Err) }
func (e *ConnectError) Unwrap() error { return e.Err }

// Timeout reports whether the connect ran out of time (ours or the kernel's).
func (e *ConnectError) Timeout() bool {
	return errors.Is(e.Err, ErrConnectTimeout) || errors.Is(e.Err, errETIMEDOUT)
}

type state int

const (
	stateNew state = iota
	stateStarted
	stateStopping
	stateStopped
)

// Stack is a set of workers plus the sockets they own (Ceph NetworkStack).
type Stack struct {
	opts    Options
	tr      transport
	workers []*Worker

	mu        sync.Mutex // guards everything below and worker picks
	state     state
	listeners map[*Listener]struct{}
	sockets   map[*Socket]struct{}
	pending   map[*dialer]struct{}
}

// New creates a stack and its workers' Centers; nothing runs until Start.
func New(opts Options) (*Stack, error) {
	var tr transport
	switch opts.Type {
	case "", "posix":
		tr = posixTransport{}
	case "simple":
		tr = simpleTransport{}
	case "io_uring":
		if opts.Driver != "" && opts.Driver != "io_uring" {
			return nil, fmt.Errorf("stack: transport io_uring runs on the io_uring driver, not %q", opts.Driver)
		}
		if err := uringAvailable(); err != nil {
			if opts.Logf != nil {
				opts.Logf("stack: io_uring unavailable (%v): using posix over epoll", err)
			}
			tr, opts.Type, opts.Driver = posixTransport{}, "posix", ""
			break
		}
		tr, opts.Driver = uringTransport{}, "io_uring"
	default:
		return nil, fmt.Errorf("stack: unknown transport type %q (have: posix, simple, io_uring)", opts.Type)
	}
	if opts.Workers < 0 || opts.Workers > MaxWorkers {
		return nil, fmt.Errorf("stack: Workers = %d, want 0..%d", opts.Workers, MaxWorkers)
	}
	if opts.Workers == 0 {
		opts.Workers = DefaultWorkers()
	}
	if opts.BusyPoll < 0 {
		return nil, fmt.Errorf("stack: negative BusyPoll %v", opts.BusyPoll)
	}
	s := &Stack{
		opts:      opts,
		tr:        tr,
		listeners: map[*Listener]struct{}{},
		sockets:   map[*Socket]struct{}{},
		pending:   map[*dialer]struct{}{},
	}
	for i := 0; i < opts.Workers; i++ {
		c, err := event.New(event.Options{
			Name:      fmt.Sprintf("msgr-worker-%d", i),
			Driver:    opts.Driver,
			MaxEvents: opts.MaxEvents,
			BusyPoll:  opts.BusyPoll,
			Logf:      opts.Logf,
		})
		if err != nil {
			for _, w := range s.workers {
				w.Center.Stop()
			}
			return nil, fmt.Errorf("stack: worker %d: %w", i, err)
		}
		s.workers = append(s.workers, &Worker{ID: i, Center: c, stack: s})
	}
	return s, nil
}

// Start starts every worker's loop. Any goroutine.
func (s *Stack) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateStarted:
		return nil
	case stateStopping, stateStopped:
		return ErrStopped
	}
	for i, w := range s.workers {
		if err := w.Center.Start(); err != nil {
			for _, w := range s.workers[:i] {
				w.Center.Stop()
			}
			s.state = stateStopped
			return fmt.Errorf("stack: start worker %d: %w", i, err)
		}
	}
	s.state = stateStarted
	return nil
}

// Stop closes every listener and socket the stack still has, fails pending
// connects with ErrStopped (their callbacks run on their loops), then stops
// every worker. When it returns no goroutine or fd of the stack is left.
// Idempotent. Any goroutine except a worker loop of this stack (it waits for
// the loops), where it returns an error.
func (s *Stack) Stop() error {
	for _, w := range s.workers {
		if w.Center.InLoop() {
			return errors.New("stack: Stop called on a worker loop")
		}
	}
	s.mu.Lock()
	if s.state == stateStopping || s.state == stateStopped {
		s.mu.Unlock()
		return nil
	}
	wasStarted := s.state == stateStarted
	s.state = stateStopping
	s.mu.Unlock()

	// First on each loop, so handlers see their sockets closed in order and
	// connect callbacks run where they always run.
	if wasStarted {
		for _, w := range s.workers {
			w.Center.SubmitWait(func() { s.sweep(w, true) })
		}
	}
	var firstErr error
	for _, w := range s.workers {
		if err := w.Center.Stop(); err != nil && !errors.Is(err, event.ErrStopped) && firstErr == nil {
			firstErr = err
		}
	}
	// Anything handed to a worker after its sweep (an accept racing Stop):
	// the loops are gone, so close directly.
	for _, w := range s.workers {
		s.sweep(w, false)
	}
	s.mu.Lock()
	s.state = stateStopped
	s.mu.Unlock()
	return firstErr
}

// sweep closes what worker w still owns. inLoop says the loop is running
// (we are on it); otherwise the loop has exited and nothing is deregistered.
func (s *Stack) sweep(w *Worker, inLoop bool) {
	s.mu.Lock()
	var ls []*Listener
	var ss []*Socket
	var ds []*dialer
	for l := range s.listeners {
		if l.w == w {
			ls = append(ls, l)
		}
	}
	for k := range s.sockets {
		if k.w == w {
			ss = append(ss, k)
		}
	}
	for d := range s.pending {
		if d.w == w {
			ds = append(ds, d)
		}
	}
	s.mu.Unlock()
	for _, l := range ls {
		l.closeNow(inLoop)
	}
	for _, k := range ss {
		k.closeNow(inLoop)
	}
	for _, d := range ds {
		d.finish(nil, ErrStopped, inLoop)
	}
}

// Type is the transport the stack runs: "posix", "simple" or "io_uring"
// ("posix" when io_uring was asked for but is unavailable here).
func (s *Stack) Type() string { return s.tr.name() }

// Workers returns the workers, in ID order.
func (s *Stack) Workers() []*Worker { return s.workers }

// PickWorker returns the worker with the fewest connections, ties going to
// the lowest ID (Ceph NetworkStack::get_worker). Any goroutine. Listen and
// Connect pick and count in one step, so concurrent callers spread.
func (s *Stack) PickWorker() *Worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pickLocked()
}

func (s *Stack) pickLocked() *Worker {
	best := s.workers[0]
	bn := best.conns.Load()
	for _, w := range s.workers[1:] {
		if n := w.conns.Load(); n < bn {
			best, bn = w, n
		}
	}
	return best
}

// pickAndCount picks a worker and counts a new connection against it.
func (s *Stack) pickAndCount() *Worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.pickLocked()
	w.conns.Add(1)
	return w
}

func (s *Stack) checkRunning() error {
	switch s.state {
	case stateNew:
		return ErrNotStarted
	case stateStarted:
		return nil
	}
	return ErrStopped
}

func (s *Stack) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

// onLoop returns the worker whose loop the caller is on, or nil.
func (s *Stack) onLoop() *Worker {
	for _, w := range s.workers {
		if w.Center.InLoop() {
			return w
		}
	}
	return nil
}

// The transport interfaces (Ceph NetworkStack / ServerSocketImpl /
// ConnectedSocketImpl). Every method is nonblocking (except simple's
// accept, which only its own accepter goroutine calls). sysfd is the fd the
// worker's Center watches for readiness.
type transport interface {
	name() string
	listen(addr netip.AddrPort, opts SockOpts, backlog int) (serverImpl, error)
	// connect starts a connection; inProgress means wait for Writable and
	// then ask connectResult.
	connect(addr netip.AddrPort, opts SockOpts) (c connImpl, inProgress bool, err error)
}

type serverImpl interface {
	sysfd() int
	addr() netip.AddrPort
	accept() (connImpl, error) // ErrWouldBlock when the queue is empty
	close() error
}

type connImpl interface {
	sysfd() int
	connectResult() error
	localAddr() netip.AddrPort
	remoteAddr() netip.AddrPort
	read(p []byte) (int, error)
	readv(bufs [][]byte) (int, error)
	write(p []byte) (int, error)
	writev(bufs [][]byte) (int, error)
	close() error
}

// Optional transport hooks (pipe.go implements both; posix neither, its fds
// are watched by the worker's Center).

// selfNotifier is a connImpl that reports readiness itself instead of
// through the worker's Center watching sysfd.
type selfNotifier interface {
	// start begins serving the socket; from then on fire runs on c's loop
	// (through Submit) while a wanted bit is ready, level-triggered like
	// the drivers. Called once, when the Socket is made.
	start(c *event.Center, fire event.FileFunc)
	// setWant tells which bits the Socket watches now. Loop thread only.
	setWant(m event.Mask)
}

// selfAccepter is a serverImpl that accepts on a goroutine of its own
// instead of being watched by the listener's worker. It calls handOff on
// that goroutine for each connection until close.
type selfAccepter interface {
	startAccepting(handOff func(connImpl), logf func(format string, args ...any))
}
