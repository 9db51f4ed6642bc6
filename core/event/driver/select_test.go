//go:build unix

package driver_test

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/msgr-dev/msgr/core/event/driver"
	"github.com/msgr-dev/msgr/core/internal/leakcheck"
)

// Select-only cases, beyond the conformance suite.

func newSelect(t *testing.T) driver.Driver {
	t.Helper()
	d, err := driver.New("select")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// dupAt duplicates fd onto exactly the number want, or skips the test if
// that number is taken (F_DUPFD never replaces an open fd, unlike dup2).
func dupAt(t *testing.T, fd, want int) int {
	t.Helper()
	got, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, want)
	if err != nil {
		t.Skipf("F_DUPFD %d: %v", want, err)
	}
	t.Cleanup(func() { unix.Close(got) })
	if got != want {
		t.Skipf("fd %d is taken (got %d)", want, got)
	}
	return got
}

// fds at the edges of fd_set words and of FD_SETSIZE itself: each is
// reported alone and with the right bits, and 1023 is the last that fits.
func TestSelectWordEdges(t *testing.T) {
	snap := leakcheck.Take()
	t.Cleanup(func() { snap.Check(t) })
	d := newSelect(t)
	if driver.FDSetSize != 1024 {
		t.Fatalf("FDSetSize = %d, want 1024", driver.FDSetSize)
	}
	r, w := pipe(t)
	var fds []int
	for _, n := range []int{31, 32, 63, 64, 65, 511, 1023} {
		fds = append(fds, dupAt(t, r, n))
	}
	for _, fd := range fds {
		must(t, d.Add(fd, driver.None, driver.Readable))
	}
	if err := d.Add(dupAt(t, r, 1024), driver.None, driver.Readable); !errors.Is(err, driver.ErrFDRange) {
		t.Fatalf("Add(1024) = %v, want ErrFDRange", err)
	}
	if got := wait(t, d, 10*time.Millisecond); len(got) != 0 {
		t.Fatalf("empty pipe reported: %v", got)
	}
	write1(t, w) // every dup shares the pipe: all readable at once
	got := wait(t, d, time.Second)
	if len(got) != len(fds) {
		t.Fatalf("got %v, want exactly %v readable", got, fds)
	}
	for _, fd := range fds {
		if got[fd] != driver.Readable {
			t.Fatalf("fd %d: %v in %v", fd, got[fd], got)
		}
	}
	// Deleting from the top down shrinks the scanned range each time; the
	// rest stays reported.
	for i := len(fds) - 1; i > 0; i-- {
		must(t, d.Del(fds[i], driver.Readable, driver.Readable))
		got := wait(t, d, time.Second)
		if len(got) != i || got[fds[i-1]] != driver.Readable {
			t.Fatalf("after deleting fd %d: %v, want the %d below it", fds[i], got, i)
		}
	}
	// Both bits on one fd are merged into one event.
	a, _ := socketpair(t)
	must(t, d.Add(a, driver.None, driver.Readable|driver.Writable))
	if got := wait(t, d, time.Second); got[a] != driver.Writable {
		t.Fatalf("idle socket with r|w interest: %v, want {%d: w}", got, a)
	}
}

// select(2) fails as a whole with EBADF when one registered fd was closed;
// Wait must name that fd (r|w, as poll's POLLNVAL) and keep reporting the
// others once it is deleted.
func TestSelectClosedFDReported(t *testing.T) {
	snap := leakcheck.Take()
	t.Cleanup(func() { snap.Check(t) })
	d := newSelect(t)
	r1, w1 := pipe(t)
	var p [2]int
	must(t, unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC))
	must(t, d.Add(r1, driver.None, driver.Readable))
	must(t, d.Add(p[0], driver.None, driver.Readable))
	unix.Close(p[0])
	unix.Close(p[1])
	for range 2 { // reported at every Wait until deleted
		if got := wait(t, d, time.Second); len(got) != 1 || got[p[0]] != driver.Readable|driver.Writable {
			t.Fatalf("closed fd %d: %v, want {%d: rw}", p[0], got, p[0])
		}
	}
	must(t, d.Del(p[0], driver.Readable, driver.Readable))
	write1(t, w1)
	if got := wait(t, d, time.Second); len(got) != 1 || got[r1] != driver.Readable {
		t.Fatalf("after Del of the closed fd: %v, want {%d: r}", got, r1)
	}
}

// A Center-style default: the stack selects "select" by name through New.
func TestSelectByName(t *testing.T) {
	d := newSelect(t)
	if d.Name() != "select" {
		t.Fatalf("Name() = %q", d.Name())
	}
	if l, ok := d.(driver.Limiter); !ok || l.MaxFD() != driver.FDSetSize {
		t.Fatalf("select is not a Limiter with MaxFD %d", driver.FDSetSize)
	}
	for _, name := range driver.Names() {
		dd, err := driver.New(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := dd.(driver.Limiter); ok != (name == "select") {
			t.Errorf("%s: Limiter = %v", name, ok)
		}
		dd.Close()
	}
}
