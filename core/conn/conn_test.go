package conn_test

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/conn"
	"github.com/msgr-dev/msgr/core/dispatch"
	"github.com/msgr-dev/msgr/core/internal/leakcheck"
	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/stack"
)

// host is the smallest conn.Host: one address, a map of registered
// connections, a global_seq.
type host struct {
	mu     sync.Mutex
	addrs  msg.AddrVec
	gseq   uint64
	conns  map[msg.Addr]*conn.Connection
	closed map[*conn.Connection]int
	policy msg.Policy
}

// startStack starts a stack of workers and makes a dispatch queue (not
// started: add dispatchers first); stop stops both and waits for the queue.
func startStack(t *testing.T, workers int) (*stack.Stack, *dispatch.Queue, func()) {
	t.Helper()
	st, err := stack.New(stack.Options{Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Start(); err != nil {
		t.Fatal(err)
	}
	q := dispatch.New(dispatch.Options{Logf: t.Logf})
	return st, q, func() {
		q.Stop()
		if err := st.Stop(); err != nil {
			t.Error(err)
		}
		q.Wait()
	}
}

func newHost(pol msg.Policy) *host {
	return &host{conns: map[msg.Addr]*conn.Connection{}, closed: map[*conn.Connection]int{}, policy: pol}
}

func (h *host) MyAddrs() msg.AddrVec {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.addrs
}

func (h *host) GlobalSeq(atLeast uint64) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gseq = max(h.gseq, atLeast) + 1
	return h.gseq
}

func (h *host) PolicyFor(msg.EntityType) msg.Policy      { return h.policy }
func (h *host) BudgetFor(msg.EntityType) *conn.Budget    { return nil }
func (h *host) LearnedAddr(msg.AddrVec)                  {}
func (h *host) Lookup(peer msg.AddrVec) *conn.Connection { return nil }

func (h *host) Register(c *conn.Connection, peer msg.AddrVec) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range peer {
		h.conns[a] = c
	}
	return nil
}

func (h *host) Closed(c *conn.Connection) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed[c]++
}

// counter counts messages per sender goroutine and checks their order.
type counter struct {
	dispatch.Base
	mu   sync.Mutex
	next map[uint32]uint32
	bad  error
	n    atomic.Int64
}

func (c *counter) CanFastDispatch(*msg.Message) bool { return true }
func (c *counter) FastDispatch(_ dispatch.Conn, m *msg.Message) {
	g, k := binary.LittleEndian.Uint32(m.Front), binary.LittleEndian.Uint32(m.Front[4:])
	c.mu.Lock()
	if k != c.next[g] && c.bad == nil {
		c.bad = errors.New("out of order")
	}
	c.next[g] = k + 1
	c.mu.Unlock()
	m.Release()
	c.n.Add(1)
}

// testPack is a conn.Packed of ready messages.
type testPack struct {
	ms                  []*msg.Message
	unpacked, discarded *atomic.Int32
}

func (p *testPack) Len() int { return len(p.ms) }
func (p *testPack) Unpack(out []*msg.Message) []*msg.Message {
	if p.unpacked != nil {
		p.unpacked.Add(1)
	}
	return append(out, p.ms...)
}
func (p *testPack) Discard() {
	for _, m := range p.ms {
		m.Release()
	}
	p.discarded.Add(1)
}

