package messenger

import (
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/internal/leakcheck"
	"github.com/msgr-dev/msgr/core/msg"
)

// TestSharedStack runs a server and several clients on one shared stack:
// messages flow, a messenger's Shutdown leaves the stack running for the
// others, and stopping the stack at the end leaks nothing.
func TestSharedStack(t *testing.T) {
	defer leakcheck.Take().Check(t)
	o := testOpts(t)
	st, err := NewStack(o)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop() //nolint:errcheck // checked below; this one covers a Fatal
	o.Stack = st
	o.OpThreads = 7 // ignored with a shared stack
	r := newRec(true)
	srv := newServer(t, o, 1, r)
	srv.SetPolicy(msg.EntityClient, msg.StatelessServer(0))
	const nc = 5
	var clis []*Messenger
	for i := 0; i < nc; i++ {
		c := newClient(t, o, int64(i+1), nil)
		c.SetPolicy(msg.EntityOSD, msg.LossyClient(0))
		clis = append(clis, c)
		cn, err := c.ConnectTo(msg.EntityOSD, srv.Addrs())
		if err != nil {
			t.Fatal(err)
		}
		if err := cn.Send(numbered(uint64(i), 0)); err != nil {
			t.Fatal(err)
		}
	}
	r.waitFor(t, "a message from each client", 10*time.Second, func() bool { return len(r.msgs) == nc })
	if len(st.Workers()) != 2 {
		t.Fatalf("shared stack has %d workers, want the 2 it was made with", len(st.Workers()))
	}
	// Shut one client down: the others still work on the same loops.
	shutdown(t, clis[0])
	cn, err := clis[1].ConnectTo(msg.EntityOSD, srv.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	if err := cn.Send(numbered(99, 0)); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "a message after another messenger's shutdown", 10*time.Second, func() bool { return len(r.msgs) == nc+1 })
	shutdown(t, clis[1:]...)
	shutdown(t, srv)
	for _, m := range r.msgs {
		m.Release()
	}
	if err := st.Stop(); err != nil {
		t.Fatal(err)
	}
}
