package protocol

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

// splice rebuilds the byte stream AppendOutputV describes.
func splice(dst []byte, refs []OutRef) []byte {
	var out []byte
	off := 0
	for _, r := range refs {
		out = append(out, dst[off:r.Off]...)
		out = append(out, r.Data...)
		off = r.Off
	}
	return append(out, dst[off:]...)
}

func filled(n int, b byte) []byte {
	s := make([]byte, n)
	for i := range s {
		s[i] = b + byte(i%13)
	}
	return s
}

// The scattered frame must be byte for byte what wire.AppendMessageFrame
// writes, for both revisions and any mix of referenced/copied segments.
func TestAppendMessageFrameVIdentical(t *testing.T) {
	sizes := []int{0, 1, 100, 20000}
	for _, rev := range []wire.Rev{wire.Rev0, wire.Rev1} {
		for _, fl := range sizes {
			for _, ml := range sizes {
				for _, dl := range sizes {
					for _, minRef := range []int{1, 100, 16384} {
						m := msg.New(msg.MsgMonGetVersion, filled(fl, 'f'))
						m.Middle, m.Data = filled(ml, 'm'), filled(dl, 'd')
						m.Seq, m.AckSeq, m.Tid = 7, 5, 99
						prefix := []byte("prefix")
						want, err := wire.AppendMessageFrame(append([]byte(nil), prefix...), rev, m)
						if err != nil {
							t.Fatal(err)
						}
						dst, refs, err := appendMessageFrameV(append([]byte(nil), prefix...), nil, rev, m, minRef)
						if err != nil {
							t.Fatal(err)
						}
						name := fmt.Sprintf("rev%d f%d m%d d%d min%d", rev, fl, ml, dl, minRef)
						if got := splice(dst, refs); !bytes.Equal(got, want) {
							t.Fatalf("%s: scattered frame differs from AppendMessageFrame", name)
						}
						nref := 0
						for _, l := range []int{fl, ml, dl} {
							if l >= minRef && l > 0 {
								nref++
							}
						}
						if len(refs) != nref {
							t.Fatalf("%s: %d refs, want %d", name, len(refs), nref)
						}
						for _, r := range refs {
							if r.Msg != nil {
								t.Fatalf("%s: frame builder set Msg", name)
							}
						}
					}
				}
			}
		}
	}
}

func TestAppendOutputV(t *testing.T) {
	for _, lossy := range []bool{true, false} {
		t.Run(fmt.Sprintf("lossy=%v", lossy), func(t *testing.T) {
			cpol, spol := msg.LosslessClient(0), msg.StatefulServer(0)
			if lossy {
				cpol, spol = msg.LossyClient(0), msg.StatelessServer(0)
			}
			c, s, p := pair(t, cpol, spol, nil)
			p.run(t)
			if !c.ev.isReady() || !s.ev.isReady() {
				t.Fatal("not ready")
			}
			big := msg.New(msg.MsgMonGetVersion, []byte("front"))
			big.Data = filled(40000, 'x')
			small := msg.New(msg.MsgMonGetVersion, []byte("small"))
			c.m.Send(big)
			c.m.Send(small)
			before := c.ev.released
			dst, refs := c.m.AppendOutputV(nil, nil, 1<<20, 16<<10)
			if len(refs) != 1 || len(refs[0].Data) != 40000 {
				t.Fatalf("refs = %d, want the one 40000-byte data segment", len(refs))
			}
			if lossy {
				if refs[0].Msg != big {
					t.Fatal("lossy: the referenced message must be handed to the caller")
				}
				if c.ev.released != before+1 { // small only
					t.Fatalf("lossy: released %d, want %d (the referenced one is the caller's)", c.ev.released, before+1)
				}
			} else if refs[0].Msg != nil || c.ev.released != before {
				t.Fatal("lossless: the session keeps its messages until acked")
			}
			s.deliver(splice(dst, refs), 0, nil)
			if s.err != nil {
				t.Fatal(s.err)
			}
			if len(s.ev.msgs) != 2 || !bytes.Equal(s.ev.msgs[0].Data, big.Data) || string(s.ev.msgs[1].Front) != "small" {
				t.Fatalf("server got %d messages or wrong payloads", len(s.ev.msgs))
			}
		})
	}
}

// With minRef <= 0 AppendOutputV is AppendOutput: no refs.
func TestAppendOutputVNoRefs(t *testing.T) {
	c, _, p := pair(t, msg.LossyClient(0), msg.StatelessServer(0), nil)
	p.run(t)
	m := msg.New(msg.MsgMonGetVersion, nil)
	m.Data = filled(40000, 'y')
	c.m.Send(m)
	dst, refs := c.m.AppendOutputV(nil, nil, 0, 0)
	if len(refs) != 0 || len(dst) < 40000 {
		t.Fatalf("refs %d, %d bytes", len(refs), len(dst))
	}
}
