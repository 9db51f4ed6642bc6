package protocol

import (
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/msgr-dev/msgr/core/internal/leakcheck"
	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

// readyPair returns an open session between a client and a server.
func readyPair(t *testing.T, cpol, spol msg.Policy) (*end, *end, *pipe) {
	t.Helper()
	c, s, p := pair(t, cpol, spol, nil)
	p.run(t)
	if !c.ev.isReady() || !s.ev.isReady() {
		t.Fatalf("not ready: client err %v, server err %v", c.err, s.err)
	}
	return c, s, p
}

// expectFault asserts that e stopped with a *Fault wrapping want.
func expectFault(t *testing.T, e *end, want error, action Action) *Fault {
	t.Helper()
	if e.err == nil {
		t.Fatalf("no fault, want %v", want)
	}
	f := faultOf(t, e.err)
	if !errors.Is(f, want) {
		t.Fatalf("fault %v, want %v", f, want)
	}
	if f.Action != action {
		t.Fatalf("action %v, want %v (%v)", f.Action, action, f)
	}
	if e.m.State() != StateClosed || e.m.Err() != f {
		t.Fatalf("machine state %v, Err %v", e.m.State(), e.m.Err())
	}
	// A stopped machine refuses further input with the same fault.
	if n, err := e.m.Feed([]byte{1, 2, 3}); n != 0 || err != f {
		t.Fatalf("Feed after fault: %d, %v", n, err)
	}
	return f
}

func TestFaultBadCRC(t *testing.T) {
	defer leakcheck.Take().Check(t)
	for _, lossy := range []bool{false, true} {
		cpol, spol, action := msg.LosslessClient(0), msg.StatefulServer(0), ActionStandby
		if lossy {
			cpol, spol, action = msg.LossyClient(0), msg.StatelessServer(0), ActionClose
		}
		c, s, _ := readyPair(t, cpol, spol)
		c.m.Send(numbered(1))
		out := c.m.AppendOutput(nil, 0)
		out[len(out)-20] ^= 0x40 // inside the front segment
		s.deliver(out, 0, nil)
		expectFault(t, s, wire.ErrBadCRC, action)
		if len(s.ev.msgs) != 0 {
			t.Fatal("corrupt message delivered")
		}
		// The preamble is protected too.
		c, s, _ = readyPair(t, cpol, spol)
		c.m.Send(numbered(1))
		out = c.m.AppendOutput(nil, 0)
		out[2] ^= 1
		s.deliver(out, 0, nil)
		expectFault(t, s, wire.ErrBadCRC, action)
	}
}

// TestFaultTruncatedFrame: a partial frame is kept waiting (Want says how
// much is needed); when the socket then ends, the owner faults the machine.
func TestFaultTruncatedFrame(t *testing.T) {
	c, s, _ := readyPair(t, msg.LosslessClient(0), msg.StatefulServer(0))
	c.m.Send(numbered(7))
	out := c.m.AppendOutput(nil, 0)
	half := out[:len(out)/2]
	n, err := s.m.Feed(half)
	if n != 0 || err != nil {
		t.Fatalf("Feed(partial) = %d, %v", n, err)
	}
	if s.m.Want() != len(out) {
		t.Fatalf("Want %d, frame is %d bytes", s.m.Want(), len(out))
	}
	if len(s.ev.msgs) != 0 {
		t.Fatal("partial frame delivered")
	}
	f := s.m.Fault(io.ErrUnexpectedEOF)
	if !errors.Is(f, io.ErrUnexpectedEOF) || f.Action != ActionStandby || f.State != StateReady {
		t.Fatalf("fault %v", f)
	}
	// The client side of a lossless session reconnects at once.
	cf := c.m.Fault(io.EOF)
	if cf.Action != ActionReconnect || cf.Backoff != BackoffNone {
		t.Fatalf("client fault %v backoff %v", cf, cf.Backoff)
	}
	// Its unacknowledged message waits for the replay.
	if ci := c.m.Session().Info(); ci.Queued != 1 || ci.Unacked != 0 || ci.ConnectSeq != 1 {
		t.Fatalf("client session after fault %+v", ci)
	}
}

func TestFaultUnknownTag(t *testing.T) {
	_, s, _ := readyPair(t, msg.LossyClient(0), msg.StatelessServer(0))
	f, err := wire.AppendFrame(nil, s.m.Rev(), wire.Tag(99), []byte{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	s.deliver(f, 0, nil)
	expectFault(t, s, wire.ErrUnknownTag, ActionClose)
}

// TestFaultCompressionFrame: a frame we never negotiated (17+
// compression) is refused.
func TestFaultCompressionFrame(t *testing.T) {
	_, s, _ := readyPair(t, msg.LossyClient(0), msg.StatelessServer(0))
	s.deliver(wire.AppendControlFrame(nil, s.m.Rev(), &wire.CompressionRequest{}), 0, nil)
	expectFault(t, s, ErrUnexpectedFrame, ActionClose)
}

// TestFaultOversized: a preamble announcing more than the limits faults at
// once, before the body is needed (so it cannot make the owner buffer it).
func TestFaultOversized(t *testing.T) {
	for _, tc := range []struct {
		name string
		tag  wire.Tag
		size uint32
		lim  wire.Limits
	}{
		{"message-4GiB", wire.TagMessage, 0xFFFFFFF0, wire.Limits{}},
		{"control-2MiB", wire.TagKeepalive2, 2 << 20, wire.Limits{}},
		{"message-over-config", wire.TagMessage, 4096, wire.Limits{MaxFrameLen: 1024}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s, p := pair(t, msg.LossyClient(0), msg.StatelessServer(0), func(cc, sc *Config) { sc.Limits = tc.lim })
			p.run(t)
			if !s.ev.isReady() {
				t.Fatal("not ready")
			}
			_ = c
			pre := make([]byte, wire.PreambleLen)
			pre[0], pre[1] = byte(tc.tag), 1
			binary.LittleEndian.PutUint32(pre[2:], tc.size)
			binary.LittleEndian.PutUint16(pre[6:], 8)
			binary.LittleEndian.PutUint32(pre[28:], wire.CRC32C(0, pre[:28]))
			s.deliver(pre, 0, nil)
			expectFault(t, s, wire.ErrTooLarge, ActionClose)
		})
	}
}

// TestFaultMessageBeforeIdent: the server refuses a MESSAGE before the
// session is open (the mon closes the connection) and, having nothing to
// send, just closes. Checked right after the banner and right before the
// ident (the client's CLIENT_IDENT is dropped in transit).
func TestFaultMessageBeforeIdent(t *testing.T) {
	for _, want := range []State{StateHelloAccepting, StateSessionAccepting} {
		t.Run(want.String(), func(t *testing.T) {
			c, s, p := pair(t, msg.LosslessClient(0), msg.StatefulServer(0), nil)
			p.filter = func(from *end, b []byte) []byte {
				if from == c {
					return dropFrames(t, from, b, wire.TagClientIdent)
				}
				return b
			}
			for i := 0; i < 10 && s.m.State() != want; i++ {
				p.step()
			}
			if s.m.State() != want {
				t.Fatalf("server in %v", s.m.State())
			}
			m := numbered(1)
			m.Seq = 1
			f, err := wire.AppendMessageFrame(nil, s.m.Rev(), m)
			if err != nil {
				t.Fatal(err)
			}
			s.deliver(f, 0, nil)
			fl := expectFault(t, s, ErrUnexpectedFrame, ActionClose)
			if fl.State != want {
				t.Fatalf("fault state %v", fl.State)
			}
		})
	}
}

// TestFaultFrameOutOfState: a server frame sent to a server, and a
// KEEPALIVE2 before READY, fault.
func TestFaultFrameOutOfState(t *testing.T) {
	_, s, p := pair(t, msg.LossyClient(0), msg.StatelessServer(0), nil)
	p.step()
	p.step()
	s.deliver(wire.AppendControlFrame(nil, s.m.Rev(), &wire.ServerIdent{}), 0, nil)
	expectFault(t, s, ErrUnexpectedFrame, ActionClose)

	c, _, p := pair(t, msg.LosslessClient(0), msg.StatefulServer(0), nil)
	p.step()
	p.step()
	c.deliver(wire.AppendControlFrame(nil, c.m.Rev(), &wire.Keepalive2{}), 0, nil)
	// A lossless client faulting during its handshake retries with backoff.
	f := expectFault(t, c, ErrUnexpectedFrame, ActionReconnect)
	if f.Backoff != BackoffGrow {
		t.Fatalf("backoff %v", f.Backoff)
	}
}

func TestFaultWrongTargetAddr(t *testing.T) {
	other := msg.MustParseAddr("v2:127.0.0.1:6801/1234")
	c, s, p := pair(t, msg.LossyClient(0), msg.StatelessServer(0), func(cc, sc *Config) { cc.TargetAddr = other })
	p.run(t)
	expectFault(t, s, ErrPeerAddr, ActionClose)
	if c.ev.isReady() {
		t.Fatal("client ready")
	}
}

// TestFaultServerAddrMismatch: the client faults when SERVER_IDENT does
// not list the address it dialled (rewritten in transit here).
func TestFaultServerAddrMismatch(t *testing.T) {
	c, s, p := pair(t, msg.LossyClient(0), msg.StatelessServer(0), nil)
	p.filter = rewrite(t, wire.TagServerIdent, func(pl wire.Payload) {
		pl.(*wire.ServerIdent).Addrs = msg.AddrVec{msg.MustParseAddr("v2:10.0.0.1:6800/1234")}
	})
	p.run(t)
	// A lossy client faulting in its handshake also retries (Ceph's
	// _fault only closes lossy connections outside the connect states).
	expectFault(t, c, ErrPeerAddr, ActionReconnect)
	_ = s
}

func TestFaultBadAuthSignature(t *testing.T) {
	c, s, p := pair(t, msg.LosslessClient(0), msg.StatefulServer(0), nil)
	p.filter = func(from *end, b []byte) []byte {
		if from == c {
			return rewrite(t, wire.TagAuthSignature, func(pl wire.Payload) { pl.(*wire.AuthSignature).Sig[0] = 1 })(from, b)
		}
		return b
	}
	p.run(t)
	expectFault(t, s, ErrAuthSignature, ActionClose)
}

func TestFaultMissingFeatures(t *testing.T) {
	const bit17 = 1 << 17 // not in FeaturesAll
	spol := msg.StatelessServer(bit17)
	c, s, p := pair(t, msg.LossyClient(0), spol, nil)
	p.run(t)
	expectFault(t, c, ErrMissingFeatures, ActionReconnect)
	// The server told which bits are missing and still waits for an ident.
	if s.err != nil || s.m.State() != StateSessionAccepting {
		t.Fatalf("server err %v state %v", s.err, s.m.State())
	}
	fs, _ := frames(t, s.sent, s.m.Rev())
	last := fs[len(fs)-1]
	var mf wire.IdentMissingFeatures
	if last.Tag != wire.TagIdentMissingFeatures || mf.Decode(last.Payload()) != nil || mf.Features != bit17 {
		t.Fatalf("last server frame %v features %#x", last.Tag, mf.Features)
	}
}

// refusingAuth refuses every method (but lists none as allowed).
type refusingAuth struct{ NoneServer }

func (refusingAuth) PickConMode(msg.EntityType, uint32, []uint32) uint32 { return ConModeUnknown }

// secureOnlyClient asks for secure mode only.
type secureOnlyClient struct{ NoneClient }

func (c secureOnlyClient) Request(pt msg.EntityType) (AuthRequest, error) {
	r, err := c.NoneClient.Request(pt)
	r.PreferredModes = []uint32{ConModeSecure}
	return r, err
}

func TestFaultAuthRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tweak func(cc, sc *Config)
	}{
		{"server-refuses", func(cc, sc *Config) { sc.AuthServer = refusingAuth{} }},
		{"secure-only-client", func(cc, sc *Config) { cc.AuthClient = secureOnlyClient{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s, p := pair(t, msg.LossyClient(0), msg.StatelessServer(0), tc.tweak)
			p.run(t)
			expectFault(t, c, ErrAuthRefused, ActionReconnect)
			if s.err != nil || s.m.State() != StateAuthAccepting {
				t.Fatalf("server err %v state %v", s.err, s.m.State())
			}
			fs, _ := frames(t, s.sent, s.m.Rev())
			var bm wire.AuthBadMethod
			last := fs[len(fs)-1]
			if last.Tag != wire.TagAuthBadMethod || bm.Decode(last.Payload()) != nil {
				t.Fatalf("last server frame %v", last.Tag)
			}
			if bm.Method != AuthMethodNone || bm.Result != -95 || len(bm.AllowedMethods) != 1 || bm.AllowedMethods[0] != AuthMethodNone {
				t.Fatalf("bad method frame %+v", bm)
			}
		})
	}
}

func TestFaultPeerType(t *testing.T) {
	c, _, p := pair(t, msg.LossyClient(0), msg.StatelessServer(0), func(cc, sc *Config) { cc.PeerType = msg.EntityMon })
	p.run(t)
	expectFault(t, c, ErrPeerType, ActionReconnect)
}

func TestFaultBanner(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want error
	}{
		{"msgr1", "ceph v027\n..........", wire.ErrMsgr1Banner},
		{"garbage", "GET / HTTP/1.1\r\n", wire.ErrBadBanner},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustServer(t, serverConfig(&gseq{}, &recorder{}, msg.StatelessServer(0)))
			s.deliver([]byte(tc.in), 0, nil)
			expectFault(t, s, tc.want, ActionClose)
		})
	}
	// A peer requiring a msgr2 feature we lack (compression) is refused.
	s := mustServer(t, serverConfig(&gseq{}, &recorder{}, msg.StatelessServer(0)))
	s.deliver(wire.Banner{Supported: 3, Required: 2}.Encode(nil), 0, nil)
	expectFault(t, s, wire.ErrFeatures, ActionClose)
}

