package conn

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgr-dev/msgr/core/dispatch"
	"github.com/msgr-dev/msgr/core/event"
	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/protocol"
	"github.com/msgr-dev/msgr/core/stack"
	"github.com/msgr-dev/msgr/core/wire"
)

// Errors reported by connections.
var (
	// ErrClosed is returned by Send and SendKeepalive on a closed (marked
	// down, faulted lossy, or shut down) connection; the caller keeps the
	// message.
	ErrClosed = errors.New("conn: connection closed")
	// ErrReadyTimeout is the fault of a handshake that did not complete
	// within ms_connection_ready_timeout (Ceph's "see no progress ...
	// during connecting").
	ErrReadyTimeout = errors.New("conn: handshake not complete within ms_connection_ready_timeout")
	// ErrIdleTimeout is the fault of a connection idle for longer than
	// ms_connection_idle_timeout.
	ErrIdleTimeout = errors.New("conn: idle for longer than ms_connection_idle_timeout")
	// ErrNoTarget: a lossless session must reconnect but the peer never
	// gave an address to dial.
	ErrNoTarget = errors.New("conn: no address to reconnect to")
)

// State is a connection's coarse state, as State() reports it.
type State uint32

const (
	// StateNone: created, not started.
	StateNone State = iota
	// StateConnecting: a client socket is connecting or handshaking.
	StateConnecting
	// StateAccepting: an accepted socket is handshaking.
	StateAccepting
	// StateOpen: the session is up and messages flow (protocol READY).
	StateOpen
	// StateStandby: a lossless session without a socket, waiting for
	// something to send (client) or for the peer to come back (server).
	StateStandby
	// StateBackoff: waiting to reconnect after a fault.
	StateBackoff
	// StateClosed: closed for good.
	StateClosed
)

var stateNames = [...]string{"none", "connecting", "accepting", "open", "standby", "backoff", "closed"}

// String returns the state's name.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", uint32(s))
}

// Counters are messenger-wide event counters the connections update (rare
// events only; per-message counters live in each Connection).
type Counters struct {
	Faults           atomic.Uint64 // faults of any kind (socket, protocol, timeout)
	Reconnects       atomic.Uint64 // reconnect attempts of lossless sessions
	Refused          atomic.Uint64 // connects refused by the peer (ECONNREFUSED)
	ReadyTimeouts    atomic.Uint64 // handshakes cut by ms_connection_ready_timeout
	IdleTimeouts     atomic.Uint64 // connections closed by ms_connection_idle_timeout
	ProtocolErrors   atomic.Uint64 // faults caused by bad input from the peer
	Connected        atomic.Uint64 // sessions opened as client (incl. reconnects)
	Accepted         atomic.Uint64 // sessions opened as server (incl. reconnects)
	Replaced         atomic.Uint64 // sessions taken over by a new socket (reuse)
	InjectedFailures atomic.Uint64 // sockets shut down by ms_inject_socket_failures
	InjectedDelays   atomic.Uint64 // messages delayed by ms_inject_delay_*
	ThrottleStalls   atomic.Uint64 // times a connection stopped reading for budget
}

// Host is what a connection needs from its messenger (implemented by
// core/messenger, which this package must not import). Methods may be
// called with the connection's lock held and from any loop; the host must
// never lock a connection while holding a lock a connection may wait for.
type Host interface {
	// MyAddrs returns the messenger's addresses (empty if it never bound).
	MyAddrs() msg.AddrVec
	// GlobalSeq is Ceph's get_global_seq(atLeast).
	GlobalSeq(atLeast uint64) uint64
	// PolicyFor returns the policy for peers of type t.
	PolicyFor(t msg.EntityType) msg.Policy
	// BudgetFor returns the throttles messages from peers of type t take
	// (nil: unlimited).
	BudgetFor(t msg.EntityType) *Budget
	// Lookup returns the registered connection for one of the peer's
	// addresses, or nil (Ceph lookup_conn).
	Lookup(peer msg.AddrVec) *Connection
	// Register moves an accepted connection into the registered set under
	// the peer's addresses (Ceph accept_conn); an error means another
	// connection for the peer is registered and alive.
	Register(c *Connection, peer msg.AddrVec) error
	// Closed is called once when c is closed for good; the host drops it
	// from its sets.
	Closed(c *Connection)
	// LearnedAddr reports the address a client learned from a server.
	LearnedAddr(addrs msg.AddrVec)
}

