package protocol

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

// recorder is an Events that keeps everything it is told.
type recorder struct {
	ready    []ReadyInfo
	msgs     []*msg.Message
	acked    uint64
	resets   int
	kas      []time.Time
	kaAcks   []time.Time
	learned  msg.AddrVec
	released int
}

func (r *recorder) Ready(i ReadyInfo)         { r.ready = append(r.ready, i) }
func (r *recorder) Message(m *msg.Message)    { r.msgs = append(r.msgs, m) }
func (r *recorder) Acked(seq uint64)          { r.acked = seq }
func (r *recorder) RemoteReset()              { r.resets++ }
func (r *recorder) Keepalive(t time.Time)     { r.kas = append(r.kas, t) }
func (r *recorder) KeepaliveAck(t time.Time)  { r.kaAcks = append(r.kaAcks, t) }
func (r *recorder) LearnedAddr(a msg.AddrVec) { r.learned = a }
func (r *recorder) release(m *msg.Message)    { r.released++ }
func (r *recorder) isReady() bool             { return len(r.ready) > 0 }
func (r *recorder) lastReady() (i ReadyInfo)  { return r.ready[len(r.ready)-1] }

// gseq is a messenger-wide global_seq counter.
type gseq struct{ n uint64 }

func (g *gseq) next(atLeast uint64) uint64 {
	if atLeast > g.n {
		g.n = atLeast
	}
	g.n++
	return g.n
}

var (
	srvAddr  = msg.MustParseAddr("v2:127.0.0.1:6800/1234")
	cliSock  = msg.MustParseAddr("v2:127.0.0.1:50000/0")
	cliNonce = uint32(42)
)

// end is one side of an in-memory connection.
type end struct {
	m   *Machine
	ev  *recorder
	in  []byte // received, not yet consumed
	err error  // first Feed error
	out []byte // scratch output buffer (reused)
	// sent records every byte this end produced (for frame checks).
	sent []byte
}

// deliver feeds b to e, in pieces of at most chunk bytes (0: all at once).
func (e *end) deliver(b []byte, chunk int, rng *rand.Rand) {
	for len(b) > 0 && e.err == nil {
		n := len(b)
		if chunk > 0 {
			n = min(n, 1+rng.IntN(chunk))
		}
		e.in = append(e.in, b[:n]...)
		b = b[n:]
		c, err := e.m.Feed(e.in)
		e.in = e.in[:copy(e.in, e.in[c:])]
		if err != nil {
			e.err = err
		}
	}
}

// pipe joins two ends; step moves output both ways.
type pipe struct {
	a, b  *end
	chunk int
	max   int // AppendOutput max per step
	rng   *rand.Rand
	// filter, if set, may rewrite the bytes in transit.
	filter func(from *end, b []byte) []byte
}

func newPipe(a, b *end) *pipe {
	return &pipe{a: a, b: b, max: 64 << 10, rng: rand.New(rand.NewPCG(1, 2))}
}

// step moves one batch of output each way and reports whether bytes moved.
func (p *pipe) step() bool {
	moved := false
	for _, d := range [2][2]*end{{p.a, p.b}, {p.b, p.a}} {
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

// run steps until nothing moves (bounded).
func (p *pipe) run(t testing.TB) {
	t.Helper()
	for i := 0; i < 1_000_000; i++ {
		if !p.step() {
			return
		}
	}
	t.Fatal("pipe did not settle")
}

func clientConfig(g *gseq, ev *recorder, pol msg.Policy) Config {
	return Config{
		MyType:     msg.EntityClient,
		MyGID:      -1,
		Nonce:      cliNonce,
		PeerType:   msg.EntityOSD,
		TargetAddr: srvAddr,
		Policy:     pol,
		GlobalSeq:  g.next,
		Events:     ev,
		Release:    ev.release,
	}
}

func serverConfig(g *gseq, ev *recorder, pol msg.Policy) Config {
	return Config{
		MyType:         msg.EntityOSD,
		MyGID:          3,
		MyAddrs:        msg.AddrVec{srvAddr},
		PeerSocketAddr: cliSock,
		PolicyFor:      func(msg.EntityType) msg.Policy { return pol },
		GlobalSeq:      g.next,
		Events:         ev,
		Release:        ev.release,
	}
}

func mustClient(t testing.TB, cfg Config, s *Session) *end {
	t.Helper()
	m, err := NewClient(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	return &end{m: m, ev: cfg.Events.(*recorder)}
}

func mustServer(t testing.TB, cfg Config) *end {
	t.Helper()
	m, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &end{m: m, ev: cfg.Events.(*recorder)}
}

// pair builds a connected client/server pair with the given policies.
func pair(t testing.TB, cpol, spol msg.Policy, tweak func(c, s *Config)) (*end, *end, *pipe) {
	t.Helper()
	cg, sg := &gseq{}, &gseq{n: 100}
	ccfg := clientConfig(cg, &recorder{}, cpol)
	scfg := serverConfig(sg, &recorder{}, spol)
	if tweak != nil {
		tweak(&ccfg, &scfg)
	}
	c := mustClient(t, ccfg, nil)
	s := mustServer(t, scfg)
	return c, s, newPipe(c, s)
}

// numbered returns a message whose front encodes i.
func numbered(i int) *msg.Message {
	front := binary.LittleEndian.AppendUint64(nil, uint64(i))
	m := msg.New(msg.MsgMonGetVersion, front)
	return m
}

func numberOf(t testing.TB, m *msg.Message) int {
	t.Helper()
	if len(m.Front) != 8 {
		t.Fatalf("front is %d bytes", len(m.Front))
	}
	return int(binary.LittleEndian.Uint64(m.Front))
}

// checkInOrder asserts that msgs carry the numbers want[0..] in order and
// sequence numbers that strictly increase.
func checkInOrder(t testing.TB, who string, msgs []*msg.Message, want []int) {
	t.Helper()
	if len(msgs) != len(want) {
		t.Fatalf("%s received %d messages, want %d", who, len(msgs), len(want))
	}
	var last uint64
	for i, m := range msgs {
		if got := numberOf(t, m); got != want[i] {
			t.Fatalf("%s message %d is #%d, want #%d", who, i, got, want[i])
		}
		if m.Seq <= last {
			t.Fatalf("%s message %d has seq %d after %d", who, i, m.Seq, last)
		}
		last = m.Seq
	}
}

func seqRange(from, to int) []int {
	r := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		r = append(r, i)
	}
	return r
}

// frames splits a byte stream (after the banner) into its frames and
// their on-wire sizes.
func frames(t testing.TB, stream []byte, rev wire.Rev) ([]wire.Frame, []int) {
	t.Helper()
	_, n, err := wire.DecodeBanner(stream)
	if err != nil {
		t.Fatal(err)
	}
	stream = stream[n:]
	var fs []wire.Frame
	var sizes []int
	for len(stream) > 0 {
		f, n, err := wire.DecodeFrame(stream, rev, wire.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
		sizes = append(sizes, n)
		stream = stream[n:]
	}
	return fs, sizes
}

// faultOf returns err as a *Fault, failing the test if it is not one.
func faultOf(t testing.TB, err error) *Fault {
	t.Helper()
	var f *Fault
	if !errors.As(err, &f) {
		t.Fatalf("error %v is not a *Fault", err)
	}
	return f
}
