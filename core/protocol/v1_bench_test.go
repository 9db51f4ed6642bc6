package protocol

import (
	"strconv"
	"testing"

	"github.com/msgr-dev/msgr/core/msg"
)

// benchPairV1 opens a lossless v1 session whose events only count.
func benchPairV1(b *testing.B) (*V1, *V1, *countingEvents) {
	cev, sev := &countingEvents{}, &countingEvents{}
	g1, g2 := &gseq{}, &gseq{}
	ccfg := Config{MyType: msg.EntityClient, MyGID: -1, Nonce: 1, PeerType: msg.EntityOSD, TargetAddr: v1SrvAddr,
		Policy: msg.LosslessClient(0), GlobalSeq: g1.next, Events: cev, Release: func(*msg.Message) {}}
	scfg := Config{MyType: msg.EntityOSD, MyGID: 3, MyAddrs: msg.AddrVec{v1SrvAddr}, PeerSocketAddr: v1CliSock,
		PolicyFor: func(msg.EntityType) msg.Policy { return msg.StatefulServer(0) }, GlobalSeq: g2.next, Events: sev}
	c, err := NewClientV1(ccfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	s, err := NewServerV1(scfg)
	if err != nil {
		b.Fatal(err)
	}
	// v1 units span writes (the server needs banner and address), so
	// unconsumed input is kept.
	var toS, toC []byte
	for i := 0; i < 10 && (c.State() != StateReady || s.State() != StateReady); i++ {
		toS = c.AppendOutput(toS, 0)
		n, err := s.Feed(toS)
		if err != nil {
			b.Fatal(err)
		}
		toS = toS[:copy(toS, toS[n:])]
		toC = s.AppendOutput(toC, 0)
		if n, err = c.Feed(toC); err != nil {
			b.Fatal(err)
		}
		toC = toC[:copy(toC, toC[n:])]
	}
	if c.State() != StateReady || s.State() != StateReady {
		b.Fatal("v1 handshake did not complete")
	}
	return c, s, sev
}

// BenchmarkV1Message is BenchmarkMessage over msgr v1: one message client
// → server (header and section crcs, decode, copy out, dispatch) plus the
// ACK back, in batches of 64.
func BenchmarkV1Message(b *testing.B) {
	for _, size := range []int{64, 4096} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) {
			c, s, sev := benchPairV1(b)
			m := msg.New(msg.MsgMonGetVersion, make([]byte, size))
			var out, back []byte
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; {
				batch := min(64, b.N-i)
				for j := 0; j < batch; j++ {
					c.Send(m)
				}
				i += batch
				out = c.AppendOutput(out[:0], 0)
				if n, err := s.Feed(out); err != nil || n != len(out) {
					b.Fatal(n, err)
				}
				back = s.AppendOutput(back[:0], 0)
				if n, err := c.Feed(back); err != nil || n != len(back) {
					b.Fatal(n, err)
				}
			}
			if sev.n != b.N {
				b.Fatalf("delivered %d of %d", sev.n, b.N)
			}
		})
	}
}
