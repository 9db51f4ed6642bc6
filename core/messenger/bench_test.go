package messenger

import (
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/conn"
	"github.com/msgr-dev/msgr/core/dispatch"
	"github.com/msgr-dev/msgr/core/msg"
)

// msgRing hands out messages from a fixed ring, so the benchmarks measure
// the messenger's allocations, not the caller's. A slot is reused only n
// messages later; the benchmarks bound the messages in flight well below
// n, so a reused slot was released long before.
type msgRing struct {
	msgs []msg.Message
	bufs [][]byte
	i    int
}

func newMsgPool(size int) *msgRing {
	n := min(1<<16, max(64, (64<<20)/size))
	r := &msgRing{msgs: make([]msg.Message, n), bufs: make([][]byte, n)}
	for i := range r.bufs {
		r.bufs[i] = make([]byte, size)
	}
	return r
}

func (r *msgRing) get() *msg.Message {
	i := r.i % len(r.msgs)
	r.i++
	m := &r.msgs[i]
	*m = msg.Message{Header: msg.Header{Type: 100, Priority: msg.PrioDefault, Version: 1, CompatVersion: 1, Flags: msg.FlagsDefault}}
	m.Front = r.bufs[i]
	return m
}

// sink counts messages on the worker thread and releases them.
type sink struct {
	dispatch.Base
	n    atomic.Int64
	echo bool // send every message back on its connection
	pool *msgRing
	got  chan struct{}
}

func (s *sink) CanFastDispatch(*msg.Message) bool { return true }
func (s *sink) FastDispatch(c dispatch.Conn, m *msg.Message) {
	m.Release()
	s.n.Add(1)
	if s.echo {
		_ = c.Send(s.pool.get())
	}
	if s.got != nil {
		s.got <- struct{}{}
	}
}

func benchOpts(busy time.Duration) Options {
	o := DefaultOptions()
	o.OpThreads = 1
	o.BusyPoll = busy
	if busy == 0 {
		o.BusyPoll = -1
	}
	o.ShutdownTimeout = -1
	return o
}

func benchPair(b *testing.B, o Options, srvD, cliD dispatch.Dispatcher, pol msg.Policy) (*Messenger, *Messenger, *conn.Connection) {
	srv := newServer(b, o, 1, srvD)
	srv.SetPolicy(msg.EntityClient, msg.StatelessServer(0))
	cli := newClient(b, o, 1, cliD)
	cli.SetPolicy(msg.EntityOSD, pol)
	c, err := cli.ConnectTo(msg.EntityOSD, srv.Addrs())
	if err != nil {
		b.Fatal(err)
	}
	// Wait for the session.
	for i := 0; !c.IsConnected(); i++ {
		if i > 5000 {
			b.Fatal("no session")
		}
		time.Sleep(time.Millisecond)
	}
	return srv, cli, c
}

