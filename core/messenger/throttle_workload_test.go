package messenger

import (
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/dispatch"
	"github.com/msgr-dev/msgr/core/internal/leakcheck"
	"github.com/msgr-dev/msgr/core/msg"
)

// slowSink is a queue dispatcher that takes its time over every message
// and checks it (the workload header of synthetic_workload_test.go).
type slowSink struct {
	dispatch.Base
	delay time.Duration

	mu   sync.Mutex
	next uint64
	bad  []string
	n    atomic.Int64
}

func (s *slowSink) Dispatch(c dispatch.Conn, m *msg.Message) bool {
	time.Sleep(s.delay)
	seq := binary.LittleEndian.Uint64(m.Front[8:])
	ok := uint32(len(m.Data)) == binary.LittleEndian.Uint32(m.Front[20:]) &&
		crc32.ChecksumIEEE(m.Data) == binary.LittleEndian.Uint32(m.Front[16:])
	m.Release()
	s.mu.Lock()
	if seq != s.next && len(s.bad) < 10 {
		s.bad = append(s.bad, "out of order: got seq "+itoa(seq)+", want "+itoa(s.next))
	}
	if !ok && len(s.bad) < 10 {
		s.bad = append(s.bad, "bad checksum on seq "+itoa(seq))
	}
	s.next = seq + 1
	s.mu.Unlock()
	s.n.Add(1)
	return true
}

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

// TestDispatchThrottleSlowDispatcher: a slow dispatcher behind a 1 MiB
// dispatch throttle. The client sends 96 MiB as fast as Send takes it;
// the server must stop reading when the budget is used up (TCP then
// holds the sender back), so the bytes it holds for the dispatcher never
// exceed the budget plus one read buffer and one message, its heap does
// not grow with the backlog, and nothing is lost or reordered.
func TestDispatchThrottleSlowDispatcher(t *testing.T) {
	defer leakcheck.Take().Check(t)
	const (
		budget   = 1 << 20
		readBuf  = 128 << 10 // core/conn's default read buffer
		maxMsg   = 64 << 10
		total    = 96 << 20
		heapRoom = 24 << 20 // a quarter of the 96 MiB an unthrottled server would hold
	)
	o := testOpts(t)
	o.DispatchThrottleBytes = budget
	sink := &slowSink{delay: 100 * time.Microsecond}
	srv := newServer(t, o, 1, sink)
	srv.SetPolicy(msg.EntityClient, msg.StatefulServer(0))
	cli := newClient(t, o, 1, nil)
	cli.SetPolicy(msg.EntityOSD, msg.LosslessClient(0))
	defer shutdown(t, cli, srv)
	c, err := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
	if err != nil {
		t.Fatal(err)
	}

	// HeapAlloc counts garbage not yet collected: collect often, so that
	// what is measured is what the messengers hold, whatever the
	// transport's allocation pattern (the default GOGC lets the heap double).
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap0 := ms.HeapAlloc

	// Watch the server's throttle and the heap while the data flows.
	var maxHeld, maxHeap atomic.Int64
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if h := srv.Perf().DispatchThrottleBytes; h > maxHeld.Load() {
				maxHeld.Store(h)
			}
			if i%20 == 0 { // ReadMemStats stops the world: not every tick
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if h := int64(ms.HeapAlloc) - int64(heap0); h > maxHeap.Load() {
					maxHeap.Store(h)
				}
			}
		}
	}()

	// Payloads are slices of one shared buffer, so the client's backlog
	// costs message headers, not copies of the data.
	r := rand.New(rand.NewPCG(3, 3))
	var n uint64
	for sent := 0; sent < total; n++ {
		size := 16<<10 + r.IntN(maxMsg-16<<10+1)
		m := wlMessage(r, 0, 0, msg.PrioDefault, n, false)
		// wlMessage draws its own size; force this one.
		off := r.IntN(len(wlSrc) - size + 1)
		m.Data = wlSrc[off : off+size]
		binary.LittleEndian.PutUint32(m.Front[16:], crc32.ChecksumIEEE(m.Data))
		binary.LittleEndian.PutUint32(m.Front[20:], uint32(size))
		if err := c.Send(m); err != nil {
			t.Fatal(err)
		}
		sent += size
	}
	deadline := time.Now().Add(60 * time.Second)
	for sink.n.Load() < int64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages dispatched after 60 s", sink.n.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	<-watched

	p := srv.Perf()
	t.Logf("%d messages (%d MiB): throttle peak %d bytes of %d, %d stalls; heap peak +%d MiB",
		n, total>>20, maxHeld.Load(), p.DispatchThrottleMax, p.ThrottleStalls, maxHeap.Load()>>20)
	if p.DispatchThrottleMax != budget {
		t.Errorf("throttle max %d, want %d", p.DispatchThrottleMax, budget)
	}
	if h := maxHeld.Load(); h > budget+readBuf+maxMsg+wlHdrLen+64 {
		t.Errorf("server held %d bytes for the dispatcher, over budget %d + read buffer %d + a message", h, budget, readBuf)
	}
	if maxHeld.Load() == 0 {
		t.Errorf("the throttle never held anything: not measured")
	}
	if p.ThrottleStalls == 0 {
		t.Errorf("the server never stalled on the throttle")
	}
	if h := maxHeap.Load(); h > heapRoom {
		t.Errorf("heap grew by %d MiB with a 1 MiB throttle (limit %d MiB)", h>>20, heapRoom>>20)
	}
	sink.mu.Lock()
	if len(sink.bad) > 0 {
		t.Errorf("bad deliveries: %v", sink.bad)
	}
	sink.mu.Unlock()
	if got := sink.n.Load(); got != int64(n) {
		t.Errorf("dispatched %d, sent %d", got, n)
	}
	// The budget comes back after the dispatcher returns: wait (bounded).
	held := srv.Perf().DispatchThrottleBytes
	for deadline := time.Now().Add(5 * time.Second); held != 0 && time.Now().Before(deadline); held = srv.Perf().DispatchThrottleBytes {
		time.Sleep(time.Millisecond)
	}
	if held != 0 {
		t.Errorf("budget not returned: %d held after the last dispatch", held)
	}
}
