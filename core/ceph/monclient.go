package ceph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgr-dev/msgr/core/conn"
	"github.com/msgr-dev/msgr/core/dispatch"
	"github.com/msgr-dev/msgr/core/messenger"
	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/protocol"
	"github.com/msgr-dev/msgr/core/wire"
)

// Errors of MonClient (wrapped with details).
var (
	// ErrUnreachable: nothing accepts TCP connections at the address.
	ErrUnreachable = errors.New("monitor unreachable")
	// ErrProtocolMismatch: the peer does not speak msgr2 (no "ceph v2"
	// banner: a msgr1-only daemon, another service, or silence).
	ErrProtocolMismatch = errors.New("protocol mismatch")
	// ErrAuthRefused: the peer refused auth method none.
	ErrAuthRefused = errors.New("authentication refused")
	// ErrMonClientClosed: Close was called.
	ErrMonClientClosed = errors.New("mon client closed")
)

// MonClientOptions configure DialMon.
type MonClientOptions struct {
	// Name is our entity name (default client.?, a new client).
	Name msg.EntityName
	// AuthID is the auth id sent with auth none (default "admin").
	AuthID string
	// Policy for the monitor connection (default lossy client, as Ceph's
	// MonClient). With a lossless policy the messenger replays on its own
	// and the client does not resend.
	Policy *msg.Policy
	// Messenger options (ms_* settings, fault injection).
	Messenger messenger.Options
	// Timeout bounds DialMon (default 10 s).
	Timeout time.Duration
	// RetryDelay is the pause before reconnecting after a refused connect
	// (default 100 ms).
	RetryDelay time.Duration
}

// MonClientStats are the client's counters.
type MonClientStats struct {
	Resets    uint64 // connection resets seen (lossy sessions lost)
	Reconnect uint64 // new connections opened after a reset
	Resent    uint64 // requests sent again on a new connection
	Replies   uint64 // replies matched to a request
	Unmatched uint64 // replies for no outstanding request (duplicates)
}

// MonCommandResult is a monitor command's answer.
type MonCommandResult struct {
	R      int32  // 0 or -errno
	Rs     string // status text
	Output []byte // command output (JSON for format=json)
}

// call is one outstanding request; build makes its message again for a
// resend (Send takes ownership of a message).
type call struct {
	build func(features uint64) *msg.Message
	done  chan *msg.Message // buffered 1; receives the reply (caller releases)
}

// MonClient does request/reply with one monitor over a messenger
// connection, like a tiny Ceph MonClient: commands are matched by tid,
// MMonGetVersion by handle, MMonGetMap by arrival. On a lossy session
// reset it opens a new connection and resends what is outstanding.
type MonClient struct {
	dispatch.Base
	ms    *messenger.Messenger
	addrs msg.AddrVec
	opts  MonClientOptions

	mu         sync.Mutex
	con        *conn.Connection
	closed     bool
	next       uint64           // last tid / handle used
	byTid      map[uint64]*call // MMonCommand by header tid
	byHandle   map[uint64]*call // MMonGetVersion by handle
	maps       []*call          // MMonGetMap waiters, FIFO
	refused    bool             // last connect was refused (ECONNREFUSED)
	authErr    error
	globalID   uint64 // assigned by the monitor's MAuthReply (msgr1)
	fsid       wire.UUID
	haveFsid   bool
	dialFail   chan struct{} // DialMon's wake-up on a failure
	opened     uint64        // id of the last connection that opened
	lastReopen time.Time

	resets, reconnects, resent, replies, unmatched atomic.Uint64
}

// authRecorder remembers why the server refused auth none.
type authRecorder struct {
	protocol.NoneClient
	c *MonClient
}

func (a authRecorder) BadMethod(method uint32, result int32, methods, modes []uint32) error {
	err := fmt.Errorf("%w: the monitor allows auth methods %v (1 = none, 2 = cephx), result %d; msgr speaks only none", ErrAuthRefused, methods, result)
	a.c.mu.Lock()
	a.c.authErr = err
	a.c.mu.Unlock()
	a.c.failDial()
	return err
}

