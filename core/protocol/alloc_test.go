package protocol

import (
	"bytes"
	"strings"
	"testing"

	"github.com/msgr-dev/msgr/core/internal/leakcheck"
	"github.com/msgr-dev/msgr/core/msg"
)

// TestNewMessageHook checks that received messages come from
// Config.NewMessage, with the payload copied into the buffer it returned.
func TestNewMessageHook(t *testing.T) {
	defer leakcheck.Take().Check(t)
	var asked []int
	var bufs [][]byte
	c, s, p := pair(t, msg.LossyClient(0), msg.StatelessServer(0), func(cc, sc *Config) {
		sc.NewMessage = func(n int) (*msg.Message, []byte) {
			asked = append(asked, n)
			b := make([]byte, n)
			bufs = append(bufs, b)
			return &msg.Message{}, b
		}
	})
	p.run(t)
	m := msg.New(100, []byte("front"))
	m.Middle, m.Data = []byte("mid"), []byte("data!")
	c.m.Send(m)
	p.run(t)
	if len(s.ev.msgs) != 1 || len(asked) != 1 || asked[0] != 13 {
		t.Fatalf("got %d messages, NewMessage calls %v", len(s.ev.msgs), asked)
	}
	got := s.ev.msgs[0]
	if string(got.Front) != "front" || string(got.Middle) != "mid" || string(got.Data) != "data!" {
		t.Fatalf("payload %q %q %q", got.Front, got.Middle, got.Data)
	}
	if !bytes.Equal(bufs[0], []byte("frontmiddata!")) || &got.Front[0] != &bufs[0][0] {
		t.Fatal("payload not placed in the buffer NewMessage returned")
	}
	if got.Src.Type != msg.EntityClient || got.Type != 100 {
		t.Fatalf("header/src not set: %+v", got)
	}
}

// TestNewMessageBadBuffer: a hook returning a buffer of the wrong size
// faults the connection with a clear error (no panic), releasing the
// message it gave.
func TestNewMessageBadBuffer(t *testing.T) {
	defer leakcheck.Take().Check(t)
	freed := 0
	c, s, p := pair(t, msg.LossyClient(0), msg.StatelessServer(0), func(cc, sc *Config) {
		sc.NewMessage = func(n int) (*msg.Message, []byte) {
			return &msg.Message{DataFree: func() { freed++ }}, make([]byte, n+1)
		}
	})
	p.run(t)
	c.m.Send(msg.New(100, []byte("x")))
	p.run(t)
	if s.err == nil || !strings.Contains(s.err.Error(), "NewMessage") {
		t.Fatalf("server err %v", s.err)
	}
	if freed != 1 || len(s.ev.msgs) != 0 {
		t.Fatalf("freed %d, delivered %d", freed, len(s.ev.msgs))
	}
}
