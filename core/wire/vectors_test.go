package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/msgr-dev/msgr/core/msg"
)

// unhex decodes a hex dump, ignoring spaces, newlines, '|' and "NNNN:"
// offsets at line starts.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if i := strings.Index(line, ":"); i >= 0 {
			line = line[i+1:]
		}
		for _, r := range line {
			if strings.ContainsRune("0123456789abcdefABCDEF", r) {
				b.WriteRune(r)
			}
		}
	}
	out, err := hex.DecodeString(b.String())
	if err != nil {
		t.Fatalf("bad hex: %v", err)
	}
	return out
}

func TestCRC32CVectors(t *testing.T) {
	// FACTS.md §4.2.
	cases := []struct {
		seed uint32
		in   []byte
		want uint32
	}{
		{0xFFFFFFFF, nil, 0xFFFFFFFF},
		{0xFFFFFFFF, []byte("123456789"), 0x1CF96D7C},
		{0, []byte("123456789"), 0x58E3FA20},
		{0, append([]byte{0x01, 0x01, 0x24, 0, 0, 0, 0x08, 0}, make([]byte, 20)...), 0x066BBD3F},
	}
	for _, c := range cases {
		if got := CRC32C(c.seed, c.in); got != c.want {
			t.Errorf("CRC32C(%#x, %q) = %#08x, want %#08x", c.seed, c.in, got, c.want)
		}
	}
	// The standard CRC-32C ("123456789" → 0xE3069283) is the inverted raw form.
	if got := CRC32C(0xFFFFFFFF, []byte("123456789")) ^ 0xFFFFFFFF; got != 0xE3069283 {
		t.Errorf("standard crc32c = %#08x", got)
	}
}

// MMonGetVersion("osdmap", 4242), seq 1: FACTS.md §4.6.
const getVersionRev1 = `
0000: 11 02 29 00 00 00 08 00 12 00 00 00 08 00 00 00
0010: 00 00 00 00 00 00 00 00 00 00 00 00 d1 01 2e 8f
0020: 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
0030: 13 00 7f 00 01 00 00 00 00 00 00 00 00 00 00 00
0040: 00 00 00 00 03 01 00 00 00 7b d6 cb 4c 92 10 00
0050: 00 00 00 00 00 06 00 00 00 6f 73 64 6d 61 70 0e
0060: 16 9a 1e 69 00 00 00 00 00 00 00 00`

const getVersionRev0 = `
0000: 11 02 29 00 00 00 08 00 12 00 00 00 08 00 00 00
0010: 00 00 00 00 00 00 00 00 00 00 00 00 d1 01 2e 8f
0020: 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
0030: 13 00 7f 00 01 00 00 00 00 00 00 00 00 00 00 00
0040: 00 00 00 00 03 01 00 00 00 92 10 00 00 00 00 00
0050: 00 06 00 00 00 6f 73 64 6d 61 70 00 7b d6 cb 4c
0060: 16 9a 1e 69 00 00 00 00 00 00 00 00`

func getVersionMsg() *msg.Message {
	var e Encoder
	e.U64(4242)
	e.String("osdmap")
	m := msg.New(msg.MsgMonGetVersion, e.B)
	m.Seq = 1
	return m
}

func TestMessageFrameVectors(t *testing.T) {
	for _, c := range []struct {
		rev  Rev
		dump string
	}{{Rev1, getVersionRev1}, {Rev0, getVersionRev0}} {
		t.Run(c.rev.String(), func(t *testing.T) {
			want := unhex(t, c.dump)
			if len(want) != 108 {
				t.Fatalf("vector is %d bytes", len(want))
			}
			m := getVersionMsg()
			got, err := AppendMessageFrame(nil, c.rev, m)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("encode mismatch\n got %x\nwant %x", got, want)
			}
			if n := MessageFrameLen(c.rev, m); n != len(want) {
				t.Errorf("MessageFrameLen = %d, want %d", n, len(want))
			}
			if n, err := FrameSize(want, c.rev, Limits{}); err != nil || n != len(want) {
				t.Errorf("FrameSize = %d, %v", n, err)
			}
			f, n, err := DecodeFrame(want, c.rev, Limits{})
			if err != nil || n != len(want) {
				t.Fatalf("DecodeFrame: n=%d err=%v", n, err)
			}
			var rm msg.Message
			if err := DecodeMessage(&f, &rm); err != nil {
				t.Fatal(err)
			}
			if rm.Header != m.Header || !bytes.Equal(rm.Front, m.Front) || rm.Middle != nil || rm.Data != nil {
				t.Errorf("decoded %+v front %x, want %+v front %x", rm.Header, rm.Front, m.Header, m.Front)
			}
			if rm.Type != 19 || rm.Priority != 127 || rm.Flags != 3 || rm.CompatVersion != 1 {
				t.Errorf("header fields %+v", rm.Header)
			}
		})
	}
}

