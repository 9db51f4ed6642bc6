package driver_test

import (
	"errors"
	"runtime"
	"sort"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/msgr-dev/msgr/core/event/driver"
	"github.com/msgr-dev/msgr/core/internal/leakcheck"
)

// conformance is the one suite every backend must pass. Each case names its
// driver in the subtest name and checks d.Name() first (Ceph once reported
// the wrong backend name from a strcmp slip).
var conformance = []struct {
	name string
	fn   func(t *testing.T, d driver.Driver)
}{
	{"Readable", testReadable},
	{"Writable", testWritable},
	{"Modify", testModify},
	{"Delete", testDelete},
	{"HangUp", testHangUp},
	{"ClosedFD", testClosedFD},
	{"ManyFDs", testManyFDs},
	{"FDLimit", testFDLimit},
	{"Overflow", testOverflow},
	{"Timeout", testTimeout},
	{"InvalidArgs", testInvalidArgs},
	{"WaitNoAlloc", testWaitNoAlloc},
}

func TestConformance(t *testing.T) {
	for _, name := range driver.Names() {
		for _, tc := range conformance {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				// io_uring's ring is entered by one thread only, as the
				// Center's locked loop does.
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				// Cleanups run last-in first-out: this one, registered
				// first, runs after the helpers have closed their fds.
				snap := leakcheck.Take()
				t.Cleanup(func() { snap.Check(t) })
				d, err := driver.New(name)
				if err != nil {
					t.Fatalf("New(%q): %v", name, err)
				}
				if got := d.Name(); got != name {
					t.Fatalf("New(%q).Name() = %q", name, got)
				}
				defer func() {
					if err := d.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
					if err := d.Close(); err != nil {
						t.Errorf("second Close: %v", err)
					}
				}()
				tc.fn(t, d)
			})
		}
	}
}

func TestNew(t *testing.T) {
	if _, err := driver.New("kqueue-on-linux"); err == nil {
		t.Error("New(unknown) succeeded")
	}
	d, err := driver.New("")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got, want := d.Name(), driver.Names()[0]; got != want {
		t.Errorf("default driver %q, want %q", got, want)
	}
}

// --- helpers ---

func pipe(t *testing.T) (r, w int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
	return p[0], p[1]
}

func socketpair(t *testing.T) (a, b int) {
	t.Helper()
	p, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
	return p[0], p[1]
}

func write1(t *testing.T, fd int) {
	t.Helper()
	if _, err := unix.Write(fd, []byte{'x'}); err != nil {
		t.Fatal(err)
	}
}

func read1(t *testing.T, fd int) {
	t.Helper()
	var b [1]byte
	if _, err := unix.Read(fd, b[:]); err != nil {
		t.Fatal(err)
	}
}