// rewrite returns a pipe filter that decodes the frames of a batch and
// lets edit change the payload of frames with tag.
func rewrite(t *testing.T, tag wire.Tag, edit func(wire.Payload)) func(*end, []byte) []byte {
	return func(from *end, b []byte) []byte {
		var out []byte
		if string(b[:min(8, len(b))]) == wire.BannerPrefix {
			_, n, err := wire.DecodeBanner(b)
			if err != nil {
				t.Fatal(err)
			}
			out, b = append(out, b[:n]...), b[n:]
		}
		for len(b) > 0 {
			f, n, err := wire.DecodeFrame(b, from.m.Rev(), wire.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if f.Tag == tag {
				pl, err := wire.DecodePayload(f.Tag, f.Payload())
				if err != nil {
					t.Fatal(err)
				}
				edit(pl)
				out = wire.AppendControlFrame(out, from.m.Rev(), pl)
			} else {
				out = append(out, b[:n]...)
			}
			b = b[n:]
		}
		return out
	}
}

// dropFrames removes the frames with tag from a batch (banner kept).
func dropFrames(t *testing.T, from *end, b []byte, tag wire.Tag) []byte {
	var out []byte
	if string(b[:min(8, len(b))]) == wire.BannerPrefix {
		_, n, err := wire.DecodeBanner(b)
		if err != nil {
			t.Fatal(err)
		}
		out, b = append(out, b[:n]...), b[n:]
	}
	for len(b) > 0 {
		f, n, err := wire.DecodeFrame(b, from.m.Rev(), wire.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if f.Tag != tag {
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return out
}
