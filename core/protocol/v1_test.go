package protocol

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/internal/leakcheck"
	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

func TestV1Handshake(t *testing.T) {
	defer leakcheck.Take().Check(t)
	c, s, p := v1pair(t, msg.LosslessClient(0), msg.StatefulServer(0), nil)
	if c.m.State() != StateBannerConnecting || s.m.State() != StateBannerAccepting || c.m.Session() == nil || s.m.Session() != nil {
		t.Fatalf("initial states %v / %v", c.m.State(), s.m.State())
	}
	p.run(t)
	if c.err != nil || s.err != nil {
		t.Fatalf("client %v, server %v", c.err, s.err)
	}
	if c.m.Role() != RoleClient || s.m.Role() != RoleServer || c.m.PeerType() != msg.EntityOSD || s.m.PeerType() != msg.EntityClient ||
		c.m.PeerAddr() != v1SrvAddr || s.m.PeerAddr() != v1CliAddr {
		t.Fatalf("roles %v/%v, peers %v %v / %v %v", c.m.Role(), s.m.Role(), c.m.PeerType(), c.m.PeerAddr(), s.m.PeerType(), s.m.PeerAddr())
	}
	ci, si := c.ev.lastReady(), s.ev.lastReady()
	if ci.Role != RoleClient || ci.Lossy || ci.Reconnect || ci.Features != msg.FeaturesAll ||
		ci.PeerName != (msg.EntityName{Type: msg.EntityOSD, Num: -1}) || !ci.PeerAddrs.Contains(v1SrvAddr) {
		t.Fatalf("client ready %+v", ci)
	}
	if si.Role != RoleServer || si.Lossy || si.PeerName.Type != msg.EntityClient || len(si.PeerAddrs) != 1 || si.PeerAddrs[0] != v1CliAddr {
		t.Fatalf("server ready %+v", si)
	}
	// The none authorizer named the client (client.admin, global id 0).
	if si.Auth.Name != (AuthName{Type: msg.EntityClient, ID: "admin"}) {
		t.Fatalf("server auth %+v", si.Auth)
	}
	// The client learned its IP from the server (port 0, its nonce).
	want := msg.AddrVec{msg.MustParseAddr("any:127.0.0.1:0/42")}
	if c.ev.learned.String() != want.String() || c.m.MyAddrs().String() != want.String() {
		t.Fatalf("learned %v, MyAddrs %v", c.ev.learned, c.m.MyAddrs())
	}
	cs, ss := c.m.Session().Info(), s.m.Session().Info()
	if cs.ConnectSeq != 1 || ss.ConnectSeq != 1 || cs.PeerGlobalSeq != 101 || ss.PeerGlobalSeq != 1 {
		t.Fatalf("sessions %+v / %+v", cs, ss)
	}
	// Handshake bytes: banner, server's addr, client's addr as seen; then
	// the client's addr and connect with the none authorizer.
	if !bytes.HasPrefix(s.sent, []byte("ceph v027")) || !bytes.HasPrefix(c.sent, []byte("ceph v027")) {
		t.Fatal("banners")
	}
	if a, _ := wire.DecodeV1Addr(s.sent[9:]); a.AddrPort != v1SrvAddr.AddrPort || a.Nonce != 1234 {
		t.Fatalf("server's own address %v", a)
	}
	if a, _ := wire.DecodeV1Addr(s.sent[145:]); a.AddrPort != v1CliSock.AddrPort || a.Nonce != 0 {
		t.Fatalf("client's address as seen %v", a)
	}
	conn, err := wire.DecodeV1Connect(c.sent[wire.V1ClientHelloLen:])
	if err != nil || conn.HostType != 8 || conn.GlobalSeq != 1 || conn.ConnectSeq != 0 || conn.ProtocolVersion != 24 ||
		conn.AuthorizerProtocol != AuthMethodNone || conn.AuthorizerLen == 0 || conn.Flags != 0 {
		t.Fatalf("connect %+v, %v", conn, err)
	}
	// Messages both ways, in order, with the senders' names in Src.
	for i := 0; i < 3; i++ {
		c.m.Send(numbered(i))
		s.m.Send(numbered(10 + i))
	}
	p.run(t)
	checkInOrder(t, "server", s.ev.msgs, seqRange(0, 3))
	checkInOrder(t, "client", c.ev.msgs, seqRange(10, 13))
	if s.ev.msgs[0].Src != (msg.EntityName{Type: msg.EntityClient, Num: -1}) || c.ev.msgs[0].Src != (msg.EntityName{Type: msg.EntityOSD, Num: 3}) {
		t.Fatalf("src %v / %v", s.ev.msgs[0].Src, c.ev.msgs[0].Src)
	}
	if s.ev.msgs[0].Seq != 1 || s.ev.msgs[0].Flags != wire.V1FooterComplete {
		t.Fatalf("header %+v", s.ev.msgs[0].Header)
	}
	// Lossless: both sides acknowledged everything, nothing is kept.
	if c.m.Session().Info().Unacked != 0 || s.m.Session().Info().Unacked != 0 || c.ev.acked != 3 || s.ev.acked != 3 {
		t.Fatalf("acks: client %d (unacked %d), server %d", c.ev.acked, c.m.Session().Info().Unacked, s.ev.acked)
	}
	if c.ev.released != 3 || s.ev.released != 3 {
		t.Fatalf("released %d / %d", c.ev.released, s.ev.released)
	}
}

