package stack

import (
	"bufio"
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

// Benchmarks: the stack against Go's net package in the same run, so the
// ratio is visible whatever the machine's noise:
//
//	go test -run '^$' -bench . -benchmem ./core/stack
//
// PingPong: one connection, 64-byte request echoed back, one outstanding;
// ns/op is the round trip, p50-µs/p99-µs its percentiles. /stack is the
// posix transport, /simple the simple one (reader and writer goroutines per
// socket: each message crosses two more thread hand-offs per side). Stream64: b.N
// 64-byte messages one way. /stack and /gonet batch the same way (messages
// copied into a 64 KiB buffer, one write per buffer; bufio.Writer for Go
// net); /stack-writevN instead points one iovec at each message, N per
// writev, which shows the kernel's per-iovec cost for tiny buffers.

const msgSize = 64

// pingPongStack runs the client and server on separate one-worker stacks
// of transport typ.
func pingPongStack(b *testing.B, typ string, busy time.Duration) {
	srv := newStarted(b, Options{Type: typ, Workers: 1, BusyPoll: busy})
	defer srv.Stop()
	cli := newStarted(b, Options{Type: typ, Workers: 1, BusyPoll: busy})
	defer cli.Stop()
	ln, err := srv.Listen(lo4, DefaultSockOpts(), 0, func(k *Socket) { serveEcho(k, nil) })
	if err != nil {
		b.Fatal(err)
	}
	k, err := connectWait(b, cli, ln.Addr(), DefaultSockOpts(), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	msg := make([]byte, msgSize)
	in := make([]byte, 4096)
	got, sent := 0, 0
	var t0 time.Time
	done := make(chan error, 1)
	send := func() {
		t0 = time.Now()
		if n, err := k.Write(msg); err != nil || n != msgSize {
			done <- err // a fresh connection takes 64 bytes whole
		}
		sent++
	}
	k.Worker().Center.SubmitWait(func() {
		k.SetReadHandler(func() {
			for {
				n, err := k.Read(in)
				if err == ErrWouldBlock {
					return
				}
				if err != nil {
					done <- err
					return
				}
				got += n
				if got == msgSize {
					got = 0
					lat = append(lat, time.Since(t0))
					if sent == b.N {
						done <- nil
						return
					}
					send()
				}
			}
		})
	})
	b.ResetTimer()
	k.Worker().Center.Submit(send)
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	reportLatency(b, lat)
}

func pingPongGoNet(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, msgSize)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	lat := make([]time.Duration, 0, b.N)
	msg := make([]byte, msgSize)
	in := make([]byte, msgSize)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, in); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}

func BenchmarkPingPong(b *testing.B) {
	b.Run("stack", func(b *testing.B) { pingPongStack(b, "posix", 0) })
	b.Run("stack-busypoll50us", func(b *testing.B) { pingPongStack(b, "posix", 50*time.Microsecond) })
	b.Run("simple", func(b *testing.B) { pingPongStack(b, "simple", 0) })
	b.Run("gonet", pingPongGoNet)
}

// streamStack sends b.N 64-byte messages one way over transport typ,
// batch messages per writev (a short write resumes mid-message).
func streamStack(b *testing.B, typ string, busy time.Duration, batch int) {
	srv := newStarted(b, Options{Type: typ, Workers: 1, BusyPoll: busy})
	defer srv.Stop()
	cli := newStarted(b, Options{Type: typ, Workers: 1, BusyPoll: busy})
	defer cli.Stop()
	total := b.N * msgSize
	done := make(chan error, 2)
	ln, err := srv.Listen(lo4, DefaultSockOpts(), 0, func(k *Socket) {
		buf := make([]byte, 256<<10)
		got := 0
		k.SetReadHandler(func() {
			for range 16 {
				n, err := k.Read(buf)
				if err == ErrWouldBlock {
					return
				}
				if err != nil {
					done <- err
					return
				}
				if got += n; got >= total {
					done <- nil
					k.SetReadHandler(nil)
					return
				}
			}
		})
	})
	if err != nil {
		b.Fatal(err)
	}
	k, err := connectWait(b, cli, ln.Addr(), DefaultSockOpts(), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, msgSize)
	bufs := make([][]byte, 0, max(batch, 1))
	left := total // bytes still to send
	// batch 0: copy messages into one 64 KiB buffer and Write it, as
	// bufio.Writer does for Go net.
	wbuf := make([]byte, 0, 64<<10)
	var pending []byte
	sendCopy := func() {
		for left > 0 || len(pending) > 0 {
			if len(pending) == 0 {
				wbuf = wbuf[:0]
				for left > 0 && len(wbuf)+msgSize <= cap(wbuf) {
					wbuf = append(wbuf, msg...)
					left -= msgSize
				}
				pending = wbuf
			}
			n, err := k.Write(pending)
			if err == ErrWouldBlock {
				k.WantWrite(true)
				return
			}
			if err != nil {
				done <- err
				return
			}
			pending = pending[n:]
		}
		k.WantWrite(false)
	}
	send := func() {
		for left > 0 {
			bufs = bufs[:0]
			off := (total - left) % msgSize // resume inside a message
			for rem := left; rem > 0 && len(bufs) < cap(bufs); {
				p := msg[off:min(msgSize, off+rem)]
				bufs = append(bufs, p)
				rem -= len(p)
				off = 0
			}
			n, err := k.Writev(bufs)
			if err == ErrWouldBlock {
				k.WantWrite(true)
				return
			}
			if err != nil {
				done <- err
				return
			}
			left -= n
		}
		k.WantWrite(false)
	}
	if batch == 0 {
		send = sendCopy
	}
	k.Worker().Center.SubmitWait(func() { k.SetWriteHandler(send) })
	b.SetBytes(msgSize)
	b.ResetTimer()
	k.Worker().Center.Submit(send)
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
}

func streamGoNet(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	total := int64(b.N) * msgSize
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_, err = io.CopyBuffer(io.Discard, io.LimitReader(c, total), make([]byte, 256<<10))
		done <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	w := bufio.NewWriterSize(c, 64<<10)
	msg := make([]byte, msgSize)
	b.SetBytes(msgSize)
	b.ResetTimer()
	for range b.N {
		if _, err := w.Write(msg); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
}

func BenchmarkStream64(b *testing.B) {
	b.Run("stack", func(b *testing.B) { streamStack(b, "posix", 0, 0) })
	b.Run("stack-writev256", func(b *testing.B) { streamStack(b, "posix", 0, 256) })
	b.Run("stack-writev1024", func(b *testing.B) { streamStack(b, "posix", 0, 1024) })
	b.Run("stack-writev1024-busypoll50us", func(b *testing.B) { streamStack(b, "posix", 50*time.Microsecond, 1024) })
	b.Run("simple", func(b *testing.B) { streamStack(b, "simple", 0, 0) })
	b.Run("simple-writev1024", func(b *testing.B) { streamStack(b, "simple", 0, 1024) })
	b.Run("gonet", streamGoNet)
}
