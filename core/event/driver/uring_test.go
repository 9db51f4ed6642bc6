//go:build linux

package driver_test

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/msgr-dev/msgr/core/event/driver"
	"github.com/msgr-dev/msgr/core/internal/leakcheck"
)

// newUring makes a ring for a test, on a locked thread (the ring may only
// be entered by one thread), or skips where the kernel refuses io_uring.
func newUring(t *testing.T) *driver.Uring {
	t.Helper()
	if err := driver.UringAvailable(); err != nil {
		t.Skipf("this machine cannot use io_uring: %v", err)
	}
	snap := leakcheck.Take()
	t.Cleanup(func() { snap.Check(t) })
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	d, err := driver.NewUring()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// waitOps waits until the ring has reaped at least one completion and
// returns them, run: each Op is idle again afterwards.
func waitOps(t *testing.T, d *driver.Uring) []driver.Completion {
	t.Helper()
	evs := make([]driver.Event, 4)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := d.Wait(evs, 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if done := d.Completions(); len(done) > 0 {
			out := append([]driver.Completion(nil), done...)
			for _, c := range out {
				if !c.Op.InFlight() {
					t.Fatalf("op idle before its completion ran")
				}
				c.Run()
			}
			return out
		}
	}
	t.Fatal("no completion within 2s")
	return nil
}

// A recv completes with the bytes the peer sent, into the caller's buffer,
// and a sendmsg with the count it sent; both ops are idle after Run and
// can be started again.
func TestUringRecvSendmsg(t *testing.T) {
	d := newUring(t)
	a, b := socketpair(t)
	buf := make([]byte, 64)
	var got []int32
	recv := &driver.Op{Done: func(res int32) { got = append(got, res) }}
	must(t, d.Recv(recv, a, buf))
	if !recv.InFlight() {
		t.Fatal("recv not in flight after Recv")
	}
	if err := d.Recv(recv, a, buf); err == nil {
		t.Fatal("a second Recv on an op in flight succeeded")
	}
	if done := waitNone(t, d); done != 0 {
		t.Fatalf("%d completions before the peer wrote", done)
	}
	if _, err := unix.Write(b, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	waitOps(t, d)
	if len(got) != 1 || got[0] != 5 || string(buf[:5]) != "hello" {
		t.Fatalf("recv results %v, buf %q; want [5] and hello", got, buf[:5])
	}
	if recv.InFlight() {
		t.Fatal("recv still in flight after its completion ran")
	}

	var sent int32
	send := &driver.Op{Done: func(res int32) { sent = res }}
	x, y := []byte("abc"), []byte("defg")
	iov := []unix.Iovec{{Base: &x[0]}, {Base: &y[0]}}
	iov[0].SetLen(len(x))
	iov[1].SetLen(len(y))
	msg := &unix.Msghdr{Iov: &iov[0]}
	msg.SetIovlen(2)
	must(t, d.Sendmsg(send, b, msg, unix.MSG_NOSIGNAL))
	waitOps(t, d)
	if sent != 7 {
		t.Fatalf("sendmsg result %d, want 7", sent)
	}
	n, err := unix.Read(a, buf)
	if err != nil || string(buf[:n]) != "abcdefg" {
		t.Fatalf("peer read %q, %v; want abcdefg", buf[:n], err)
	}
	must(t, d.Send(send, b, y, unix.MSG_NOSIGNAL))
	waitOps(t, d)
	if sent != 4 {
		t.Fatalf("send result %d, want 4", sent)
	}
	if n, err = unix.Read(a, buf); err != nil || string(buf[:n]) != "defg" {
		t.Fatalf("peer read %q, %v; want defg", buf[:n], err)
	}
	runtime.KeepAlive(x)
	runtime.KeepAlive(y)
}

// waitNone waits briefly and returns how many completions came.
func waitNone(t *testing.T, d *driver.Uring) int {
	t.Helper()
	evs := make([]driver.Event, 4)
	if _, err := d.Wait(evs, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	return len(d.Completions())
}

// Cancel ends a recv that waits for data with -ECANCELED; Drain does the
// same for every op in flight and refuses new ones.
func TestUringCancelDrain(t *testing.T) {
	d := newUring(t)
	a, _ := socketpair(t)
	c, _ := socketpair(t)
	buf := make([]byte, 64)
	var res []int32
	done := func(r int32) { res = append(res, r) }
	op1, op2 := &driver.Op{Done: done}, &driver.Op{Done: done}
	must(t, d.Recv(op1, a, buf[:32]))
	waitNone(t, d) // submitted, now waiting for data
	must(t, d.Cancel(op1))
	waitOps(t, d)
	if len(res) != 1 || res[0] != -int32(unix.ECANCELED) {
		t.Fatalf("cancelled recv results %v, want [-ECANCELED]", res)
	}
	res = nil
	must(t, d.Recv(op1, a, buf[:32]))
	must(t, d.Recv(op2, c, buf[32:]))
	d.Drain(time.Second)
	for _, cp := range d.Completions() {
		cp.Run()
	}
	if len(res) != 2 || res[0] != -int32(unix.ECANCELED) || res[1] != -int32(unix.ECANCELED) {
		t.Fatalf("drained results %v, want two -ECANCELED", res)
	}
	if op1.InFlight() || op2.InFlight() {
		t.Fatal("ops in flight after Drain")
	}
	if err := d.Recv(op1, a, buf); err == nil {
		t.Fatal("Recv after Drain succeeded")
	}
}
