package protocol

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

// V1-FACTS §10.1 (the same vectors as core/wire's tests): what the real
// 16.2.15 CLI and mon sent. "Z<n>" is n zero bytes.
const (
	v1VecCLI = `
63 65 70 68 20 76 30 32 37
00 00 00 00 5d 66 d5 4b 00 02 00 00 7f 00 00 01 Z120
ff ff fd ff bd cf 01 3f 08 00 00 00 01 00 00 00 00 00 00 00 0f 00 00 00 00 00 00 00 00 00 00 00 00
00 00 00 00 00 00 00 00
0e f4 db 06 6b 88 3a 95 14`
	v1VecMon = `
63 65 70 68 20 76 30 32 37
00 00 00 00 00 00 00 00 00 02 a4 51 7f 00 00 01 Z120
00 00 00 00 00 00 00 00 00 02 98 66 7f 00 00 01 Z120
0d ff ff fd ff bd cf 01 3f 01 00 00 00 01 00 00 00 0f 00 00 00 00 00 00 00 01
00 00 00 00 00 00 00 00`
)

func v1hexT(t testing.TB, s string) []byte {
	t.Helper()
	var out []byte
	for _, f := range strings.Fields(s) {
		if strings.HasPrefix(f, "Z") {
			n := 0
			for _, c := range f[1:] {
				n = n*10 + int(c-'0')
			}
			out = append(out, make([]byte, n)...)
			continue
		}
		b, err := hex.DecodeString(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

// cliConfig is the real CLI's first connection: client, nonce
// 1272276573, no address, to mon v1:127.0.0.1:42065/0.
func cliConfig(ev *recorder) Config {
	var g gseq
	return Config{
		MyType: msg.EntityClient, MyGID: -1, Nonce: 1272276573,
		PeerType: msg.EntityMon, TargetAddr: msg.MustParseAddr("v1:127.0.0.1:42065/0"),
		Policy: msg.LosslessClient(0), GlobalSeq: g.next, Events: ev, Release: ev.release,
		Now: func() time.Time { return time.Unix(0x6b06dbf4, 0x14953a88) },
	}
}

// monConfig is the mon's side of §10.1.
func monConfig(ev *recorder) Config {
	var g gseq
	return Config{
		MyType: msg.EntityMon, MyGID: 0, MyAddrs: msg.AddrVec{msg.MustParseAddr("v2:127.0.0.1:42064/0"), msg.MustParseAddr("v1:127.0.0.1:42065/0")},
		PeerSocketAddr: msg.MustParseAddr("v2:127.0.0.1:39014/0"),
		PolicyFor:      func(msg.EntityType) msg.Policy { return msg.StatelessServer(0) },
		GlobalSeq:      g.next, Events: ev, Release: ev.release,
	}
}

// TestV1VectorsAsClient: fed the mon's bytes, a client machine configured
// as the CLI writes exactly the CLI's bytes (KEEPALIVE2 included).
func TestV1VectorsAsClient(t *testing.T) {
	ev := &recorder{}
	m, err := NewClientV1(cliConfig(ev), nil)
	if err != nil {
		t.Fatal(err)
	}
	mon := v1hexT(t, v1VecMon)
	// Byte by byte: nothing may be consumed before a unit is complete.
	out := m.AppendOutput(nil, 0)
	var in []byte
	for i := range mon {
		in = append(in, mon[i])
		n, err := m.Feed(in)
		if err != nil {
			t.Fatalf("byte %d: %v", i, err)
		}
		in = in[n:]
		if m.Want() <= len(in) && m.State() != StateReady {
			t.Fatalf("byte %d: Want %d with %d buffered", i, m.Want(), len(in))
		}
	}
	if !ev.isReady() || len(in) != 0 {
		t.Fatalf("not ready (%d left)", len(in))
	}
	m.SendKeepalive()
	out = m.AppendOutput(out, 0)
	if want := v1hexT(t, v1VecCLI); !bytes.Equal(out, want) {
		t.Fatalf("client bytes\n got %x\nwant %x", out, want)
	}
	ri := ev.lastReady()
	if !ri.Lossy || ri.Features != msg.FeaturesAll || ri.Reconnect || m.Session().Info().ConnectSeq != 1 {
		t.Fatalf("ready %+v", ri)
	}
	if ev.learned.String() != "127.0.0.1:0/1272276573" {
		t.Fatalf("learned %v", ev.learned)
	}
	// Its first message, MAuth, is byte for byte the CLI's (§10.2).
	m.Send(mAuth())
	if got, want := m.AppendOutput(nil, 0), v1hexT(t, v1VecMAuth); !bytes.Equal(got, want) {
		t.Fatalf("MAuth\n got %x\nwant %x", got, want)
	}
}

// v1VecMAuth is V1-FACTS §10.2: the CLI's MAuth, tag included.
const v1VecMAuth = `
07 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00
00 11 00 7f 00 01 00 3c 00 00 00 00 00 00 00 00
00 00 00 00 00 08 ff ff ff ff ff ff ff ff 01 00
00 00 69 4b ab e2 00 00 00 00 00 00 00 00 ff ff
00 00 00 00 00 00 00 00 00 00 00 00 1e 00 00 00
01 01 00 00 00 01 00 00 00 08 00 00 00 05 00 00
00 61 64 6d 69 6e 00 00 00 00 00 00 00 00 00 00
00 00 5b 63 a7 35 00 00 00 00 00 00 00 00 00 00
00 00 00 00 00 00 01`

// TestV1VectorsAsServer: fed the CLI's bytes, a server machine configured
// as the mon writes exactly the mon's bytes, and answers the KEEPALIVE2.
func TestV1VectorsAsServer(t *testing.T) {
	ev := &recorder{}
	m, err := NewServerV1(monConfig(ev))
	if err != nil {
		t.Fatal(err)
	}
	cli := v1hexT(t, v1VecCLI)
	n, err := m.Feed(cli)
	if err != nil || n != len(cli) {
		t.Fatalf("feed %d of %d: %v", n, len(cli), err)
	}
	out := m.AppendOutput(nil, 0)
	mon := v1hexT(t, v1VecMon)
	if !bytes.Equal(out[:len(mon)], mon) {
		t.Fatalf("server bytes\n got %x\nwant %x", out[:len(mon)], mon)
	}
	if !bytes.Equal(out[len(mon):], append([]byte{0x0f}, cli[len(cli)-8:]...)) {
		t.Fatalf("keepalive ack %x", out[len(mon):])
	}
	ri := ev.lastReady()
	if !ri.Lossy || ri.PeerName.Type != msg.EntityClient || ri.PeerAddrs[0] != msg.MustParseAddr("v1:127.0.0.1:0/1272276573") {
		t.Fatalf("ready %+v", ri)
	}
}

// TestV1ErrorReplies: the mon's fixed error replies (§10) for a bad
// protocol version and missing features; the client faults on them.
func TestV1ErrorReplies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		proto   uint32
		feat    uint64
		req     uint64
		want    string
		wantErr error
	}{
		{"badprotover", 14, msg.FeaturesAll, 0, `0a ff ff fd ff bd cf 01 3f 00000000 00000000 0f000000 00000000 00`, ErrBadProtocolVersion},
		{"features", 15, 0, 0x0401020002040000, `0c 00 00 04 02 00 02 01 04 00000000 00000000 0f000000 00000000 00`, ErrMissingFeatures},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := &recorder{}
			cfg := monConfig(ev)
			cfg.PolicyFor = func(msg.EntityType) msg.Policy { return msg.StatelessServer(tc.req) }
			m, _ := NewServerV1(cfg)
			cli := v1hexT(t, v1VecCLI)[:wire.V1ClientHelloLen]
			c := wire.V1Connect{Features: tc.feat, HostType: 8, GlobalSeq: 1, ProtocolVersion: tc.proto}
			in := c.Append(cli)
			if n, err := m.Feed(in); err != nil || n != len(in) {
				t.Fatalf("feed: %d, %v", n, err)
			}
			out := m.AppendOutput(nil, 0)[wire.V1ServerHelloLen:]
			if want := v1hexT(t, tc.want); !bytes.Equal(out, want) {
				t.Fatalf("reply\n got %x\nwant %x", out, want)
			}
			// The server waits for another connect (Ceph does); a good one
			// opens the session on the same socket.
			if m.State() != StateSessionAccepting {
				t.Fatalf("state %v", m.State())
			}
			good := wire.V1Connect{Features: msg.FeaturesAll, HostType: 8, GlobalSeq: 1, ProtocolVersion: 15}
			if _, err := m.Feed(good.Append(nil)); err != nil || m.State() != StateSessionAccepting {
				t.Fatalf("second connect: %v, %v", err, m.State())
			}
			if _, err := m.Feed(u64(0)); err != nil || !ev.isReady() {
				t.Fatalf("in_seq: %v", err)
			}
			// A client given this reply faults.
			cev := &recorder{}
			cm, _ := NewClientV1(cliConfig(cev), nil)
			mon := v1hexT(t, v1VecMon)[:wire.V1ServerHelloLen]
			_, err := cm.Feed(append(mon, v1hexT(t, tc.want)...))
			if !errors.Is(err, tc.wantErr) || cm.State() != StateClosed {
				t.Fatalf("client: %v", err)
			}
			// Before any session opened: reconnect with a growing backoff.
			if f := cm.Err(); f.Action != ActionReconnect || f.Backoff != BackoffGrow {
				t.Fatalf("client fault %v", f)
			}
		})
	}
}