// Config is shared by every connection of one messenger. Fields are read
// only after the first connection is created.
type Config struct {
	Stack *stack.Stack
	Queue *dispatch.Queue
	Host  Host

	// Name and Nonce are the messenger's entity name and address nonce.
	Name  msg.EntityName
	Nonce uint32

	SockOpts stack.SockOpts
	// InitialBackoff and MaxBackoff bound the reconnect delay
	// (ms_initial_backoff, ms_max_backoff).
	InitialBackoff, MaxBackoff time.Duration
	// ReadyTimeout bounds a handshake (ms_connection_ready_timeout);
	// <= 0 disables it.
	ReadyTimeout time.Duration
	// IdleTimeout closes (faults) a connection with no traffic for that
	// long (ms_connection_idle_timeout); <= 0 disables it.
	IdleTimeout time.Duration

	// AuthClient returns the auth client of one new client machine (nil:
	// auth none). AuthServer serves every accepted connection (nil: none).
	AuthClient func() protocol.AuthClient
	AuthServer protocol.AuthServer
	// Limits bound frames from peers (zero: core/wire defaults).
	Limits wire.Limits

	// ReadBuf is the initial read buffer size (default 128 KiB); it grows
	// to hold one large frame and shrinks back once it is consumed.
	ReadBuf int
	// WriteBatch is how many bytes of frames are encoded into the output
	// buffer before a write (default 256 KiB).
	WriteBatch int
	// ZeroCopyMin: message segments of at least this many bytes are
	// written straight from the message's buffer (writev) instead of being
	// copied into the output buffer (default 4 KiB; negative: never).
	// Below a few KiB the copy is cheaper than an iovec.
	ZeroCopyMin int

	// Fault injection (Ceph's ms_inject_*), seeded by InjectSeed so a run
	// can be replayed: InjectSocketFailures = N shuts a socket down with
	// probability 1/N on each read or write; messages from peers whose type
	// InjectDelay accepts are delayed, with probability
	// InjectDelayProbability, by up to InjectDelayMax.
	InjectSocketFailures   uint64
	InjectDelay            func(peerType msg.EntityType) bool
	InjectDelayMax         time.Duration
	InjectDelayProbability float64
	InjectSeed             int64

	// Logf receives diagnostics of at most level Debug (Ceph's debug_ms:
	// 1 = connection events, 5 = faults in detail, 10+ = handshake steps).
	Logf  func(format string, args ...any)
	Debug int
	// LogLevelf, if set, is used instead of Logf and gets each line's
	// level.
	LogLevelf func(level int, format string, args ...any)

	// Counters are the shared event counters (may be nil).
	Counters *Counters

	ids    atomic.Uint64
	rpool  *bufPool
	wpool  *bufPool
	initMu sync.Mutex
	inited bool
	cnt    Counters
}

