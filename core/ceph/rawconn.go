package ceph

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/protocol"
	"github.com/msgr-dev/msgr/core/wire"
)

// RawConn drives one protocol.Machine over a net.Conn without the
// messenger, on one goroutine: it exists because the messenger has no
// option to force msgr2.0 framing (protocol.Config.DisableRev1), which
// interop with both frame revisions needs. Methods are not safe for
// concurrent use: call them from the goroutine that runs the connection
// (the handler of a RawServer runs there).
type RawConn struct {
	nc      net.Conn
	m       *protocol.Machine
	ev      rawEvents
	in, rd  []byte
	out     []byte
	id      uint64
	handler func(*RawConn, *msg.Message)
	closed  bool
}

type rawEvents struct {
	protocol.NopEvents
	c     *RawConn
	ready *protocol.ReadyInfo
	kaAck time.Time
	msgs  []*msg.Message
}

func (e *rawEvents) Ready(i protocol.ReadyInfo) { e.ready = &i }
func (e *rawEvents) KeepaliveAck(t time.Time)   { e.kaAck = t }
func (e *rawEvents) Message(m *msg.Message) {
	if e.c.handler != nil {
		e.c.handler(e.c, m)
		return
	}
	e.msgs = append(e.msgs, m)
}

var rawIDs atomic.Uint64

func newRaw(nc net.Conn) *RawConn {
	c := &RawConn{nc: nc, rd: make([]byte, 64<<10), id: rawIDs.Add(1)}
	c.ev.c = c
	return c
}