// TestV1MonToleratesNoAuthorizer: a monitor accepts clients without an
// authorizer (they send MAuth), but not monitors; a non-monitor server
// demands one; a bad one gets BADAUTHORIZER.
func TestV1MonToleratesNoAuthorizer(t *testing.T) {
	for _, tc := range []struct {
		name     string
		server   msg.EntityType
		peer     msg.EntityType
		auth     []byte
		wantTag  wire.V1Tag
		wantAuth AuthName
	}{
		{"mon-client-none", msg.EntityMon, msg.EntityClient, nil, wire.V1TagSeq, AuthName{}},
		{"mon-mon-none", msg.EntityMon, msg.EntityMon, nil, wire.V1TagBadAuthorizer, AuthName{}},
		{"osd-client-none", msg.EntityOSD, msg.EntityClient, nil, wire.V1TagBadAuthorizer, AuthName{}},
		{"mon-mon-authorizer", msg.EntityMon, msg.EntityMon, noneAuthorizer(msg.EntityMon, "b"), wire.V1TagSeq, AuthName{Type: msg.EntityMon, ID: "b"}},
		{"osd-garbage", msg.EntityOSD, msg.EntityClient, []byte{9, 9}, wire.V1TagBadAuthorizer, AuthName{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := &recorder{}
			cfg := monConfig(ev)
			cfg.MyType = tc.server
			m, _ := NewServerV1(cfg)
			c := wire.V1Connect{Features: msg.FeaturesAll, HostType: uint32(tc.peer), GlobalSeq: 1,
				ProtocolVersion: v1ProtoVersion(tc.peer, tc.server, true)}
			if len(tc.auth) > 0 {
				c.AuthorizerProtocol, c.AuthorizerLen = AuthMethodNone, uint32(len(tc.auth))
			}
			in := append(c.Append(v1hexT(t, v1VecCLI)[:wire.V1ClientHelloLen]), tc.auth...)
			if _, err := m.Feed(in); err != nil {
				t.Fatal(err)
			}
			out := m.AppendOutput(nil, 0)[wire.V1ServerHelloLen:]
			if wire.V1Tag(out[0]) != tc.wantTag {
				t.Fatalf("reply %v, want %v", wire.V1Tag(out[0]), tc.wantTag)
			}
			if tc.wantTag == wire.V1TagSeq {
				m.Feed(u64(0))
				if got := ev.lastReady().Auth.Name; got != tc.wantAuth {
					t.Fatalf("auth name %v", got)
				}
			}
		})
	}
}

