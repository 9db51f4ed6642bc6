package wire

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/msgr-dev/msgr/core/msg"
)

// V1-FACTS §10 vectors. Runs of zeros are written as "Z<n>" and expanded
// by v1hex (a sockaddr_storage is 120 zero bytes after the address).

// §10.1: the real 16.2.15 CLI to a mon at v1:127.0.0.1:42065: banner, its
// address, ceph_msg_connect, its in_seq after SEQ, its first KEEPALIVE2.
const v1CLIHandshake = `
63 65 70 68 20 76 30 32 37
00 00 00 00 5d 66 d5 4b 00 02 00 00 7f 00 00 01 Z120
ff ff fd ff bd cf 01 3f 08 00 00 00 01 00 00 00 00 00 00 00 0f 00 00 00 00 00 00 00 00 00 00 00 00
00 00 00 00 00 00 00 00
0e f4 db 06 6b 88 3a 95 14`

// §10.1: the mon's side: banner, own address, the client's address as
// it sees it, the SEQ reply and its in_seq.
const v1MonHandshake = `
63 65 70 68 20 76 30 32 37
00 00 00 00 00 00 00 00 00 02 a4 51 7f 00 00 01 Z120
00 00 00 00 00 00 00 00 00 02 98 66 7f 00 00 01 Z120
0d ff ff fd ff bd cf 01 3f 01 00 00 00 01 00 00 00 0f 00 00 00 00 00 00 00 01
00 00 00 00 00 00 00 00`

// §10.2: MAuth, the CLI's first MSG (tag included).
const v1MAuth = `
07 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00
00 11 00 7f 00 01 00 3c 00 00 00 00 00 00 00 00
00 00 00 00 00 08 ff ff ff ff ff ff ff ff 01 00
00 00 69 4b ab e2 00 00 00 00 00 00 00 00 ff ff
00 00 00 00 00 00 00 00 00 00 00 00 1e 00 00 00
01 01 00 00 00 01 00 00 00 08 00 00 00 05 00 00
00 61 64 6d 69 6e 00 00 00 00 00 00 00 00 00 00
00 00 5b 63 a7 35 00 00 00 00 00 00 00 00 00 00
00 00 00 00 00 00 01`

// §10.3: MMonGetVersion("osdmap", 4242), seq 2, src client.4097.
const v1GetVersion = `
07 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00
00 13 00 7f 00 01 00 12 00 00 00 00 00 00 00 00
00 00 00 00 00 08 01 10 00 00 00 00 00 00 01 00
00 00 06 de d5 0d 92 10 00 00 00 00 00 00 06 00
00 00 6f 73 64 6d 61 70 cd a8 c4 5f 00 00 00 00
00 00 00 00 00 00 00 00 00 00 00 00 01`

// §10: fixed error replies of the mon.
const (
	v1BadProtoVer = `0a ff ff fd ff bd cf 01 3f 00000000 00000000 0f000000 00000000 00`
	v1FeaturesTag = `0c 00 00 04 02 00 02 01 04 00000000 00000000 0f000000 00000000 00`
)

// v1hex decodes a vector: hex bytes, with "Z<n>" for n zero bytes.
func v1hex(t testing.TB, s string) []byte {
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
		out = append(out, unhex(t, f)...)
	}
	return out
}

func TestV1VectorSizes(t *testing.T) {
	for _, c := range []struct {
		name string
		v    string
		n    int
	}{
		{"cli", v1CLIHandshake, V1ClientHelloLen + V1ConnectLen + V1SeqLen + 1 + V1TimespecLen},
		{"mon", v1MonHandshake, V1ServerHelloLen + V1ConnectReplyLen + V1SeqLen},
		{"mauth", v1MAuth, 1 + V1HeaderLen + 60 + V1FooterLen},
		{"getversion", v1GetVersion, 93},
		{"badprotover", v1BadProtoVer, V1ConnectReplyLen},
	} {
		if got := len(v1hex(t, c.v)); got != c.n {
			t.Errorf("%s vector is %d bytes, want %d", c.name, got, c.n)
		}
	}
}

