package protocol

import (
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/internal/leakcheck"
	"github.com/msgr-dev/msgr/core/msg"
)

// TestMessages10k sends 10k messages each way over a lossless session,
// delivered in random-sized pieces, and checks order, sequence numbers,
// acks and that every kept message is released once acknowledged.
func TestMessages10k(t *testing.T) {
	defer leakcheck.Take().Check(t)
	for _, rev1 := range []bool{true, false} {
		t.Run(map[bool]string{true: "rev1", false: "rev0"}[rev1], func(t *testing.T) {
			const n = 10000
			c, s, p := pair(t, msg.LosslessClient(0), msg.StatefulServer(0), func(cc, sc *Config) {
				cc.DisableRev1, sc.DisableRev1 = !rev1, !rev1
			})
			p.chunk = 700 // frames arrive split at random places
			p.max = 16 << 10
			// Queue half before the session opens (sent on READY), half after.
			for i := 0; i < n/2; i++ {
				c.m.Send(numbered(i))
			}
			p.run(t)
			if !s.ev.isReady() {
				t.Fatal("server not ready")
			}
			for i := 0; i < n; i++ {
				s.m.Send(numbered(i))
				if i >= n/2 {
					c.m.Send(numbered(i))
				}
				if i%97 == 0 {
					p.step() // interleave traffic with queuing
				}
			}
			p.run(t)
			if c.err != nil || s.err != nil {
				t.Fatalf("client err %v, server err %v", c.err, s.err)
			}
			checkInOrder(t, "server", s.ev.msgs, seqRange(0, n))
			checkInOrder(t, "client", c.ev.msgs, seqRange(0, n))
			for i, m := range s.ev.msgs {
				if m.Seq != uint64(i+1) {
					t.Fatalf("server got seq %d at %d", m.Seq, i)
				}
				if m.Src != (msg.EntityName{Type: msg.EntityClient, Num: -1}) {
					t.Fatalf("src %v", m.Src)
				}
			}
			if c.ev.acked != n || s.ev.acked != n {
				t.Fatalf("acked %d / %d, want %d", c.ev.acked, s.ev.acked, n)
			}
			ci, si := c.m.Session().Info(), s.m.Session().Info()
			if ci.Unacked != 0 || si.Unacked != 0 || ci.Queued != 0 || si.Queued != 0 {
				t.Fatalf("left over: client %+v server %+v", ci, si)
			}
			if ci.InSeq != n || ci.OutSeq != n || si.InSeq != n || si.OutSeq != n {
				t.Fatalf("seqs: client in %d out %d, server in %d out %d", ci.InSeq, ci.OutSeq, si.InSeq, si.OutSeq)
			}
			if c.ev.released != n || s.ev.released != n {
				t.Fatalf("released %d / %d, want %d", c.ev.released, s.ev.released, n)
			}
			if c.m.Pending() || s.m.Pending() {
				t.Fatal("output pending after the pipe settled")
			}
		})
	}
}

// TestLossyMessages checks that a lossy session keeps nothing: messages
// are released once written and acks are not sent.
func TestLossyMessages(t *testing.T) {
	const n = 1000
	c, s, p := pair(t, msg.LossyClient(0), msg.StatelessServer(0), nil)
	for i := 0; i < n; i++ {
		c.m.Send(numbered(i))
	}
	p.run(t)
	checkInOrder(t, "server", s.ev.msgs, seqRange(0, n))
	if c.ev.released != n {
		t.Fatalf("released %d, want %d", c.ev.released, n)
	}
	if ci := c.m.Session().Info(); ci.Unacked != 0 {
		t.Fatalf("lossy session kept %d messages", ci.Unacked)
	}
	fs, _ := frames(t, s.sent, s.m.Rev())
	for _, f := range fs {
		if f.Tag.String() == "ACK" {
			t.Fatal("lossy server sent an ACK frame")
		}
	}
}

// TestPriorities checks that queued messages go out highest priority
// first, FIFO within a priority.
func TestPriorities(t *testing.T) {
	c, s, p := pair(t, msg.LosslessClient(0), msg.StatefulServer(0), nil)
	prios := []uint16{msg.PrioLow, msg.PrioDefault, msg.PrioHigh, msg.PrioDefault, msg.PrioHighest, msg.PrioLow}
	for i, pr := range prios {
		m := numbered(i)
		m.Priority = pr
		c.m.Send(m)
	}
	p.run(t)
	checkInOrder(t, "server", s.ev.msgs, []int{4, 2, 1, 3, 0, 5})
}

// TestKeepalive checks KEEPALIVE2 → KEEPALIVE2_ACK echoing the stamp.
func TestKeepalive(t *testing.T) {
	stamp := time.Unix(1700000000, 123456789)
	c, s, p := pair(t, msg.LossyClient(0), msg.StatelessServer(0), func(cc, sc *Config) {
		cc.Now = func() time.Time { return stamp }
	})
	c.m.SendKeepalive() // before READY: held until the session opens
	p.run(t)
	if len(s.ev.kas) != 1 || !s.ev.kas[0].Equal(stamp) {
		t.Fatalf("server saw keepalives %v", s.ev.kas)
	}
	if len(c.ev.kaAcks) != 1 || !c.ev.kaAcks[0].Equal(stamp) {
		t.Fatalf("client got keepalive acks %v", c.ev.kaAcks)
	}
	s.m.SendKeepalive()
	p.run(t)
	if len(c.ev.kas) != 1 || len(s.ev.kaAcks) != 1 {
		t.Fatalf("server keepalive: client saw %d, server got %d acks", len(c.ev.kas), len(s.ev.kaAcks))
	}
}