func benchOneWay(b *testing.B, size int, pol msg.Policy, busy time.Duration) {
	o := benchOpts(busy)
	s := &sink{}
	srv, cli, c := benchPair(b, o, s, nil, pol)
	defer shutdown(b, cli, srv)
	pool := newMsgPool(size)
	// Warm up pools and buffers.
	warm := min(10000, len(pool.msgs)/4)
	for i := 0; i < warm; i++ {
		_ = c.Send(pool.get())
	}
	for s.n.Load() < int64(warm) {
		time.Sleep(time.Millisecond)
	}
	s.n.Store(0)
	window := len(pool.msgs) / 4
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for int64(i)-s.n.Load() > int64(window) {
			time.Sleep(20 * time.Microsecond)
		}
		if err := c.Send(pool.get()); err != nil {
			b.Fatal(err)
		}
	}
	for s.n.Load() < int64(b.N) {
		time.Sleep(50 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkOneWay64 sends 64-byte messages one way over one lossy
// connection between two messengers (one worker each) on loopback; the
// receiver counts them in fast dispatch.
func BenchmarkOneWay64(b *testing.B) { benchOneWay(b, 64, msg.LossyClient(0), 0) }

// BenchmarkOneWay64Lossless is the same over a lossless session (acks).
func BenchmarkOneWay64Lossless(b *testing.B) { benchOneWay(b, 64, msg.LosslessClient(0), 0) }

// BenchmarkOneWay4K sends 4 KiB messages.
func BenchmarkOneWay4K(b *testing.B) { benchOneWay(b, 4096, msg.LossyClient(0), 0) }

// BenchmarkOneWay1M sends 1 MiB messages.
func BenchmarkOneWay1M(b *testing.B) { benchOneWay(b, 1<<20, msg.LossyClient(0), 0) }

func benchPingPong(b *testing.B, busy time.Duration) {
	o := benchOpts(busy)
	pool := newMsgPool(64)
	srvS := &sink{echo: true, pool: pool}
	cliS := &sink{got: make(chan struct{}, 1)}
	srv, cli, c := benchPair(b, o, srvS, cliS, msg.LossyClient(0))
	defer shutdown(b, cli, srv)
	for i := 0; i < 1000; i++ {
		_ = c.Send(pool.get())
		<-cliS.got
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := c.Send(pool.get()); err != nil {
			b.Fatal(err)
		}
		<-cliS.got
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}

// BenchmarkPingPong64 is a 64-byte round trip: the client sends, the
// server echoes in fast dispatch, the client's fast dispatch wakes the
// benchmark goroutine. Workers busy-poll (DefaultBusyPoll).
func BenchmarkPingPong64(b *testing.B) { benchPingPong(b, DefaultBusyPoll) }

// BenchmarkPingPong64NoSpin is the same with busy polling off.
func BenchmarkPingPong64NoSpin(b *testing.B) { benchPingPong(b, 0) }

// pinger drives a ping-pong from the client's fast dispatch: each reply
// sends the next ping, so no goroutine outside the loops takes part.
type pinger struct {
	dispatch.Base
	pool *msgRing
	left int
	t0   time.Time
	lat  []time.Duration
	done chan struct{}
}

func (p *pinger) CanFastDispatch(*msg.Message) bool { return true }
func (p *pinger) FastDispatch(c dispatch.Conn, m *msg.Message) {
	m.Release()
	now := time.Now()
	p.lat = append(p.lat, now.Sub(p.t0))
	p.left--
	if p.left <= 0 {
		close(p.done)
		return
	}
	p.t0 = now
	_ = c.Send(p.pool.get())
}

func benchPingPongLoop(b *testing.B, busy time.Duration) {
	o := benchOpts(busy)
	srvS := &sink{echo: true, pool: newMsgPool(64)}
	p := &pinger{pool: newMsgPool(64)}
	srv, cli, c := benchPair(b, o, srvS, p, msg.LossyClient(0))
	defer shutdown(b, cli, srv)
	p.left = b.N + 1000
	p.lat = make([]time.Duration, 0, p.left)
	p.done = make(chan struct{})
	b.ReportAllocs()
	b.ResetTimer()
	p.t0 = time.Now()
	_ = c.Send(p.pool.get())
	<-p.done
	b.StopTimer()
	lat := p.lat[min(1000, len(p.lat)-1):]
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}

// BenchmarkPingPong64Loop: round trips driven by the loops themselves.
func BenchmarkPingPong64Loop(b *testing.B) { benchPingPongLoop(b, DefaultBusyPoll) }

// BenchmarkPingPong64LoopNoSpin: the same without busy polling.
func BenchmarkPingPong64LoopNoSpin(b *testing.B) { benchPingPongLoop(b, 0) }

// BenchmarkPingPong64Spin measures the round trip against the busy-poll
// bound (the choice of DefaultBusyPoll).
func BenchmarkPingPong64Spin(b *testing.B) {
	for _, d := range []time.Duration{5 * time.Microsecond, 20 * time.Microsecond, 50 * time.Microsecond, 200 * time.Microsecond} {
		b.Run(d.String(), func(b *testing.B) { benchPingPongLoop(b, d) })
	}
}