var monAddrBytes = "01 01 01 1c 00 00 00 02 00 00 00 00 00 00 00 10 00 00 00 02 00 33 f4 7f 00 00 01 00 00 00 00 00 00 00 00"

func TestHelloFrameVector(t *testing.T) {
	want := unhex(t, "01 01 24 00 00 00 08 00"+strings.Repeat(" 00", 20)+" 3f bd 6b 06 08 "+monAddrBytes+" 30 05 4a f0")
	if len(want) != 72 {
		t.Fatalf("vector is %d bytes", len(want))
	}
	h := &Hello{EntityType: msg.EntityClient, PeerAddr: msg.MustParseAddr("v2:127.0.0.1:13300/0")}
	if got := AppendControlFrame(nil, Rev1, h); !bytes.Equal(got, want) {
		t.Fatalf("encode mismatch\n got %x\nwant %x", got, want)
	}
	if got, err := AppendFrame(nil, Rev1, TagHello, h.Encode(nil)); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("AppendFrame mismatch %v\n got %x\nwant %x", err, got, want)
	}
	f, n, err := DecodeFrame(want, Rev1, Limits{})
	if err != nil || n != 72 || f.Tag != TagHello || f.NumSegments != 1 {
		t.Fatalf("DecodeFrame %v %d %v", f.Tag, n, err)
	}
	var got Hello
	if err := got.Decode(f.Payload()); err != nil || got != *h {
		t.Fatalf("Hello decode %+v %v", got, err)
	}
}

func TestWaitFrameVectors(t *testing.T) {
	pre := "10 01 00000000 0800" + strings.Repeat(" 00", 20) + " c8 e3 aa b0"
	for _, c := range []struct {
		rev  Rev
		want []byte
	}{
		{Rev1, unhex(t, pre)},
		{Rev0, unhex(t, pre+" 00 ff ff ff ff"+strings.Repeat(" 00", 12))},
	} {
		got := AppendControlFrame(nil, c.rev, &Wait{})
		if !bytes.Equal(got, c.want) {
			t.Errorf("%v WAIT\n got %x\nwant %x", c.rev, got, c.want)
		}
		got2, _ := AppendFrame(nil, c.rev, TagWait)
		if !bytes.Equal(got2, c.want) {
			t.Errorf("%v WAIT via AppendFrame\n got %x\nwant %x", c.rev, got2, c.want)
		}
		f, n, err := DecodeFrame(c.want, c.rev, Limits{})
		if err != nil || n != len(c.want) || f.Tag != TagWait || len(f.Payload()) != 0 {
			t.Errorf("%v decode WAIT: %v %d %v", c.rev, f.Tag, n, err)
		}
	}
}

