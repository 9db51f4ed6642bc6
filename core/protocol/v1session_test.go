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

func TestDecideV1Connect(t *testing.T) {
	lo := msg.MustParseAddr("v1:127.0.0.1:6800/1")
	hi := msg.MustParseAddr("v1:127.0.0.1:6801/1")
	ex := func(st ExistingState, cs, pgs uint64, pol msg.Policy) *ExistingInfo {
		return &ExistingInfo{State: st, ConnectSeq: cs, PeerGlobalSeq: pgs, Policy: pol}
	}
	peer := msg.LosslessPeer(0)
	for _, c := range []struct {
		name       string
		ex         *ExistingInfo
		cs, gs     uint64
		resetCheck bool
		peer, me   msg.Addr
		want       v1Verdict
	}{
		{"none-new", nil, 0, 1, false, lo, hi, v1vOpen},
		{"none-resume", nil, 3, 1, false, lo, hi, v1vResetSession},
		{"closed", ex(ExistingClosed, 5, 9, peer), 3, 1, false, lo, hi, v1vOpen},
		{"replacing", ex(ExistingReplacing, 1, 9, peer), 3, 10, false, lo, hi, v1vRetryGlobal},
		{"old-gseq", ex(ExistingReady, 1, 9, peer), 3, 8, false, lo, hi, v1vRetryGlobal},
		{"lossy", ex(ExistingReady, 1, 9, msg.LossyClient(0)), 3, 9, false, lo, hi, v1vReplaceLossy},
		{"peer-reset", ex(ExistingStandby, 4, 9, peer), 0, 9, true, lo, hi, v1vReplaceReset},
		{"old-attempt", ex(ExistingReady, 4, 9, peer), 3, 9, false, lo, hi, v1vRetrySession},
		{"equal-open", ex(ExistingReady, 4, 9, peer), 4, 9, false, lo, hi, v1vRetrySession},
		{"equal-standby", ex(ExistingStandby, 4, 9, peer), 4, 9, true, lo, hi, v1vRetrySession},
		{"equal-zero-resetcheck", ex(ExistingReady, 0, 0, peer), 0, 9, true, lo, hi, v1vReplace},
		{"race-incoming-wins", ex(ExistingConnecting, 0, 0, peer), 0, 1, false, lo, hi, v1vReplace},
		{"race-existing-wins", ex(ExistingConnecting, 0, 0, peer), 0, 1, false, hi, lo, v1vWait},
		{"race-server-policy", ex(ExistingConnecting, 0, 0, msg.StatefulServer(0)), 0, 1, false, hi, lo, v1vReplace},
		{"we-reset", ex(ExistingConnecting, 0, 0, peer), 2, 1, true, lo, hi, v1vResetSession},
		{"reconnect", ex(ExistingStandby, 2, 5, peer), 3, 6, true, lo, hi, v1vReplace},
		{"reconnect-no-resetcheck", ex(ExistingConnecting, 0, 0, peer), 2, 1, false, lo, hi, v1vReplace},
	} {
		if got := decideV1Connect(c.ex, c.cs, c.gs, c.resetCheck, c.peer, c.me); got != c.want {
			t.Errorf("%s: verdict %d, want %d", c.name, got, c.want)
		}
	}
}

// v1world is a lossless client (its session outlives its machines) and a
// server node with a registry.
type v1world struct {
	t     testing.TB
	srv   *v1node
	cg    gseq
	cev   *recorder
	sev   *recorder
	csess *Session
	cpol  msg.Policy
	spol  msg.Policy
}

func newV1World(t testing.TB, cpol, spol msg.Policy) *v1world {
	w := &v1world{t: t, srv: newV1Node(v1SrvAddr), cev: &recorder{}, sev: &recorder{}, cpol: cpol, spol: spol}
	w.srv.g.n = 100
	w.csess = NewSession(cpol, w.cev.release)
	return w
}

func (w *v1world) dial() (*v1end, *v1end, *v1pipe) {
	c := mustClientV1(w.t, v1ClientConfig(&w.cg, w.cev, w.cpol), w.csess)
	scfg := v1ServerConfig(&w.srv.g, w.sev, w.spol)
	scfg.Registry = w.srv
	s := mustServerV1(w.t, scfg)
	return c, s, newV1Pipe(c, s)
}

func (w *v1world) serverConn() *v1conn { return w.srv.conns[v1CliAddr] }

