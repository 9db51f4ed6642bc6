// Package messenger is msgr's Messenger (Ceph's AsyncMessenger plus its
// Processor): it owns the network stack (worker loops), the dispatch queue
// and the connections, binds and accepts, connects to peers (reusing the
// connection to an address that already has one), applies policies by peer
// type, throttles what peers may have in flight, injects faults on demand,
// and counts what happens.
//
// Lifecycle (Ceph's): New, then SetPolicy / AddDispatcher* / Bind, then
// Start; ConnectTo and Send at will; Shutdown (graceful and bounded) and
// Wait. Connections accepted before Start wait for it.
//
// Sets (Ceph's): conns holds the registered connections by peer address
// (outgoing ones from ConnectTo, incoming ones once their session is up);
// accepting holds incoming connections still handshaking; deleted holds
// closed connections until the reaper (an event on a worker loop) folds
// their counters into the totals and drops them.
package messenger

import (
	"errors"
	"fmt"
	"log"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/msgr-dev/msgr/core/conn"
	"github.com/msgr-dev/msgr/core/dispatch"
	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/stack"
)

// Errors returned by the Messenger.
var (
	ErrStopped      = errors.New("messenger: shut down")
	ErrAlreadyBound = errors.New("messenger: already bound")
	ErrNotBound     = errors.New("messenger: not bound")
)

type lifecycle int

const (
	stNew lifecycle = iota
	stStarted
	stStopping
	stStopped
)

// Messenger is Ceph's AsyncMessenger. All methods are safe from any
// goroutine unless noted.
type Messenger struct {
	name  msg.EntityName
	nonce uint32
	opts  Options
	log   func(format string, args ...any)
	logl  func(level int, format string, args ...any)

	stack *stack.Stack
	// sharedStack: the stack is Options.Stack, owned by the caller; it is
	// not stopped at Shutdown.
	sharedStack bool
	queue       *dispatch.Queue
	ccfg        *conn.Config
	counters    conn.Counters
	dthrot      *conn.Throttle
	delayTyp    map[msg.EntityType]bool
	gseq        atomic.Uint64

	mu            sync.Mutex
	state         lifecycle
	stackOn       bool
	myAddrs       msg.AddrVec
	listeners     []*stack.Listener
	preStart      []pendingSock
	conns         map[msg.Addr]*conn.Connection
	keys          map[*conn.Connection][]msg.Addr // conns' keys, by connection
	accepting     map[*conn.Connection]struct{}
	deleted       map[*conn.Connection]struct{}
	defaultPolicy msg.Policy
	policies      map[msg.EntityType]msg.Policy
	budgets       map[msg.EntityType]*conn.Budget
	local         *conn.Connection
	reapPending   bool
	closedTotals  conn.Stats
	done          chan struct{}
}

