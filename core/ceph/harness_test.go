package ceph

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/internal/leakcheck"
	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/protocol"
	"github.com/msgr-dev/msgr/internal/testenv"
)

// The messenger (core/conn) does not exist yet: these tests drive a
// protocol.Machine over a net.Conn themselves, from the test goroutine
// (feed what is read, write what AppendOutput gives).

// recorder keeps what the machine reports. Callbacks run inside Feed, on
// the test goroutine.
type recorder struct {
	protocol.NopEvents
	ready   []protocol.ReadyInfo
	msgs    []*msg.Message
	kaAcks  []time.Time
	resets  int
	learned msg.AddrVec
}

func (r *recorder) Ready(i protocol.ReadyInfo)    { r.ready = append(r.ready, i) }
func (r *recorder) Message(m *msg.Message)        { r.msgs = append(r.msgs, m) }
func (r *recorder) KeepaliveAck(t time.Time)      { r.kaAcks = append(r.kaAcks, t) }
func (r *recorder) RemoteReset()                  { r.resets++ }
func (r *recorder) LearnedAddr(a msg.AddrVec)     { r.learned = a }
func (r *recorder) lastReady() protocol.ReadyInfo { return r.ready[len(r.ready)-1] }

// take removes and returns the first received message accepted by match.
func (r *recorder) take(match func(*msg.Message) bool) *msg.Message {
	for i, m := range r.msgs {
		if match(m) {
			r.msgs = append(r.msgs[:i], r.msgs[i+1:]...)
			return m
		}
	}
	return nil
}

// dialOpts select the connection's flavour.
type dialOpts struct {
	rev0    bool                // advertise msgr2.0 only
	myType  msg.EntityType      // default client
	policy  msg.Policy          // default lossy client
	session *protocol.Session   // continue this session (reconnect)
	auth    protocol.AuthClient // default none as client.admin
	gseq    func(uint64) uint64 // default a fresh counter
	events  *recorder           // default a new one
	nonce   uint32
	now     func() time.Time // stamps KEEPALIVE2 (default time.Now)
}

// monConn is one socket to a real monitor driven by a protocol.Machine.
type monConn struct {
	t   testing.TB
	c   net.Conn
	m   *protocol.Machine
	ev  *recorder
	cfg protocol.Config
	in  []byte
	rd  []byte
	out []byte
}

func monAddr(mon *testenv.Mon) msg.Addr {
	return msg.Addr{Type: msg.AddrMsgr2, AddrPort: mon.Addr}
}

func newGlobalSeq() func(uint64) uint64 {
	var n uint64
	return func(atLeast uint64) uint64 {
		n = max(n, atLeast) + 1
		return n
	}
}

// dial connects to the monitor and starts a client machine (no I/O yet).
func dial(t testing.TB, mon *testenv.Mon, o dialOpts) *monConn {
	t.Helper()
	if o.myType == 0 {
		o.myType = msg.EntityClient
	}
	if o.policy == (msg.Policy{}) {
		o.policy = msg.LossyClient(0)
	}
	if o.gseq == nil {
		o.gseq = newGlobalSeq()
	}
	if o.events == nil {
		o.events = &recorder{}
	}
	if o.nonce == 0 {
		o.nonce = rand.Uint32() | 1
	}
	cfg := protocol.Config{
		MyType:      o.myType,
		MyGID:       -1,
		Nonce:       o.nonce,
		PeerType:    msg.EntityMon,
		TargetAddr:  monAddr(mon),
		Policy:      o.policy,
		AuthClient:  o.auth,
		GlobalSeq:   o.gseq,
		Events:      o.events,
		DisableRev1: o.rev0,
		Now:         o.now,
	}
	m, err := protocol.NewClient(cfg, o.session)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", mon.Addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	mc := &monConn{t: t, c: c, m: m, ev: o.events, cfg: cfg, rd: make([]byte, 64<<10)}
	t.Cleanup(func() { c.Close() })
	return mc
}

// flush writes everything the machine has to send.
func (mc *monConn) flush() error {
	mc.out = mc.m.AppendOutput(mc.out[:0], 0)
	if len(mc.out) == 0 {
		return nil
	}
	mc.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := mc.c.Write(mc.out)
	return err
}

// run pumps bytes both ways until done() holds, the machine faults, the
// socket fails, or the timeout passes.
func (mc *monConn) run(done func() bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if err := mc.flush(); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if done() {
			return nil
		}
		mc.c.SetReadDeadline(deadline)
		n, err := mc.c.Read(mc.rd)
		if n > 0 {
			mc.in = append(mc.in, mc.rd[:n]...)
			used, ferr := mc.m.Feed(mc.in)
			mc.in = append(mc.in[:0], mc.in[used:]...)
			if ferr != nil {
				return ferr
			}
		}
		if err != nil {
			return fmt.Errorf("read (state %v): %w", mc.m.State(), err)
		}
	}
}

// handshake runs until the session is READY.
func (mc *monConn) handshake() {
	mc.t.Helper()
	n := len(mc.ev.ready)
	if err := mc.run(func() bool { return len(mc.ev.ready) > n }, 10*time.Second); err != nil {
		mc.t.Fatalf("handshake with the monitor: %v", err)
	}
}

// request sends m and waits for a received message accepted by match.
func (mc *monConn) request(m *msg.Message, match func(*msg.Message) bool) *msg.Message {
	mc.t.Helper()
	mc.m.Send(m)
	var got *msg.Message
	err := mc.run(func() bool { got = mc.ev.take(match); return got != nil }, 10*time.Second)
	if err != nil {
		mc.t.Fatalf("waiting for the reply to type %d: %v (received meanwhile: %s)", m.Type, err, mc.ev.describe())
	}
	return got
}

func (r *recorder) describe() string {
	var b strings.Builder
	for _, m := range r.msgs {
		fmt.Fprintf(&b, "[type %d seq %d tid %d v%d] ", m.Type, m.Seq, m.Tid, m.Version)
	}
	return b.String()
}

func ofType(typ uint16) func(*msg.Message) bool {
	return func(m *msg.Message) bool { return m.Type == typ }
}

// waitClosed reads until the peer closes the socket (EOF or reset) and
// fails the test if it is still open after timeout.
func waitClosed(t testing.TB, c net.Conn, timeout time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the monitor did not close the connection within %v", timeout)
		}
		if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
			t.Logf("connection ended with %v", err)
		}
		return
	}
}

// startMon starts a monitor for one test, after arming a leak check that
// runs once every cleanup (sockets closed, monitor stopped and reaped) is
// done: cleanups run last-registered first.
func startMon(t testing.TB, opts testenv.MonOptions) *testenv.Mon {
	t.Helper()
	snap := leakcheck.Take()
	t.Cleanup(func() { snap.Check(t) })
	mon := testenv.StartMon(t, opts)
	t.Logf("mon.%s at %s ready in %v", mon.Name, mon.AddrString(), mon.StartupTime.Round(time.Millisecond))
	return mon
}
