package conn

import (
	"time"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/protocol"
)

// events receives a machine's reports for connection c. The machine calls
// it inside Feed, with c.mu held: by c's own loop normally, or by the loop
// of a server connection that is taking c's session over (it holds c.mu
// from Registry.Reuse until the takeover is complete).
type events struct{ c *Connection }

// Ready: the session is open (Ceph's ready(), plus the connect/accept
// notification of handle_server_ident / send_server_ident and their
// reconnect counterparts).
func (e *events) Ready(info protocol.ReadyInfo) {
	c := e.c
	var pol msg.Policy
	if c.sess != nil {
		pol = c.sess.Info().Policy
	}
	pol.Lossy = info.Lossy
	c.policy = pol
	addr := msg.Addr{}
	if a, ok := info.PeerAddrs.Msgr2(); ok {
		addr = a
	} else if len(info.PeerAddrs) > 0 {
		addr = info.PeerAddrs[0]
	}
	c.peer.Store(&peerInfo{
		name: info.PeerName, addrs: info.PeerAddrs, addr: addr,
		features: info.Features, lossy: info.Lossy, policy: pol,
	})
	c.peerType = info.PeerName.Type
	c.role = info.Role
	if info.Role == protocol.RoleServer && addr.Port() != 0 && addr.AddrPort.Addr().IsValid() && !addr.AddrPort.Addr().IsUnspecified() {
		// What a lossless peer session would reconnect to.
		c.target = addr
	}
	c.backoff = 0
	c.wasOpen = true
	c.setState(StateOpen)
	c.budget = c.host.BudgetFor(c.peerType)
	c.delayOn = c.cfg.InjectDelay != nil && c.rng != nil && c.cfg.InjectDelay(c.peerType) &&
		c.cfg.InjectDelayMax > 0 && c.cfg.InjectDelayProbability > 0
	c.justReady = true
	if info.Replaced != nil {
		c.cfg.Counters.Replaced.Add(1)
	}
	c.cfg.dout(1, "%v: session ready (%v, reconnect=%v)", c, info.Role, info.Reconnect)
	// A FastEventer is told now: what this read collected for a batch
	// dispatcher goes first.
	c.flushBatch()
	if info.Role == protocol.RoleClient {
		c.cfg.Counters.Connected.Add(1)
		_ = c.cfg.Queue.QueueConnect(c)
	} else {
		c.cfg.Counters.Accepted.Add(1)
		_ = c.cfg.Queue.QueueAccept(c)
	}
}

// Message: a message arrived, in order.
func (e *events) Message(m *msg.Message) {
	c := e.c
	add(&c.msgsIn, 1)
	cost := int64(m.PayloadLen())
	if c.delayOn || len(c.delayQ) > 0 {
		c.delayMsg(m, cost)
		return
	}
	c.deliver(m, cost, false)
}

func (e *events) Acked(uint64) {
	if s := e.c.sess; s != nil {
		e.c.unacked.Store(int64(s.Unacked()))
		e.c.noteHeld()
	}
}

func (e *events) RemoteReset() {
	c := e.c
	c.cfg.dout(1, "%v: remote reset", c)
	c.flushBatch() // FastEventers are told now: this read's messages first
	_ = c.cfg.Queue.QueueRemoteReset(c)
}

func (e *events) Keepalive(t time.Time)    { e.c.kaRecv.Store(t.UnixNano()) }
func (e *events) KeepaliveAck(t time.Time) { e.c.kaAck.Store(t.UnixNano()) }

func (e *events) LearnedAddr(addrs msg.AddrVec) { e.c.host.LearnedAddr(addrs) }

// exHandle is a connection as the protocol's Registry sees it
// (protocol.Existing).
type exHandle struct{ c *Connection }

// Info is a consistent snapshot for the decision tables.
func (h *exHandle) Info() protocol.ExistingInfo {
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	var st protocol.ExistingState
	switch {
	case c.closed:
		st = protocol.ExistingClosed
	case c.replacing:
		st = protocol.ExistingReplacing
	case c.m != nil && c.m.State() == protocol.StateReady:
		st = protocol.ExistingReady
	case c.State() == StateStandby:
		st = protocol.ExistingStandby
	default:
		st = protocol.ExistingConnecting
	}
	info := protocol.ExistingInfo{State: st, Policy: c.policy}
	if c.sess != nil {
		si := c.sess.Info()
		info.Policy = si.Policy
		info.PeerAddrs = si.PeerAddrs
		info.ClientCookie = si.ClientCookie
		info.ServerCookie = si.ServerCookie
		info.PeerGlobalSeq = si.PeerGlobalSeq
		info.ConnectSeq = si.ConnectSeq
	}
	if len(info.PeerAddrs) == 0 {
		info.PeerAddrs = c.peer.Load().addrs
	}
	return info
}

