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
				if !c.IsConnected() || c.PeerName() != srv.Name() {
					t.Fatalf("client conn state %v peer %v", c.State(), c.PeerName())
				}
				if sc.PeerName() != cli.Name() {
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