func noneAuthorizer(typ msg.EntityType, id string) []byte {
	req, _ := NoneClient{Name: AuthName{Type: typ, ID: id}}.Request(msg.EntityOSD)
	return req.Payload
}

// TestV1ClientAuthorizer: a client sends the none authorizer to
// non-monitors, and a monitor to monitors (V1-FACTS §6.2), never a client
// to a monitor (§6.1).
func TestV1ClientAuthorizer(t *testing.T) {
	for _, tc := range []struct {
		my, peer msg.EntityType
		want     bool
	}{
		{msg.EntityClient, msg.EntityMon, false},
		{msg.EntityOSD, msg.EntityMon, false},
		{msg.EntityClient, msg.EntityOSD, true},
		{msg.EntityMon, msg.EntityMon, true},
	} {
		cfg := cliConfig(&recorder{})
		cfg.MyType, cfg.PeerType = tc.my, tc.peer
		cfg.AuthClient = NoneClient{Name: AuthName{Type: tc.my, ID: "x"}, GlobalID: 7}
		m, _ := NewClientV1(cfg, nil)
		m.Feed(v1hexT(t, v1VecMon)[:wire.V1ServerHelloLen])
		out := m.AppendOutput(nil, 0)[wire.V1ClientHelloLen:]
		c, _ := wire.DecodeV1Connect(out)
		if got := c.AuthorizerLen > 0; got != tc.want {
			t.Fatalf("%v -> %v: authorizer %v", tc.my, tc.peer, got)
		}
		if tc.want {
			// struct_v 1, EntityName (u32 type, string id), u64 global_id.
			want := []byte{1, byte(tc.my), 0, 0, 0, 1, 0, 0, 0, 'x', 7, 0, 0, 0, 0, 0, 0, 0}
			if c.AuthorizerProtocol != AuthMethodNone || !bytes.Equal(out[wire.V1ConnectLen:], want) {
				t.Fatalf("authorizer %d %x", c.AuthorizerProtocol, out[wire.V1ConnectLen:])
			}
		}
	}
}