// DialMon starts a messenger, connects to the monitor at addr ("v2:ip:port"
// or "ip:port") and fetches its monmap (which proves the session and gives
// the fsid commands need). Errors name the cause: ErrUnreachable,
// ErrProtocolMismatch, ErrAuthRefused, or a timeout.
func DialMon(ctx context.Context, addr string, opts MonClientOptions) (*MonClient, error) {
	av, err := ParseMonAddr(addr)
	if err != nil {
		return nil, err
	}
	if opts.Name == (msg.EntityName{}) {
		opts.Name = msg.EntityName{Type: msg.EntityClient, Num: msg.NumNew}
	}
	if opts.AuthID == "" {
		opts.AuthID = "admin"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = 100 * time.Millisecond
	}
	c := &MonClient{addrs: av, opts: opts, byTid: map[uint64]*call{}, byHandle: map[uint64]*call{}, dialFail: make(chan struct{}, 1)}
	mo := opts.Messenger
	mo.AuthClient = func() protocol.AuthClient {
		return authRecorder{protocol.NoneClient{Name: protocol.AuthName{Type: opts.Name.Type, ID: opts.AuthID}}, c}
	}
	ms, err := messenger.New(opts.Name, randNonce(), mo)
	if err != nil {
		return nil, err
	}
	c.ms = ms
	pol := msg.LossyClient(0)
	if opts.Policy != nil {
		pol = *opts.Policy
	}
	ms.SetPolicy(msg.EntityMon, pol)
	ms.AddDispatcherTail(c)
	if err := ms.Start(); err != nil {
		ms.Shutdown()
		return nil, err
	}
	if err := c.connect(); err != nil {
		c.Close()
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	type result struct {
		mm  *MonMap
		err error
	}
	done := make(chan result, 1)
	go func() {
		mm, err := c.GetMonMap(dctx)
		done <- result{mm, err}
	}()
	var mm *MonMap
	probed := false
	// A peer that is not msgr2 may fail the connection without a reset
	// being reported: probe it if no answer came quickly.
	slow := time.NewTimer(500 * time.Millisecond)
	defer slow.Stop()
	for mm == nil {
		select {
		case <-slow.C:
			if err := c.diagnose(nil, !probed); err != nil {
				cancel()
				<-done
				c.Close()
				return nil, err
			}
			probed = true
		case r := <-done:
			if r.err != nil {
				err = c.diagnose(r.err, true)
				c.Close()
				return nil, err
			}
			mm = r.mm
		case <-c.dialFail:
			// A refused connect, a refused auth or a reset before the
			// first answer: give up at once if the cause is clear (a
			// monitor injecting failures is not, so keep trying).
			if err := c.diagnose(nil, !probed); err != nil {
				cancel()
				<-done
				c.Close()
				return nil, err
			}
			probed = true
		}
	}
	c.mu.Lock()
	c.fsid, c.haveFsid = mm.Fsid, true
	c.mu.Unlock()
	return c, nil
}

// ParseMonAddr parses "v2:1.2.3.4:3300", "1.2.3.4:3300" or "[v2:...]".
func ParseMonAddr(s string) (msg.AddrVec, error) {
	av, err := parseAddr(s)
	if err == nil && av[0].Port() == 0 {
		return nil, fmt.Errorf("address %q has no port", s)
	}
	return av, err
}

// parseAddr is ParseMonAddr allowing port 0 (bind to any port).
func parseAddr(s string) (msg.AddrVec, error) {
	if len(s) > 0 && s[0] == '[' {
		return msg.ParseAddrVec(s)
	}
	if !bytes.HasPrefix([]byte(s), []byte("v2:")) && !bytes.HasPrefix([]byte(s), []byte("v1:")) {
		s = "v2:" + s
	}
	a, err := msg.ParseAddr(s)
	if err != nil {
		return nil, err
	}
	return msg.AddrVec{a}, nil
}

func randNonce() uint32 { return rand.Uint32() | 1 }

// features returns con's agreed features, or all of ours before the
// session is up (the messages encoded here do not depend on them).
func features(con *conn.Connection) uint64 {
	if f := con.Features(); f != 0 {
		return f
	}
	return msg.FeaturesAll
}

// diagnose turns a failed first exchange into a precise error. With err
// nil it returns nil unless the cause is clear; probe allows a TCP probe
// of the address (banner check).
func (c *MonClient) diagnose(err error, probe bool) error {
	c.mu.Lock()
	authErr, refused := c.authErr, c.refused
	c.mu.Unlock()
	if authErr != nil {
		return authErr
	}
	a, v2 := c.addrs.Msgr2()
	if !v2 {
		a, _ = c.addrs.Legacy()
	}
	if refused {
		return fmt.Errorf("%w: %s: connection refused", ErrUnreachable, a.AddrPort)
	}
	if probe {
		probe := ProbeMsgr2
		if !v2 {
			probe = ProbeMsgr1
		}
		if perr := probe(a.AddrPort.String(), 2*time.Second); perr != nil {
			return perr
		}
	}
	if err == nil {
		return nil
	}
	return fmt.Errorf("no answer from the monitor at %s: %w", a.AddrPort, err)
}

// failDial wakes DialMon to look at what went wrong.
func (c *MonClient) failDial() {
	select {
	case c.dialFail <- struct{}{}:
	default:
	}
}

// ProbeMsgr2 opens a TCP connection to hostport and checks that the peer
// sends a msgr2 banner ("ceph v2\n"). It returns nil, or an error wrapping
// ErrUnreachable or ErrProtocolMismatch.
func ProbeMsgr2(hostport string, timeout time.Duration) error {
	return probeBanner(hostport, timeout, false)
}

// ProbeMon probes the address a client would dial in av (v2 if there is
// one, else v1) for the matching banner.
func ProbeMon(av msg.AddrVec, timeout time.Duration) error {
	if a, ok := av.Msgr2(); ok {
		return ProbeMsgr2(a.AddrPort.String(), timeout)
	}
	if a, ok := av.Legacy(); ok {
		return ProbeMsgr1(a.AddrPort.String(), timeout)
	}
	return fmt.Errorf("%w: no v2 or v1 address in %v", ErrUnreachable, av)
}

// ProbeMsgr1 is ProbeMsgr2 for a msgr1 peer (banner "ceph v027").
func ProbeMsgr1(hostport string, timeout time.Duration) error {
	return probeBanner(hostport, timeout, true)
}

func probeBanner(hostport string, timeout time.Duration, v1 bool) error {
	nc, err := net.DialTimeout("tcp", hostport, timeout)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(timeout))
	b := make([]byte, 9)
	n, err := io.ReadFull(nc, b)
	is2 := n >= 8 && string(b[:8]) == "ceph v2\n"
	is1 := n == 9 && string(b) == "ceph v027"
	switch {
	case is2 && !v1, is1 && v1:
		return nil
	case is1:
		return fmt.Errorf("%w: %s speaks msgr1 only (banner %q); use its v1: address", ErrProtocolMismatch, hostport, b[:n])
	case is2:
		return fmt.Errorf("%w: %s speaks msgr2 (banner %q); use its v2: address", ErrProtocolMismatch, hostport, b[:8])
	case n > 0:
		return fmt.Errorf("%w: %s sent %q, not a msgr banner", ErrProtocolMismatch, hostport, b[:n])
	default:
		return fmt.Errorf("%w: %s sent no msgr banner (%v)", ErrProtocolMismatch, hostport, err)
	}
}