func TestFrameSizeTable(t *testing.T) {
	// FACTS.md §4.5: per-part on-wire sizes; we check the totals and the
	// announced segment count.
	rows := []struct {
		h, f, m, d int
		segs       int
		rev0, rev1 int
	}{
		{0, 0, 0, 0, 1, 32 + 17, 32},
		{0, 0, 0, 303, 4, 32 + 303 + 17, 32 + 303 + 13},
		{0, 101, 0, 0, 2, 32 + 101 + 17, 32 + 101 + 13},
		{1, 0, 0, 0, 1, 32 + 1 + 17, 32 + 5},
		{48, 101, 202, 303, 4, 32 + 48 + 101 + 202 + 303 + 17, 32 + 52 + 101 + 202 + 303 + 13},
		{49, 0, 0, 0, 1, 32 + 49 + 17, 32 + 53},
	}
	for _, r := range rows {
		segs := [][]byte{bytes.Repeat([]byte{1}, r.h), bytes.Repeat([]byte{2}, r.f), bytes.Repeat([]byte{3}, r.m), bytes.Repeat([]byte{4}, r.d)}
		for _, rev := range []Rev{Rev0, Rev1} {
			want := r.rev0
			if rev == Rev1 {
				want = r.rev1
			}
			b, err := AppendFrame(nil, rev, TagMessage, segs...)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != want || FrameLen(rev, TagMessage, segs...) != want {
				t.Errorf("%v %d+%d+%d+%d: len %d FrameLen %d, want %d", rev, r.h, r.f, r.m, r.d, len(b), FrameLen(rev, TagMessage, segs...), want)
			}
			if int(b[1]) != r.segs {
				t.Errorf("%v %d+%d+%d+%d: %d segments announced, want %d", rev, r.h, r.f, r.m, r.d, b[1], r.segs)
			}
			f, n, err := DecodeFrame(b, rev, Limits{})
			if err != nil || n != len(b) {
				t.Fatalf("decode: %d %v", n, err)
			}
			for i := 0; i < 4; i++ {
				if !bytes.Equal(f.Segments[i], segs[i]) {
					t.Errorf("%v segment %d: %x, want %x", rev, i, f.Segments[i], segs[i])
				}
			}
		}
	}
}

func TestCommandAckPreambleAndEmptyMiddleCRC(t *testing.T) {
	// FACTS.md §4.1: MMonCommandAck preamble with an announced empty middle
	// and a 4096-aligned data segment; §4.4: empty announced segment crc is
	// 0xFFFFFFFF in the epilogue.
	segs := [][]byte{make([]byte, 41), make([]byte, 60), nil, make([]byte, 94)}
	b, err := AppendFrame(nil, Rev1, TagMessage, segs...)
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, "11 04 29000000 0800 3c000000 0800 00000000 0800 5e000000 0010")
	if !bytes.Equal(b[:26], want) {
		t.Errorf("preamble %x, want %x", b[:26], want)
	}
	epi := b[len(b)-13:]
	if epi[0] != 0x0e || !bytes.Equal(epi[5:9], []byte{0xff, 0xff, 0xff, 0xff}) {
		t.Errorf("epilogue %x", epi)
	}
}

func TestAddrVector(t *testing.T) {
	want := unhex(t, monAddrBytes)
	a := msg.MustParseAddr("v2:127.0.0.1:13300/0")
	if got := AppendAddr(nil, a); !bytes.Equal(got, want) {
		t.Fatalf("addr\n got %x\nwant %x", got, want)
	}
	got, n, err := DecodeAddr(want)
	if err != nil || n != 35 || got != a {
		t.Fatalf("DecodeAddr %v %d %v", got, n, err)
	}
	// Single-address addrvec is 40 bytes (FACTS §2.3).
	v := AppendAddrVec(nil, msg.AddrVec{a})
	if len(v) != 40 || v[0] != 2 || !bytes.Equal(v[5:], want) {
		t.Fatalf("addrvec %x", v)
	}
}

func TestAddrIPv6AndBlank(t *testing.T) {
	a := msg.MustParseAddr("v2:[::1]:3300/7")
	b := AppendAddr(nil, a)
	// marker, v, compat, len(40), type 2, nonce 7, sockaddr_len 28, family 10 LE, port BE, flowinfo, addr, scope.
	want := unhex(t, "01 01 01 28000000 02000000 07000000 1c000000 0a00 0ce4 00000000"+
		" 00000000000000000000000000000001 00000000")
	if !bytes.Equal(b, want) {
		t.Fatalf("ipv6\n got %x\nwant %x", b, want)
	}
	if got, n, err := DecodeAddr(b); err != nil || n != len(b) || got != a {
		t.Fatalf("ipv6 decode %v %d %v", got, n, err)
	}
	blank := msg.Addr{Type: msg.AddrAny, Nonce: 5}
	bb := AppendAddr(nil, blank)
	if len(bb) != 47 || bb[15] != 28 {
		t.Fatalf("blank %x", bb)
	}
	if got, _, err := DecodeAddr(bb); err != nil || got != blank || !got.IsBlank() {
		t.Fatalf("blank decode %v %v", got, err)
	}
}