// wait returns the events of one Wait as a map fd -> mask.
func wait(t *testing.T, d driver.Driver, timeout time.Duration) map[int]driver.Mask {
	t.Helper()
	evs := make([]driver.Event, 16)
	n, err := d.Wait(evs, timeout)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	m := map[int]driver.Mask{}
	for _, e := range evs[:n] {
		if _, dup := m[e.Fd]; dup {
			t.Fatalf("fd %d reported twice in one Wait", e.Fd)
		}
		m[e.Fd] = e.Mask
	}
	return m
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// --- cases ---

func testReadable(t *testing.T, d driver.Driver) {
	r, w := pipe(t)
	must(t, d.Add(r, driver.None, driver.Readable))
	if got := wait(t, d, 10*time.Millisecond); len(got) != 0 {
		t.Fatalf("empty pipe reported: %v", got)
	}
	write1(t, w)
	got := wait(t, d, time.Second)
	if got[r] != driver.Readable || len(got) != 1 {
		t.Fatalf("after write: %v, want {%d: r}", got, r)
	}
	// Level-triggered: still readable until drained.
	if got := wait(t, d, 0); got[r] != driver.Readable {
		t.Fatalf("undrained pipe not reported again: %v", got)
	}
	read1(t, r)
	if got := wait(t, d, 0); len(got) != 0 {
		t.Fatalf("drained pipe reported: %v", got)
	}
}

func testWritable(t *testing.T, d driver.Driver) {
	a, _ := socketpair(t)
	must(t, d.Add(a, driver.None, driver.Writable))
	got := wait(t, d, time.Second)
	if got[a] != driver.Writable || len(got) != 1 {
		t.Fatalf("got %v, want {%d: w}", got, a)
	}
	// Fill the socket buffer: no longer writable.
	buf := make([]byte, 64<<10)
	for i := 0; i < 1000; i++ {
		if _, err := unix.Write(a, buf); err != nil {
			if !errors.Is(err, unix.EAGAIN) {
				t.Fatal(err)
			}
			break
		}
	}
	if got := wait(t, d, 10*time.Millisecond); len(got) != 0 {
		t.Fatalf("full socket reported writable: %v", got)
	}
}

func testModify(t *testing.T, d driver.Driver) {
	a, b := socketpair(t)
	must(t, d.Add(a, driver.None, driver.Readable))
	if got := wait(t, d, 0); len(got) != 0 {
		t.Fatalf("read interest on idle socket reported: %v", got)
	}
	// Add write interest: now writable is reported, readable still not.
	must(t, d.Add(a, driver.Readable, driver.Writable))
	if got := wait(t, d, time.Second); got[a] != driver.Writable {
		t.Fatalf("after adding write: %v, want {%d: w}", got, a)
	}
	// Adding a present bit is not an error and changes nothing.
	must(t, d.Add(a, driver.Readable|driver.Writable, driver.Writable))
	write1(t, b)
	if got := wait(t, d, time.Second); got[a] != driver.Readable|driver.Writable {
		t.Fatalf("with data: %v, want {%d: rw}", got, a)
	}
	// Remove write interest: only readable is left.
	must(t, d.Del(a, driver.Readable|driver.Writable, driver.Writable))
	if got := wait(t, d, time.Second); got[a] != driver.Readable {
		t.Fatalf("after removing write: %v, want {%d: r}", got, a)
	}
	read1(t, a)
	if got := wait(t, d, 10*time.Millisecond); len(got) != 0 {
		t.Fatalf("drained, read-only interest reported: %v", got)
	}
}

func testDelete(t *testing.T, d driver.Driver) {
	r, w := pipe(t)
	r2, w2 := pipe(t)
	must(t, d.Add(r, driver.None, driver.Readable))
	must(t, d.Add(r2, driver.None, driver.Readable))
	write1(t, w)
	write1(t, w2)
	must(t, d.Del(r, driver.Readable, driver.Readable))
	if got := wait(t, d, time.Second); len(got) != 1 || got[r2] != driver.Readable {
		t.Fatalf("after Del(%d): %v, want only {%d: r}", r, got, r2)
	}
	// Deleting again (or bits never added) is a no-op.
	must(t, d.Del(r, driver.None, driver.Readable))
	must(t, d.Del(r2, driver.Readable, driver.Writable))
	if got := wait(t, d, 0); got[r2] != driver.Readable {
		t.Fatalf("Del of an unregistered bit dropped the fd: %v", got)
	}
	// Re-adding works after a delete.
	must(t, d.Add(r, driver.None, driver.Readable))
	if got := wait(t, d, time.Second); got[r] != driver.Readable {
		t.Fatalf("re-added fd not reported: %v", got)
	}
}

func testHangUp(t *testing.T, d driver.Driver) {
	a, b := socketpair(t)
	must(t, d.Add(a, driver.None, driver.Readable))
	unix.Shutdown(b, unix.SHUT_RDWR)
	// EOF reads as readable, so the handler's read sees it.
	if got := wait(t, d, time.Second); got[a]&driver.Readable == 0 {
		t.Fatalf("peer shutdown: %v, want readable on %d", got, a)
	}
}

func testClosedFD(t *testing.T, d driver.Driver) {
	var p [2]int
	must(t, unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC))
	r, w := p[0], p[1]
	must(t, d.Add(r, driver.None, driver.Readable))
	write1(t, w)
	unix.Close(r)
	unix.Close(w)
	// No panic, no hang. epoll forgets the fd; poll reports it (POLLNVAL)
	// as r|w until Del. Either is allowed; nothing else may be reported.
	got := wait(t, d, 50*time.Millisecond)
	if m, ok := got[r]; len(got) > 1 || (ok && m != driver.Readable|driver.Writable) {
		t.Fatalf("closed fd: %v", got)
	}
	must(t, d.Del(r, driver.Readable, driver.Readable))
	if got := wait(t, d, 10*time.Millisecond); len(got) != 0 {
		t.Fatalf("after Del of closed fd: %v", got)
	}
	// Adding an fd that is not open fails in every backend.
	if err := d.Add(r, driver.None, driver.Readable); err == nil {
		t.Fatal("Add of a closed fd succeeded")
	}
}

