package protocol

import (
	"strconv"
	"testing"

	"github.com/msgr-dev/msgr/core/msg"
)

// countingEvents counts messages and drops them.
type countingEvents struct {
	NopEvents
	n int
}

func (c *countingEvents) Message(*msg.Message) { c.n++ }

// benchPair opens a lossless rev1 session whose events only count.
func benchPair(b *testing.B) (*Machine, *Machine, *countingEvents) {
	cev, sev := &countingEvents{}, &countingEvents{}
	g1, g2 := &gseq{}, &gseq{}
	ccfg := Config{MyType: msg.EntityClient, MyGID: -1, Nonce: 1, PeerType: msg.EntityOSD, TargetAddr: srvAddr,
		Policy: msg.LosslessClient(0), GlobalSeq: g1.next, Events: cev, Release: func(*msg.Message) {}}
	scfg := Config{MyType: msg.EntityOSD, MyGID: 3, MyAddrs: msg.AddrVec{srvAddr}, PeerSocketAddr: cliSock,
		PolicyFor: func(msg.EntityType) msg.Policy { return msg.StatefulServer(0) }, GlobalSeq: g2.next, Events: sev}
	c, err := NewClient(ccfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	s, err := NewServer(scfg)
	if err != nil {
		b.Fatal(err)
	}
	var buf []byte
	for i := 0; i < 10 && (c.State() != StateReady || s.State() != StateReady); i++ {
		buf = c.AppendOutput(buf[:0], 0)
		if _, err := s.Feed(buf); err != nil {
			b.Fatal(err)
		}
		buf = s.AppendOutput(buf[:0], 0)
		if _, err := c.Feed(buf); err != nil {
			b.Fatal(err)
		}
	}
	return c, s, sev
}

// BenchmarkMessage measures one message client → server (encode, crc,
// decode, copy out, dispatch) plus the ACK back, in batches of 64, for a
// 4 KiB and a 64-byte front.
func BenchmarkMessage(b *testing.B) {
	for _, size := range []int{64, 4096} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) {
			c, s, sev := benchPair(b)
			m := msg.New(msg.MsgMonGetVersion, make([]byte, size))
			var out, back []byte
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; {
				batch := min(64, b.N-i)
				for j := 0; j < batch; j++ {
					c.Send(m) // the same message object: the benchmark reuses it
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