func TestLegacyAddrDecode(t *testing.T) {
	// 136-byte legacy form: marker 0 + 3 bytes, nonce, sockaddr_storage
	// with a big-endian family.
	b := make([]byte, 136)
	b[4] = 9 // nonce 9
	b[8], b[9] = 0, 2
	b[10], b[11] = 0x1a, 0x85 // port 6789
	copy(b[12:], []byte{10, 0, 0, 1})
	got, n, err := DecodeAddr(b)
	want := msg.MustParseAddr("v1:10.0.0.1:6789/9")
	if err != nil || n != 136 || got != want {
		t.Fatalf("legacy decode %v %d %v", got, n, err)
	}
	v, n, err := DecodeAddrVec(b)
	if err != nil || n != 136 || len(v) != 1 || v[0] != want {
		t.Fatalf("legacy addrvec %v %d %v", v, n, err)
	}
}

func TestLivePayloads(t *testing.T) {
	// AUTH_DONE from the mon (FACTS §5).
	var ad AuthDone
	if err := ad.Decode(unhex(t, "05 10 00 00 00 00 00 00 01 00 00 00 00 00 00 00")); err != nil ||
		ad.GlobalID != 4101 || ad.ConMode != ConModeCRC || len(ad.Payload) != 0 {
		t.Fatalf("AUTH_DONE %+v %v", ad, err)
	}
	// AUTH_REQUEST for client.admin with auth none (FACTS §6.1): 22-byte
	// auth payload.
	var e Encoder
	e.U8(AuthPayloadModeMon)
	e.AuthEntityName(msg.EntityClient, "admin")
	e.U64(0)
	ar := &AuthRequest{Method: AuthMethodNone, PreferredModes: []uint32{ConModeCRC}, Payload: e.B}
	wantAR := unhex(t, "01000000 01000000 01000000 16000000 0a 08000000 05000000 61646d696e 0000000000000000")
	if got := ar.Encode(nil); !bytes.Equal(got, wantAR) {
		t.Fatalf("AUTH_REQUEST\n got %x\nwant %x", got, wantAR)
	}
	// 74-byte frame on the wire (FACTS §1).
	if n := len(AppendControlFrame(nil, Rev1, ar)); n != 74 {
		t.Errorf("AUTH_REQUEST frame %d bytes, want 74", n)
	}
	if n := len(AppendControlFrame(nil, Rev1, &ad)); n != 52 {
		t.Errorf("AUTH_DONE frame %d bytes, want 52", n)
	}
	if n := len(AppendControlFrame(nil, Rev1, &AuthSignature{})); n != 68 {
		t.Errorf("AUTH_SIGNATURE frame %d bytes, want 68", n)
	}
	var rs SessionReset
	if err := rs.Decode([]byte{1}); err != nil || !rs.Full {
		t.Errorf("SESSION_RESET %v %v", rs, err)
	}
	// SERVER_IDENT from the mon: 88-byte payload, 124-byte frame.
	si := &ServerIdent{
		Addrs:             msg.AddrVec{msg.MustParseAddr("v2:127.0.0.1:13300/0")},
		GlobalSeq:         5,
		SupportedFeatures: CephFeaturesAll,
		RequiredFeatures:  msg.FeaturesMonRequired,
		Flags:             IdentFlagLossy,
	}
	if n := len(si.Encode(nil)); n != 88 {
		t.Errorf("SERVER_IDENT payload %d bytes, want 88", n)
	}
	if n := len(AppendControlFrame(nil, Rev1, si)); n != 124 {
		t.Errorf("SERVER_IDENT frame %d bytes, want 124", n)
	}
	// CLIENT_IDENT from the CLI: 159-byte frame.
	ci := &ClientIdent{
		Addrs:             msg.AddrVec{{Type: msg.AddrAny, Nonce: 12345, AddrPort: msg.MustParseAddr("127.0.0.1:0").AddrPort}},
		TargetAddr:        msg.MustParseAddr("v2:127.0.0.1:13300/0"),
		GID:               -1,
		GlobalSeq:         1,
		SupportedFeatures: CephFeaturesAll,
		RequiredFeatures:  CephFeaturesRequired,
		ClientCookie:      0,
	}
	if n := len(AppendControlFrame(nil, Rev1, ci)); n != 159 {
		t.Errorf("CLIENT_IDENT frame %d bytes, want 159", n)
	}
	if CephFeaturesRequired != 0x0800000000000000 || CephFeaturesMonClient != 0x0800000000001000 {
		t.Errorf("feature constants %#x %#x", CephFeaturesRequired, CephFeaturesMonClient)
	}
}