// TestV1FaultBadInput: malformed or corrupted input is a *Fault, never a
// panic; the action follows the policy.
func TestV1FaultBadInput(t *testing.T) {
	msgBytes := func(c *v1end) []byte {
		c.m.Send(numbered(1))
		return c.m.AppendOutput(nil, 0)
	}
	for _, tc := range []struct {
		name  string
		bad   func(c, s *v1end) []byte // bytes for the server once ready
		want  error
		lossy bool
	}{
		{"header-crc", func(c, s *v1end) []byte { b := msgBytes(c); b[5] ^= 1; return b }, wire.ErrBadCRC, false},
		{"front-crc", func(c, s *v1end) []byte { b := msgBytes(c); b[1+wire.V1HeaderLen] ^= 1; return b }, wire.ErrBadCRC, true},
		{"footer-crc", func(c, s *v1end) []byte { b := msgBytes(c); b[len(b)-21] ^= 1; return b }, wire.ErrBadCRC, false},
		{"aborted", func(c, s *v1end) []byte { b := msgBytes(c); b[len(b)-1] = 0; return b }, wire.ErrAborted, false},
		{"unknown-tag", func(c, s *v1end) []byte { return []byte{99} }, ErrUnexpectedFrame, false},
		{"reply-tag-in-stream", func(c, s *v1end) []byte { return []byte{byte(wire.V1TagSeq)} }, ErrUnexpectedFrame, true},
		{"huge-message", func(c, s *v1end) []byte {
			h := wire.V1Header{Seq: 1, DataLen: 1 << 30}
			return h.Append([]byte{byte(wire.V1TagMsg)})
		}, wire.ErrTooLarge, false},
		{"close", func(c, s *v1end) []byte { return []byte{byte(wire.V1TagClose)} }, ErrPeerClosed, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cpol, spol, action := msg.LosslessClient(0), msg.StatefulServer(0), ActionStandby
			if tc.lossy {
				cpol, spol, action = msg.LossyClient(0), msg.StatelessServer(0), ActionClose
			}
			if tc.want == ErrPeerClosed {
				action = ActionClose // Ceph's stop(): whatever the policy
			}
			c, s, _ := v1ReadyPair(t, cpol, spol)
			s.m.Send(numbered(5)) // queued, must survive a standby
			s.deliver(tc.bad(c, s), 0, nil)
			v1ExpectFault(t, s, tc.want, action)
			if len(s.ev.msgs) != 0 {
				t.Fatal("bad message delivered")
			}
			if q := s.m.Session().Info().Queued; (action == ActionStandby) != (q == 1) {
				t.Fatalf("queued after %v: %d", action, q)
			}
		})
	}
}