func (cfg *Config) init() {
	cfg.initMu.Lock()
	defer cfg.initMu.Unlock()
	if cfg.inited {
		return
	}
	cfg.inited = true
	if cfg.ReadBuf <= 0 {
		cfg.ReadBuf = 128 << 10
	}
	if cfg.WriteBatch <= 0 {
		cfg.WriteBatch = 256 << 10
	}

	if cfg.InitialBackoff <= 0 {
		cfg.InitialBackoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.InitialBackoff {
		cfg.MaxBackoff = max(15*time.Second, cfg.InitialBackoff)
	}
	if cfg.Counters == nil {
		cfg.Counters = &cfg.cnt
	}
	if cfg.ZeroCopyMin == 0 {
		cfg.ZeroCopyMin = 4 << 10
	}
	cfg.rpool = sharedPool(cfg.ReadBuf)
	cfg.wpool = sharedPool(cfg.WriteBatch)
}

func (cfg *Config) dout(level int, format string, args ...any) {
	if cfg.Debug < level {
		return
	}
	if cfg.LogLevelf != nil {
		cfg.LogLevelf(level, format, args...)
	} else if cfg.Logf != nil {
		cfg.Logf(format, args...)
	}
}

// peerInfo is what getters read without the connection lock.
type peerInfo struct {
	name     msg.EntityName
	addrs    msg.AddrVec
	addr     msg.Addr
	features uint64
	lossy    bool
	policy   msg.Policy
}

// ctimer is one timer of a connection, armed on some loop.
type ctimer struct {
	center *event.Center
	id     event.TimerID
	seq    uint64
}

// delayed is a received message held back by delay injection.
type delayed struct {
	m    *msg.Message
	cost int64
	at   time.Time
}

// Connection is one peer session (Ceph's AsyncConnection). See the package
// documentation. It implements dispatch.Conn.
type Connection struct {
	cfg  *Config
	host Host
	id   uint64
	exh  *exHandle
	reg  *registry
	ev   *events

	// Immutable after creation.
	local bool

	refs   atomic.Int32
	state  atomic.Uint32
	peer   atomic.Pointer[peerInfo]
	priv   atomic.Pointer[privBox]
	kaAck  atomic.Int64 // unix ns of the last KEEPALIVE2_ACK's stamp
	kaRecv atomic.Int64 // unix ns of the last KEEPALIVE2 received

	// Per-message counters: written only with mu held (so Store(Load+n)
	// is exact and needs no locked instruction), read by anyone.
	msgsIn, msgsOut, bytesIn, bytesOut atomic.Uint64
	queued                             atomic.Int64 // session out queue length after the last write
	unacked                            atomic.Int64 // lossless: written, not yet acknowledged
	hw                                 heldWait     // senders waiting for queued+unacked to drop
	faults                             atomic.Uint64
	lastFault                          atomic.Pointer[faultRec]
	fb                                 dispatch.Batch // one read's messages for a batch dispatcher (mu)

	// Staging for Send (any goroutine), guarded by outMu.
	outMu     sync.Mutex
	staged    []*msg.Message // nil entries stand for the next of packs
	spare     []*msg.Message
	packs     []Packed
	packSpare []Packed
	packedN   int // messages in packs
	stagedKA  bool
	outClosed bool
	armed     bool          // the loop will look at staged without a new event
	submitW   *stack.Worker // where write events go (nil: not yet on a loop)
	wfns      []func()      // write-event functions by worker ID

	resumeFn func() // c.onResume, bound once

	// Everything below is guarded by mu and used by the loop that owns the
	// current socket (or, without a socket, the loop that ran last).
	mu         sync.Mutex
	role       protocol.Role // role of the current or last machine
	peerType   msg.EntityType
	target     msg.Addr // address to (re)connect to
	policy     msg.Policy
	sess       *protocol.Session
	m          protocol.Protocol
	proto      msg.AddrType // msg.AddrMsgr2 or msg.AddrLegacy (msgr1); fixed
	sock       *stack.Socket
	center     *event.Center
	pending    *stack.Socket // server: the accepted socket before Start
	gen        uint64        // bumps whenever the socket or attempt changes
	closed     bool
	replacing  bool
	takeover   *Connection // server: the existing connection being taken over
	justReady  bool
	wasOpen    bool
	backoff    time.Duration
	budget     *Budget
	readPaused bool
	thrWaiting bool

	rbuf         []byte
	rh           *[]byte // pool holder of rbuf
	rstart, rend int
	wbuf         []byte
	wh           *[]byte // pool holder of wbuf
	wpos         int
	// Zero-copy output (flush): wvec is the pending output as iovecs
	// (pieces of wbuf and message segments), written from wvec[wvi];
	// wrel are the lossy messages to release once their last iovec is
	// written. While wvec is pending wpos stays 0, so wbuf is kept.
	wrefs        []protocol.OutRef
	wvec         [][]byte
	wvi          int
	wrel         []wrel
	wreli        int
	wantWrite    bool
	readFn       func()
	writableFn   func()
	activity     uint64 // bumps on every read or write (idle detection)
	idleSeen     uint64
	tHandshake   ctimer
	tIdle        ctimer
	tBackoff     ctimer
	tDelay       ctimer
	delayOn      bool
	delayQ       []delayed
	unpacked     []*msg.Message // drain's scratch for a pack's messages
	rng          *rand.Rand
	connectStart time.Time
}

type privBox struct{ v any }

func newConn(cfg *Config) *Connection {
	cfg.init()
	c := &Connection{cfg: cfg, host: cfg.Host, id: cfg.ids.Add(1)}
	c.exh = &exHandle{c}
	c.reg = &registry{c}
	c.ev = &events{c}
	c.resumeFn = c.onResume
	c.refs.Store(1)
	c.hw.below.Store(-1)
	if cfg.InjectSocketFailures > 0 || cfg.InjectDelay != nil {
		seed := uint64(cfg.InjectSeed)
		// Streams differ per connection and per messenger (nonce), and
		// replay with the same seed.
		c.rng = rand.New(rand.NewPCG(seed, uint64(cfg.Nonce)<<32^c.id))
	}
	return c
}

// NewClient returns a connection that will dial target, a peer of type
// peerType, with policy pol. Nothing happens until Start (so the messenger
// can register it first).
func NewClient(cfg *Config, peerType msg.EntityType, target msg.Addr, pol msg.Policy) *Connection {
	c := newConn(cfg)
	c.role = protocol.RoleClient
	c.peerType = peerType
	c.target = target
	c.proto = msg.AddrMsgr2
	if target.Type == msg.AddrLegacy {
		c.proto = msg.AddrLegacy
	}
	c.policy = pol
	c.sess = protocol.NewSession(pol, releaseMsg)
	c.peer.Store(&peerInfo{name: msg.EntityName{Type: peerType, Num: msg.NumNew}, addrs: msg.AddrVec{target}, addr: target, lossy: pol.Lossy, policy: pol})
	return c
}

// NewServer returns a connection for an accepted socket; Start begins the
// handshake. typ is the listener's address type: msg.AddrLegacy speaks
// msgr1, anything else msgr2.
func NewServer(cfg *Config, sock *stack.Socket, typ msg.AddrType) *Connection {
	c := newConn(cfg)
	c.role = protocol.RoleServer
	c.pending = sock
	if typ != msg.AddrLegacy {
		typ = msg.AddrMsgr2
	}
	c.proto = typ
	a := msg.Addr{Type: typ, AddrPort: sock.RemoteAddr()}
	c.peer.Store(&peerInfo{name: msg.EntityName{Type: 0, Num: msg.NumNew}, addrs: msg.AddrVec{a}, addr: a})
	return c
}

// NewLocal returns the messenger's connection to itself (Ceph's
// local_connection): Send delivers to the messenger's own dispatchers
// without a socket.
func NewLocal(cfg *Config, addrs msg.AddrVec) *Connection {
	c := newConn(cfg)
	c.local = true
	var a msg.Addr
	if len(addrs) > 0 {
		a = addrs[0]
	}
	c.peer.Store(&peerInfo{name: cfg.Name, addrs: addrs, addr: a, features: msg.FeaturesAll})
	c.setState(StateOpen)
	return c
}

func releaseMsg(m *msg.Message) { m.Release() }

// Start starts a client connecting, or a server handshaking on its
// accepted socket. Any goroutine; idempotent.
func (c *Connection) Start() {
	if c.local {
		return
	}
	c.mu.Lock()
	if c.closed || c.State() != StateNone {
		c.mu.Unlock()
		return
	}
	if c.role == protocol.RoleClient {
		c.connectLocked()
		c.mu.Unlock()
		return
	}
	sock := c.pending
	c.mu.Unlock()
	start := func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.startAccept(sock)
	}
	if sock.Worker().Center.InLoop() {
		start()
	} else if err := sock.Worker().Center.Submit(start); err != nil {
		c.mu.Lock()
		c.stopLocked(false)
		c.mu.Unlock()
	}
}