// connect opens (or reopens) the monitor connection.
func (c *MonClient) connect() error {
	con, err := c.ms.ConnectTo(msg.EntityMon, c.addrs)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.con = con
	c.mu.Unlock()
	c.authenticate(con)
	return nil
}

// authenticate sends MAuth first on a msgr1 connection: msgr1 has no auth
// frames, so a client authenticates to a monitor in messages, and the
// monitor ignores other requests until it has (V1-FACTS.md §6.1). The
// requests that follow are pipelined behind it, as the real CLI does.
func (c *MonClient) authenticate(con *conn.Connection) {
	if con.MsgrVersion() != 1 {
		return
	}
	a := &MAuth{Protocol: AuthUnknown, Methods: []uint32{AuthNone}, NameType: c.opts.Name.Type, NameID: c.opts.AuthID}
	_ = con.Send(a.Encode(features(con)))
}

// Conn returns the current monitor connection.
func (c *MonClient) Conn() *conn.Connection {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.con
}

// Messenger returns the client's messenger.
func (c *MonClient) Messenger() *messenger.Messenger { return c.ms }

// Fsid is the cluster fsid from the monitor's monmap.
func (c *MonClient) Fsid() wire.UUID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fsid
}

// Stats returns the client's counters.
func (c *MonClient) Stats() MonClientStats {
	return MonClientStats{Resets: c.resets.Load(), Reconnect: c.reconnects.Load(), Resent: c.resent.Load(),
		Replies: c.replies.Load(), Unmatched: c.unmatched.Load()}
}

// Close shuts the messenger down; outstanding requests fail.
func (c *MonClient) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	err := c.ms.Shutdown()
	c.ms.Wait()
	return err
}

