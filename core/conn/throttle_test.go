package conn

import (
	"sync"
	"testing"
)

func TestThrottleNilIsUnlimited(t *testing.T) {
	var th *Throttle
	th.Take(1 << 40)
	th.Put(5)
	if th.Full() || th.Max() != 0 || th.Current() != 0 || th.wait(&Connection{}) {
		t.Fatal("nil throttle limits something")
	}
	if NewThrottle("x", 0) != nil || NewThrottle("x", -1) != nil {
		t.Fatal("a non-positive max must mean unlimited (nil)")
	}
	var b *Budget
	b.Take(10)
	b.Release(10)
	if b.full() {
		t.Fatal("nil budget is full")
	}
}

func TestThrottleFullAndWake(t *testing.T) {
	th := NewThrottle("t", 100)
	c := &Connection{} // no worker: its wake-up is a no-op; nwait shows the registration
	th.Take(60)
	if th.Full() {
		t.Fatal("full at 60/100")
	}
	if th.wait(c) {
		t.Fatal("wait registered on a throttle that is not full")
	}
	th.Take(60)
	if !th.Full() || th.Current() != 120 {
		t.Fatalf("not full at %d/100", th.Current())
	}
	if !th.wait(c) {
		t.Fatal("wait on a full throttle returned false")
	}
	if th.nwait.Load() != 1 || th.Waits() == 0 {
		t.Fatalf("waiter not registered: %d", th.nwait.Load())
	}
	th.Put(10) // 110: still full, waiter stays
	if th.nwait.Load() != 1 {
		t.Fatal("woken while still full")
	}
	th.Put(30) // 80: below max, waiters released
	if th.nwait.Load() != 0 {
		t.Fatal("waiter not released below max")
	}
	// forget drops a registration.
	th.Take(100)
	th.wait(c)
	th.forget(c)
	if th.nwait.Load() != 0 {
		t.Fatal("forget left the waiter")
	}
}

// TestThrottleConcurrent: takes and puts from many goroutines balance.
func TestThrottleConcurrent(t *testing.T) {
	th := NewThrottle("t", 1000)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &Connection{}
			for i := 0; i < 2000; i++ {
				th.Take(7)
				if th.Full() {
					th.wait(c)
				}
				th.Put(7)
			}
			th.forget(c)
		}()
	}
	wg.Wait()
	if th.Current() != 0 || th.nwait.Load() != 0 {
		t.Fatalf("unbalanced: cur %d waiters %d", th.Current(), th.nwait.Load())
	}
}

func TestBudgetTakesEveryThrottle(t *testing.T) {
	b := &Budget{Dispatch: NewThrottle("d", 1000), Bytes: NewThrottle("b", 500), Msgs: NewThrottle("m", 3)}
	b.Take(100)
	b.Take(100)
	if b.Dispatch.Current() != 200 || b.Bytes.Current() != 200 || b.Msgs.Current() != 2 || b.full() {
		t.Fatalf("after two takes: %d %d %d", b.Dispatch.Current(), b.Bytes.Current(), b.Msgs.Current())
	}
	b.Take(1)
	if !b.full() {
		t.Fatal("3 messages of a 3-message budget is not full")
	}
	b.Release(100)
	b.Release(100)
	b.Release(1)
	if b.Dispatch.Current() != 0 || b.Bytes.Current() != 0 || b.Msgs.Current() != 0 {
		t.Fatal("release did not return everything")
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{StateNone: "none", StateOpen: "open", StateClosed: "closed", State(99): "State(99)"} {
		if s.String() != want {
			t.Errorf("%d: %q", s, s.String())
		}
	}
}