func TestConnectionDirect(t *testing.T) {
	defer leakcheck.Take().Check(t)
	st, q, stop := startStack(t, 2)
	cnt := &counter{next: map[uint32]uint32{}}
	q.AddTail(cnt)
	q.Start()

	sh := newHost(msg.StatefulServer(0))
	scfg := &conn.Config{Stack: st, Queue: q, Host: sh, Name: msg.EntityName{Type: msg.EntityOSD, Num: 1}, Nonce: 7,
		SockOpts: stack.DefaultSockOpts(), ReadyTimeout: 5 * time.Second}
	var accepted []*conn.Connection
	var amu sync.Mutex
	l, err := st.Listen(netip.MustParseAddrPort("127.0.0.1:0"), stack.DefaultSockOpts(), 0, func(s *stack.Socket) {
		c := conn.NewServer(scfg, s, msg.AddrMsgr2)
		amu.Lock()
		accepted = append(accepted, c)
		amu.Unlock()
		c.Start()
	})
	if err != nil {
		t.Fatal(err)
	}
	srvAddr := msg.Addr{Type: msg.AddrMsgr2, Nonce: 7, AddrPort: l.Addr()}
	sh.addrs = msg.AddrVec{srvAddr}

	ch := newHost(msg.LosslessClient(0))
	ccfg := &conn.Config{Stack: st, Queue: q, Host: ch, Name: msg.EntityName{Type: msg.EntityClient, Num: 9}, Nonce: 8,
		SockOpts: stack.DefaultSockOpts(), ReadyTimeout: 5 * time.Second}
	c := conn.NewClient(ccfg, msg.EntityOSD, srvAddr, msg.LosslessClient(0))
	if c.State() != conn.StateNone || c.IsLocal() {
		t.Fatalf("new client state %v", c.State())
	}
	c.Start()

	// Concurrent senders: each one's messages stay in its order. Sender 0
	// mixes packs (built on the loop) of 1-7 messages with single sends.
	const senders, per = 4, 500
	var wg sync.WaitGroup
	var unpacked atomic.Int32
	for g := uint32(0); g < senders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var pack *testPack
			for k := uint32(0); k < per; k++ {
				b := make([]byte, 8)
				binary.LittleEndian.PutUint32(b, g)
				binary.LittleEndian.PutUint32(b[4:], k)
				m := msg.New(1, b)
				if g == 0 && k%3 != 0 {
					if pack == nil {
						pack = &testPack{unpacked: &unpacked}
					}
					pack.ms = append(pack.ms, m)
					if len(pack.ms) < int(k%7+1) && k < per-1 {
						continue
					}
					if err := c.SendPacked(pack); err != nil {
						t.Error(err)
						return
					}
					pack = nil
					continue
				}
				if pack != nil { // order: the pack goes before m
					if err := c.SendPacked(pack); err != nil {
						t.Error(err)
						return
					}
					pack = nil
				}
				if err := c.Send(m); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for cnt.n.Load() < senders*per {
		if time.Now().After(deadline) {
			t.Fatalf("got %d of %d", cnt.n.Load(), senders*per)
		}
		time.Sleep(time.Millisecond)
	}
	if cnt.bad != nil {
		t.Fatal(cnt.bad)
	}
	if !c.IsConnected() || c.PeerName() != (msg.EntityName{Type: msg.EntityOSD, Num: 1}) || c.IsLossy() {
		t.Fatalf("client %v peer %v lossy %v", c.State(), c.PeerName(), c.IsLossy())
	}
	s := c.Stats()
	if s.MsgsOut != senders*per || s.BytesOut == 0 {
		t.Errorf("client stats %+v", s)
	}
	c.SetPriv("mine")
	if c.Priv() != "mine" {
		t.Errorf("priv %v", c.Priv())
	}

	c.MarkDown()
	c.MarkDown() // idempotent
	if err := c.Send(msg.New(1, nil)); !errors.Is(err, conn.ErrClosed) {
		t.Errorf("Send after MarkDown: %v", err)
	}
	if err := c.SendPacked(&testPack{}); !errors.Is(err, conn.ErrClosed) {
		t.Errorf("SendPacked after MarkDown: %v", err)
	}
	if unpacked.Load() == 0 {
		t.Error("no pack was unpacked")
	}
	ch.mu.Lock()
	if ch.closed[c] != 1 {
		t.Errorf("Host.Closed called %d times", ch.closed[c])
	}
	ch.mu.Unlock()

	amu.Lock()
	for _, a := range accepted {
		a.Close()
	}
	amu.Unlock()
	l.Close()
	stop()
}

// A pack staged on a connection that cannot connect counts as queued, and
// is discarded (its messages released, none built) when the connection
// closes.
func TestSendPackedDiscard(t *testing.T) {
	defer leakcheck.Take().Check(t)
	st, q, stop := startStack(t, 1)
	q.Start()
	ch := newHost(msg.LosslessClient(0))
	ccfg := &conn.Config{Stack: st, Queue: q, Host: ch, Name: msg.EntityName{Type: msg.EntityClient, Num: 9}, Nonce: 8,
		SockOpts: stack.DefaultSockOpts(), ReadyTimeout: 5 * time.Second,
		InitialBackoff: time.Hour, MaxBackoff: time.Hour}
	// Nothing listens on port 1 of loopback: refused, then backing off.
	dead := msg.Addr{Type: msg.AddrMsgr2, AddrPort: netip.MustParseAddrPort("127.0.0.1:1")}
	c := conn.NewClient(ccfg, msg.EntityOSD, dead, msg.LosslessClient(0))
	c.Start()
	var unpacked, discarded atomic.Int32
	var freed atomic.Int32
	p := &testPack{unpacked: &unpacked, discarded: &discarded}
	for i := 0; i < 5; i++ {
		m := msg.New(1, []byte("x"))
		m.DataFree = func() { freed.Add(1) }
		p.ms = append(p.ms, m)
	}
	if err := c.SendPacked(p); err != nil {
		t.Fatal(err)
	}
	if got := c.Stats().Queued; got != 5 {
		t.Errorf("queued %d, want 5", got)
	}
	c.MarkDown()
	if unpacked.Load() != 0 || discarded.Load() != 1 || freed.Load() != 5 {
		t.Errorf("unpacked %d discarded %d freed %d", unpacked.Load(), discarded.Load(), freed.Load())
	}
	stop()
}