// sentConnects returns the connects a client wrote (after its address).
func sentConnects(t testing.TB, sent []byte) []wire.V1Connect {
	t.Helper()
	b := sent[wire.V1ClientHelloLen:]
	var out []wire.V1Connect
	for len(b) >= wire.V1ConnectLen {
		c, err := wire.DecodeV1Connect(b)
		if err != nil || c.HostType != uint32(msg.EntityClient) || c.Features != msg.FeaturesAll {
			break // past the handshake
		}
		out = append(out, c)
		b = b[wire.V1ConnectLen+int(c.AuthorizerLen):]
	}
	return out
}

// TestV1ReconnectReplay drops the socket at random points with messages
// in flight both ways and reconnects over and over: every message must
// arrive exactly once and in order on both sides.
func TestV1ReconnectReplay(t *testing.T) {
	defer leakcheck.Take().Check(t)
	for _, seed := range []uint64{1, 2, 3, 4} {
		w := newV1World(t, msg.LosslessClient(0), msg.StatefulServer(0))
		rng := rand.New(rand.NewPCG(seed, 77))
		const n = 2000
		nc, ns := 0, 0
		finished := false
		sresets := -1 // server resets when the client first opened
		reconnects := 0
		for round := 0; round < 1000 && !finished; round++ {
			c, s, p := w.dial()
			p.chunk = 1 + rng.IntN(300)
			p.max = 1 + rng.IntN(4096)
			done := nc == n && ns == n
			for i := 0; i < 1+rng.IntN(100) && nc < n; i++ {
				c.m.Send(numbered(nc))
				nc++
			}
			// Until the client has seen the session open once, it
			// reconnects with connect_seq 0, which the server takes for a
			// restarted peer (V1 has no cookies): queued messages would be
			// reset. Ceph behaves the same; queue only afterwards.
			if sc := w.serverConn(); sc != nil && len(w.cev.ready) > 0 {
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
			for _, d := range [2][2]*v1end{{c, s}, {s, c}} {
				if d[0].m.Err() == nil && d[1].m.Err() == nil {
					out := d[0].m.AppendOutput(nil, p.max)
					d[1].deliver(out[:rng.IntN(len(out)+1)], p.chunk, rng)
				}
			}
			if sresets < 0 && len(w.cev.ready) > 0 {
				sresets = w.sev.resets
			}
			if c.ev.isReady() && c.ev.lastReady().Reconnect {
				reconnects++
			}
			cf, sf := c.m.Fault(io.EOF), s.m.Fault(io.EOF)
			if cf.Action != ActionReconnect {
				t.Fatalf("round %d: client fault %v", round, cf)
			}
			if sf.Action == ActionReconnect {
				t.Fatalf("round %d: server wants to reconnect: %v", round, sf)
			}
		}
		if !finished {
			t.Fatalf("seed %d: did not finish (%d/%d, %d/%d)", seed, nc, n, ns, n)
		}
		if w.cev.resets != 0 || w.sev.resets != sresets {
			t.Fatalf("seed %d: remote resets %d / %d (%d before the first open)", seed, w.cev.resets, w.sev.resets, sresets)
		}
		checkInOrder(t, "server", w.sev.msgs, seqRange(0, n))
		checkInOrder(t, "client", w.cev.msgs, seqRange(0, n))
		for i, m := range w.sev.msgs {
			if m.Seq != uint64(i+1) {
				t.Fatalf("seed %d: server message %d has seq %d", seed, i, m.Seq)
			}
		}
		if reconnects == 0 {
			t.Fatalf("seed %d: no session was resumed", seed)
		}
		// Everything was acknowledged and released in the end.
		if ci := w.csess.Info(); ci.Unacked != 0 || ci.Queued != 0 || w.cev.released != n {
			t.Fatalf("seed %d: client session %+v, released %d", seed, ci, w.cev.released)
		}
	}
}

// TestV1ResetSession: a client resuming a session the server does not
// have gets RESETSESSION, drops its session and opens a new one on the
// same socket.
func TestV1ResetSession(t *testing.T) {
	w := newV1World(t, msg.LosslessClient(0), msg.StatefulServer(0))
	w.csess.connectSeq, w.csess.inSeq, w.csess.outSeq = 3, 7, 9
	w.csess.Enqueue(numbered(1)) // lost with the session
	c, s, p := w.dial()
	p.run(t)
	if !c.ev.isReady() || !s.ev.isReady() || w.cev.resets != 1 || w.cev.released != 1 {
		t.Fatalf("ready %v/%v, resets %d, released %d: %v %v", c.ev.isReady(), s.ev.isReady(), w.cev.resets, w.cev.released, c.err, s.err)
	}
	cs := sentConnects(t, c.sent)
	if len(cs) != 2 || cs[0].ConnectSeq != 3 || cs[1].ConnectSeq != 0 {
		t.Fatalf("connects %+v", cs)
	}
	if r, _ := wire.DecodeV1ConnectReply(s.sent[wire.V1ServerHelloLen:]); r.Tag != wire.V1TagResetSession {
		t.Fatalf("first reply %v", r.Tag)
	}
	if ci := w.csess.Info(); ci.ConnectSeq != 1 || ci.InSeq != 0 || ci.OutSeq != 0 {
		t.Fatalf("client session %+v", ci)
	}
}

// TestV1RetryGlobal: a connect with an older global_seq than the server
// recorded is told the value to beat.
func TestV1RetryGlobal(t *testing.T) {
	w := newV1World(t, msg.LosslessClient(0), msg.StatefulServer(0))
	c, s, p := w.dial()
	p.run(t)
	c.m.Fault(io.EOF)
	s.m.Fault(io.EOF)
	w.serverConn().sess.peerGlobalSeq = 50
	c, s, p = w.dial()
	p.run(t)
	if !c.ev.isReady() || !s.ev.isReady() {
		t.Fatalf("%v %v", c.err, s.err)
	}
	cs := sentConnects(t, c.sent)
	if len(cs) != 2 || cs[0].GlobalSeq >= 50 || cs[1].GlobalSeq != 51 {
		t.Fatalf("connects %+v", cs)
	}
	if w.serverConn().sess.Info().PeerGlobalSeq != 51 || !s.ev.lastReady().Reconnect || s.ev.lastReady().Replaced == nil {
		t.Fatalf("server %+v / %+v", w.serverConn().sess.Info(), s.ev.lastReady())
	}
}

// TestV1RetrySession: a connect_seq the server has seen already (its
// READY was lost) is answered RETRY_SESSION, then the session resumes.
func TestV1RetrySession(t *testing.T) {
	w := newV1World(t, msg.LosslessClient(0), msg.StatefulServer(0))
	c, s, p := w.dial()
	p.run(t)
	c.m.Send(numbered(0))
	p.run(t)
	c.m.Fault(io.EOF)
	s.m.Fault(io.EOF)
	// The server moved on to connect_seq 5 (an attempt whose reply was
	// lost); the client reconnects with 2.
	w.serverConn().sess.connectSeq = 5
	w.serverConn().sess.Enqueue(numbered(100))
	c, s, p = w.dial()
	p.run(t)
	cs := sentConnects(t, c.sent)
	if len(cs) != 2 || cs[0].ConnectSeq != 2 || cs[1].ConnectSeq != 6 {
		t.Fatalf("connects %+v", cs)
	}
	if !c.ev.isReady() || w.csess.Info().ConnectSeq != 7 || !c.ev.lastReady().Reconnect {
		t.Fatalf("client %v %+v", c.err, w.csess.Info())
	}
	checkInOrder(t, "client", w.cev.msgs, []int{100})
	checkInOrder(t, "server", w.sev.msgs, []int{0})
}

// TestV1PeerRestart: a connect with connect_seq 0 to a server that has a
// session for the address means the peer restarted: with resetcheck the
// old session is reset (queue dropped, RemoteReset), without it the queue
// is kept and replayed; either way READY (no in_seq exchange).
func TestV1PeerRestart(t *testing.T) {
	for _, resetCheck := range []bool{true, false} {
		spol := msg.StatefulServer(0)
		spol.ResetCheck = resetCheck
		w := newV1World(t, msg.LosslessClient(0), spol)
		c, s, p := w.dial()
		p.run(t)
		for i := 0; i < 3; i++ {
			s.m.Send(numbered(i))
		}
		s.m.AppendOutput(nil, 0) // sent, never delivered, never acked
		c.m.Fault(io.EOF)
		s.m.Fault(io.EOF)
		// The client process restarts: a new session.
		w.csess = NewSession(w.cpol, w.cev.release)
		w.cev = &recorder{}
		w.csess.release = w.cev.release
		c, s, p = w.dial()
		p.run(t)
		if !c.ev.isReady() || !s.ev.isReady() {
			t.Fatalf("resetcheck=%v: %v %v", resetCheck, c.err, s.err)
		}
		if r, _ := wire.DecodeV1ConnectReply(s.sent[wire.V1ServerHelloLen:]); r.Tag != wire.V1TagReady {
			t.Fatalf("resetcheck=%v: reply %v", resetCheck, r.Tag)
		}
		if resetCheck {
			if w.sev.resets != 1 || len(w.cev.msgs) != 0 {
				t.Fatalf("reset: %d resets, %d delivered", w.sev.resets, len(w.cev.msgs))
			}
		} else {
			if w.sev.resets != 0 {
				t.Fatal("reset without resetcheck")
			}
			checkInOrder(t, "client", w.cev.msgs, seqRange(0, 3))
		}
	}
}

// TestV1ReplaceLossyExisting: a new connect replaces a lossy existing
// connection (marked down) with a new session.
func TestV1ReplaceLossyExisting(t *testing.T) {
	w := newV1World(t, msg.LossyClient(0), msg.LossyClient(0)) // lossy, not server: registered
	c, s, p := w.dial()
	p.run(t)
	old := w.serverConn()
	if old == nil || !c.ev.isReady() {
		t.Fatalf("not registered: %v %v", c.err, s.err)
	}
	w.csess = NewSession(w.cpol, w.cev.release)
	c, s, p = w.dial()
	p.run(t)
	if !s.ev.isReady() || w.srv.markeds != 1 || !old.closed || w.serverConn() == old || s.ev.lastReady().Replaced != nil {
		t.Fatalf("markeds %d, closed %v: %v", w.srv.markeds, old.closed, s.err)
	}
}

// TestV1RegistryRefuses: Registry.Accept failing faults the server.
func TestV1RegistryRefuses(t *testing.T) {
	w := newV1World(t, msg.LosslessClient(0), msg.StatefulServer(0))
	w.srv.refuse = true
	c, s, p := w.dial()
	p.run(t)
	if !errors.Is(s.err, ErrReplaced) || c.ev.isReady() {
		t.Fatalf("server %v, client ready %v", s.err, c.ev.isReady())
	}
}

// TestV1StandbyClient: a lossless peer with nothing queued goes to standby
// on a fault and keeps connect_seq; the server then answers RETRY_SESSION
// and the session resumes.
func TestV1StandbyClient(t *testing.T) {
	w := newV1World(t, msg.LosslessPeer(0), msg.LosslessPeer(0))
	c, s, p := w.dial()
	p.run(t)
	if f := c.m.Fault(io.EOF); f.Action != ActionStandby {
		t.Fatalf("client fault %v", f)
	}
	s.m.Fault(io.EOF)
	if w.csess.Info().ConnectSeq != 1 {
		t.Fatalf("connect_seq %d", w.csess.Info().ConnectSeq)
	}
	w.csess.Enqueue(numbered(1))
	c, s, p = w.dial()
	p.run(t)
	cs := sentConnects(t, c.sent)
	if !c.ev.isReady() || len(cs) != 2 || cs[0].ConnectSeq != 1 || cs[1].ConnectSeq != 2 {
		t.Fatalf("connects %+v: %v %v", cs, c.err, s.err)
	}
	checkInOrder(t, "server", w.sev.msgs, []int{1})
}

// v1PeerNode is one side of a v1 connection race.
type v1PeerNode struct {
	node *v1node
	rec  *recorder
	out  *v1conn
}

func (pn *v1PeerNode) clientConfig(peer msg.Addr) Config {
	return Config{
		MyType: msg.EntityOSD, MyGID: 1, MyAddrs: msg.AddrVec{pn.node.addr},
		PeerType: msg.EntityOSD, TargetAddr: peer, Policy: msg.LosslessPeer(0),
		GlobalSeq: pn.node.g.next, Events: pn.rec,
	}
}

func (pn *v1PeerNode) serverConfig(sock msg.Addr) Config {
	return Config{
		MyType: msg.EntityOSD, MyGID: 2, MyAddrs: msg.AddrVec{pn.node.addr}, PeerSocketAddr: sock,
		PolicyFor: func(msg.EntityType) msg.Policy { return msg.LosslessPeer(0) },
		GlobalSeq: pn.node.g.next, Events: &recorder{}, Registry: pn.node,
	}
}

// TestV1ConnectRace: two peers connect to each other at once. As in Ceph,
// the connect from the lower address wins: the other peer's connection
// takes its socket over; the losing connect gets WAIT (its node's own
// connection is kicked). Every message queued on either side is
// delivered exactly once.
func TestV1ConnectRace(t *testing.T) {
	lo := msg.MustParseAddr("v1:127.0.0.1:6800/7")
	hi := msg.MustParseAddr("v1:127.0.0.1:6801/7")
	for _, tc := range []struct {
		name       string
		aAddr      msg.Addr
		bAddr      msg.Addr
		bFirst     bool
		aWins      bool
		expectWait bool // the losing connect got as far as the other node
	}{
		{"a-low/a-first", lo, hi, false, true, false},
		{"a-low/b-first", lo, hi, true, true, true},
		{"a-high/a-first", hi, lo, false, false, true},
		{"a-high/b-first", hi, lo, true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			A := &v1PeerNode{node: newV1Node(tc.aAddr), rec: &recorder{}}
			B := &v1PeerNode{node: newV1Node(tc.bAddr), rec: &recorder{}}
			sockA := msg.MustParseAddr("v2:127.0.0.1:40001/0")
			sockB := msg.MustParseAddr("v2:127.0.0.1:40002/0")
			dial := func(pn *v1PeerNode, peer msg.Addr) *v1end {
				e := mustClientV1(t, pn.clientConfig(peer), nil)
				pn.out = &v1conn{peer: msg.AddrVec{peer}, sess: e.m.Session(), m: e.m, ev: pn.rec}
				pn.node.conns[peer] = pn.out
				for i := 0; i < 5; i++ {
					e.m.Send(numbered(i))
				}
				return e
			}
			ac, bc := dial(A, tc.bAddr), dial(B, tc.aAddr)
			bs := mustServerV1(t, B.serverConfig(sockA))
			as := mustServerV1(t, A.serverConfig(sockB))
			pAB, pBA := newV1Pipe(ac, bs), newV1Pipe(bc, as)
			first, second := pAB, pBA
			if tc.bFirst {
				first, second = pBA, pAB
			}
			for i := 0; i < 100; i++ {
				m1, m2 := first.step(), second.step()
				if !m1 && !m2 {
					break
				}
			}
			winner, loser := pAB, pBA
			wNode, lNode := B, A
			if !tc.aWins {
				winner, loser = pBA, pAB
				wNode, lNode = A, B
			}
			if winner.a.m.State() != StateReady || winner.b.m.State() != StateReady {
				t.Fatalf("winning socket: %v (%v) / %v (%v)", winner.a.m.State(), winner.a.err, winner.b.m.State(), winner.b.err)
			}
			// The losing socket's client got WAIT, or was detached when its
			// node took the winning socket over before it sent a connect.
			wantReason := ErrClosed
			if tc.expectWait {
				wantReason = ErrWait
			}
			lf := loser.a.m.Err()
			if lf == nil || !errors.Is(lf, wantReason) {
				t.Fatalf("losing socket's client: %v, want %v", lf, wantReason)
			}
			if tc.expectWait && (lf.Action != ActionReconnect || lf.Backoff != BackoffMax) {
				t.Fatalf("after WAIT: %v backoff %v", lf, lf.Backoff)
			}
			// Its server never opened a session: closed, nothing kept.
			if f := loser.b.m.Fault(io.EOF); f.Action != ActionClose || loser.b.ev.isReady() {
				t.Fatalf("losing socket's server: %v", f)
			}
			ri := wNode.rec.lastReady()
			if ri.Replaced != wNode.out || wNode.out.m != Protocol(winner.b.m) || !ri.Reconnect {
				t.Fatalf("accepting node: replaced %v, reconnect %v", ri.Replaced, ri.Reconnect)
			}
			if wait := v1RepliedTag(loser.b, wire.V1TagWait); wait != tc.expectWait || wait != (lNode.out.kicked == 1) {
				t.Fatalf("WAIT sent %v, kicked %d", wait, lNode.out.kicked)
			}
			winner.run(t)
			checkInOrder(t, "A", A.rec.msgs, seqRange(0, 5))
			checkInOrder(t, "B", B.rec.msgs, seqRange(0, 5))
			if tc.expectWait != (len(wNode.rec.kas) == 1) {
				t.Fatalf("keepalives after the kick: %d", len(wNode.rec.kas))
			}
		})
	}
}

// v1RepliedTag reports whether a server end answered a connect with tag.
func v1RepliedTag(e *v1end, tag wire.V1Tag) bool {
	b := e.sent
	if len(b) < wire.V1ServerHelloLen {
		return false
	}
	b = b[wire.V1ServerHelloLen:]
	for len(b) >= wire.V1ConnectReplyLen {
		r, _ := wire.DecodeV1ConnectReply(b)
		if r.Tag == tag {
			return true
		}
		b = b[wire.V1ConnectReplyLen+int(r.AuthorizerLen):]
	}
	return false
}
