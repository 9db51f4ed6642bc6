package messenger

import (
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/internal/leakcheck"
	"github.com/msgr-dev/msgr/core/msg"
)

// TestPeerRaceWithFailures: two lossless peers dial each other at once
// while sockets fail at random; every message arrives exactly once, in
// order, both ways.
func TestPeerRaceWithFailures(t *testing.T) {
	defer leakcheck.Take().Check(t)
	for _, seed := range []int64{11, 12} {
		o := testOpts(t)
		o.InjectSocketFailures = 15
		o.InjectSeed = seed
		o.InitialBackoff = 5 * time.Millisecond
		o.MaxBackoff = 40 * time.Millisecond
		o.Logf = func(string, ...any) {}
		ra, rb := newRec(false), newRec(true)
		a := newServer(t, o, 1, ra)
		b := newServer(t, o, 2, rb)
		for _, m := range []*Messenger{a, b} {
			m.SetPolicy(msg.EntityOSD, msg.LosslessPeer(0))
		}
		ca, _ := a.ConnectTo(msg.EntityOSD, b.Addrs())
		cb, _ := b.ConnectTo(msg.EntityOSD, a.Addrs())
		const n = 1500
		for i := uint64(0); i < n; i++ {
			ca.Send(numbered(i, int(i%100)))
			cb.Send(numbered(i, int(i%100)))
			if i%50 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		ra.waitFor(t, "b's messages", 30*time.Second, func() bool { return len(ra.msgs) >= n })
		rb.waitFor(t, "a's messages", 30*time.Second, func() bool { return len(rb.msgs) >= n })
		time.Sleep(30 * time.Millisecond)
		for name, r := range map[string]*rec{"a": ra, "b": rb} {
			r.mu.Lock()
			if len(r.msgs) != n {
				t.Errorf("seed %d: %s got %d messages, want %d", seed, name, len(r.msgs), n)
			}
			for i, m := range r.msgs {
				if num(m) != uint64(i) {
					t.Errorf("seed %d: %s: message %d carries %d", seed, name, i, num(m))
					break
				}
			}
			r.mu.Unlock()
		}
		pa, pb := a.Perf(), b.Perf()
		t.Logf("seed %d: injected %d+%d, faults %d+%d, resumed %d+%d", seed, pa.InjectedFailures, pb.InjectedFailures, pa.Faults, pb.Faults, pa.Replaced, pb.Replaced)
		shutdown(t, a, b)
	}
}
