package messenger

import (
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/conn"
	"github.com/msgr-dev/msgr/core/internal/leakcheck"
	"github.com/msgr-dev/msgr/core/msg"
)

func TestBindConnectExchange(t *testing.T) {
	defer leakcheck.Take().Check(t)
	for _, fast := range []bool{false, true} {
		for _, typ := range []string{"async+posix", "async+poll"} {
			t.Run(typ, func(t *testing.T) {
				o := testOpts(t)
				o.Type = typ
				sr, cr := newRec(fast), newRec(fast)
				srv := newServer(t, o, 1, sr)
				cli := newClient(t, o, 1, cr)
				defer shutdown(t, cli, srv)

				addrs := srv.Addrs()
				if len(addrs) != 1 || addrs[0].Port() == 0 || addrs[0].Nonce != srv.Nonce() {
					t.Fatalf("server addrs %v", addrs)
				}
				c, err := cli.ConnectTo(msg.EntityOSD, addrs)
				if err != nil {
					t.Fatal(err)
				}
				const n = 200
				for i := uint64(0); i < n; i++ {
					if err := c.Send(numbered(i, int(i%50))); err != nil {
						t.Fatal(err)
					}
				}
				sr.waitFor(t, "messages at server", 10*time.Second, func() bool { return len(sr.msgs) == n })
				for i, m := range sr.msgs {
					if num(m) != uint64(i) {
						t.Fatalf("message %d carries %d", i, num(m))
					}
					if m.Src != cli.Name() {
						t.Fatalf("src %v, want %v", m.Src, cli.Name())
					}
				}
				// Reply on the server's connection.
				sr.mu.Lock()
				sc := sr.conns[sr.from[0]]
				sr.mu.Unlock()
				for i := uint64(0); i < n; i++ {
					if err := sc.Send(numbered(i, 10)); err != nil {
						t.Fatal(err)
					}
				}
				cr.waitFor(t, "replies at client", 10*time.Second, func() bool { return len(cr.msgs) == n })
				cr.waitFor(t, "connect event", 5*time.Second, func() bool { return cr.connects == 1 })
				sr.waitFor(t, "accept event", 5*time.Second, func() bool { return sr.accepts == 1 })
				if !c.IsConnected() || !isPeer(c.PeerName(), srv.Name()) {
					t.Fatalf("client conn state %v peer %v", c.State(), c.PeerName())
				}
				if !isPeer(sc.PeerName(), cli.Name()) {
					t.Fatalf("server conn peer %v", sc.PeerName())
				}
			})
		}
	}
}

func TestConnectToReuse(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	srv := newServer(t, o, 1, newRec(false))
	cli := newClient(t, o, 1, newRec(false))
	defer shutdown(t, cli, srv)
	a, err := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	b, err := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatalf("two ConnectTo to the same address gave two connections")
	}
	// After mark down, a new connection is made.
	a.MarkDown()
	if a.State() != conn.StateClosed {
		t.Fatalf("state after MarkDown: %v", a.State())
	}
	c, err := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	if c == a {
		t.Fatal("ConnectTo returned a marked-down connection")
	}
}

// A messenger bound to [v2, v1] serves both protocols at once, as a Ceph
// monitor does; a client picks msgr2 when the peer has a v2 address and
// msgr1 when it only knows the v1 one.
func TestBindBothProtocols(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	sr := newRec(false)
	srv, err := New(msg.EntityName{Type: msg.EntityOSD, Num: 1}, 88, o)
	if err != nil {
		t.Fatal(err)
	}
	srv.AddDispatcherTail(sr)
	both, _ := msg.ParseAddrVec("[v2:127.0.0.1:0,v1:127.0.0.1:0]")
	if err := srv.BindAddrs(both); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	av := srv.Addrs()
	if len(av) != 2 || av[0].Type != msg.AddrMsgr2 || av[1].Type != msg.AddrLegacy || av[0].Port() == av[1].Port() || av[1].Nonce != 88 {
		t.Fatalf("addrs %v: want [v2:…,v1:…] on two ports with nonce 88", av)
	}
	c2, c1 := newClient(t, o, 1, nil), newClient(t, o, 2, nil)
	defer shutdown(t, c1, c2, srv)
	a, err := c2.ConnectTo(msg.EntityOSD, av)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c1.ConnectTo(msg.EntityOSD, msg.AddrVec{av[1]})
	if err != nil {
		t.Fatal(err)
	}
	if a.MsgrVersion() != 2 || b.MsgrVersion() != 1 {
		t.Fatalf("protocols %d and %d, want 2 (vector with v2) and 1 (v1 only)", a.MsgrVersion(), b.MsgrVersion())
	}
	for i := 0; i < 50; i++ {
		if err := a.Send(numbered(uint64(i), 100)); err != nil {
			t.Fatal(err)
		}
		if err := b.Send(numbered(uint64(1000+i), 100)); err != nil {
			t.Fatal(err)
		}
	}
	sr.waitFor(t, "100 messages", 10*time.Second, func() bool { return len(sr.msgs) == 100 })
	sr.mu.Lock()
	seen := map[uint64]bool{}
	for _, m := range sr.msgs {
		seen[num(m)] = true
	}
	sr.mu.Unlock()
	if len(seen) != 100 {
		t.Fatalf("%d distinct messages of 100", len(seen))
	}
	if !a.IsConnected() || !b.IsConnected() {
		t.Fatalf("connected: v2 %v, v1 %v", a.IsConnected(), b.IsConnected())
	}
}