// ID is unique within the messenger (dispatch.Conn).
func (c *Connection) ID() uint64 { return c.id }

// PeerName is the peer's entity name; the number is known once the
// session is up (dispatch.Conn).
func (c *Connection) PeerName() msg.EntityName { return c.peer.Load().name }

// PeerAddr is the peer's (first) address (dispatch.Conn).
func (c *Connection) PeerAddr() msg.Addr { return c.peer.Load().addr }

// PeerAddrs are the peer's addresses.
func (c *Connection) PeerAddrs() msg.AddrVec { return c.peer.Load().addrs }

// MsgrVersion is the wire protocol of the connection: 2 (msgr2) or 1 (msgr1,
// for a v1 peer address or a v1 listener). Fixed for the connection's life.
func (c *Connection) MsgrVersion() int {
	if c.proto == msg.AddrLegacy {
		return 1
	}
	return 2
}

// PeerType is the peer's entity type.
func (c *Connection) PeerType() msg.EntityType { return c.peer.Load().name.Type }

// Features is the feature set agreed with the peer (dispatch.Conn).
func (c *Connection) Features() uint64 { return c.peer.Load().features }

// IsLossy reports whether the session is lossy (dispatch.Conn).
func (c *Connection) IsLossy() bool { return c.peer.Load().lossy }