// TestV1FaultHandshake: bad handshakes fault the side that sees them.
func TestV1FaultHandshake(t *testing.T) {
	t.Run("msgr2-banner-to-server", func(t *testing.T) {
		_, s, _ := v1pair(t, msg.LossyClient(0), msg.StatelessServer(0), nil)
		s.deliver(wire.DefaultBanner.Encode(nil), 0, nil)
		v1ExpectFault(t, s, wire.ErrMsgr2Banner, ActionClose)
	})
	t.Run("msgr2-banner-to-client", func(t *testing.T) {
		c, _, _ := v1pair(t, msg.LosslessClient(0), msg.StatefulServer(0), nil)
		c.deliver([]byte("ceph v2\n"), 0, nil)
		f := v1ExpectFault(t, c, wire.ErrMsgr2Banner, ActionReconnect)
		if f.Backoff != BackoffGrow {
			t.Fatalf("backoff %v", f.Backoff)
		}
	})
	t.Run("garbage-banner", func(t *testing.T) {
		_, s, _ := v1pair(t, msg.LossyClient(0), msg.StatelessServer(0), nil)
		s.deliver([]byte("GET / HTTP/1.1\r\n"), 0, nil)
		v1ExpectFault(t, s, wire.ErrBadBanner, ActionClose)
	})
	t.Run("wrong-server-addr", func(t *testing.T) {
		c, s, p := v1pair(t, msg.LosslessClient(0), msg.StatefulServer(0), func(cc, sc *Config) {
			sc.MyAddrs = msg.AddrVec{msg.MustParseAddr("v1:127.0.0.1:6790/1234")}
		})
		p.run(t)
		v1ExpectFault(t, c, ErrPeerAddr, ActionReconnect)
		if s.ev.isReady() {
			t.Fatal("server ready")
		}
	})
	t.Run("blank-server-addr-same-port", func(t *testing.T) {
		// Ceph accepts a server that does not know its IP if port and
		// nonce match ("presumably this is the same node").
		c, _, p := v1pair(t, msg.LosslessClient(0), msg.StatefulServer(0), func(cc, sc *Config) {
			sc.MyAddrs = msg.AddrVec{msg.MustParseAddr("v1:0.0.0.0:6789/1234")}
		})
		p.run(t)
		if !c.ev.isReady() {
			t.Fatalf("client: %v", c.err)
		}
	})
	t.Run("bad-server-addr-family", func(t *testing.T) {
		c, _, _ := v1pair(t, msg.LosslessClient(0), msg.StatefulServer(0), nil)
		b := []byte("ceph v027")
		a := wire.AppendV1Addr(nil, v1SrvAddr)
		a[9] = 1 // AF_UNIX
		b = append(b, a...)
		b = append(b, make([]byte, wire.V1AddrLen)...)
		c.deliver(b, 0, nil)
		v1ExpectFault(t, c, wire.ErrMalformed, ActionReconnect)
	})
	t.Run("host-type-0", func(t *testing.T) {
		_, s, _ := v1pair(t, msg.LossyClient(0), msg.StatelessServer(0), nil)
		b := append([]byte("ceph v027"), wire.AppendV1Addr(nil, v1CliAddr)...)
		cn := wire.V1Connect{Features: msg.FeaturesAll, ProtocolVersion: 24}
		s.deliver(cn.Append(b), 0, nil)
		v1ExpectFault(t, s, wire.ErrMalformed, ActionClose)
	})
	t.Run("huge-authorizer", func(t *testing.T) {
		_, s, _ := v1pair(t, msg.LossyClient(0), msg.StatelessServer(0), nil)
		b := append([]byte("ceph v027"), wire.AppendV1Addr(nil, v1CliAddr)...)
		cn := wire.V1Connect{Features: msg.FeaturesAll, HostType: 8, ProtocolVersion: 24, AuthorizerLen: 1 << 30}
		s.deliver(cn.Append(b), 0, nil)
		v1ExpectFault(t, s, wire.ErrTooLarge, ActionClose)
	})
	t.Run("endless-connects", func(t *testing.T) {
		_, s, _ := v1pair(t, msg.LossyClient(0), msg.StatelessServer(0), nil)
		b := append([]byte("ceph v027"), wire.AppendV1Addr(nil, v1CliAddr)...)
		bad := wire.V1Connect{Features: msg.FeaturesAll, HostType: 8, ProtocolVersion: 1}
		for i := 0; i < 40; i++ {
			b = bad.Append(b)
		}
		s.deliver(b, 0, nil)
		v1ExpectFault(t, s, ErrUnexpectedFrame, ActionClose)
	})
	t.Run("bad-connect-seq-in-reply", func(t *testing.T) {
		c, _, p := v1pair(t, msg.LosslessClient(0), msg.StatefulServer(0), nil)
		p.filter = func(from *v1end, b []byte) []byte {
			// reply.connect_seq, right after the server's hello
			if off := wire.V1ServerHelloLen + 13 - len(from.sent); from == p.b && off >= 0 && off < len(b) {
				b[off] = 7
			}
			return b
		}
		p.run(t)
		v1ExpectFault(t, c, ErrUnexpectedFrame, ActionReconnect)
	})
	t.Run("server-wants-features", func(t *testing.T) {
		c, s, p := v1pair(t, msg.LosslessClient(0), msg.StatefulServer(1<<63), nil)
		p.run(t)
		v1ExpectFault(t, c, ErrMissingFeatures, ActionReconnect)
		if s.err != nil || s.ev.isReady() {
			t.Fatalf("server %v", s.err)
		}
		// The server, which never opened a session, just closes.
		if f := s.m.Fault(io.EOF); f.Action != ActionClose {
			t.Fatalf("server fault %v", f)
		}
	})
}

