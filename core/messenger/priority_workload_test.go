package messenger

import (
	"sync"
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/conn"
	"github.com/msgr-dev/msgr/core/dispatch"
	"github.com/msgr-dev/msgr/core/internal/leakcheck"
	"github.com/msgr-dev/msgr/core/msg"
)

// plug is a queue dispatcher whose first message blocks the dispatch
// queue until release is closed; it records the order of everything
// after it.
type plug struct {
	dispatch.Base
	blocked chan struct{} // closed once the first message is being held
	release chan struct{}
	once    sync.Once

	mu   sync.Mutex
	got  []plugged
	cond *sync.Cond
}

type plugged struct {
	conn uint64
	prio uint16
	n    uint64
}

func newPlug() *plug {
	p := &plug{blocked: make(chan struct{}), release: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func (p *plug) Dispatch(c dispatch.Conn, m *msg.Message) bool {
	first := false
	p.once.Do(func() { first = true })
	if first {
		close(p.blocked)
		<-p.release
		m.Release()
		return true
	}
	p.mu.Lock()
	p.got = append(p.got, plugged{c.ID(), m.Priority, num(m)})
	p.mu.Unlock()
	p.cond.Broadcast()
	m.Release()
	return true
}

func (p *plug) wait(t *testing.T, n int) []plugged {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		if len(p.got) >= n {
			g := append([]plugged(nil), p.got...)
			p.mu.Unlock()
			return g
		}
		p.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d messages (have %d)", n, len(p.got))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// plugServer starts a server whose dispatch queue is blocked by a first
// message from a separate client, so everything sent afterwards piles
// up in the queue.
func plugServer(t *testing.T, o Options) (*Messenger, *plug, func()) {
	t.Helper()
	p := newPlug()
	srv := newServer(t, o, 1, p)
	blocker := newClient(t, o, 99, nil)
	c, err := blocker.ConnectTo(msg.EntityOSD, srv.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(numbered(1<<40, 0)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("the plug message never reached the dispatcher")
	}
	return srv, p, func() { shutdown(t, blocker) }
}

// waitQueued waits until the server's dispatch queue holds n items.
func waitQueued(t *testing.T, srv *Messenger, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for srv.Perf().DispatchQueueLen < n {
		if time.Now().After(deadline) {
			t.Fatalf("dispatch queue holds %d items, want %d", srv.Perf().DispatchQueueLen, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestPriorityDeliveryOrder: messages of mixed priorities queued behind
// a blocked dispatcher come out strictly by priority for priorities at
// or above PrioLow (FIFO within one), then the ones below PrioLow,
// which share by weight: a level of priority 40 gets about four turns
// per turn of a level of priority 10, and neither starves.
func TestPriorityDeliveryOrder(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	srv, p, stopBlocker := plugServer(t, o)
	defer shutdown(t, srv)
	defer stopBlocker()
	cli := newClient(t, o, 1, nil)
	defer shutdown(t, cli)
	c, err := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	prios := []uint16{10, msg.PrioLow, 40, msg.PrioDefault, msg.PrioHighest, 150, msg.PrioHigh}
	const perPrio = 100
	n := 0
	for k := 0; k < perPrio; k++ {
		for _, pr := range prios {
			m := numbered(uint64(n), n%300)
			m.Priority = pr
			if err := c.Send(m); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	waitQueued(t, srv, n)
	close(p.release)
	got := p.wait(t, n)

	// FIFO within each priority.
	last := map[uint16]int64{}
	for _, g := range got {
		if l, ok := last[g.prio]; ok && int64(g.n) <= l {
			t.Fatalf("priority %d: message %d after %d", g.prio, g.n, l)
		}
		last[g.prio] = int64(g.n)
	}
	// Strict part: priorities >= PrioLow in descending order, all before
	// any weighted one.
	strict := got[:5*perPrio]
	prev := uint16(msg.PrioHighest)
	for i, g := range strict {
		if g.prio < msg.PrioLow {
			t.Fatalf("delivery %d: priority %d came before the strict priorities were drained", i, g.prio)
		}
		if g.prio > prev {
			t.Fatalf("delivery %d: priority %d after %d", i, g.prio, prev)
		}
		prev = g.prio
	}
	// Weighted part: count the first 100 turns.
	w := got[5*perPrio:]
	var c40, c10 int
	for _, g := range w[:100] {
		switch g.prio {
		case 40:
			c40++
		case 10:
			c10++
		}
	}
	if c10 == 0 || c40 < 3*c10 || c40 > 5*c10 {
		t.Errorf("weighted levels: first 100 turns gave priority 40 %d and priority 10 %d, want about 4:1 and no starvation", c40, c10)
	}
}

// TestRoundRobinAcrossConnections: three connections queue messages at
// one priority behind a blocked dispatcher (30, 60 and 90 messages);
// once unblocked the queue serves them round-robin, one message per
// connection per turn, so at every point the connections that still
// have messages have been served within one message of each other. A
// higher priority from a fourth connection goes before all of them.
func TestRoundRobinAcrossConnections(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	srv, p, stopBlocker := plugServer(t, o)
	defer shutdown(t, srv)
	defer stopBlocker()
	counts := []int{30, 60, 90}
	var conns []*conn.Connection
	var cls []*Messenger
	for i := range counts {
		cli := newClient(t, o, int64(i+1), nil)
		cls = append(cls, cli)
		c, err := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	hi := newClient(t, o, 10, nil)
	cls = append(cls, hi)
	defer shutdown(t, cls...)
	hc, err := hi.ConnectTo(msg.EntityOSD, srv.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	// Interleave the senders in bursts so no connection's messages are
	// all queued before another's: order of arrival must not matter.
	total := 0
	for k := 0; k < 90; k += 10 {
		for i, c := range conns {
			for j := k; j < min(k+10, counts[i]); j++ {
				if err := c.Send(numbered(uint64(i)<<32|uint64(j), 16)); err != nil {
					t.Fatal(err)
				}
				total++
			}
		}
		time.Sleep(time.Millisecond)
	}
	const nhi = 20
	for j := 0; j < nhi; j++ {
		m := numbered(uint64(7)<<32|uint64(j), 0)
		m.Priority = msg.PrioHigh
		if err := hc.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	total += nhi
	waitQueued(t, srv, total)
	close(p.release)
	got := p.wait(t, total)

	for i, g := range got[:nhi] {
		if g.prio != msg.PrioHigh {
			t.Fatalf("delivery %d: priority %d before the high-priority connection was drained", i, g.prio)
		}
	}
	served := map[uint64]int{} // by sender index
	left := map[uint64]int{0: counts[0], 1: counts[1], 2: counts[2]}
	for i, g := range got[nhi:] {
		who, k := g.n>>32, int(g.n&0xffffffff)
		if k != served[who] {
			t.Fatalf("connection %d: message %d delivered as its %d-th (not FIFO)", who, k, served[who])
		}
		served[who]++
		left[who]--
		// Every connection with messages left has been served within
		// one of every other such connection.
		lo, hiN := 1<<30, -1
		for w, l := range left {
			if l > 0 || w == who {
				lo, hiN = min(lo, served[w]), max(hiN, served[w])
			}
		}
		if hiN-lo > 1 {
			t.Fatalf("delivery %d: not round-robin: served %v with %v left", nhi+i, served, left)
		}
	}
	for w, l := range left {
		if l != 0 {
			t.Errorf("connection %d: %d messages not delivered", w, l)
		}
	}
}
