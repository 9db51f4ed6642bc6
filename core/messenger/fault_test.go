package messenger

import (
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/dispatch"
	"github.com/msgr-dev/msgr/core/internal/leakcheck"
	"github.com/msgr-dev/msgr/core/msg"
)

// TestLosslessInjectedFailures sends numbered messages both ways over a
// lossless session while both sides shut sockets down at random; every
// message must arrive exactly once and in order.
func TestLosslessInjectedFailures(t *testing.T) {
	defer leakcheck.Take().Check(t)
	for _, seed := range []int64{1, 2, 3} {
		t.Run("", func(t *testing.T) {
			o := testOpts(t)
			o.InjectSocketFailures = 10
			o.InjectSeed = seed
			o.InitialBackoff = 5 * time.Millisecond
			o.MaxBackoff = 50 * time.Millisecond
			o.Logf = func(string, ...any) {}
			sr, cr := newRec(false), newRec(true)
			// The server echoes every message on the connection it came on.
			sr.onMsg = func(c dispatch.Conn, m *msg.Message) {
				if err := c.Send(numbered(num(m), 3)); err != nil {
					t.Errorf("echo: %v", err)
				}
			}
			srv := newServer(t, o, 1, sr)
			srv.SetPolicy(msg.EntityClient, msg.StatefulServer(0))
			cli := newClient(t, o, 1, cr)
			cli.SetPolicy(msg.EntityOSD, msg.LosslessClient(0))
			defer shutdown(t, cli, srv)
			c, err := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
			if err != nil {
				t.Fatal(err)
			}
			// Send until enough sockets failed (the failures hit syscalls,
			// and one syscall carries many messages), bounded.
			n := 0
			for n < 2000 || (cli.Perf().InjectedFailures+srv.Perf().InjectedFailures < 6 && n < 30000) {
				for k := 0; k < 100; k++ {
					if err := c.Send(numbered(uint64(n), n%200)); err != nil {
						t.Fatal(err)
					}
					n++
				}
				time.Sleep(time.Millisecond) // spread sends over many sockets
			}
			sr.waitFor(t, "all messages at the server", 30*time.Second, func() bool { return len(sr.msgs) >= n })
			cr.waitFor(t, "all echoes at the client", 30*time.Second, func() bool { return len(cr.msgs) >= n })
			time.Sleep(50 * time.Millisecond) // duplicates would show up now
			check := func(who string, r *rec) {
				r.mu.Lock()
				defer r.mu.Unlock()
				if len(r.msgs) != n {
					t.Errorf("%s got %d messages, want %d", who, len(r.msgs), n)
				}
				for i, m := range r.msgs {
					if num(m) != uint64(i) {
						t.Fatalf("%s: message %d carries %d (lost, duplicated or reordered)", who, i, num(m))
					}
				}
			}
			check("server", sr)
			check("client", cr)
			p, q := cli.Perf(), srv.Perf()
			if p.InjectedFailures+q.InjectedFailures == 0 {
				t.Errorf("no socket failure was injected")
			}
			if p.Reconnects == 0 {
				t.Errorf("client never reconnected")
			}
			if q.Replaced == 0 {
				t.Errorf("the server never resumed a session on a new socket")
			}
			t.Logf("seed %d: injected %d+%d failures, %d reconnects, %d resumed, %d+%d faults",
				seed, p.InjectedFailures, q.InjectedFailures, p.Reconnects, q.Replaced, p.Faults, q.Faults)
			// Ceph reports a reset for a socket closed half-accepted; none
			// may hit a session the application saw open.
			if a, b := cr.openResets(), sr.openResets(); a+b != 0 {
				t.Errorf("lossless session reported resets: client %d server %d", a, b)
			}
		})
	}
}

// TestRemoteResetAfterServerRestart: the server restarts on the same
// address; the lossless client's SESSION_RECONNECT meets a server that
// has no such session, is told SESSION_RESET, reports
// HandleRemoteReset, and opens a new session that carries new messages.
func TestRemoteResetAfterServerRestart(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	o.InitialBackoff = 10 * time.Millisecond
	o.MaxBackoff = 50 * time.Millisecond
	o.Logf = func(string, ...any) {}
	sr := newRec(false)
	srv := newServer(t, o, 1, sr)
	srv.SetPolicy(msg.EntityClient, msg.StatefulServer(0))
	addrs := srv.Addrs()
	cr := newRec(false)
	cli := newClient(t, o, 1, cr)
	cli.SetPolicy(msg.EntityOSD, msg.LosslessClient(0))
	defer shutdown(t, cli)
	c, err := cli.ConnectTo(msg.EntityOSD, addrs)
	if err != nil {
		t.Fatal(err)
	}
	c.Send(numbered(1, 0))
	sr.waitFor(t, "first message", 5*time.Second, func() bool { return len(sr.msgs) == 1 })
	shutdown(t, srv)

	sr2 := newRec(false)
	srv2, err := New(srv.Name(), srv.Nonce(), o)
	if err != nil {
		t.Fatal(err)
	}
	srv2.AddDispatcherTail(sr2)
	srv2.SetPolicy(msg.EntityClient, msg.StatefulServer(0))
	if err := srv2.Bind(addrs[0]); err != nil {
		t.Fatal(err)
	}
	if err := srv2.Start(); err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, srv2)
	cr.waitFor(t, "remote reset", 10*time.Second, func() bool { return cr.rresets == 1 })
	if err := c.Send(numbered(2, 0)); err != nil {
		t.Fatal(err)
	}
	sr2.waitFor(t, "message on the new session", 10*time.Second, func() bool { return len(sr2.msgs) >= 1 })
	sr2.mu.Lock()
	last := num(sr2.msgs[len(sr2.msgs)-1])
	sr2.mu.Unlock()
	if last != 2 {
		t.Errorf("new server got %d last, want 2", last)
	}
	if cr.openResets() != 0 {
		t.Errorf("a lossless client reported a reset")
	}
}