// IsLocal reports whether this is the messenger's connection to itself.
func (c *Connection) IsLocal() bool { return c.local }

// State returns the connection's state.
func (c *Connection) State() State { return State(c.state.Load()) }

// IsConnected reports whether the session is open (Ceph is_connected).
func (c *Connection) IsConnected() bool { return c.State() == StateOpen }

// SetPriv attaches a user value to the connection (Ceph set_priv).
func (c *Connection) SetPriv(v any) { c.priv.Store(&privBox{v}) }

// Priv returns the value set by SetPriv, or nil.
func (c *Connection) Priv() any {
	if b := c.priv.Load(); b != nil {
		return b.v
	}
	return nil
}

// Get takes a reference and returns c. A Connection stays a valid handle
// whatever its state (Go's collector keeps the memory alive); the count
// tells users such as the C API when the last handle is gone.
func (c *Connection) Get() *Connection {
	c.refs.Add(1)
	return c
}

// Put drops a reference taken by Get (or the creator's). It reports
// whether that was the last one.
func (c *Connection) Put() bool {
	n := c.refs.Add(-1)
	if n < 0 {
		c.refs.Add(1)
		return false
	}
	return n == 0
}

// Refs returns the reference count.
func (c *Connection) Refs() int32 { return c.refs.Load() }

// LastKeepaliveAck returns the stamp of the last KEEPALIVE2_ACK received
// (the time our KEEPALIVE2 was sent), or the zero time.
func (c *Connection) LastKeepaliveAck() time.Time { return unixTime(c.kaAck.Load()) }

// LastKeepalive returns the stamp of the last KEEPALIVE2 the peer sent.
func (c *Connection) LastKeepalive() time.Time { return unixTime(c.kaRecv.Load()) }

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Stats is a snapshot of a connection's counters.
type Stats struct {
	MsgsIn, MsgsOut   uint64
	BytesIn, BytesOut uint64
	// Queued is the number of messages waiting to be written (staged by
	// Send plus the session's out queue as of the last write).
	Queued int
	// Unacked (lossless sessions) is the number of messages written and
	// kept until the peer acknowledges them, as of the last write or ack.
	// A sender bounding its memory bounds Queued + Unacked.
	Unacked int
}

