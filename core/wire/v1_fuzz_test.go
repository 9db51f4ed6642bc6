package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/msgr-dev/msgr/core/msg"
)

// v1FuzzSeeds are the seed inputs of FuzzV1Decode: the V1-FACTS §10
// vectors, cut into the units each decoder reads, and a few built items.
// TestV1FuzzCorpus checks they are in testdata/fuzz/FuzzV1Decode
// (`go test -run TestV1FuzzCorpus -update-corpus` writes them).
func v1FuzzSeeds(t testing.TB) [][]byte {
	cli, mon := v1hex(t, v1CLIHandshake), v1hex(t, v1MonHandshake)
	mauth, gv := v1hex(t, v1MAuth), v1hex(t, v1GetVersion)
	big := &msg.Message{Header: msg.Header{Seq: 3, Type: 50}, Front: []byte("f"), Middle: []byte("mm"), Data: []byte("ddd")}
	old, _ := AppendV1Message(nil, big, msg.EntityName{Type: msg.EntityOSD, Num: 2}, false)
	auth := V1Connect{Features: 1, HostType: 4, AuthorizerProtocol: 1, AuthorizerLen: 3, Flags: 1}
	return [][]byte{
		cli, mon,
		cli[V1BannerLen:], mon[V1BannerLen:], mon[V1BannerLen+V1AddrLen:],
		cli[V1ClientHelloLen:], mon[V1ServerHelloLen:],
		mauth, mauth[1:], gv[1:], old[1:],
		v1hex(t, v1BadProtoVer), v1hex(t, v1FeaturesTag),
		AppendV1Addr(nil, msg.MustParseAddr("v1:[2001:db8::5]:6789/77")),
		append(auth.Append(nil), 1, 2, 3),
		AppendV1Keepalive2(nil, V1TagKeepalive2Ack, UTime{Sec: 1, Nsec: 2}),
		[]byte(BannerPrefix),
	}
}

func TestV1FuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzV1Decode")
	if *updateCorpus {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range v1FuzzSeeds(t) {
		name, content := corpusFile(s)
		path := filepath.Join(dir, name)
		if *updateCorpus {
			if err := os.WriteFile(path, content, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, content) {
			t.Errorf("seed %s missing or stale (run with -update-corpus): %v", name, err)
		}
	}
}

// FuzzV1Decode runs every v1 decoder over the input, at every offset
// where a unit could start in the handshake, and checks that what decodes
// re-encodes canonically. A decoder must never panic, and never claim
// more bytes than it was given.
func FuzzV1Decode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = CheckV1Banner(data)
		for _, off := range []int{0, V1BannerLen, V1BannerLen + V1AddrLen, V1ServerHelloLen} {
			if off <= len(data) {
				checkV1Units(t, data[off:])
			}
		}
		if len(data) > 0 && data[0] == byte(V1TagMsg) {
			checkV1Units(t, data[1:])
		}
		// Again with a valid header crc, so that the fuzzer gets past it
		// and explores the lengths and the footer.
		if len(data) >= V1HeaderLen {
			fixed := bytes.Clone(data)
			binary.LittleEndian.PutUint32(fixed[49:], CRC32C(V1CRCSeed, fixed[:49]))
			checkV1Message(t, fixed)
		}
	})
}

func checkV1Units(t *testing.T, b []byte) {
	if a, err := DecodeV1Addr(b); err == nil {
		again, err := DecodeV1Addr(AppendV1Addr(nil, a))
		if err != nil || again != a {
			t.Fatalf("addr %v re-decodes as %v, %v", a, again, err)
		}
		if a.Type == msg.AddrNone != a.IsBlank() {
			t.Fatalf("addr %v: type %v but blank %v", a, a.Type, a.IsBlank())
		}
	}
	if c, err := DecodeV1Connect(b); err == nil {
		if enc := c.Append(nil); !bytes.Equal(enc, b[:V1ConnectLen]) {
			t.Fatalf("connect %+v re-encodes as %x", c, enc)
		}
	} else if !errors.Is(err, ErrShort) && !errors.Is(err, ErrTooLarge) {
		t.Fatalf("connect error %v", err)
	}
	if r, err := DecodeV1ConnectReply(b); err == nil {
		if enc := r.Append(nil); !bytes.Equal(enc, b[:V1ConnectReplyLen]) {
			t.Fatalf("reply %+v re-encodes as %x", r, enc)
		}
		_ = r.Tag.String()
	}
	if ts, err := DecodeV1Timespec(b); err == nil {
		if enc := AppendV1Keepalive2(nil, V1TagKeepalive2, ts); !bytes.Equal(enc[1:], b[:8]) {
			t.Fatalf("timespec %v re-encodes as %x", ts, enc)
		}
	}
	checkV1Message(t, b)
}

func checkV1Message(t *testing.T, b []byte) {
	lim := Limits{MaxSegmentLen: 1 << 16, MaxFrameLen: 1 << 17}
	if h, err := DecodeV1Header(b); err == nil {
		if enc := h.Append(nil); !bytes.Equal(enc, b[:V1HeaderLen]) {
			t.Fatalf("header %+v re-encodes as %x", h, enc)
		}
	}
	for _, auth := range []bool{false, true} {
		size, serr := V1MessageSize(b, auth, lim)
		m, n, err := DecodeV1Message(b, auth, lim)
		if serr != nil {
			if err == nil {
				t.Fatalf("V1MessageSize says %v, DecodeV1Message accepts", serr)
			}
			continue
		}
		if size > len(b) {
			if !errors.Is(err, ErrShort) {
				t.Fatalf("size %d > %d bytes but decode says %v", size, len(b), err)
			}
			continue
		}
		if n != size {
			t.Fatalf("V1MessageSize %d, DecodeV1Message n %d of %d (%v)", size, n, len(b), err)
		}
		if err != nil {
			if !errors.Is(err, ErrAborted) && !errors.Is(err, ErrBadCRC) {
				t.Fatalf("complete message: unexpected error %v", err)
			}
			continue
		}
		// A complete message with good crcs re-encodes to the same bytes,
		// but for flags and sig (Ceph sends COMPLETE, sig 0).
		mm := &msg.Message{Header: m.MsgHeader(), Front: m.Front, Middle: m.Middle, Data: m.Data}
		enc, err := AppendV1Message(nil, mm, m.Header.Src, auth)
		if err != nil {
			t.Fatal(err)
		}
		fl := V1FooterSize(auth)
		if !bytes.Equal(enc[1:len(enc)-fl+12], b[:n-fl+12]) && m.Footer.Flags&V1FooterNoCRC == 0 {
			t.Fatalf("message re-encodes differently:\n%x\n%x", enc[1:], b[:n])
		}
	}
}
