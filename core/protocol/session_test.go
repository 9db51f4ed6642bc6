package protocol

import (
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/msgr-dev/msgr/core/internal/leakcheck"
	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

// world is a lossless client (its session outlives its machines) and a
// server node with a registry, for reconnect tests.
type world struct {
	t     *testing.T
	srv   *node
	cg    gseq
	cev   *recorder
	sev   *recorder
	csess *Session
	cpol  msg.Policy
	spol  msg.Policy
}

func newWorld(t *testing.T, cpol, spol msg.Policy) *world {
	w := &world{t: t, srv: newNode(srvAddr), cev: &recorder{}, sev: &recorder{}, cpol: cpol, spol: spol}
	w.srv.g.n = 100
	w.csess = NewSession(cpol, w.cev.release)
	return w
}

// dial opens a new socket: a client machine over the client session and
// a server machine on the node.
func (w *world) dial() (*end, *end, *pipe) {
	c := mustClient(w.t, clientConfig(&w.cg, w.cev, w.cpol), w.csess)
	scfg := serverConfig(&w.srv.g, w.sev, w.spol)
	scfg.Registry = w.srv
	s := mustServer(w.t, scfg)
	return c, s, newPipe(c, s)
}

// serverConn returns the node's connection to the client, if any.
func (w *world) serverConn() *fakeConn {
	return w.srv.conns[msg.MustParseAddr("any:127.0.0.1:0/42")]
}

// cut faults both machines as a dropped socket does.
func cut(c, s *end) (*Fault, *Fault) {
	return c.m.Fault(io.EOF), s.m.Fault(io.EOF)
}

// TestReconnectReplay drops the socket at random points, with messages
// in flight both ways, and reconnects over and over: every message must
// arrive exactly once and in order on both sides.
func TestReconnectReplay(t *testing.T) {
	defer leakcheck.Take().Check(t)
	for _, seed := range []uint64{1, 2, 3, 4} {
		w := newWorld(t, msg.LosslessClient(0), msg.StatefulServer(0))
		rng := rand.New(rand.NewPCG(seed, 99))
		const n = 3000
		nc, ns := 0, 0 // next message number to queue on each side
		reconnects := 0
		finished := false
		for round := 0; round < 1000 && !finished; round++ {
			c, s, p := w.dial()
			p.chunk = 1 + rng.IntN(300)
			p.max = 1 + rng.IntN(4096)
			done := nc == n && ns == n && round > 0
			for i := 0; i < 1+rng.IntN(100) && nc < n; i++ {
				c.m.Send(numbered(nc))
				nc++
			}
			if sc := w.serverConn(); sc != nil {
				for i := 0; i < 1+rng.IntN(100) && ns < n; i++ {
					sc.sess.Enqueue(numbered(ns))
					ns++
				}
			}
			if done {
				p.run(t)
				if c.err != nil || s.err != nil {
					t.Fatalf("final round: client %v, server %v", c.err, s.err)
				}
				finished = true
				continue
			}
			for i := rng.IntN(8); i > 0; i-- {
				p.step()
			}
			// Bytes in flight are cut at random points.
			for _, d := range [2][2]*end{{c, s}, {s, c}} {
				if d[0].m.Err() == nil && d[1].m.Err() == nil {
					out := d[0].m.AppendOutput(nil, p.max)
					d[1].deliver(out[:rng.IntN(len(out)+1)], p.chunk, rng)
				}
			}
			if c.ev.isReady() && c.ev.lastReady().Reconnect {
				reconnects++
			}
			cf, sf := cut(c, s)
			if cf.Action != ActionReconnect {
				t.Fatalf("round %d: client fault %v", round, cf)
			}
			if sf.Action == ActionReconnect {
				t.Fatalf("round %d: server wants to reconnect: %v", round, sf)
			}
		}
		if !finished {
			t.Fatalf("seed %d: did not finish", seed)
		}
		if w.cev.resets != 0 || w.sev.resets != 0 {
			t.Fatalf("seed %d: remote resets %d / %d", seed, w.cev.resets, w.sev.resets)
		}
		checkInOrder(t, "server", w.sev.msgs, seqRange(0, n))
		checkInOrder(t, "client", w.cev.msgs, seqRange(0, n))
		for i, m := range w.sev.msgs {
			if m.Seq != uint64(i+1) {
				t.Fatalf("seed %d: server message %d has seq %d", seed, i, m.Seq)
			}
		}
		if reconnects == 0 {
			t.Fatalf("seed %d: no session was ever resumed", seed)
		}
	}
}

// establish opens a lossless session in w and checks it.
func (w *world) establish() (*end, *end) {
	c, s, p := w.dial()
	p.run(w.t)
	if !c.ev.isReady() || w.serverConn() == nil {
		w.t.Fatalf("not established: %v / %v", c.err, s.err)
	}
	return c, s
}

// TestReconnectOK resumes a session after a fault: RECONNECT_OK, the
// unacknowledged messages replayed with their sequence numbers.
func TestReconnectOK(t *testing.T) {
	w := newWorld(t, msg.LosslessClient(0), msg.StatefulServer(0))
	c, s := w.establish()
	c.m.Send(numbered(0))
	c.m.Send(numbered(1))
	c.m.AppendOutput(nil, 0) // written, lost with the socket
	cut(c, s)
	if ci := w.csess.Info(); ci.ConnectSeq != 1 || ci.Queued != 2 {
		t.Fatalf("client session %+v", ci)
	}
	c, s, p := w.dial()
	p.run(t)
	ri := w.cev.lastReady()
	if !ri.Reconnect || c.m.State() != StateReady {
		t.Fatalf("client ready %+v state %v err %v", ri, c.m.State(), c.err)
	}
	si := w.sev.lastReady()
	if !si.Reconnect || si.Replaced != w.serverConn() {
		t.Fatalf("server ready %+v", si)
	}
	checkInOrder(t, "server", w.sev.msgs, []int{0, 1})
	if w.sev.msgs[0].Seq != 1 || w.sev.msgs[1].Seq != 2 {
		t.Fatal("replayed messages renumbered")
	}
	if sc := w.serverConn().sess.Info(); sc.ConnectSeq != 1 || sc.InSeq != 2 {
		t.Fatalf("server session %+v", sc)
	}
	_ = s
}

// TestReconnectRetry: the server's session has a higher connect_seq
// (SESSION_RETRY) or a higher peer global_seq (SESSION_RETRY_GLOBAL); the
// client adjusts and is accepted on the same socket.
func TestReconnectRetry(t *testing.T) {
	w := newWorld(t, msg.LosslessClient(0), msg.StatefulServer(0))
	c, s := w.establish()
	cut(c, s)
	w.serverConn().sess.connectSeq = 4
	c, _, p := w.dial()
	p.run(t)
	if !c.ev.lastReady().Reconnect || w.csess.connectSeq != 5 || w.serverConn().sess.connectSeq != 5 {
		t.Fatalf("after RETRY: ready %v, cs %d / %d", c.m.State(), w.csess.connectSeq, w.serverConn().sess.connectSeq)
	}
	if !sentTag(t, p.b, wire.TagSessionRetry) {
		t.Fatal("no SESSION_RETRY sent")
	}

	c, s = p.a, p.b
	cut(c, s)
	w.serverConn().sess.peerGlobalSeq = 50
	c, _, p = w.dial()
	p.run(t)
	if !c.ev.lastReady().Reconnect || w.csess.globalSeq != 51 {
		t.Fatalf("after RETRY_GLOBAL: %v, gs %d", c.m.State(), w.csess.globalSeq)
	}
	if !sentTag(t, p.b, wire.TagSessionRetryGlobal) {
		t.Fatal("no SESSION_RETRY_GLOBAL sent")
	}
}

// sentTag reports whether e sent a frame with tag.
func sentTag(t *testing.T, e *end, tag wire.Tag) bool {
	fs, _ := frames(t, e.sent, e.m.Rev())
	for _, f := range fs {
		if f.Tag == tag {
			return true
		}
	}
	return false
}

// TestCookieMismatchReset: the server's session for the client has another
// client cookie (the server reset it): SESSION_RESET(full), the client
// drops its session, tells the application, and opens a new one on the
// same socket; the server resets its old session too.
func TestCookieMismatchReset(t *testing.T) {
	w := newWorld(t, msg.LosslessClient(0), msg.StatefulServer(0))
	c, s := w.establish()
	c.m.Send(numbered(0))
	c.m.AppendOutput(nil, 0)
	cut(c, s)
	old := w.csess.clientCookie
	w.serverConn().sess.clientCookie = old + 1
	c, s, p := w.dial()
	p.run(t)
	if c.err != nil || s.err != nil {
		t.Fatalf("errors %v / %v", c.err, s.err)
	}
	var reset wire.SessionReset
	fs, _ := frames(t, s.sent, s.m.Rev())
	found := false
	for _, f := range fs {
		if f.Tag == wire.TagSessionReset {
			found = reset.Decode(f.Payload()) == nil && reset.Full
		}
	}
	if !found {
		t.Fatal("no SESSION_RESET(full) sent")
	}
	if w.cev.resets != 1 || w.sev.resets != 1 {
		t.Fatalf("remote resets %d / %d", w.cev.resets, w.sev.resets)
	}
	ri := w.cev.lastReady()
	if ri.Reconnect || c.m.State() != StateReady {
		t.Fatalf("client %+v %v", ri, c.m.State())
	}
	ci := w.csess.Info()
	if ci.ClientCookie == old || ci.ClientCookie == 0 || ci.Queued != 0 || ci.ConnectSeq != 0 {
		t.Fatalf("client session after reset %+v", ci)
	}
	if sc := w.serverConn().sess.Info(); sc.ClientCookie != ci.ClientCookie || sc.ServerCookie != ci.ServerCookie {
		t.Fatalf("server session %+v, client %+v", sc, ci)
	}
	// The message lost with the socket was dropped by the reset.
	if len(w.sev.msgs) != 0 || w.cev.released != 1 {
		t.Fatalf("server got %d messages, client released %d", len(w.sev.msgs), w.cev.released)
	}
}

// TestReconnectUnknownSession: reconnecting to a server that has no
// session for us gets SESSION_RESET(full) [LIVE with the mon].
func TestReconnectUnknownSession(t *testing.T) {
	w := newWorld(t, msg.LosslessClient(0), msg.StatefulServer(0))
	c, s := w.establish()
	cut(c, s)
	delete(w.srv.conns, msg.MustParseAddr("any:127.0.0.1:0/42"))
	c, _, p := w.dial()
	p.run(t)
	if w.cev.resets != 1 || c.m.State() != StateReady || c.ev.lastReady().Reconnect {
		t.Fatalf("resets %d state %v", w.cev.resets, c.m.State())
	}
}

// TestStaleIdent: a CLIENT_IDENT with an older global_seq than the
// existing connection's is closed silently.
func TestStaleIdent(t *testing.T) {
	w := newWorld(t, msg.LosslessClient(0), msg.StatefulServer(0))
	c, s := w.establish()
	cut(c, s)
	w.serverConn().sess.peerGlobalSeq = 1000
	w.csess.serverCookie = 0 // forces CLIENT_IDENT
	c, s, p := w.dial()
	p.run(t)
	expectFault(t, s, ErrStale, ActionClose)
}

// TestLossyExistingReplaced: a new session from a peer whose existing
// connection is lossy replaces it.
func TestLossyExistingReplaced(t *testing.T) {
	w := newWorld(t, msg.LossyClient(0), msg.StatelessRegisteredServer(0))
	c, s := w.establish()
	first := w.serverConn()
	_ = c
	_ = s
	w.cg.n = 10 // a newer attempt
	w.csess = NewSession(msg.LossyClient(0), nil)
	c2, _, p := w.dial()
	p.run(t)
	if c2.m.State() != StateReady || w.srv.markeds != 1 || !first.closed || w.serverConn() == first {
		t.Fatalf("state %v markeds %d", c2.m.State(), w.srv.markeds)
	}
}

// TestWaitFault: WAIT makes the client fault with the maximum backoff.
func TestWaitFault(t *testing.T) {
	c, _, p := pair(t, msg.LosslessClient(0), msg.StatefulServer(0), nil)
	p.filter = func(from *end, b []byte) []byte {
		if from != c && from.m.State() == StateReady {
			// Replace SERVER_IDENT by WAIT.
			return replaceFrame(t, from, b, wire.TagServerIdent, &wire.Wait{})
		}
		return b
	}
	p.run(t)
	f := expectFault(t, c, ErrWait, ActionReconnect)
	if f.Backoff != BackoffMax {
		t.Fatalf("backoff %v", f.Backoff)
	}
}

func replaceFrame(t *testing.T, from *end, b []byte, tag wire.Tag, with wire.Payload) []byte {
	var out []byte
	if string(b[:min(8, len(b))]) == wire.BannerPrefix {
		_, n, _ := wire.DecodeBanner(b)
		out, b = append(out, b[:n]...), b[n:]
	}
	for len(b) > 0 {
		f, n, err := wire.DecodeFrame(b, from.m.Rev(), wire.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if f.Tag == tag {
			out = wire.AppendControlFrame(out, from.m.Rev(), with)
		} else {
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return out
}

// TestFaultActions checks Ceph's _fault decisions for each policy/state.
func TestFaultActions(t *testing.T) {
	c, s, _ := readyPair(t, msg.LossyClient(0), msg.StatelessServer(0))
	c.m.Send(numbered(0))
	if f := c.m.Fault(io.EOF); f.Action != ActionClose {
		t.Fatalf("lossy client: %v", f)
	}
	if c.ev.released != 1 {
		t.Fatal("lossy close did not release the queue")
	}
	if f := s.m.Fault(io.EOF); f.Action != ActionClose {
		t.Fatalf("lossy server: %v", f)
	}
	// lossless_peer with standby and nothing queued: standby; then a
	// reconnect from standby counts one connect_seq.
	c, s, _ = readyPair(t, msg.LosslessPeer(0), msg.LosslessPeer(0))
	if f := c.m.Fault(io.EOF); f.Action != ActionStandby {
		t.Fatalf("standby client: %v", f)
	}
	sess := c.m.Session()
	m2, err := NewClient(clientConfig(&gseq{}, &recorder{}, msg.LosslessPeer(0)), sess)
	if err != nil || sess.connectSeq != 1 {
		t.Fatalf("reconnect from standby: cs %d, %v", sess.connectSeq, err)
	}
	_ = m2
	// A half-accepted server connection with nothing to send closes.
	_, s, p := pair(t, msg.LosslessClient(0), msg.StatefulServer(0), nil)
	p.step()
	if f := s.m.Fault(io.EOF); f.Action != ActionClose || f.State != StateHelloAccepting {
		t.Fatalf("half-accepted: %v", f)
	}
	// Faulting twice returns the first fault.
	if f := s.m.Fault(errors.New("again")); !errors.Is(f, io.EOF) {
		t.Fatalf("second fault %v", f)
	}
}
