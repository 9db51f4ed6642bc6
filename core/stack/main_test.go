package stack

import (
	"os"
	"testing"
)

// TestMain starts the Go runtime's netpoller (its epoll fd and eventfd are
// made on first use, and stay) before any test takes a leak-check
// snapshot; otherwise a test run alone (-run X) reports them as leaked.
func TestMain(m *testing.M) {
	r, w, err := os.Pipe() // os pipes are registered with the netpoller
	if err != nil {
		panic(err)
	}
	r.Close()
	w.Close()
	os.Exit(m.Run())
}