func testManyFDs(t *testing.T, d driver.Driver) {
	n := 1000 // 2,000 fds: past select's FD_SETSIZE on purpose
	if l, ok := d.(driver.Limiter); ok {
		// select can only watch fds below MaxFD (1024); testFDLimit checks
		// what happens beyond. New fds take the lowest free numbers, so
		// with k fds open the 2n new ones all stay below k+2n.
		n = min(n, (l.MaxFD()-leakcheck.FDCount()-16)/2)
		t.Logf("%s watches fds below %d only: %d pipes instead of 1000", d.Name(), l.MaxFD(), n)
		if n < 100 {
			t.Fatalf("only room for %d pipes below fd %d: too many fds open", n, l.MaxFD())
		}
	}
	must(t, d.Resize(2*n+64))
	rs := make([]int, n)
	ws := make([]int, n)
	for i := range rs {
		rs[i], ws[i] = pipe(t)
		must(t, d.Add(rs[i], driver.None, driver.Readable))
	}
	want := map[int]bool{}
	for i := 0; i < n; i += 7 {
		write1(t, ws[i])
		want[rs[i]] = true
	}
	// Collect with a small slice, draining what is reported.
	got := map[int]bool{}
	evs := make([]driver.Event, 32)
	for iter := 0; iter < 100 && len(got) < len(want); iter++ {
		k, err := d.Wait(evs, time.Second)
		must(t, err)
		for _, e := range evs[:k] {
			if !want[e.Fd] || got[e.Fd] || e.Mask != driver.Readable {
				t.Fatalf("unexpected event %+v", e)
			}
			got[e.Fd] = true
			read1(t, e.Fd)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("saw %d of %d ready fds", len(got), len(want))
	}
	// Delete half, write to all: only the other half is reported.
	for i := 0; i < n; i += 2 {
		must(t, d.Del(rs[i], driver.Readable, driver.Readable))
	}
	for i := 0; i < n; i++ {
		write1(t, ws[i])
	}
	got = map[int]bool{}
	for iter := 0; iter < 100 && len(got) < n/2; iter++ {
		k, err := d.Wait(evs, time.Second)
		must(t, err)
		for _, e := range evs[:k] {
			got[e.Fd] = true
			read1(t, e.Fd)
		}
	}
	for i := 0; i < n; i++ {
		if got[rs[i]] != (i%2 == 1) {
			t.Fatalf("fd %d (index %d): reported=%v", rs[i], i, got[rs[i]])
		}
	}
}

// testOverflow: more ready fds than the event slice holds, none drained.
// Level-triggered backends must still report every one within a few waits
// (no fd starves behind the ones at the front).
func testOverflow(t *testing.T, d driver.Driver) {
	const n = 40
	var want []int
	for i := 0; i < n; i++ {
		r, w := pipe(t)
		must(t, d.Add(r, driver.None, driver.Readable))
		write1(t, w)
		want = append(want, r)
	}
	seen := map[int]bool{}
	evs := make([]driver.Event, 8)
	for iter := 0; iter < 2*n/len(evs); iter++ {
		k, err := d.Wait(evs, time.Second)
		must(t, err)
		if k != len(evs) {
			t.Fatalf("Wait returned %d events, want a full slice of %d", k, len(evs))
		}
		for _, e := range evs[:k] {
			seen[e.Fd] = true
		}
	}
	var missing []int
	for _, fd := range want {
		if !seen[fd] {
			missing = append(missing, fd)
		}
	}
	sort.Ints(missing)
	if len(missing) > 0 {
		t.Fatalf("fds never reported in %d waits: %v", 2*n/len(evs), missing)
	}
}

func testTimeout(t *testing.T, d driver.Driver) {
	r, _ := pipe(t)
	evs := make([]driver.Event, 4)
	check := func(what string) {
		// A signal (the Go runtime preempts with SIGURG) may cut a wait
		// short: the contract says EINTR returns 0 events. So wait again,
		// a few times at most; what must hold is no event and a wait that
		// lasts the timeout, not less and not much more.
		start := time.Now()
		var el time.Duration
		for i := 0; i < 5; i++ {
			n, err := d.Wait(evs, 50*time.Millisecond)
			el = time.Since(start)
			must(t, err)
			if n != 0 {
				t.Fatalf("%s: %d events", what, n)
			}
			if el >= 45*time.Millisecond {
				break
			}
		}
		if el < 45*time.Millisecond || el > time.Second {
			t.Fatalf("%s: 50ms waits took %v", what, el)
		}
	}
	check("no fds")
	must(t, d.Add(r, driver.None, driver.Readable))
	check("idle fd")
	start := time.Now()
	n, err := d.Wait(evs, 0)
	must(t, err)
	if el := time.Since(start); n != 0 || el > 500*time.Millisecond {
		t.Fatalf("zero timeout: n=%d after %v", n, el)
	}
}

func testInvalidArgs(t *testing.T, d driver.Driver) {
	r, _ := pipe(t)
	for _, tc := range []struct {
		fd   int
		mask driver.Mask
	}{{-1, driver.Readable}, {r, driver.None}, {r, driver.Mask(4)}} {
		if err := d.Add(tc.fd, driver.None, tc.mask); !errors.Is(err, driver.ErrInvalid) {
			t.Errorf("Add(%d, %v): %v, want ErrInvalid", tc.fd, tc.mask, err)
		}
		if err := d.Del(tc.fd, driver.Readable, tc.mask); !errors.Is(err, driver.ErrInvalid) {
			t.Errorf("Del(%d, %v): %v, want ErrInvalid", tc.fd, tc.mask, err)
		}
	}
	if _, err := d.Wait(nil, 0); !errors.Is(err, driver.ErrInvalid) {
		t.Errorf("Wait(nil): %v, want ErrInvalid", err)
	}
	if err := d.Resize(-1); (d.Name() == "poll" || d.Name() == "select") && err == nil {
		t.Errorf("%s Resize(-1) succeeded", d.Name())
	}
}

// testFDLimit: an fd number above 1024 (FD_SETSIZE). A backend without a
// limit watches it like any other; a Limiter (select) refuses it at Add with
// ErrFDRange, instead of writing past its fd_set, and is not disturbed.
func testFDLimit(t *testing.T, d driver.Driver) {
	r, w := pipe(t)
	const want = 1500
	high, err := unix.FcntlInt(uintptr(r), unix.F_DUPFD_CLOEXEC, want)
	if err != nil {
		t.Skipf("cannot dup to fd >= %d (RLIMIT_NOFILE?): %v", want, err)
	}
	defer unix.Close(high)
	if high < want {
		t.Fatalf("F_DUPFD gave fd %d, want >= %d", high, want)
	}
	l, limited := d.(driver.Limiter)
	if limited && high < l.MaxFD() {
		t.Fatalf("MaxFD %d: fd %d is not beyond it", l.MaxFD(), high)
	}
	err = d.Add(high, driver.None, driver.Readable)
	if limited {
		if !errors.Is(err, driver.ErrFDRange) {
			t.Fatalf("Add(fd %d) with MaxFD %d = %v, want ErrFDRange", high, l.MaxFD(), err)
		}
		// Nothing was registered: Del is a no-op, and fds below the limit
		// still work.
		must(t, d.Del(high, driver.Readable, driver.Readable))
		must(t, d.Add(r, driver.None, driver.Readable))
		write1(t, w)
		if got := wait(t, d, time.Second); len(got) != 1 || got[r] != driver.Readable {
			t.Fatalf("after a refused Add: %v, want {%d: r}", got, r)
		}
		return
	}
	must(t, err)
	write1(t, w)
	if got := wait(t, d, time.Second); len(got) != 1 || got[high] != driver.Readable {
		t.Fatalf("fd %d: %v, want {%d: r}", high, got, high)
	}
	must(t, d.Del(high, driver.Readable, driver.Readable))
}

func testWaitNoAlloc(t *testing.T, d driver.Driver) {
	r, w := pipe(t)
	must(t, d.Add(r, driver.None, driver.Readable))
	write1(t, w)
	evs := make([]driver.Event, 8)
	d.Wait(evs, 0) // first call may size internal buffers
	allocs := testing.AllocsPerRun(100, func() {
		if n, _ := d.Wait(evs, time.Millisecond); n != 1 {
			t.Fatalf("n = %d", n)
		}
	})
	if allocs != 0 {
		t.Fatalf("Wait allocates %v times per call", allocs)
	}
}

func BenchmarkWait(b *testing.B) {
	for _, name := range driver.Names() {
		b.Run(name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			d, err := driver.New(name)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			var p [2]int
			unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC)
			defer unix.Close(p[0])
			defer unix.Close(p[1])
			d.Add(p[0], driver.None, driver.Readable)
			unix.Write(p[1], []byte{1})
			evs := make([]driver.Event, 64)
			b.ReportAllocs()
			for b.Loop() {
				d.Wait(evs, 0)
			}
		})
	}
}