// TestV1HandshakeVariants: the feature bits v1 depends on, each policy
// pair, and input fed one byte at a time.
func TestV1HandshakeVariants(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfeat     uint64
		cpol      msg.Policy
		spol      msg.Policy
		lossy     bool
		replyTag  wire.V1Tag
		footerLen int
		kaTag     wire.V1Tag
	}{
		{"lossless", msg.FeaturesAll, msg.LosslessClient(0), msg.StatefulServer(0), false, wire.V1TagSeq, wire.V1FooterLen, wire.V1TagKeepalive2},
		{"lossy", msg.FeaturesAll, msg.LossyClient(0), msg.StatelessServer(0), true, wire.V1TagSeq, wire.V1FooterLen, wire.V1TagKeepalive2},
		{"server-decides-lossy", msg.FeaturesAll, msg.LosslessClient(0), msg.StatelessServer(0), true, wire.V1TagSeq, wire.V1FooterLen, wire.V1TagKeepalive2},
		{"no-reconnect-seq", msg.FeaturesAll &^ wire.V1FeatureReconnectSeq, msg.LosslessClient(0), msg.StatefulServer(0), false, wire.V1TagReady, wire.V1FooterLen, wire.V1TagKeepalive2},
		{"no-msg-auth", msg.FeaturesAll &^ wire.V1FeatureMsgAuth, msg.LosslessClient(0), msg.StatefulServer(0), false, wire.V1TagSeq, wire.V1FooterOldLen, wire.V1TagKeepalive2},
		{"no-keepalive2", msg.FeaturesAll &^ wire.V1FeatureKeepalive2, msg.LossyClient(0), msg.StatelessServer(0), true, wire.V1TagSeq, wire.V1FooterLen, wire.V1TagKeepalive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cpol.FeaturesSupported = tc.cfeat
			c, s, p := v1pair(t, tc.cpol, tc.spol, nil)
			p.chunk = 1
			p.run(t)
			if !c.ev.isReady() || !s.ev.isReady() {
				t.Fatalf("not ready: %v / %v", c.err, s.err)
			}
			if c.ev.lastReady().Lossy != tc.lossy || s.ev.lastReady().Lossy != tc.lossy {
				t.Fatalf("lossy %v / %v", c.ev.lastReady().Lossy, s.ev.lastReady().Lossy)
			}
			if c.ev.lastReady().Features != tc.cfeat || s.ev.lastReady().Features != tc.cfeat {
				t.Fatalf("features %#x / %#x", c.ev.lastReady().Features, s.ev.lastReady().Features)
			}
			r, _ := wire.DecodeV1ConnectReply(s.sent[wire.V1ServerHelloLen:])
			if r.Tag != tc.replyTag || r.Features != msg.FeaturesAll || r.ConnectSeq != 1 || (r.Flags == 1) != tc.lossy {
				t.Fatalf("reply %+v", r)
			}
			// One message sized by its footer.
			c.m.Send(numbered(1))
			out := c.m.AppendOutput(nil, 0)
			if len(out) != 1+wire.V1HeaderLen+8+tc.footerLen {
				t.Fatalf("message of %d bytes, footer should be %d", len(out), tc.footerLen)
			}
			s.deliver(out, 1, rand.New(rand.NewPCG(1, 1)))
			checkInOrder(t, "server", s.ev.msgs, []int{1})
			c.m.SendKeepalive()
			ka := c.m.AppendOutput(nil, 0)
			if wire.V1Tag(ka[0]) != tc.kaTag {
				t.Fatalf("keepalive tag %v", wire.V1Tag(ka[0]))
			}
			s.deliver(ka, 0, nil)
			if len(s.ev.kas) != 1 {
				t.Fatalf("keepalives seen %d", len(s.ev.kas))
			}
		})
	}
}

