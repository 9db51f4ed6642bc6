// Package leakcheck asserts that a test leaves no goroutine and no file
// descriptor behind. It is a small stand-in for go.uber.org/goleak (the
// design card keeps the dependency list short) plus an fd counter over
// /proc/self/fd, which goleak does not have.
package leakcheck

import (
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// Snapshot is the state taken before a test runs.
type Snapshot struct {
	goroutines map[string]bool
	fds        map[string]string
}

// Take records the goroutines and fds alive now.
func Take() Snapshot {
	initNetpoll()
	return Snapshot{goroutines: goroutineIDs(), fds: openFDs()}
}

// Check fails t if, within a bounded grace period (2 s), goroutines or fds
// exist that were not in s. Use as: defer leakcheck.Take().Check(t).
func (s Snapshot) Check(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		extraG := s.extraGoroutines()
		extraF := s.extraFDs()
		if len(extraG) == 0 && len(extraF) == 0 {
			return
		}
		if time.Now().After(deadline) {
			if len(extraG) > 0 {
				t.Errorf("leakcheck: %d goroutine(s) leaked:\n%s", len(extraG), strings.Join(extraG, "\n\n"))
			}
			if len(extraF) > 0 {
				t.Errorf("leakcheck: %d fd(s) leaked: %s", len(extraF), strings.Join(extraF, ", "))
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// initNetpoll makes the Go runtime open its poller (an epoll fd and an
// eventfd, kept for the life of the process) now, so that a test whose
// code is the first to touch a pollable fd is not blamed for them.
func initNetpoll() {
	r, w, err := os.Pipe()
	if err == nil {
		r.Close()
		w.Close()
	}
}

// FDCount returns the number of open fds of this process.
func FDCount() int { return len(openFDs()) }

func (s Snapshot) extraGoroutines() []string {
	var out []string
	for _, g := range stacks() {
		id := g[:strings.IndexByte(g, '[')]
		if s.goroutines[id] || ignorable(g) {
			continue
		}
		out = append(out, g)
	}
	return out
}

func (s Snapshot) extraFDs() []string {
	var out []string
	for fd, target := range openFDs() {
		if old, ok := s.fds[fd]; ok && old == target {
			continue
		}
		out = append(out, fd+"->"+target)
	}
	sort.Strings(out)
	return out
}

// ignorable reports goroutines owned by the runtime or the testing package.
func ignorable(g string) bool {
	for _, s := range []string{
		"testing.(*T).Run(", "testing.(*M).", "testing.tRunner(",
		"runtime.goexit", "os/signal.signal_recv", "testing.runFuzzing",
		"runtime.ensureSigM", "created by runtime.gc",
	} {
		if strings.Contains(firstFunc(g), s) || (s == "created by runtime.gc" && strings.Contains(g, s)) {
			return true
		}
	}
	return strings.Contains(g, "leakcheck.stacks(")
}

func firstFunc(g string) string {
	lines := strings.SplitN(g, "\n", 3)
	if len(lines) < 2 {
		return ""
	}
	return lines[1]
}

func stacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	return strings.Split(strings.TrimSpace(string(buf)), "\n\n")
}

func goroutineIDs() map[string]bool {
	m := map[string]bool{}
	for _, g := range stacks() {
		m[g[:strings.IndexByte(g, '[')]] = true
	}
	return m
}

func openFDs() map[string]string {
	m := map[string]string{}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return m
	}
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the fd that ReadDir itself used, now closed
		}
		m[e.Name()] = target
	}
	return m
}
