package protocol

import (
	"strings"
	"testing"

	"github.com/msgr-dev/msgr/core/msg"
)

func TestStateString(t *testing.T) {
	seen := map[string]bool{}
	for s := State(0); s < numStates; s++ {
		n := s.String()
		if n == "" || strings.HasPrefix(n, "State(") || seen[n] {
			t.Fatalf("state %d has name %q", s, n)
		}
		seen[n] = true
	}
	if State(200).String() != "State(200)" || StateSessionAccepting.String() != "SESSION_ACCEPTING" {
		t.Fatal("bad names")
	}
	if RoleClient.String() != "client" || RoleServer.String() != "server" {
		t.Fatal("bad role names")
	}
}

// TestFifoWrap exercises the ring's wrap-around and growth with both ends.
func TestFifoWrap(t *testing.T) {
	var q fifo
	var want []*msg.Message
	ms := make([]*msg.Message, 100)
	for i := range ms {
		ms[i] = &msg.Message{Header: msg.Header{Seq: uint64(i)}}
	}
	for i := 0; i < 100; i++ {
		switch i % 5 {
		case 0, 1, 2:
			q.pushBack(ms[i])
			want = append(want, ms[i])
		case 3:
			q.pushFront(ms[i])
			want = append([]*msg.Message{ms[i]}, want...)
		case 4:
			if got := q.popFront(); got != want[0] {
				t.Fatalf("popFront %v want %v", got.Seq, want[0].Seq)
			}
			want = want[1:]
		}
		if q.len() != len(want) || q.front() != want[0] || q.back() != want[len(want)-1] {
			t.Fatalf("step %d: len %d want %d", i, q.len(), len(want))
		}
	}
	for len(want) > 0 {
		if got := q.popBack(); got != want[len(want)-1] {
			t.Fatal("popBack order")
		}
		want = want[:len(want)-1]
	}
	if q.popFront() != nil || q.popBack() != nil || q.front() != nil {
		t.Fatal("empty queue returned a message")
	}
}
