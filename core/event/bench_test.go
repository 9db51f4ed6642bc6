package event_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/event"
)

var busyPolls = []time.Duration{0, 20 * time.Microsecond}

func benchCenter(b *testing.B, busy time.Duration) *event.Center {
	b.Helper()
	c, err := event.New(event.Options{BusyPoll: busy})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Stop() })
	return c
}

// BenchmarkSubmitWait is the cross-thread round trip: queue, wake (or find
// the loop spinning), run, signal back.
func BenchmarkSubmitWait(b *testing.B) {
	for _, busy := range busyPolls {
		b.Run(fmt.Sprintf("busypoll=%v", busy), func(b *testing.B) {
			c := benchCenter(b, busy)
			noop := func() {}
			c.SubmitWait(noop) // warm the waiter pool
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := c.SubmitWait(noop); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			s := c.Stats()
			b.ReportMetric(float64(s.Wakeups)/float64(b.N), "wakeups/op")
		})
	}
}

// BenchmarkSubmit is one-way throughput from one goroutine; the loop drains
// concurrently. A SubmitWait every 4096 events bounds the queue.
func BenchmarkSubmit(b *testing.B) {
	for _, busy := range busyPolls {
		b.Run(fmt.Sprintf("busypoll=%v", busy), func(b *testing.B) {
			c := benchCenter(b, busy)
			n := 0
			inc := func() { n++ }
			c.SubmitWait(inc)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%4096 == 4095 {
					c.SubmitWait(inc)
				} else if err := c.Submit(inc); err != nil {
					b.Fatal(err)
				}
			}
			c.SubmitWait(func() {})
			b.StopTimer()
			b.ReportMetric(float64(c.Stats().Wakeups)/float64(b.N), "wakeups/op")
		})
	}
}

// BenchmarkSubmitParallel: GOMAXPROCS submitters at once.
func BenchmarkSubmitParallel(b *testing.B) {
	c := benchCenter(b, 0)
	noop := func() {}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if i++; i%4096 == 0 {
				c.SubmitWait(noop)
			} else {
				c.Submit(noop)
			}
		}
	})
	c.SubmitWait(noop)
	b.ReportMetric(float64(c.Stats().Wakeups)/float64(b.N), "wakeups/op")
}

// BenchmarkTimerAddFire: a timer that re-arms itself with delay 0; each op
// is one loop iteration (zero-timeout wait) plus add and fire.
func BenchmarkTimerAddFire(b *testing.B) {
	for _, busy := range busyPolls {
		b.Run(fmt.Sprintf("busypoll=%v", busy), func(b *testing.B) {
			c := benchCenter(b, busy)
			done := make(chan struct{})
			var left int
			var fire func()
			fire = func() {
				if left--; left <= 0 {
					done <- struct{}{}
					return
				}
				c.AddTimer(0, fire)
			}
			run := func(n int) {
				c.SubmitWait(func() { left = n; c.AddTimer(0, fire) })
				<-done
			}
			run(100) // grow the slab and heap once
			b.ReportAllocs()
			b.ResetTimer()
			run(b.N)
		})
	}
}

// BenchmarkTimerAddCancel: add a far timer and cancel it, on the loop, with
// 1000 other timers pending so the heap has depth.
func BenchmarkTimerAddCancel(b *testing.B) {
	c := benchCenter(b, 0)
	noop := func() {}
	c.SubmitWait(func() {
		for i := 0; i < 1000; i++ {
			c.AddTimer(time.Hour+time.Duration(i), noop)
		}
		c.CancelTimer(c.AddTimer(time.Hour, noop))
	})
	b.ReportAllocs()
	b.ResetTimer()
	c.SubmitWait(func() {
		for i := 0; i < b.N; i++ {
			id := c.AddTimer(time.Hour+time.Duration(i%2000), noop)
			if !c.CancelTimer(id) {
				b.Error("cancel failed")
				return
			}
		}
	})
}
