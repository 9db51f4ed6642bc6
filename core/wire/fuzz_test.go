package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/msgr-dev/msgr/core/msg"
)

// The seed corpus under testdata/fuzz/<FuzzName>/ is generated from the
// FACTS.md vectors and the sample payloads; `go test -run TestFuzzCorpus
// -update-corpus` rewrites it, and TestFuzzCorpus fails when a seed is
// missing from it.
var updateCorpus = flag.Bool("update-corpus", false, "rewrite the checked-in fuzz seed corpus")

func corpusSeeds(t testing.TB) map[string][][]byte {
	frames := [][]byte{unhex(t, getVersionRev1), unhex(t, getVersionRev0)}
	for _, p := range samplePayloads() {
		frames = append(frames, AppendControlFrame(nil, Rev1, p), AppendControlFrame(nil, Rev0, p))
	}
	for _, b := range sampleFrames(t) {
		frames = append(frames, b)
	}
	var payloads [][]byte
	for _, p := range samplePayloads() {
		payloads = append(payloads, p.Encode([]byte{byte(p.Tag())}))
	}
	legacy := make([]byte, 136)
	legacy[9] = 2
	addrs := [][]byte{
		unhex(t, monAddrBytes),
		AppendAddr(nil, msg.MustParseAddr("v2:[::1]:3300/7")),
		AppendAddr(nil, msg.Addr{Type: msg.AddrAny, Nonce: 1}),
		AppendAddrVec(nil, msg.AddrVec{msg.MustParseAddr("v2:1.2.3.4:3300/0"), msg.MustParseAddr("v1:1.2.3.4:6789/0")}),
		legacy,
	}
	return map[string][][]byte{
		"FuzzDecodeFrame":    frames,
		"FuzzDecodePayloads": payloads,
		"FuzzDecodeAddr":     addrs,
		"FuzzDecodeBanner":   {DefaultBanner.Encode(nil), Banner{Supported: 3, Required: 2}.Encode(nil)},
	}
}

func corpusFile(data []byte) (name string, content []byte) {
	sum := sha256.Sum256(data)
	return "seed-" + hex.EncodeToString(sum[:8]), []byte("go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n")
}

func TestFuzzCorpus(t *testing.T) {
	for fuzzName, seeds := range corpusSeeds(t) {
		dir := filepath.Join("testdata", "fuzz", fuzzName)
		if *updateCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range seeds {
			name, content := corpusFile(s)
			path := filepath.Join(dir, name)
			if *updateCorpus {
				if err := os.WriteFile(path, content, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, content) {
				t.Errorf("%s: seed %s missing or stale (run with -update-corpus): %v", fuzzName, name, err)
			}
		}
	}
}

func FuzzDecodeFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFrameDecode(t, data)
		// Again with a valid preamble crc, so that the fuzzer gets past it
		// and explores the preamble fields.
		if len(data) >= PreambleLen {
			fixed := append([]byte(nil), data...)
			binary.LittleEndian.PutUint32(fixed[28:], CRC32C(PreambleCRCSeed, fixed[:28]))
			checkFrameDecode(t, fixed)
		}
	})
}

func checkFrameDecode(t *testing.T, data []byte) {
	{
		for _, rev := range []Rev{Rev0, Rev1} {
			lim := Limits{MaxSegmentLen: 1 << 16, MaxFrameLen: 1 << 17, MaxControlLen: 1 << 12}
			size, serr := FrameSize(data, rev, lim)
			fr, n, err := DecodeFrame(data, rev, lim)
			if err != nil {
				// An incomplete frame is ErrShort exactly when FrameSize
				// asks for more than we have.
				if serr == nil && size <= len(data) && errors.Is(err, ErrShort) {
					t.Fatalf("%v: FrameSize %d <= %d but DecodeFrame says short: %v", rev, size, len(data), err)
				}
				continue
			}
			if serr != nil || size != n || n > len(data) {
				t.Fatalf("%v: FrameSize %d %v, DecodeFrame n %d of %d", rev, size, serr, n, len(data))
			}
			if fr.Aborted {
				continue
			}
			// Reassembling the decoded segments yields a frame that decodes
			// to the same segments.
			again, err := AppendFrame(nil, rev, fr.Tag, fr.Segments[:fr.NumSegments]...)
			if err != nil {
				t.Fatal(err)
			}
			fr2, n2, err := DecodeFrame(again, rev, lim)
			if err != nil || n2 != len(again) || fr2.NumSegments != fr.NumSegments {
				t.Fatalf("%v: reassembled frame: %v (%d vs %d segs)", rev, err, fr2.NumSegments, fr.NumSegments)
			}
			for i := range fr.Segments {
				if !bytes.Equal(fr.Segments[i], fr2.Segments[i]) {
					t.Fatalf("%v: segment %d differs after reassembly", rev, i)
				}
			}
			if fr.Tag == TagMessage {
				var m msg.Message
				_ = DecodeMessage(&fr, &m)
			} else {
				_, _ = DecodePayload(fr.Tag, fr.Payload())
			}
		}
	}
}

func FuzzDecodePayloads(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		tag, body := Tag(data[0]), data[1:]
		p, err := DecodePayload(tag, body)
		if err != nil {
			return
		}
		// Encoding is canonical after one decode: decode(encode(p))
		// re-encodes to the same bytes.
		enc := p.Encode(nil)
		q, err := DecodePayload(tag, enc)
		if err != nil {
			t.Fatalf("%v: re-decode of %x: %v", tag, enc, err)
		}
		if enc2 := q.Encode(nil); !bytes.Equal(enc, enc2) {
			t.Fatalf("%v: not canonical:\n%x\n%x", tag, enc, enc2)
		}
		if len(enc) > len(body)+64 {
			// Canonical form can grow (short sockaddrs are padded), but
			// only a little per address.
			t.Logf("%v: %d -> %d bytes", tag, len(body), len(enc))
		}
	})
}

func FuzzDecodeAddr(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if a, n, err := DecodeAddr(data); err == nil {
			if n > len(data) {
				t.Fatalf("used %d of %d bytes", n, len(data))
			}
			b, _, err := DecodeAddr(AppendAddr(nil, a))
			if err != nil || b != a {
				t.Fatalf("addr %v re-decodes as %v, %v", a, b, err)
			}
			if a.Type != msg.AddrNone {
				_ = a.String()
			}
		}
		if v, n, err := DecodeAddrVec(data); err == nil {
			if n > len(data) || len(v) == 0 && n < 5 {
				t.Fatalf("addrvec %v used %d of %d bytes", v, n, len(data))
			}
			w, _, err := DecodeAddrVec(AppendAddrVec(nil, v))
			if err != nil || fmt.Sprint(w) != fmt.Sprint(v) {
				t.Fatalf("addrvec %v re-decodes as %v, %v", v, w, err)
			}
		}
	})
}

func FuzzDecodeBanner(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		size, serr := BannerSize(data)
		b, n, err := DecodeBanner(data)
		if err == nil {
			if serr != nil || n != size || n > len(data) {
				t.Fatalf("BannerSize %d %v vs DecodeBanner n %d", size, serr, n)
			}
			if got, _, _ := DecodeBanner(b.Encode(nil)); got != b {
				t.Fatalf("banner round trip %v -> %v", b, got)
			}
		}
	})
}