// TestV1Keepalive: KEEPALIVE2 is answered with its timestamp echoed.
func TestV1Keepalive(t *testing.T) {
	stamp := time.Unix(0x6b06dbf4, 0x14953a88)
	c, s, p := v1pair(t, msg.LossyClient(0), msg.StatelessServer(0), func(cc, sc *Config) {
		cc.Now = func() time.Time { return stamp }
	})
	p.run(t)
	c.m.SendKeepalive()
	if !c.m.Pending() {
		t.Fatal("keepalive not pending")
	}
	p.run(t)
	if len(s.ev.kas) != 1 || !s.ev.kas[0].Equal(stamp) || len(c.ev.kaAcks) != 1 || !c.ev.kaAcks[0].Equal(stamp) {
		t.Fatalf("keepalive %v, ack %v", s.ev.kas, c.ev.kaAcks)
	}
	ack := []byte{0x0f, 0xf4, 0xdb, 0x06, 0x6b, 0x88, 0x3a, 0x95, 0x14}
	if !bytes.HasSuffix(s.sent, ack) {
		t.Fatalf("ack bytes %x", s.sent[len(s.sent)-9:])
	}
}

// TestV1Messages10k: many messages both ways over small reads and writes;
// every one arrives once, in order; acks free the kept copies.
func TestV1Messages10k(t *testing.T) {
	defer leakcheck.Take().Check(t)
	c, s, p := v1ReadyPair(t, msg.LosslessClient(0), msg.StatefulServer(0))
	p.chunk, p.max = 700, 3000
	const n = 10000
	for i := 0; i < n; i++ {
		c.m.Send(numbered(i))
		if i%3 == 0 {
			s.m.Send(numbered(i))
		}
	}
	p.run(t)
	checkInOrder(t, "server", s.ev.msgs, seqRange(0, n))
	var want []int
	for i := 0; i < n; i += 3 {
		want = append(want, i)
	}
	checkInOrder(t, "client", c.ev.msgs, want)
	ci, si := c.m.Session().Info(), s.m.Session().Info()
	if ci.Unacked != 0 || si.Unacked != 0 || ci.OutSeq != n || si.InSeq != n || c.ev.released != n {
		t.Fatalf("client %+v, server %+v, released %d", ci, si, c.ev.released)
	}
}

// TestV1Lossy: lossy sessions keep nothing and send no ACK.
func TestV1Lossy(t *testing.T) {
	c, s, p := v1ReadyPair(t, msg.LossyClient(0), msg.StatelessServer(0))
	for i := 0; i < 50; i++ {
		c.m.Send(numbered(i))
		s.m.Send(numbered(i))
	}
	p.run(t)
	checkInOrder(t, "server", s.ev.msgs, seqRange(0, 50))
	checkInOrder(t, "client", c.ev.msgs, seqRange(0, 50))
	if c.ev.released != 50 || s.ev.released != 50 || c.m.Session().Info().Unacked != 0 {
		t.Fatalf("released %d / %d", c.ev.released, s.ev.released)
	}
	if bytes.Contains(s.sent, []byte{byte(wire.V1TagAck), 50, 0, 0, 0, 0, 0, 0, 0}) || c.ev.acked != 0 {
		t.Fatal("a lossy session acknowledged")
	}
	// A lossy session closes on a fault.
	if f := c.m.Fault(io.EOF); f.Action != ActionClose {
		t.Fatalf("lossy fault %v", f)
	}
}

// TestV1Duplicates: a message at or below in_seq is dropped; a gap is
// accepted.
func TestV1Duplicates(t *testing.T) {
	c, s, _ := v1ReadyPair(t, msg.LosslessClient(0), msg.StatefulServer(0))
	c.m.Send(numbered(1))
	one := c.m.AppendOutput(nil, 0)
	s.deliver(one, 0, nil)
	s.deliver(one, 0, nil) // replayed
	m := numbered(7)
	m.Seq = 5
	raw, _ := wire.AppendV1Message(nil, m, msg.EntityName{Type: msg.EntityClient, Num: 1}, true)
	s.deliver(raw, 0, nil)
	if s.err != nil || len(s.ev.msgs) != 2 || s.ev.msgs[1].Seq != 5 || s.m.Session().Info().InSeq != 5 {
		t.Fatalf("err %v, %d messages", s.err, len(s.ev.msgs))
	}
}