func TestV1Banner(t *testing.T) {
	if got := string(AppendV1Banner(nil)); got != "ceph v027" {
		t.Fatalf("banner %q", got)
	}
	for _, ok := range []string{"", "c", "ceph v", "ceph v02", "ceph v027", "ceph v027trailing"} {
		if err := CheckV1Banner([]byte(ok)); err != nil {
			t.Errorf("CheckV1Banner(%q) = %v", ok, err)
		}
	}
	if err := CheckV1Banner(DefaultBanner.Encode(nil)); !errors.Is(err, ErrMsgr2Banner) {
		t.Errorf("msgr2 banner: %v", err)
	}
	if err := CheckV1Banner([]byte("ceph v2")); !errors.Is(err, ErrMsgr2Banner) {
		t.Errorf("msgr2 banner prefix: %v", err)
	}
	for _, bad := range []string{"x", "GET / HTTP/1.1", "ceph v028", "ceph v0"[:6] + "1"} {
		if err := CheckV1Banner([]byte(bad)); !errors.Is(err, ErrBadBanner) {
			t.Errorf("CheckV1Banner(%q) = %v, want ErrBadBanner", bad, err)
		}
	}
}

func TestV1Addr(t *testing.T) {
	// §2.2: v1:127.0.0.1:42065/0.
	want := v1hex(t, "00000000 00000000 0002 a451 7f000001 Z120")
	a := msg.MustParseAddr("v1:127.0.0.1:42065/0")
	if got := AppendV1Addr(nil, a); !bytes.Equal(got, want) {
		t.Fatalf("legacy addr\n got %x\nwant %x", got, want)
	}
	// The type is not encoded: any type gives the same bytes.
	a2 := a
	a2.Type = msg.AddrMsgr2
	if got := AppendV1Addr(nil, a2); !bytes.Equal(got, want) {
		t.Fatal("address type leaked into the legacy form")
	}
	for _, s := range []string{"v1:127.0.0.1:42065/0", "v1:10.0.0.7:0/1272276573", "v1:[2001:db8::5]:6789/77", "v1:[::1]:1/4294967295"} {
		a := msg.MustParseAddr(s)
		enc := AppendV1Addr([]byte{0xAA}, a)[1:]
		if len(enc) != V1AddrLen {
			t.Fatalf("%s: %d bytes", s, len(enc))
		}
		got, err := DecodeV1Addr(enc)
		if err != nil || got != a {
			t.Fatalf("%s: decoded %v, %v", s, got, err)
		}
	}
	// IPv6 layout: family 00 0a, port, flowinfo 0, 16 address bytes.
	enc := AppendV1Addr(nil, msg.MustParseAddr("v1:[::1]:258/3"))
	if !bytes.Equal(enc[:32], v1hex(t, "00000000 03000000 000a 0102 00000000 00000000000000000000000000000001")) {
		t.Fatalf("ipv6 layout %x", enc[:32])
	}
	// Blank: family 0, type none, nonce kept.
	blank := AppendV1Addr(nil, msg.Addr{Nonce: 9})
	if got, err := DecodeV1Addr(blank); err != nil || got != (msg.Addr{Nonce: 9}) || !got.IsBlank() {
		t.Fatalf("blank: %v, %v", got, err)
	}
	// Ceph ignores bytes 1..3 (rest of the type); byte 0 must be 0.
	odd := bytes.Clone(want)
	odd[1], odd[3] = 7, 9
	if got, err := DecodeV1Addr(odd); err != nil || got != a {
		t.Fatalf("type bytes not ignored: %v, %v", got, err)
	}
	odd[0] = 1
	if _, err := DecodeV1Addr(odd); !errors.Is(err, ErrMalformed) {
		t.Fatalf("marker 1: %v", err)
	}
	fam := bytes.Clone(want)
	fam[9] = 1 // AF_UNIX
	if _, err := DecodeV1Addr(fam); !errors.Is(err, ErrMalformed) {
		t.Fatalf("family 1: %v", err)
	}
	fam[8], fam[9] = 2, 0 // little-endian AF_INET is family 512 here
	if _, err := DecodeV1Addr(fam); !errors.Is(err, ErrMalformed) {
		t.Fatalf("family 0x0200: %v", err)
	}
	if _, err := DecodeV1Addr(want[:135]); !errors.Is(err, ErrShort) {
		t.Fatalf("short: %v", err)
	}
}