// New creates a messenger for entity name with the given address nonce
// (Ceph's Messenger::create). Nothing runs until Bind, ConnectTo or Start.
func New(name msg.EntityName, nonce uint32, opts Options) (*Messenger, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	m := &Messenger{
		name:      name,
		nonce:     nonce,
		opts:      o,
		conns:     map[msg.Addr]*conn.Connection{},
		keys:      map[*conn.Connection][]msg.Addr{},
		accepting: map[*conn.Connection]struct{}{},
		deleted:   map[*conn.Connection]struct{}{},
		policies:  map[msg.EntityType]msg.Policy{},
		budgets:   map[msg.EntityType]*conn.Budget{},
		done:      make(chan struct{}),
	}
	m.logl = o.LogLevelf
	if m.logl == nil {
		logf := o.Logf
		if logf == nil {
			logf = log.Printf
		}
		m.logl = func(_ int, f string, a ...any) { logf(f, a...) }
	}
	m.log = func(f string, a ...any) { m.logl(0, f, a...) } // errors, recovered panics
	m.delayTyp, _ = parseTypes(o.InjectDelayType)
	// Ceph's default policy: stateless server for anyone not named.
	m.defaultPolicy = msg.StatelessServer(0)
	st := o.Stack
	m.sharedStack = st != nil
	if st == nil {
		if st, err = newStack(o, m.dlog(1)); err != nil {
			return nil, err
		}
	}
	m.stack = st
	m.queue = dispatch.New(dispatch.Options{Logf: m.log})
	if o.DispatchThrottleBytes > 0 {
		m.dthrot = conn.NewThrottle("msgr_dispatch_throttler", o.DispatchThrottleBytes)
	}
	ready, idle := o.ConnectionReadyTimeout, o.ConnectionIdleTimeout
	m.ccfg = &conn.Config{
		Stack:          st,
		Queue:          m.queue,
		Host:           &host{m},
		Name:           name,
		Nonce:          nonce,
		SockOpts:       stack.SockOpts{NoDelay: o.TCPNoDelay, RcvBuf: o.TCPRcvBuf},
		InitialBackoff: o.InitialBackoff,
		MaxBackoff:     o.MaxBackoff,
		ReadyTimeout:   ready,
		IdleTimeout:    idle,
		AuthClient:     o.AuthClient,
		AuthServer:     o.AuthServer,
		ZeroCopyMin:    o.ZeroCopyMin,

		InjectSocketFailures:   o.InjectSocketFailures,
		InjectDelayMax:         o.InjectDelayMax,
		InjectDelayProbability: o.InjectDelayProbability,
		InjectSeed:             o.InjectSeed,
		Logf:                   m.log,
		LogLevelf:              m.logl,
		Debug:                  o.DebugMS,
		Counters:               &m.counters,
	}
	if len(m.delayTyp) > 0 {
		types := m.delayTyp
		m.ccfg.InjectDelay = func(t msg.EntityType) bool { return types[t] }
	}
	m.local = conn.NewLocal(m.ccfg, nil)
	return m, nil
}

// dlog returns a logger for stack diagnostics at the given debug level.
func (m *Messenger) dlog(level int) func(string, ...any) {
	if m.opts.DebugMS < level {
		return nil
	}
	return func(f string, a ...any) { m.logl(level, f, a...) }
}

// Name returns the messenger's entity name.
func (m *Messenger) Name() msg.EntityName { return m.name }

// Nonce returns the address nonce.
func (m *Messenger) Nonce() uint32 { return m.nonce }

// Options returns the options in effect (defaults filled in).
func (m *Messenger) Options() Options { return m.opts }

// SetDefaultPolicy sets the policy for peer types without their own
// (Ceph set_default_policy). Affects connections made after the call.
// Until set, the default is msg.StatelessServer(0): lossy both ways, never
// reconnecting. (Ceph's own default, Policy(), is lossless; every Ceph
// daemon replaces it, and a lossless default would keep a standby session
// forever for every client that goes away.)
func (m *Messenger) SetDefaultPolicy(p msg.Policy) {
	m.mu.Lock()
	m.defaultPolicy = p
	clear(m.budgets)
	m.mu.Unlock()
}

// SetPolicy sets the policy for peers of type t (Ceph set_policy). Its
// ThrottleBytes / ThrottleMessages make the policy throttlers.
func (m *Messenger) SetPolicy(t msg.EntityType, p msg.Policy) {
	m.mu.Lock()
	m.policies[t] = p
	delete(m.budgets, t)
	m.mu.Unlock()
}

// Policy returns the policy used for peers of type t.
func (m *Messenger) Policy(t msg.EntityType) msg.Policy {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.policyLocked(t)
}

func (m *Messenger) policyLocked(t msg.EntityType) msg.Policy {
	if p, ok := m.policies[t]; ok {
		return p
	}
	return m.defaultPolicy
}

// AddDispatcherHead puts d first in the dispatcher chain.
func (m *Messenger) AddDispatcherHead(d dispatch.Dispatcher) { m.queue.AddHead(d) }

// AddDispatcherTail puts d last in the dispatcher chain.
func (m *Messenger) AddDispatcherTail(d dispatch.Dispatcher) { m.queue.AddTail(d) }