// DialRaw opens a client session to the monitor at addr, advertising only
// msgr2.0 framing if rev0, and waits until it is ready.
func DialRaw(ctx context.Context, addr string, rev0 bool) (*RawConn, error) {
	av, err := ParseMonAddr(addr)
	if err != nil {
		return nil, err
	}
	target, _ := av.Msgr2()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", target.AddrPort.String())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	c := newRaw(nc)
	var gseq uint64
	cfg := protocol.Config{
		MyType: msg.EntityClient, MyGID: -1, Nonce: rand.Uint32() | 1,
		PeerType: msg.EntityMon, TargetAddr: target, Policy: msg.LossyClient(0),
		GlobalSeq:   func(atLeast uint64) uint64 { gseq = max(gseq, atLeast) + 1; return gseq },
		Events:      &c.ev,
		DisableRev1: rev0,
	}
	if c.m, err = protocol.NewClient(cfg, nil); err != nil {
		nc.Close()
		return nil, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	if err := c.run(func() bool { return c.ev.ready != nil }, deadline); err != nil {
		nc.Close()
		if perr := ProbeMsgr2(target.AddrPort.String(), 2*time.Second); perr != nil {
			return nil, perr
		}
		return nil, fmt.Errorf("msgr2 handshake with %s: %w", target.AddrPort, err)
	}
	return c, nil
}

// run pumps bytes both ways until done() holds, the machine faults, the
// socket fails, or the deadline passes.
func (c *RawConn) run(done func() bool, deadline time.Time) error {
	for {
		if err := c.flush(); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if done != nil && done() {
			return nil
		}
		c.nc.SetReadDeadline(deadline)
		n, err := c.nc.Read(c.rd)
		if n > 0 {
			c.in = append(c.in, c.rd[:n]...)
			used, ferr := c.m.Feed(c.in)
			c.in = append(c.in[:0], c.in[used:]...)
			if ferr != nil {
				c.flush() // what the machine had to say before failing
				return ferr
			}
		}
		if err != nil {
			return err
		}
		if c.closed {
			return nil
		}
	}
}

func (c *RawConn) flush() error {
	c.out = c.m.AppendOutput(c.out[:0], 0)
	if len(c.out) == 0 {
		return nil
	}
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.nc.Write(c.out)
	return err
}

// Rev is the frame layout in use.
func (c *RawConn) Rev() wire.Rev { return c.m.Rev() }

// Ready returns what the handshake established (nil before).
func (c *RawConn) Ready() *protocol.ReadyInfo { return c.ev.ready }

// Ping sends a KEEPALIVE2 and waits for its ack.
func (c *RawConn) Ping(timeout time.Duration) (time.Duration, error) {
	t0 := time.Now()
	c.m.SendKeepalive()
	err := c.run(func() bool { return !c.ev.kaAck.Before(t0) }, t0.Add(timeout))
	return time.Since(t0), err
}

// Request sends m and waits for a message of type reply.
func (c *RawConn) Request(m *msg.Message, reply uint16, timeout time.Duration) (*msg.Message, error) {
	c.m.Send(m)
	var got *msg.Message
	err := c.run(func() bool {
		for i, x := range c.ev.msgs {
			if x.Type == reply {
				got = x
				c.ev.msgs = append(c.ev.msgs[:i], c.ev.msgs[i+1:]...)
				return true
			}
		}
		return false
	}, time.Now().Add(timeout))
	return got, err
}

// Close closes the socket.
func (c *RawConn) Close() error { c.closed = true; return c.nc.Close() }

// dispatch.Conn, for MonServer.answer.

func (c *RawConn) ID() uint64 { return c.id }
func (c *RawConn) PeerName() msg.EntityName {
	if r := c.ev.ready; r != nil {
		return r.PeerName
	}
	return msg.EntityName{}
}
func (c *RawConn) PeerAddr() msg.Addr {
	a, _ := msg.ParseAddr("v2:" + c.nc.RemoteAddr().String())
	return a
}
func (c *RawConn) Features() uint64 {
	if r := c.ev.ready; r != nil {
		return r.Features
	}
	return 0
}
func (c *RawConn) Send(m *msg.Message) error { c.m.Send(m); return nil }
func (c *RawConn) SendKeepalive() error      { c.m.SendKeepalive(); return nil }
func (c *RawConn) MarkDown()                 { c.closed = true }
func (c *RawConn) IsLossy() bool             { return true }

// RawServer serves MonServer's canned answers without the messenger, one
// goroutine per connection, optionally offering only msgr2.0 framing.
type RawServer struct {
	l    net.Listener
	s    *MonServer
	rev0 bool
	wg   sync.WaitGroup
	mu   sync.Mutex
	live map[*RawConn]bool
	gid  atomic.Uint64
	gseq atomic.Uint64
}

// NewRawServer listens on bind and answers like a canned MonServer whose
// monmap names this listener. rev0 offers only msgr2.0 framing.
func NewRawServer(bind string, fsid wire.UUID, rev0 bool) (*RawServer, error) {
	av, err := parseAddr(bind)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", av[0].AddrPort.String())
	if err != nil {
		return nil, err
	}
	if fsid == (wire.UUID{}) {
		fsid = DefaultFsid
	}
	rs := &RawServer{l: l, rev0: rev0, live: map[*RawConn]bool{}}
	rs.gid.Store(24100)
	a, _ := msg.ParseAddr("v2:" + l.Addr().String())
	rs.s = &MonServer{opts: MonServerOptions{Fsid: fsid}, fixedAddrs: msg.AddrVec{a}}
	rs.wg.Add(1)
	go rs.accept()
	return rs, nil
}

// Addrs returns the listener's address.
func (rs *RawServer) Addrs() msg.AddrVec { return rs.s.fixedAddrs }

// Answered counts messages answered.
func (rs *RawServer) Answered() uint64 { return rs.s.answered.Load() }

// Close stops accepting, closes every connection and waits.
func (rs *RawServer) Close() error {
	err := rs.l.Close()
	rs.mu.Lock()
	for c := range rs.live {
		c.nc.Close()
	}
	rs.mu.Unlock()
	rs.wg.Wait()
	return err
}

func (rs *RawServer) accept() {
	defer rs.wg.Done()
	for {
		nc, err := rs.l.Accept()
		if err != nil {
			return
		}
		c := newRaw(nc)
		c.handler = func(c *RawConn, m *msg.Message) { rs.s.answer(c, m) }
		peer, _ := msg.ParseAddr("v2:" + nc.RemoteAddr().String())
		peer.Nonce = 0
		cfg := protocol.Config{
			MyType: msg.EntityMon, MyGID: 0, MyAddrs: rs.s.fixedAddrs,
			PeerSocketAddr: peer,
			AuthServer:     protocol.NoneServer{NextGlobalID: func() uint64 { return rs.gid.Add(1) }},
			GlobalSeq: func(atLeast uint64) uint64 {
				for {
					v := rs.gseq.Load()
					n := max(v, atLeast) + 1
					if rs.gseq.CompareAndSwap(v, n) {
						return n
					}
				}
			},
			Events:      &c.ev,
			DisableRev1: rs.rev0,
		}
		m, err := protocol.NewServer(cfg)
		if err != nil {
			nc.Close()
			continue
		}
		c.m = m
		rs.mu.Lock()
		rs.live[c] = true
		rs.mu.Unlock()
		rs.wg.Add(1)
		go func() {
			defer rs.wg.Done()
			err := c.run(func() bool { return c.closed }, time.Now().Add(time.Hour))
			_ = err // a closed or failed session just ends
			nc.Close()
			rs.mu.Lock()
			delete(rs.live, c)
			rs.mu.Unlock()
		}()
	}
}