// TestV1TruncatedMessage: a partial message waits (Want names its whole
// size); the socket then ending faults per policy.
func TestV1TruncatedMessage(t *testing.T) {
	c, s, _ := v1ReadyPair(t, msg.LosslessClient(0), msg.StatefulServer(0))
	c.m.Send(numbered(7))
	out := c.m.AppendOutput(nil, 0)
	if n, err := s.m.Feed(out[:30]); n != 0 || err != nil || s.m.Want() != 1+wire.V1HeaderLen {
		t.Fatalf("before the header: %d, %v, want %d", n, err, s.m.Want())
	}
	if n, err := s.m.Feed(out[:len(out)-1]); n != 0 || err != nil || s.m.Want() != len(out) {
		t.Fatalf("partial: %d, %v, want %d", n, err, s.m.Want())
	}
	f := s.m.Fault(io.ErrUnexpectedEOF)
	if !errors.Is(f, io.ErrUnexpectedEOF) || f.Action != ActionStandby || f.State != StateReady {
		t.Fatalf("server fault %v", f)
	}
	cf := c.m.Fault(io.EOF)
	if cf.Action != ActionReconnect || cf.Backoff != BackoffNone {
		t.Fatalf("client fault %v", cf)
	}
	if ci := c.m.Session().Info(); ci.Queued != 1 || ci.Unacked != 0 || ci.ConnectSeq != 2 || ci.OutSeq != 0 {
		t.Fatalf("client session %+v", ci)
	}
}