func TestBanner(t *testing.T) {
	want := unhex(t, "63 65 70 68 20 76 32 0a 1000 0100000000000000 0000000000000000")
	b := DefaultBanner.Encode(nil)
	if !bytes.Equal(b, want) || len(b) != BannerLen {
		t.Fatalf("banner %x", b)
	}
	for i := 0; i < len(b); i++ {
		n, err := BannerSize(b[:i])
		if err != nil {
			t.Fatalf("BannerSize(%d bytes): %v", i, err)
		}
		if i < BannerHeaderLen && n != BannerHeaderLen || i >= BannerHeaderLen && n != BannerLen {
			t.Fatalf("BannerSize(%d bytes) = %d", i, n)
		}
		if _, _, err := DecodeBanner(b[:i]); !errors.Is(err, ErrShort) {
			t.Fatalf("DecodeBanner(%d bytes) err = %v", i, err)
		}
	}
	got, n, err := DecodeBanner(append(b, 0xAA)) // trailing byte is the next frame
	if err != nil || n != BannerLen || got != DefaultBanner {
		t.Fatalf("DecodeBanner %v %d %v", got, n, err)
	}
	// A longer payload is accepted and its extra bytes skipped.
	long := append([]byte(BannerPrefix), 18, 0)
	long = append(long, make([]byte, 18)...)
	long[10] = 3
	if got, n, err := DecodeBanner(long); err != nil || n != 28 || got.Supported != 3 {
		t.Fatalf("long banner %v %d %v", got, n, err)
	}
	if _, err := BannerSize([]byte("ceph v027 blah")); !errors.Is(err, ErrMsgr1Banner) {
		t.Errorf("msgr1: %v", err)
	}
	if _, err := BannerSize([]byte("ceph v3")); !errors.Is(err, ErrBadBanner) {
		t.Errorf("bad prefix: %v", err)
	}
	if _, err := BannerSize([]byte("GET / HTTP/1.1")); !errors.Is(err, ErrBadBanner) {
		t.Errorf("http: %v", err)
	}
	short := append([]byte(BannerPrefix), 8, 0)
	if _, err := BannerSize(short); !errors.Is(err, ErrBadBanner) {
		t.Errorf("short payload len: %v", err)
	}
	huge := append([]byte(BannerPrefix), 0xff, 0xff)
	if _, err := BannerSize(huge); !errors.Is(err, ErrBadBanner) {
		t.Errorf("huge payload len: %v", err)
	}

	// Negotiation (FACTS §3).
	if rev, err := DefaultBanner.Check(Banner{Supported: 1}); err != nil || rev != Rev1 {
		t.Errorf("rev1 peer: %v %v", rev, err)
	}
	if rev, err := DefaultBanner.Check(Banner{}); err != nil || rev != Rev0 {
		t.Errorf("rev0 peer: %v %v", rev, err)
	}
	if _, err := DefaultBanner.Check(Banner{Supported: 3, Required: 2}); !errors.Is(err, ErrFeatures) {
		t.Errorf("peer requires compression: %v", err)
	}
	if _, err := (Banner{Supported: 1, Required: 1}).Check(Banner{}); !errors.Is(err, ErrFeatures) {
		t.Errorf("we require rev1: %v", err)
	}
}
