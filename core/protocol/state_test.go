package protocol

import (
	"strings"
	"testing"
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