func TestV1ClientHandshakeVector(t *testing.T) {
	v := v1hex(t, v1CLIHandshake)
	me := msg.Addr{Nonce: 1272276573, AddrPort: netip.MustParseAddrPort("127.0.0.1:0")}
	c := V1Connect{Features: msg.FeaturesAll, HostType: uint32(msg.EntityClient), GlobalSeq: 1, ProtocolVersion: 15}
	var b []byte
	b = AppendV1Banner(b)
	b = AppendV1Addr(b, me)
	b = c.Append(b)
	b = AppendV1Seq(b, 0)
	b = AppendV1Keepalive2(b, V1TagKeepalive2, UTime{Sec: 0x6b06dbf4, Nsec: 0x14953a88})
	if !bytes.Equal(b, v) {
		t.Fatalf("client handshake\n got %x\nwant %x", b, v)
	}
	if err := CheckV1Banner(v[:V1BannerLen]); err != nil {
		t.Fatal(err)
	}
	a, err := DecodeV1Addr(v[V1BannerLen:])
	if err != nil || a.Nonce != me.Nonce || a.AddrPort != me.AddrPort || a.Type != msg.AddrLegacy {
		t.Fatalf("addr %v, %v", a, err)
	}
	got, err := DecodeV1Connect(v[V1ClientHelloLen:])
	if err != nil || got != c {
		t.Fatalf("connect %+v, %v", got, err)
	}
	ts, err := DecodeV1Timespec(v[len(v)-8:])
	if err != nil || ts != (UTime{Sec: 0x6b06dbf4, Nsec: 0x14953a88}) {
		t.Fatalf("timespec %v %v", ts, err)
	}
}

func TestV1ServerHandshakeVector(t *testing.T) {
	v := v1hex(t, v1MonHandshake)
	r := V1ConnectReply{Tag: V1TagSeq, Features: msg.FeaturesAll, GlobalSeq: 1, ConnectSeq: 1, ProtocolVersion: 15, Flags: V1ConnectLossy}
	var b []byte
	b = AppendV1Banner(b)
	b = AppendV1Addr(b, msg.MustParseAddr("v1:127.0.0.1:42065/0"))
	b = AppendV1Addr(b, msg.MustParseAddr("v2:127.0.0.1:39014/0"))
	b = r.Append(b)
	b = AppendV1Seq(b, 0)
	if !bytes.Equal(b, v) {
		t.Fatalf("server handshake\n got %x\nwant %x", b, v)
	}
	got, err := DecodeV1ConnectReply(v[V1ServerHelloLen:])
	if err != nil || got != r {
		t.Fatalf("reply %+v, %v", got, err)
	}
	for _, c := range []struct {
		v string
		r V1ConnectReply
	}{
		{v1BadProtoVer, V1ConnectReply{Tag: V1TagBadProtoVer, Features: msg.FeaturesAll, ProtocolVersion: 15}},
		{v1FeaturesTag, V1ConnectReply{Tag: V1TagFeatures, Features: 0x0401020002040000, ProtocolVersion: 15}},
	} {
		if enc := c.r.Append(nil); !bytes.Equal(enc, v1hex(t, c.v)) {
			t.Errorf("%v reply\n got %x\nwant %x", c.r.Tag, enc, v1hex(t, c.v))
		}
	}
}