// Stats returns the connection's counters. Any goroutine.
func (c *Connection) Stats() Stats {
	c.outMu.Lock()
	st := c.stagedLocked()
	c.outMu.Unlock()
	return Stats{
		MsgsIn: c.msgsIn.Load(), MsgsOut: c.msgsOut.Load(),
		BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(),
		Queued: st + int(c.queued.Load()), Unacked: int(c.unacked.Load()),
	}
}

type faultRec struct{ err error }

// LastFault is the connection's most recent fault (a *protocol.Fault
// wrapping its cause: a socket error, a timeout, bad input from the peer,
// a refused connect), or nil if it never faulted; Faults counts them. A
// lossless session survives faults (it reconnects), so these say why a
// session reconnected as well as why a lossy one was reset. Any goroutine.
func (c *Connection) LastFault() error {
	if r := c.lastFault.Load(); r != nil {
		return r.err
	}
	return nil
}

// Faults is the number of faults the connection has had. Any goroutine.
func (c *Connection) Faults() uint64 { return c.faults.Load() }

// String names the connection for logs.
func (c *Connection) String() string {
	p := c.peer.Load()
	return fmt.Sprintf("conn(%d %s %s %s)", c.id, p.name, p.addr, c.State())
}

func (c *Connection) setState(s State) { c.state.Store(uint32(s)) }

// add bumps a per-message counter; mu is held, so no other writer exists.
func add(a *atomic.Uint64, n uint64) { a.Store(a.Load() + n) }

// Send queues m for the peer, highest priority first and FIFO within a
// priority (dispatch.Conn). On success the connection owns m (it is
// released once sent on a lossy session or acknowledged on a lossless
// one); on error (ErrClosed) the caller keeps it. Any goroutine.
func (c *Connection) Send(m *msg.Message) error {
	if m == nil {
		return errors.New("conn: Send(nil)")
	}
	if c.local {
		return c.sendLocal(m)
	}
	c.outMu.Lock()
	if c.outClosed {
		c.outMu.Unlock()
		return ErrClosed
	}
	c.staged = append(c.staged, m)
	c.kickUnlock()
	return nil
}

// stagedLocked is how many messages Send and SendPacked staged. outMu held.
func (c *Connection) stagedLocked() int { return len(c.staged) - len(c.packs) + c.packedN }

// Packed is a run of messages a sender described without building them:
// the connection's loop builds them when it drains its staged messages,
// on the core that will frame, write and release them. (A C sender that
// built the messages on its own thread made every message a handful of
// cache lines crossing cores twice: once built, once released.)
type Packed interface {
	// Len is how many messages it holds.
	Len() int
	// Unpack appends the messages, built, in order. Called once, on the
	// connection's loop; the connection owns them from then on.
	Unpack(out []*msg.Message) []*msg.Message
	// Discard frees the pack without building (the connection closed).
	Discard()
}

// SendPacked is Send of every message p describes, in order, built on the
// connection's loop (a local connection builds and delivers them now).
// On success the connection owns p; on error (ErrClosed) the caller
// keeps it. Any goroutine.
func (c *Connection) SendPacked(p Packed) error {
	if c.local {
		ms := p.Unpack(nil)
		for i, m := range ms {
			if err := c.sendLocal(m); err != nil {
				for _, m := range ms[i:] {
					m.Release()
				}
				return err
			}
		}
		return nil
	}
	c.outMu.Lock()
	if c.outClosed {
		c.outMu.Unlock()
		return ErrClosed
	}
	c.staged = append(c.staged, nil)
	c.packs = append(c.packs, p)
	c.packedN += p.Len()
	c.kickUnlock()
	return nil
}