// do registers cl (under key in table, or as a map waiter), sends it, and
// waits for the reply.
func (c *MonClient) do(ctx context.Context, cl *call, register func(), unregister func()) (*msg.Message, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrMonClientClosed
	}
	register()
	con := c.con
	c.mu.Unlock()
	// A send on a connection that just closed is retried by the reset
	// handler, which resends everything registered.
	_ = con.Send(cl.build(features(con)))
	select {
	case m := <-cl.done:
		return m, nil
	case <-ctx.Done():
		c.mu.Lock()
		unregister()
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}

// nextID returns a fresh tid / handle. Caller holds c.mu.
func (c *MonClient) nextID() uint64 { c.next++; return c.next }

// GetVersion sends MMonGetVersion(what) and returns the reply.
func (c *MonClient) GetVersion(ctx context.Context, what string) (*MMonGetVersionReply, error) {
	var h uint64
	cl := &call{done: make(chan *msg.Message, 1)}
	cl.build = func(f uint64) *msg.Message { return (&MMonGetVersion{Handle: h, What: what}).Encode(f) }
	m, err := c.do(ctx, cl, func() { h = c.nextID(); c.byHandle[h] = cl }, func() { delete(c.byHandle, h) })
	if err != nil {
		return nil, err
	}
	defer m.Release()
	return DecodeMMonGetVersionReply(m)
}

// GetMonMap sends MMonGetMap and decodes the MMonMap answer.
func (c *MonClient) GetMonMap(ctx context.Context) (*MonMap, error) {
	cl := &call{done: make(chan *msg.Message, 1)}
	cl.build = func(f uint64) *msg.Message { return (&MMonGetMap{}).Encode(f) }
	m, err := c.do(ctx, cl, func() { c.maps = append(c.maps, cl) }, func() {
		for i, x := range c.maps {
			if x == cl {
				c.maps = append(c.maps[:i], c.maps[i+1:]...)
				break
			}
		}
	})
	if err != nil {
		return nil, err
	}
	defer m.Release()
	mm, err := DecodeMMonMap(m)
	if err != nil {
		return nil, err
	}
	return mm.MonMap()
}

// Command runs one monitor command (a JSON string such as
// `{"prefix": "mon versions"}`) and returns its answer.
func (c *MonClient) Command(ctx context.Context, cmd string) (*MonCommandResult, error) {
	var tid uint64
	fsid := c.Fsid()
	cl := &call{done: make(chan *msg.Message, 1)}
	cl.build = func(f uint64) *msg.Message {
		return (&MMonCommand{Tid: tid, Fsid: fsid, Cmd: []string{cmd}}).Encode(f)
	}
	m, err := c.do(ctx, cl, func() { tid = c.nextID(); c.byTid[tid] = cl }, func() { delete(c.byTid, tid) })
	if err != nil {
		return nil, err
	}
	defer m.Release()
	ack, err := DecodeMMonCommandAck(m)
	if err != nil {
		return nil, err
	}
	return &MonCommandResult{R: ack.R, Rs: ack.Rs, Output: bytes.Clone(ack.Output)}, nil
}

// Ping sends a KEEPALIVE2 and waits for its KEEPALIVE2_ACK, returning the
// round-trip time. The connection reports acks only as a stamp
// (LastKeepaliveAck), so Ping polls it: it spins for the first 2 ms, then
// sleeps in 50 µs steps. A KEEPALIVE2 lost with a socket is not replayed
// (Ceph's neither: its MonClient sends them periodically), so Ping sends
// another every 500 ms until one is acknowledged.
func (c *MonClient) Ping(ctx context.Context) (time.Duration, error) {
	con := c.Conn()
	t0 := time.Now()
	if err := con.SendKeepalive(); err != nil {
		return 0, err
	}
	last := t0
	for i := 0; ; i++ {
		if !con.LastKeepaliveAck().Before(t0) {
			return time.Since(t0), nil
		}
		if i&63 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			if cur := c.Conn(); cur != con {
				con = cur // a lossy client reconnected
			}
			if time.Since(last) > 500*time.Millisecond {
				last = time.Now()
				_ = con.SendKeepalive()
			}
		}
		if time.Since(t0) < 2*time.Millisecond {
			runtime.Gosched()
		} else {
			time.Sleep(50 * time.Microsecond)
		}
	}
}