// registry is a server connection's protocol.Registry: lookups go to the
// messenger, takeovers and mark-downs to the existing connection.
type registry struct{ c *Connection }

func (r *registry) Lookup(peer msg.AddrVec) protocol.Existing {
	ex := r.c.host.Lookup(peer)
	if ex == nil || ex == r.c || ex.local {
		return nil
	}
	return ex.exh
}

// Reuse detaches the existing connection from its socket and machine and
// hands its session to the calling machine (Ceph's reuse_connection). The
// existing connection stays locked until the caller's Feed returns; then
// handOver moves the new socket and machine into it.
func (r *registry) Reuse(e protocol.Existing, _ protocol.Protocol) (*protocol.Session, protocol.Events, error) {
	ex := e.(*exHandle).c
	c := r.c
	ex.mu.Lock()
	if ex.closed || ex.sess == nil {
		ex.mu.Unlock()
		return nil, nil, ErrClosed
	}
	c.cfg.dout(1, "%v: takes over the session of %v", c, ex)
	if ex.m != nil {
		ex.m.Close()
		ex.m = nil
	}
	ex.detachSocket()
	ex.disarm(&ex.tBackoff)
	ex.replacing = true
	c.takeover = ex
	return ex.sess, ex.ev, nil
}

// MarkDown closes a lossy existing connection replaced by the new one, and
// reports the reset (Ceph's handle_existing_connection for lossy peers).
func (r *registry) MarkDown(e protocol.Existing) {
	ex := e.(*exHandle).c
	ex.closeOut()
	ex.mu.Lock()
	ex.stopLocked(true)
	ex.mu.Unlock()
}

func (r *registry) Keepalive(e protocol.Existing) { _ = e.(*exHandle).c.SendKeepalive() }

// Accept registers the connection for its peer just before SERVER_IDENT.
func (r *registry) Accept(m protocol.Protocol) error {
	c := r.c
	s := m.Session()
	if err := c.host.Register(c, s.Info().PeerAddrs); err != nil {
		return err
	}
	c.sess = s
	return nil
}

// handOver completes a takeover after Feed returned: the existing
// connection (locked since Reuse) adopts this connection's socket, machine
// and unread bytes, and this connection disappears silently. mu held.
func (c *Connection) handOver(feedErr error) {
	ex := c.takeover
	c.takeover = nil
	sock, m := c.sock, c.m
	left := c.rend - c.rstart
	c.sock, c.m = nil, nil
	c.disarm(&c.tHandshake)
	c.disarm(&c.tIdle)
	c.closed = true
	c.setState(StateClosed)
	c.closeOut()
	c.host.Closed(c)

	ex.replacing = false
	ex.m = m
	ex.role = protocol.RoleServer
	ex.attach(sock)
	if ex.sock == sock && left > 0 {
		ex.takeRbuf()
		if len(ex.rbuf) < left {
			ex.rbuf = make([]byte, max(left, ex.cfg.ReadBuf))
		}
		copy(ex.rbuf, c.rbuf[c.rstart:c.rend])
		ex.rstart, ex.rend = 0, left
	}
	c.rstart, c.rend = 0, 0
	c.giveRbuf()
	switch {
	case ex.sock != sock:
		// attach failed and faulted already.
	case feedErr != nil:
		ex.machineFault(feedErr)
	default:
		if ex.justReady {
			ex.justReady = false
			ex.opened()
		} else if m.State() != protocol.StateReady {
			// msgr1's SEQ exchange finishes after the takeover: keep the
			// handshake bounded in time (Ceph restarts its connect timer).
			ex.arm(&ex.tHandshake, ex.cfg.ReadyTimeout, ex.onHandshakeTimeout)
		}
		ex.setArmed(true)
		if ex.rend > ex.rstart {
			ex.feed()
		}
		if ex.sock == sock {
			ex.readSome(sock)
		}
		ex.giveRbuf()
		ex.settle()
	}
	ex.mu.Unlock()
}