// ensureStack starts the worker loops once (Ceph starts its stack when the
// messenger is created; here on first need, so an unused messenger holds
// no threads). m.mu held.
func (m *Messenger) ensureStackLocked() error {
	switch m.state {
	case stStopping, stStopped:
		return ErrStopped
	}
	if m.stackOn {
		return nil
	}
	if err := m.stack.Start(); err != nil {
		return fmt.Errorf("messenger: start workers: %w", err)
	}
	m.stackOn = true
	return nil
}

// Bind listens on addr: type v2 (or any) speaks msgr2, type v1 msgr1; port
// 0 picks a free port. Addrs then reports the bound address with the
// messenger's nonce. Ceph binds before Start; connections accepted before
// Start wait for it. BindAddrs binds several at once.
func (m *Messenger) Bind(addr msg.Addr) error {
	return m.BindAddrs(msg.AddrVec{addr})
}

// BindAddrs listens on every address of addrs, as Ceph binds a monitor to
// [v2:IP:3300,v1:IP:6789]: each listener speaks the protocol of its
// address's type, and Addrs lists the bound addresses in the same order.
// Either all bind or none stays bound.
func (m *Messenger) BindAddrs(addrs msg.AddrVec) error {
	return m.bind(addrs, func(a msg.Addr, try func(uint16) error) error { return try(a.Port()) })
}

// BindRange binds addr's IP to the first free port in [minPort, maxPort]
// (Ceph's ms_bind_port_min / ms_bind_port_max).
func (m *Messenger) BindRange(addr msg.Addr, minPort, maxPort int) error {
	if minPort < 1 || maxPort > 65535 || minPort > maxPort {
		return fmt.Errorf("messenger: bad port range %d..%d", minPort, maxPort)
	}
	return m.bind(msg.AddrVec{addr}, func(_ msg.Addr, try func(uint16) error) error {
		var last error
		for p := minPort; p <= maxPort; p++ {
			err := try(uint16(p))
			if err == nil {
				return nil
			}
			if !errors.Is(err, unix.EADDRINUSE) && !errors.Is(err, unix.EACCES) {
				return err
			}
			last = err
		}
		return fmt.Errorf("messenger: no free port in %d..%d: %w", minPort, maxPort, last)
	})
}