// TestV1NewMessageHook: received messages come from Config.NewMessage,
// sections in its buffer.
func TestV1NewMessageHook(t *testing.T) {
	var got []int
	c, s, p := v1pair(t, msg.LossyClient(0), msg.StatelessServer(0), func(cc, sc *Config) {
		sc.NewMessage = func(n int) (*msg.Message, []byte) {
			got = append(got, n)
			return &msg.Message{}, make([]byte, n)
		}
	})
	p.run(t)
	m := msg.New(99, []byte("front"))
	m.Middle, m.Data = []byte("mid"), []byte("data!")
	c.m.Send(m)
	p.run(t)
	if len(got) != 1 || got[0] != 13 || len(s.ev.msgs) != 1 {
		t.Fatalf("hook calls %v, %d messages", got, len(s.ev.msgs))
	}
	r := s.ev.msgs[0]
	if string(r.Front) != "front" || string(r.Middle) != "mid" || string(r.Data) != "data!" || r.Type != 99 {
		t.Fatalf("message %+v", r)
	}
	// A hook returning a wrong-sized buffer faults (no panic).
	c, s, p = v1pair(t, msg.LossyClient(0), msg.StatelessServer(0), func(cc, sc *Config) {
		sc.NewMessage = func(n int) (*msg.Message, []byte) { return &msg.Message{}, make([]byte, n+1) }
	})
	p.run(t)
	c.m.Send(numbered(1))
	p.run(t)
	if s.err == nil {
		t.Fatal("bad buffer accepted")
	}
}

// TestV1AppendOutputV: the writev form yields the same byte stream.
func TestV1AppendOutputV(t *testing.T) {
	for _, lossy := range []bool{false, true} {
		cpol, spol := msg.LosslessClient(0), msg.StatefulServer(0)
		if lossy {
			cpol, spol = msg.LossyClient(0), msg.StatelessServer(0)
		}
		c1, _, _ := v1ReadyPair(t, cpol, spol)
		c2, s2, _ := v1ReadyPair(t, cpol, spol)
		mk := func(i int) *msg.Message {
			m := numbered(i)
			m.Data = bytes.Repeat([]byte{byte(i)}, 100*i)
			m.Middle = bytes.Repeat([]byte{'m'}, 3*i)
			return m
		}
		for i := 0; i < 20; i++ {
			c1.m.Send(mk(i))
			c2.m.Send(mk(i))
		}
		flat := c1.m.AppendOutput(nil, 0)
		dst, refs := c2.m.AppendOutputV(nil, nil, 0, 500)
		if len(refs) == 0 {
			t.Fatal("no refs")
		}
		var joined []byte
		off := 0
		owned := 0
		for _, r := range refs {
			joined = append(joined, dst[off:r.Off]...)
			joined = append(joined, r.Data...)
			off = r.Off
			if r.Msg != nil {
				owned++
				r.Msg.Release()
			}
		}
		joined = append(joined, dst[off:]...)
		if !bytes.Equal(joined, flat) {
			t.Fatalf("lossy=%v: writev stream differs", lossy)
		}
		if lossy && owned == 0 || !lossy && owned != 0 {
			t.Fatalf("lossy=%v: %d refs carry their message", lossy, owned)
		}
		s2.deliver(joined, 0, nil)
		if s2.err != nil || len(s2.ev.msgs) != 20 {
			t.Fatalf("decoded %d: %v", len(s2.ev.msgs), s2.err)
		}
	}
}

// TestV1ServerNeedsV1Addr: a server must know the v1 address clients dial.
func TestV1ServerNeedsV1Addr(t *testing.T) {
	cfg := v1ServerConfig(&gseq{}, &recorder{}, msg.StatefulServer(0))
	cfg.MyAddrs = msg.AddrVec{msg.MustParseAddr("v2:127.0.0.1:6800/1")}
	if _, err := NewServerV1(cfg); err == nil {
		t.Fatal("v2-only server accepted")
	}
	cfg.GlobalSeq = nil
	if _, err := NewClientV1(cfg, nil); err == nil {
		t.Fatal("no GlobalSeq accepted")
	}
}

func TestV1ProtoVersion(t *testing.T) {
	for _, c := range []struct {
		my, peer msg.EntityType
		connect  bool
		want     uint32
	}{
		{msg.EntityClient, msg.EntityMon, true, 15},
		{msg.EntityMon, msg.EntityClient, false, 15},
		{msg.EntityClient, msg.EntityOSD, true, 24},
		{msg.EntityOSD, msg.EntityClient, false, 24},
		{msg.EntityClient, msg.EntityMDS, true, 32},
		{msg.EntityMon, msg.EntityMon, true, 13},
		{msg.EntityOSD, msg.EntityOSD, false, 10},
		{msg.EntityMgr, msg.EntityMon, true, 15},
		{msg.EntityClient, msg.EntityClient, true, 0},
		{msg.EntityClient, msg.EntityMgr, true, 0},
	} {
		if got := v1ProtoVersion(c.my, c.peer, c.connect); got != c.want {
			t.Errorf("%v->%v connect=%v: %d, want %d", c.my, c.peer, c.connect, got, c.want)
		}
	}
}

// u64 is a little-endian u64, for hand-built input.
func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
