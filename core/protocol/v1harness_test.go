package protocol

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/msgr-dev/msgr/core/msg"
)

// The v1 tests reuse recorder, gseq, numbered/checkInOrder and faultOf
// from harness_test.go; v1end/v1pipe mirror end/pipe over *V1, and v1node
// is the registry fake of node_test.go over any Protocol.

var (
	v1SrvAddr  = msg.MustParseAddr("v1:127.0.0.1:6789/1234")
	v1CliSock  = msg.MustParseAddr("v2:127.0.0.1:50000/0") // as core/conn passes it
	v1CliNonce = uint32(42)
	// v1CliAddr is the client's legacy address as the server registers it:
	// the socket's IP, port 0, the client's nonce.
	v1CliAddr = msg.MustParseAddr("v1:127.0.0.1:0/42")
)

// v1end is one side of an in-memory v1 connection.
type v1end struct {
	m    *V1
	ev   *recorder
	in   []byte
	err  error
	out  []byte
	sent []byte
}

func (e *v1end) deliver(b []byte, chunk int, rng *rand.Rand) {
	for len(b) > 0 && e.err == nil {
		n := len(b)
		if chunk > 0 {
			n = min(n, 1+rng.IntN(chunk))
		}
		e.in = append(e.in, b[:n]...)
		b = b[n:]
		c, err := e.m.Feed(e.in)
		if c < 0 || c > len(e.in) {
			panic("Feed consumed more than it was given")
		}
		e.in = e.in[:copy(e.in, e.in[c:])]
		if err != nil {
			e.err = err
		}
	}
}

type v1pipe struct {
	a, b   *v1end
	chunk  int
	max    int
	rng    *rand.Rand
	filter func(from *v1end, b []byte) []byte
}

func newV1Pipe(a, b *v1end) *v1pipe {
	return &v1pipe{a: a, b: b, max: 64 << 10, rng: rand.New(rand.NewPCG(1, 2))}
}

func (p *v1pipe) step() bool {
	moved := false
	for _, d := range [2][2]*v1end{{p.a, p.b}, {p.b, p.a}} {
		from, to := d[0], d[1]
		if from.err != nil || to.err != nil || from.m.Err() != nil || to.m.Err() != nil {
			continue
		}
		from.out = from.m.AppendOutput(from.out[:0], p.max)
		if p.filter != nil && len(from.out) > 0 {
			from.out = p.filter(from, from.out)
		}
		if len(from.out) == 0 {
			continue
		}
		moved = true
		from.sent = append(from.sent, from.out...)
		to.deliver(from.out, p.chunk, p.rng)
	}
	return moved
}

func (p *v1pipe) run(t testing.TB) {
	t.Helper()
	for i := 0; i < 1_000_000; i++ {
		if !p.step() {
			return
		}
	}
	t.Fatal("pipe did not settle")
}

func v1ClientConfig(g *gseq, ev *recorder, pol msg.Policy) Config {
	return Config{
		MyType:     msg.EntityClient,
		MyGID:      -1,
		Nonce:      v1CliNonce,
		PeerType:   msg.EntityOSD,
		TargetAddr: v1SrvAddr,
		Policy:     pol,
		GlobalSeq:  g.next,
		Events:     ev,
		Release:    ev.release,
	}
}

func v1ServerConfig(g *gseq, ev *recorder, pol msg.Policy) Config {
	return Config{
		MyType:         msg.EntityOSD,
		MyGID:          3,
		MyAddrs:        msg.AddrVec{msg.MustParseAddr("v2:127.0.0.1:6800/1234"), v1SrvAddr},
		PeerSocketAddr: v1CliSock,
		PolicyFor:      func(msg.EntityType) msg.Policy { return pol },
		GlobalSeq:      g.next,
		Events:         ev,
		Release:        ev.release,
	}
}