// Dispatch matches replies to outstanding requests.
func (c *MonClient) Dispatch(_ dispatch.Conn, m *msg.Message) bool {
	var cl *call
	c.mu.Lock()
	switch m.Type {
	case msg.MsgMonCommandAck:
		cl = c.byTid[m.Tid]
		delete(c.byTid, m.Tid)
	case msg.MsgMonGetVersionReply:
		if r, err := DecodeMMonGetVersionReply(m); err == nil {
			cl = c.byHandle[r.Handle]
			delete(c.byHandle, r.Handle)
		}
	case msg.MsgAuthReply:
		r, err := DecodeMAuthReply(m)
		if err == nil && r.Result != 0 {
			err = fmt.Errorf("%w: the monitor answered MAuth with %d (%s); msgr speaks only auth none", ErrAuthRefused, r.Result, r.Message)
		}
		if err == nil {
			c.globalID = r.GlobalID
		} else {
			c.authErr = err
		}
		c.mu.Unlock()
		m.Release()
		if err != nil {
			c.failDial()
		}
		return true
	case msg.MsgMonMap:
		if len(c.maps) > 0 {
			cl = c.maps[0]
			c.maps = c.maps[1:]
		}
	default:
		c.mu.Unlock()
		m.Release() // subscriptions' maps and the like: not asked for
		return true
	}
	c.mu.Unlock()
	if cl == nil {
		c.unmatched.Add(1)
		m.Release()
		return true
	}
	c.replies.Add(1)
	cl.done <- m
	return true
}

// HandleRefused: the TCP connect was refused.
func (c *MonClient) HandleRefused(dc dispatch.Conn) bool {
	c.mu.Lock()
	c.refused = true
	c.mu.Unlock()
	c.failDial()
	c.reset(dc, true)
	return true
}

// HandleReset: the (lossy) session is gone; open a new one and resend.
func (c *MonClient) HandleReset(dc dispatch.Conn) bool {
	c.mu.Lock()
	dialing := !c.haveFsid
	c.mu.Unlock()
	if dialing {
		c.failDial()
	}
	c.reset(dc, false)
	return true
}

// HandleRemoteReset: the monitor forgot a lossless session; what was in
// flight may be lost, so resend it.
func (c *MonClient) HandleRemoteReset(dc dispatch.Conn) {
	c.mu.Lock()
	cur := c.con
	c.mu.Unlock()
	if cur != nil && dc.ID() == cur.ID() {
		c.resendAll(cur)
	}
}

func (c *MonClient) HandleConnect(dc dispatch.Conn) {
	c.mu.Lock()
	c.refused = false
	if c.con != nil && dc.ID() == c.con.ID() {
		c.opened = dc.ID()
	}
	c.mu.Unlock()
}

func (c *MonClient) reset(dc dispatch.Conn, refused bool) {
	c.mu.Lock()
	if c.closed || c.con == nil || dc.ID() != c.con.ID() || c.authErr != nil {
		c.mu.Unlock()
		return
	}
	// Back off when the last reconnect was recent (a peer dropping us at
	// once) or the connection never opened, as Ceph's MonClient hunts.
	quick := c.opened != dc.ID() || time.Since(c.lastReopen) < time.Second
	c.mu.Unlock()
	c.resets.Add(1)
	if refused || quick {
		// Back off a little before dialling again an address that
		// refused us or dropped us during the handshake.
		time.AfterFunc(c.opts.RetryDelay, func() { c.reopen(dc) })
		return
	}
	c.reopen(dc)
}

func (c *MonClient) reopen(old dispatch.Conn) {
	c.mu.Lock()
	if c.closed || c.con == nil || c.con.ID() != old.ID() {
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	con, err := c.ms.ConnectTo(msg.EntityMon, c.addrs)
	if err != nil {
		return // shutting down
	}
	c.mu.Lock()
	c.con = con
	c.lastReopen = time.Now()
	c.mu.Unlock()
	c.reconnects.Add(1)
	c.authenticate(con)
	c.resendAll(con)
}

// resendAll sends every outstanding request on con (Ceph's MonClient
// _resend_mon_commands and friends).
func (c *MonClient) resendAll(con *conn.Connection) {
	c.mu.Lock()
	var calls []*call
	for _, cl := range c.byTid {
		calls = append(calls, cl)
	}
	for _, cl := range c.byHandle {
		calls = append(calls, cl)
	}
	calls = append(calls, c.maps...)
	c.mu.Unlock()
	for _, cl := range calls {
		c.resent.Add(1)
		_ = con.Send(cl.build(features(con)))
	}
}