func (m *Messenger) bind(addrs msg.AddrVec, ports func(a msg.Addr, try func(uint16) error) error) error {
	if len(addrs) == 0 {
		return errors.New("messenger: bind with no address")
	}
	for _, a := range addrs {
		switch a.Type {
		case msg.AddrMsgr2, msg.AddrAny, msg.AddrLegacy:
		default:
			return fmt.Errorf("messenger: bind %v: want a v2 or v1 address", a)
		}
	}
	m.mu.Lock()
	if len(m.listeners) > 0 {
		m.mu.Unlock()
		return ErrAlreadyBound
	}
	if err := m.ensureStackLocked(); err != nil {
		m.mu.Unlock()
		return err
	}
	m.mu.Unlock()
	sopts := stack.SockOpts{NoDelay: m.opts.TCPNoDelay, RcvBuf: m.opts.TCPRcvBuf, ReuseAddr: true}
	var ls []*stack.Listener
	var bound msg.AddrVec
	closeAll := func() {
		for _, l := range ls {
			l.Close()
		}
	}
	for _, addr := range addrs {
		ip := addr.AddrPort.Addr()
		if !ip.IsValid() {
			ip = netip.IPv4Unspecified()
		}
		typ := addr.Type
		if typ == msg.AddrAny {
			typ = msg.AddrMsgr2
		}
		onAccept := func(sock *stack.Socket) { m.onAccept(sock, typ) }
		var l *stack.Listener
		err := ports(addr, func(p uint16) error {
			var err error
			l, err = m.stack.Listen(netip.AddrPortFrom(ip, p), sopts, m.opts.TCPListenBacklog, onAccept)
			return err
		})
		if err != nil {
			closeAll()
			return fmt.Errorf("messenger: bind %v: %w", addr, err)
		}
		ls = append(ls, l)
		bound = append(bound, msg.Addr{Type: typ, Nonce: m.nonce, AddrPort: l.Addr()})
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state >= stStopping || len(m.listeners) > 0 {
		closeAll()
		if m.state >= stStopping {
			return ErrStopped
		}
		return ErrAlreadyBound
	}
	m.listeners = ls
	m.myAddrs = bound
	return nil
}

// Addrs returns the messenger's addresses: the bound one (port resolved),
// or the one learned from a server if it never bound, or none.
func (m *Messenger) Addrs() msg.AddrVec {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.myAddrs
}

// onAccept runs on the accepted socket's worker (Ceph's Processor::accept
// and AsyncMessenger::add_accept).
// typ is the listener's protocol (v2 or v1).
func (m *Messenger) onAccept(sock *stack.Socket, typ msg.AddrType) {
	m.mu.Lock()
	switch m.state {
	case stNew:
		m.preStart = append(m.preStart, pendingSock{sock, typ})
		m.mu.Unlock()
		return
	case stStarted:
	default:
		m.mu.Unlock()
		sock.Close()
		return
	}
	c := conn.NewServer(m.ccfg, sock, typ)
	m.accepting[c] = struct{}{}
	m.mu.Unlock()
	c.Start()
}

// pendingSock is a socket accepted before Start, with its listener's
// protocol.
type pendingSock struct {
	sock *stack.Socket
	typ  msg.AddrType
}

// Start starts the dispatch queue and accepting (Ceph start). Idempotent.
func (m *Messenger) Start() error {
	m.mu.Lock()
	switch m.state {
	case stStarted:
		m.mu.Unlock()
		return nil
	case stStopping, stStopped:
		m.mu.Unlock()
		return ErrStopped
	}
	if err := m.ensureStackLocked(); err != nil {
		m.mu.Unlock()
		return err
	}
	m.state = stStarted
	pre := m.preStart
	m.preStart = nil
	var cs []*conn.Connection
	for _, s := range pre {
		c := conn.NewServer(m.ccfg, s.sock, s.typ)
		m.accepting[c] = struct{}{}
		cs = append(cs, c)
	}
	m.mu.Unlock()
	m.queue.Start()
	for _, c := range cs {
		c.Start()
	}
	return nil
}

// ConnectTo returns the connection to the peer at addrs, of type peerType
// (Ceph's connect_to / get_connection). It returns at once; the handshake
// runs in the background and messages sent meanwhile are queued. The same
// peer address always gives the same Connection while it is open; an
// address of this messenger gives the local connection, whose messages are
// delivered to our own dispatchers without a socket.
func (m *Messenger) ConnectTo(peerType msg.EntityType, addrs msg.AddrVec) (*conn.Connection, error) {
	if len(addrs) == 0 {
		return nil, errors.New("messenger: ConnectTo with no address")
	}
	// msgr2 when the peer has a v2 address, else msgr1 (Ceph's choice for
	// a messenger that speaks both).
	target, ok := addrs.Msgr2()
	if !ok {
		target, ok = addrs.Legacy()
	}
	if !ok || !target.AddrPort.IsValid() || target.Port() == 0 {
		return nil, fmt.Errorf("messenger: ConnectTo %v: no v2 or v1 address with a port", addrs)
	}
	m.mu.Lock()
	if err := m.ensureStackLocked(); err != nil {
		m.mu.Unlock()
		return nil, err
	}
	if m.isMineLocked(addrs) {
		m.mu.Unlock()
		return m.local, nil
	}
	for _, a := range addrs {
		if c := m.conns[a]; c != nil && c.State() != conn.StateClosed {
			m.mu.Unlock()
			return c, nil
		}
	}
	c := conn.NewClient(m.ccfg, peerType, target, m.policyLocked(peerType))
	m.conns[target] = c
	m.keys[c] = append(m.keys[c], target)
	m.mu.Unlock()
	// Outside m.mu (a connection never waits for its lock while holding
	// ours). A racing ConnectTo may return c before it starts: messages
	// sent meanwhile are staged until the session is up.
	c.Start()
	return c, nil
}

// isMineLocked reports whether one of addrs is this messenger's.
func (m *Messenger) isMineLocked(addrs msg.AddrVec) bool {
	for _, a := range addrs {
		for _, my := range m.myAddrs {
			if a.Nonce != my.Nonce || a.Port() != my.Port() || my.Port() == 0 {
				continue
			}
			if a.AddrPort.Addr() == my.AddrPort.Addr() || my.AddrPort.Addr().IsUnspecified() {
				return true
			}
		}
	}
	return false
}

// LocalConnection returns the messenger's connection to itself.
func (m *Messenger) LocalConnection() *conn.Connection { return m.local }

// MarkDown closes the connection to addrs, if any (Ceph mark_down_addrs).
func (m *Messenger) MarkDown(addrs msg.AddrVec) {
	m.mu.Lock()
	var c *conn.Connection
	for _, a := range addrs {
		if c = m.conns[a]; c != nil {
			break
		}
	}
	m.mu.Unlock()
	if c != nil {
		c.MarkDown()
	}
}

// MarkDownAll closes every connection (Ceph mark_down_all).
func (m *Messenger) MarkDownAll() {
	for _, c := range m.liveConns() {
		c.MarkDown()
	}
}

// Connections returns the registered and accepting connections.
func (m *Messenger) Connections() []*conn.Connection {
	return m.liveConns()
}

func (m *Messenger) liveConns() []*conn.Connection {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := make(map[*conn.Connection]struct{}, len(m.conns)+len(m.accepting))
	out := make([]*conn.Connection, 0, len(m.conns)+len(m.accepting))
	for _, c := range m.conns {
		if _, ok := seen[c]; !ok {
			seen[c] = struct{}{}
			out = append(out, c)
		}
	}
	for c := range m.accepting {
		if _, ok := seen[c]; !ok {
			seen[c] = struct{}{}
			out = append(out, c)
		}
	}
	return out
}

// Shutdown stops the messenger (Ceph shutdown): it stops accepting, gives
// queued output up to ShutdownTimeout to be written, closes every
// connection without reporting resets, stops the dispatch queue (queued
// messages are released undelivered) and the worker loops. When it
// returns no goroutine or fd of the messenger is left. Called from a
// worker loop (a fast dispatch), it runs in the background and returns
// nil at once. Idempotent; later calls wait for the first.
func (m *Messenger) Shutdown() error {
	for _, w := range m.stack.Workers() {
		if w.Center.InLoop() {
			go m.Shutdown() //nolint:errcheck // reported by the first call
			return nil
		}
	}
	m.mu.Lock()
	if m.state >= stStopping {
		m.mu.Unlock()
		<-m.done
		return nil
	}
	m.state = stStopping
	ls := m.listeners
	m.listeners = nil
	pre := m.preStart
	m.preStart = nil
	m.mu.Unlock()

	for _, l := range ls {
		l.Close()
	}
	for _, s := range pre {
		s.sock.Close()
	}
	// Graceful part: let queued output reach the sockets (bounded).
	if d := m.opts.ShutdownTimeout; d > 0 {
		deadline := time.Now().Add(d)
		for time.Now().Before(deadline) {
			idle := true
			for _, c := range m.liveConns() {
				if c.IsConnected() && !c.Idle() {
					idle = false
					break
				}
			}
			if idle {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	for _, c := range m.liveConns() {
		c.Close()
	}
	m.local.CloseLocal()
	m.queue.Stop()
	var err error
	if m.sharedStack {
		// The loops live on; wait until each has run what the closes
		// above handed it (socket closes, timer cancels), so nothing of
		// this messenger runs after Shutdown returns.
		for _, w := range m.stack.Workers() {
			_ = w.Center.SubmitWait(func() {})
		}
	} else {
		err = m.stack.Stop()
	}
	if werr := m.queue.Wait(); werr != nil && !errors.Is(werr, dispatch.ErrInDispatch) && err == nil {
		err = werr
	}
	m.mu.Lock()
	m.reapLocked()
	m.state = stStopped
	m.mu.Unlock()
	close(m.done)
	return err
}

// Wait blocks until Shutdown has finished (Ceph wait).
func (m *Messenger) Wait() { <-m.done }

// --- host: what connections ask of the messenger -------------------------------

// host implements conn.Host. Its methods take m.mu and never lock a
// connection while holding it.
type host struct{ m *Messenger }

func (h *host) MyAddrs() msg.AddrVec { return h.m.Addrs() }

// GlobalSeq is Ceph's get_global_seq: ++counter after raising it to at
// least atLeast.
func (h *host) GlobalSeq(atLeast uint64) uint64 {
	g := &h.m.gseq
	for {
		cur := g.Load()
		next := max(cur, atLeast) + 1
		if g.CompareAndSwap(cur, next) {
			return next
		}
	}
}

func (h *host) PolicyFor(t msg.EntityType) msg.Policy { return h.m.Policy(t) }

func (h *host) BudgetFor(t msg.EntityType) *conn.Budget {
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if b, ok := m.budgets[t]; ok {
		return b
	}
	p := m.policyLocked(t)
	b := &conn.Budget{
		Dispatch: m.dthrot,
		Bytes:    conn.NewThrottle(fmt.Sprintf("msgr_policy_throttler_bytes_%s", t), int64(min(p.ThrottleBytes, 1<<62))),
		Msgs:     conn.NewThrottle(fmt.Sprintf("msgr_policy_throttler_msgs_%s", t), int64(min(p.ThrottleMessages, 1<<62))),
	}
	if b.Dispatch == nil && b.Bytes == nil && b.Msgs == nil {
		b = nil
	}
	m.budgets[t] = b
	return b
}

func (h *host) Lookup(peer msg.AddrVec) *conn.Connection {
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range peer {
		if c := m.conns[a]; c != nil && c.State() != conn.StateClosed {
			return c
		}
	}
	return nil
}

func (h *host) Register(c *conn.Connection, peer msg.AddrVec) error {
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state >= stStopping {
		return ErrStopped
	}
	for _, a := range peer {
		if ex := m.conns[a]; ex != nil && ex != c && ex.State() != conn.StateClosed {
			return fmt.Errorf("messenger: %v already has a connection", a)
		}
	}
	for _, a := range peer {
		m.conns[a] = c
		m.keys[c] = append(m.keys[c], a)
	}
	delete(m.accepting, c)
	return nil
}

func (h *host) Closed(c *conn.Connection) {
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range m.keys[c] {
		if m.conns[a] == c {
			delete(m.conns, a)
		}
	}
	delete(m.keys, c)
	delete(m.accepting, c)
	m.deleted[c] = struct{}{}
	if !m.reapPending && m.state < stStopping {
		m.reapPending = true
		if err := m.stack.Workers()[0].Center.Submit(m.reap); err != nil {
			m.reapPending = false
		}
	}
}

func (h *host) LearnedAddr(addrs msg.AddrVec) {
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.myAddrs) == 0 {
		m.myAddrs = addrs
	}
}

// reap is the reaper (Ceph's reap_dead): closed connections leave the
// deleted set and their counters join the totals.
func (m *Messenger) reap() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reapPending = false
	m.reapLocked()
}

func (m *Messenger) reapLocked() {
	for c := range m.deleted {
		s := c.Stats()
		m.closedTotals.MsgsIn += s.MsgsIn
		m.closedTotals.MsgsOut += s.MsgsOut
		m.closedTotals.BytesIn += s.BytesIn
		m.closedTotals.BytesOut += s.BytesOut
		delete(m.deleted, c)
	}
}