func mustClientV1(t testing.TB, cfg Config, s *Session) *v1end {
	t.Helper()
	m, err := NewClientV1(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	return &v1end{m: m, ev: cfg.Events.(*recorder)}
}

func mustServerV1(t testing.TB, cfg Config) *v1end {
	t.Helper()
	m, err := NewServerV1(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &v1end{m: m, ev: cfg.Events.(*recorder)}
}

// v1pair builds a connected v1 client/server pair.
func v1pair(t testing.TB, cpol, spol msg.Policy, tweak func(c, s *Config)) (*v1end, *v1end, *v1pipe) {
	t.Helper()
	cg, sg := &gseq{}, &gseq{n: 100}
	ccfg := v1ClientConfig(cg, &recorder{}, cpol)
	scfg := v1ServerConfig(sg, &recorder{}, spol)
	if tweak != nil {
		tweak(&ccfg, &scfg)
	}
	c := mustClientV1(t, ccfg, nil)
	s := mustServerV1(t, scfg)
	return c, s, newV1Pipe(c, s)
}

// v1ReadyPair returns an open v1 session.
func v1ReadyPair(t testing.TB, cpol, spol msg.Policy) (*v1end, *v1end, *v1pipe) {
	t.Helper()
	c, s, p := v1pair(t, cpol, spol, nil)
	p.run(t)
	if !c.ev.isReady() || !s.ev.isReady() {
		t.Fatalf("not ready: client err %v, server err %v", c.err, s.err)
	}
	return c, s, p
}

// v1ExpectFault asserts that e stopped with a *Fault wrapping want and
// the given action, and refuses further input.
func v1ExpectFault(t testing.TB, e *v1end, want error, action Action) *Fault {
	t.Helper()
	if e.err == nil {
		t.Fatalf("no fault, want %v", want)
	}
	f := faultOf(t, e.err)
	if !errors.Is(f, want) {
		t.Fatalf("fault %v, want %v", f, want)
	}
	if f.Action != action {
		t.Fatalf("action %v, want %v (%v)", f.Action, action, f)
	}
	if e.m.State() != StateClosed || e.m.Err() != f {
		t.Fatalf("machine state %v, Err %v", e.m.State(), e.m.Err())
	}
	if n, err := e.m.Feed([]byte{1, 2, 3}); n != 0 || err != f {
		t.Fatalf("Feed after fault: %d, %v", n, err)
	}
	return f
}

// v1conn is a messenger connection as the v1 registry fake sees it.
type v1conn struct {
	peer      msg.AddrVec
	sess      *Session
	m         Protocol // current machine, nil in standby
	ev        *recorder
	replacing bool
	closed    bool
	kicked    int
}

func (c *v1conn) Info() ExistingInfo {
	st := ExistingConnecting
	switch {
	case c.closed:
		st = ExistingClosed
	case c.replacing && c.m != nil && c.m.Err() == nil && c.m.State() != StateReady:
		st = ExistingReplacing
	case c.m == nil || c.m.Err() != nil:
		st = ExistingStandby
	case c.m.State() == StateReady:
		st = ExistingReady
	}
	si := c.sess.Info()
	peer := si.PeerAddrs
	if len(peer) == 0 {
		peer = c.peer
	}
	return ExistingInfo{
		State:         st,
		Policy:        si.Policy,
		PeerAddrs:     peer,
		PeerGlobalSeq: si.PeerGlobalSeq,
		ConnectSeq:    si.ConnectSeq,
	}
}

// v1node is a minimal messenger: connections by peer address, a
// global_seq counter, and the Registry the server machines consult.
type v1node struct {
	addr    msg.Addr
	g       gseq
	conns   map[msg.Addr]*v1conn
	refuse  bool
	reused  int
	markeds int
}

func newV1Node(addr msg.Addr) *v1node {
	return &v1node{addr: addr, conns: map[msg.Addr]*v1conn{}}
}

func (n *v1node) Lookup(peer msg.AddrVec) Existing {
	for _, a := range peer {
		if c, ok := n.conns[a]; ok {
			return c
		}
	}
	return nil
}

func (n *v1node) Reuse(ex Existing, p Protocol) (*Session, Events, error) {
	c := ex.(*v1conn)
	if c.m != nil {
		c.m.Close()
	}
	c.m = p
	c.replacing = true
	n.reused++
	return c.sess, c.ev, nil
}

func (n *v1node) MarkDown(ex Existing) {
	c := ex.(*v1conn)
	if c.m != nil {
		c.m.Close()
	}
	c.closed = true
	c.sess.Discard()
	n.markeds++
}

func (n *v1node) Keepalive(ex Existing) {
	c := ex.(*v1conn)
	c.kicked++
	c.sess.SendKeepalive()
}

func (n *v1node) Accept(p Protocol) error {
	if n.refuse {
		return errors.New("refused")
	}
	m := p.(*V1)
	peer := m.Session().Info().PeerAddrs
	c := &v1conn{peer: peer, sess: m.Session(), m: m, ev: m.ev.(*recorder)}
	for _, a := range peer {
		n.conns[a] = c
	}
	return nil
}