// kickUnlock ends a Send: unless the loop will look at the staged
// messages anyway (armed), it submits a write event to the connection's
// worker. outMu held; it unlocks it.
func (c *Connection) kickUnlock() {
	var w *stack.Worker
	var fn func()
	if !c.armed && c.submitW != nil {
		c.armed = true
		w = c.submitW
		fn = c.writeFnFor(w)
	}
	c.outMu.Unlock()
	if fn != nil {
		c.submitWrite(w, fn)
	}
}

// SendKeepalive sends a KEEPALIVE2 (dispatch.Conn); the peer's ack shows
// in LastKeepaliveAck. Any goroutine.
func (c *Connection) SendKeepalive() error {
	if c.local {
		return nil
	}
	c.outMu.Lock()
	if c.outClosed {
		c.outMu.Unlock()
		return ErrClosed
	}
	c.stagedKA = true
	c.kickUnlock()
	return nil
}

func (c *Connection) submitWrite(w *stack.Worker, fn func()) {
	if w.Center.Submit(fn) != nil {
		// The loop is gone (shutdown): the messages stay staged and are
		// released when the connection is stopped.
		c.outMu.Lock()
		c.armed = false
		c.outMu.Unlock()
	}
}

// MarkDown closes the connection and drops its queues without reporting
// a reset (Ceph mark_down) (dispatch.Conn). Later Sends fail with
// ErrClosed. From a worker loop (a fast dispatch or handler) the close is
// carried out asynchronously on the connection's loop; from any other
// goroutine it is done when MarkDown returns.
func (c *Connection) MarkDown() {
	if c.local {
		return
	}
	c.closeOut()
	if c.onAnyLoop() {
		c.outMu.Lock()
		w := c.submitW
		c.outMu.Unlock()
		if w == nil {
			w = c.cfg.Stack.Workers()[0]
		}
		if w.Center.Submit(c.markDownNow) == nil {
			return
		}
	}
	c.markDownNow()
}

func (c *Connection) markDownNow() {
	c.mu.Lock()
	c.stopLocked(false)
	c.mu.Unlock()
}

// Close closes the connection silently, as MarkDown, from any goroutine
// that is not a worker loop (messenger shutdown).
func (c *Connection) Close() {
	c.closeOut()
	c.markDownNow()
}

// closeOut makes later Sends fail at once.
func (c *Connection) closeOut() {
	c.outMu.Lock()
	c.outClosed = true
	c.outMu.Unlock()
}

// onAnyLoop reports whether the caller runs on a worker loop of the stack.
func (c *Connection) onAnyLoop() bool {
	if c.cfg.Stack == nil {
		return false
	}
	for _, w := range c.cfg.Stack.Workers() {
		if w.Center.InLoop() {
			return true
		}
	}
	return false
}

// currentLoop returns the center whose loop the caller runs on, or nil.
func (c *Connection) currentLoop() *event.Center {
	if c.cfg.Stack == nil {
		return nil
	}
	for _, w := range c.cfg.Stack.Workers() {
		if w.Center.InLoop() {
			return w.Center
		}
	}
	return nil
}

// Idle reports whether nothing waits to be written: nothing staged,
// nothing in the session queue, no unwritten bytes. Used by a graceful
// shutdown.
func (c *Connection) Idle() bool {
	c.outMu.Lock()
	st := len(c.staged)
	c.outMu.Unlock()
	if st > 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.sock == nil {
		return true
	}
	return c.wpos == len(c.wbuf) && (c.m == nil || !c.m.Pending())
}

// Policy returns the session's policy (as of the last handshake).
func (c *Connection) Policy() msg.Policy { return c.peer.Load().policy }

// SessionInfo returns a snapshot of the session (zero before a server
// connection's peer said HELLO). It takes the connection's lock: do not
// call it from this connection's own fast dispatch.
func (c *Connection) SessionInfo() protocol.SessionInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return protocol.SessionInfo{}
	}
	return c.sess.Info()
}