// TestV1Close: Close stops without a decision; the session lives on.
func TestV1Close(t *testing.T) {
	c, _, _ := v1ReadyPair(t, msg.LosslessClient(0), msg.StatefulServer(0))
	c.m.Send(numbered(1))
	c.m.Close()
	if c.m.State() != StateClosed || c.m.Err() == nil || !errors.Is(c.m.Err(), ErrClosed) || c.m.Pending() {
		t.Fatalf("after Close: %v %v", c.m.State(), c.m.Err())
	}
	if c.m.Session().Info().Queued != 1 {
		t.Fatal("Close dropped the queue")
	}
	// The first fault wins.
	if f := c.m.Fault(io.EOF); !errors.Is(f, ErrClosed) {
		t.Fatalf("fault after close %v", f)
	}
}

// challengeServer challenges the first authorizer and accepts the answer.
type challengeServer struct {
	NoneServer
	rounds []string
}

func (c *challengeServer) Handle(_ msg.EntityType, method uint32, more bool, payload []byte) AuthReply {
	c.rounds = append(c.rounds, string(payload))
	switch {
	case !more && len(c.rounds) == 1:
		return AuthReply{Status: AuthMore, Payload: []byte("challenge")}
	case more && string(payload) == "answer":
		return AuthReply{Status: AuthDone, Payload: []byte("welcome"),
			AuthResult: AuthResult{GlobalID: 77, Name: AuthName{Type: msg.EntityClient, ID: "x"}}}
	}
	return AuthReply{Status: AuthBadMethod}
}

// challengeClient answers the challenge and checks the final reply.
type challengeClient struct {
	NoneClient
	more, done []string
}

func (c *challengeClient) ReplyMore(p []byte) ([]byte, error) {
	c.more = append(c.more, string(p))
	return []byte("answer"), nil
}

func (c *challengeClient) Done(gid uint64, mode uint32, p []byte) (AuthResult, error) {
	c.done = append(c.done, string(p))
	return AuthResult{Name: AuthName{Type: msg.EntityOSD, ID: "srv"}}, nil
}

// TestV1ChallengeAuthorizer: CHALLENGE_AUTHORIZER carries the server's
// challenge; the client resends its connect with the answer, and the
// final reply's authorizer goes to AuthClient.Done.
func TestV1ChallengeAuthorizer(t *testing.T) {
	as, ac := &challengeServer{}, &challengeClient{}
	c, s, p := v1pair(t, msg.LosslessClient(0), msg.StatefulServer(0), func(cc, sc *Config) {
		cc.AuthClient, sc.AuthServer = ac, as
	})
	p.run(t)
	if !c.ev.isReady() || !s.ev.isReady() {
		t.Fatalf("%v %v", c.err, s.err)
	}
	if len(as.rounds) != 2 || as.rounds[1] != "answer" || len(ac.more) != 1 || ac.more[0] != "challenge" ||
		len(ac.done) != 1 || ac.done[0] != "welcome" {
		t.Fatalf("server saw %q, client more %q done %q", as.rounds, ac.more, ac.done)
	}
	si, ci := s.ev.lastReady(), c.ev.lastReady()
	if si.Auth.GlobalID != 77 || si.PeerName.Num != 77 || ci.Auth.Name.ID != "srv" {
		t.Fatalf("server auth %+v peer %v, client auth %+v", si.Auth, si.PeerName, ci.Auth)
	}
	if !v1RepliedTag(s, wire.V1TagChallengeAuthorizer) {
		t.Fatal("no CHALLENGE_AUTHORIZER sent")
	}
}

// TestV1LearnBlankAddr: a client bound to a wildcard learns its IP and
// keeps its port.
func TestV1LearnBlankAddr(t *testing.T) {
	c, s, p := v1pair(t, msg.LosslessPeer(0), msg.LosslessPeer(0), func(cc, sc *Config) {
		cc.MyAddrs = msg.AddrVec{msg.MustParseAddr("v1:0.0.0.0:6805/9")}
	})
	p.run(t)
	if got := c.m.MyAddrs(); len(got) != 1 || got[0] != msg.MustParseAddr("v1:127.0.0.1:6805/9") {
		t.Fatalf("MyAddrs %v", got)
	}
	if got := s.ev.lastReady().PeerAddrs; got[0] != msg.MustParseAddr("v1:127.0.0.1:6805/9") {
		t.Fatalf("server sees %v", got)
	}
}