func TestV1ConnectLimits(t *testing.T) {
	c := V1Connect{AuthorizerLen: MaxV1AuthorizerLen + 1}
	if _, err := DecodeV1Connect(c.Append(nil)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("huge authorizer: %v", err)
	}
	r := V1ConnectReply{AuthorizerLen: 1 << 31}
	if _, err := DecodeV1ConnectReply(r.Append(nil)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("huge authorizer reply: %v", err)
	}
	if _, err := DecodeV1Connect(make([]byte, 32)); !errors.Is(err, ErrShort) {
		t.Fatalf("short connect: %v", err)
	}
	if _, err := DecodeV1ConnectReply(make([]byte, 25)); !errors.Is(err, ErrShort) {
		t.Fatalf("short reply: %v", err)
	}
}

// mauthFront is the 60-byte MAuth front of §10.2 (client.admin, auth
// none, global_id 0, monmap_epoch 0).
func mauthFront(t testing.TB) []byte { return v1hex(t, v1MAuth)[1+V1HeaderLen : 1+V1HeaderLen+60] }

func TestV1MessageVectors(t *testing.T) {
	cases := []struct {
		name  string
		v     string
		m     *msg.Message
		src   msg.EntityName
		hcrc  uint32
		fcrc  uint32
		front int
	}{
		{"MAuth", v1MAuth, &msg.Message{Header: msg.Header{Seq: 1, Type: 17, Priority: 127, Version: 1, CompatVersion: 1}, Front: mauthFront(t)},
			msg.EntityName{Type: msg.EntityClient, Num: -1}, 0xe2ab4b69, 0x35a7635b, 60},
		{"MMonGetVersion", v1GetVersion, &msg.Message{Header: msg.Header{Seq: 2, Type: 19, Priority: 127, Version: 1, CompatVersion: 1},
			Front: v1hex(t, "92 10 00 00 00 00 00 00 06 00 00 00 6f 73 64 6d 61 70")},
			msg.EntityName{Type: msg.EntityClient, Num: 4097}, 0x0dd5de06, 0x5fc4a8cd, 18},
	}
	for _, c := range cases {
		want := v1hex(t, c.v)
		got, err := AppendV1Message(nil, c.m, c.src, true)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %v\n got %x\nwant %x", c.name, err, got, want)
		}
		if n := V1MessageLen(c.m, true); n != len(want) {
			t.Fatalf("%s: V1MessageLen %d, want %d", c.name, n, len(want))
		}
		dm, n, err := DecodeV1Message(want[1:], true, Limits{})
		if err != nil || n != len(want)-1 {
			t.Fatalf("%s: decode %d, %v", c.name, n, err)
		}
		if dm.Header.CRC != c.hcrc || dm.Footer.FrontCRC != c.fcrc || dm.Header.Src != c.src || len(dm.Front) != c.front ||
			dm.Middle != nil || dm.Data != nil || dm.Footer.Flags != V1FooterComplete {
			t.Fatalf("%s: decoded %+v", c.name, dm)
		}
		h := dm.MsgHeader()
		wantH := c.m.Header
		wantH.Flags = V1FooterComplete
		if h != wantH {
			t.Fatalf("%s: header %+v, want %+v", c.name, h, wantH)
		}
		// Without MSG_AUTH the 13-byte old footer (no sig).
		old, err := AppendV1Message(nil, c.m, c.src, false)
		if err != nil || len(old) != len(want)-8 || !bytes.Equal(old[:len(old)-1], want[:len(old)-1]) || old[len(old)-1] != 1 {
			t.Fatalf("%s: old footer %x, %v", c.name, old, err)
		}
		if _, n, err := DecodeV1Message(old[1:], false, Limits{}); err != nil || n != len(old)-1 {
			t.Fatalf("%s: old footer decode %d, %v", c.name, n, err)
		}
	}
}

func TestV1MessageSections(t *testing.T) {
	m := &msg.Message{Header: msg.Header{Seq: 9, Tid: 77, Type: 50, Priority: 196, Version: 2, CompatVersion: 1, DataOff: 12, Reserved: 3},
		Front: []byte("front"), Middle: []byte("mid"), Data: bytes.Repeat([]byte("d"), 5000)}
	src := msg.EntityName{Type: msg.EntityMon, Num: 0}
	b, err := AppendV1Message(make([]byte, 0, V1MessageLen(m, true)), m, src, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != V1MessageLen(m, true) || cap(b) != len(b) {
		t.Fatalf("len %d cap %d", len(b), cap(b))
	}
	dm, _, err := DecodeV1Message(b[1:], true, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if string(dm.Front) != "front" || string(dm.Middle) != "mid" || !bytes.Equal(dm.Data, m.Data) || dm.Header.DataOff != 12 {
		t.Fatalf("sections %+v", dm.Header)
	}
	// Sections alias the input, with their capacity cut.
	if cap(dm.Front) != 5 || &dm.Front[0] != &b[1+V1HeaderLen] {
		t.Fatal("front does not alias the input")
	}
	// Every byte is needed.
	for _, cut := range []int{0, 10, V1HeaderLen, len(b) - 2} {
		if _, _, err := DecodeV1Message(b[1:1+cut], true, Limits{}); !errors.Is(err, ErrShort) {
			t.Fatalf("cut at %d: %v", cut, err)
		}
	}
}

func TestV1MessageErrors(t *testing.T) {
	m := &msg.Message{Header: msg.Header{Seq: 1, Type: 19}, Front: []byte("front"), Middle: []byte("m"), Data: []byte("data")}
	good, _ := AppendV1Message(nil, m, msg.EntityName{Type: msg.EntityClient, Num: 1}, true)
	body := good[1:]
	end := len(body)
	mutate := func(off int, x byte) []byte {
		b := bytes.Clone(body)
		b[off] ^= x
		return b
	}
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"header field", mutate(3, 1), ErrBadCRC},
		{"header crc", mutate(50, 1), ErrBadCRC},
		{"front", mutate(V1HeaderLen, 1), ErrBadCRC},
		{"middle", mutate(V1HeaderLen+5, 1), ErrBadCRC},
		{"data", mutate(V1HeaderLen+6, 1), ErrBadCRC},
		{"front crc", mutate(end-21, 1), ErrBadCRC},
		{"not complete", mutate(end-1, V1FooterComplete), ErrAborted},
	} {
		if _, _, err := DecodeV1Message(c.b, true, Limits{}); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// NOCRC: the data crc is not checked (the front crc still is).
	nocrc := mutate(end-1, V1FooterNoCRC)
	nocrc[V1HeaderLen+6] ^= 1
	if _, _, err := DecodeV1Message(nocrc, true, Limits{}); err != nil {
		t.Errorf("NOCRC with a bad data crc: %v", err)
	}
	// Limits are checked on the header alone (before the body is needed).
	h := V1Header{FrontLen: 10, DataLen: 1 << 30}
	hb := h.Append(nil)
	if _, err := V1MessageSize(hb, true, Limits{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("1 GiB data: %v", err)
	}
	h = V1Header{FrontLen: 1000, MiddleLen: 1000}
	if _, err := V1MessageSize(h.Append(nil), true, Limits{MaxFrameLen: 1500}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("sum over MaxFrameLen: %v", err)
	}
	if n, err := V1MessageSize(h.Append(nil), false, Limits{}); err != nil || n != V1HeaderLen+2000+V1FooterOldLen {
		t.Errorf("size %d, %v", n, err)
	}
	if _, err := DecodeV1Footer(make([]byte, 20), true); !errors.Is(err, ErrShort) {
		t.Errorf("short footer: %v", err)
	}
}

func TestV1Tags(t *testing.T) {
	if V1TagSeq.String() != "SEQ" || V1TagKeepalive2Ack.String() != "KEEPALIVE2_ACK" || V1Tag(0).String() != "TAG(0)" || V1Tag(17).Valid() {
		t.Fatal("tag names")
	}
	if got := AppendV1Ack(nil, 1); !bytes.Equal(got, v1hex(t, "08 0100000000000000")) {
		t.Fatalf("ack %x", got)
	}
}
