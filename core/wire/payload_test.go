package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/msgr-dev/msgr/core/msg"
)

// samplePayloads returns one non-trivial payload per control tag, with
// every slice field non-empty so that DeepEqual round trips are exact.
func samplePayloads() []Payload {
	addrs := msg.AddrVec{msg.MustParseAddr("v2:10.1.2.3:3300/77"), msg.MustParseAddr("v1:[2001:db8::5]:6789/77")}
	return []Payload{
		&Hello{EntityType: msg.EntityOSD, PeerAddr: msg.MustParseAddr("v2:[::1]:1234/0")},
		&AuthRequest{Method: AuthMethodCephx, PreferredModes: []uint32{2, 1}, Payload: []byte("auth-payload")},
		&AuthBadMethod{Method: 2, Result: -95, AllowedMethods: []uint32{1}, AllowedModes: []uint32{2, 1}},
		&AuthReplyMore{Payload: []byte{1, 2, 3}},
		&AuthRequestMore{Payload: []byte{4, 5}},
		&AuthDone{GlobalID: 4101, ConMode: ConModeCRC, Payload: []byte{9}},
		&AuthSignature{Sig: [32]byte{1, 2, 3, 31: 0xff}},
		&ClientIdent{Addrs: addrs, TargetAddr: msg.MustParseAddr("v2:127.0.0.1:13300/0"), GID: -1, GlobalSeq: 3,
			SupportedFeatures: CephFeaturesAll, RequiredFeatures: CephFeaturesRequired, Flags: IdentFlagLossy, ClientCookie: 0xdeadbeef},
		&ServerIdent{Addrs: addrs, GID: 7, GlobalSeq: 5, SupportedFeatures: CephFeaturesAll,
			RequiredFeatures: msg.FeaturesMonRequired, Flags: 0, ServerCookie: 0x1234567890},
		&IdentMissingFeatures{Features: 1 << 59},
		&SessionReconnect{Addrs: addrs, ClientCookie: 1, ServerCookie: 2, GlobalSeq: 3, ConnectSeq: 4, MsgSeq: 5},
		&SessionReset{Full: true},
		&SessionRetry{ConnectSeq: 4},
		&SessionRetryGlobal{GlobalSeq: 2},
		&SessionReconnectOK{MsgSeq: 1},
		&Wait{},
		&Keepalive2{Timestamp: UTime{Sec: 1700000000, Nsec: 123456789}},
		&Keepalive2Ack{Timestamp: UTime{Sec: 1, Nsec: 2}},
		&Ack{Seq: 42},
		&CompressionRequest{IsCompress: true, PreferredMethods: []uint32{1, 2}},
		&CompressionDone{IsCompress: true, Method: 2},
	}
}

func TestEveryTagHasPayload(t *testing.T) {
	seen := map[Tag]bool{}
	for _, p := range samplePayloads() {
		seen[p.Tag()] = true
	}
	for tg := Tag(0); tg < 255; tg++ {
		_, err := NewPayload(tg)
		switch {
		case tg.Valid() && tg != TagMessage:
			if err != nil || !seen[tg] {
				t.Errorf("%v: NewPayload err %v, sample %v", tg, err, seen[tg])
			}
		default:
			if !errors.Is(err, ErrUnknownTag) {
				t.Errorf("NewPayload(%v) err = %v", tg, err)
			}
		}
	}
	if TagHello.String() != "HELLO" || TagSessionReconnectOK.String() != "SESSION_RECONNECT_OK" || Tag(99).String() != "TAG(99)" {
		t.Error("Tag.String")
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	for _, p := range samplePayloads() {
		for _, rev := range []Rev{Rev0, Rev1} {
			frame := AppendControlFrame([]byte("junk"), rev, p)[4:]
			f, n, err := DecodeFrame(frame, rev, Limits{})
			if err != nil || n != len(frame) || f.Tag != p.Tag() || f.NumSegments != 1 {
				t.Fatalf("%v %v: decode frame %v %d %v", p.Tag(), rev, f.Tag, n, err)
			}
			got, err := DecodePayload(f.Tag, f.Payload())
			if err != nil {
				t.Fatalf("%v: %v", p.Tag(), err)
			}
			if !reflect.DeepEqual(got, p) {
				t.Errorf("%v round trip:\n got %+v\nwant %+v", p.Tag(), got, p)
			}
			// Both assemblers agree.
			g2, err := AppendFrame(nil, rev, p.Tag(), p.Encode(nil))
			if err != nil || !bytes.Equal(g2, frame) {
				t.Errorf("%v %v: AppendFrame differs from AppendControlFrame", p.Tag(), rev)
			}
		}
	}
}

func TestPayloadTruncated(t *testing.T) {
	for _, p := range samplePayloads() {
		enc := p.Encode(nil)
		for i := 0; i < len(enc); i++ {
			q, _ := NewPayload(p.Tag())
			if err := q.Decode(enc[:i]); !errors.Is(err, ErrShort) {
				t.Fatalf("%v truncated to %d of %d: err = %v", p.Tag(), i, len(enc), err)
			}
		}
		// Trailing bytes (fields from a newer peer) are ignored.
		q, _ := NewPayload(p.Tag())
		if err := q.Decode(append(enc, 1, 2, 3)); err != nil || !reflect.DeepEqual(q, p) {
			t.Errorf("%v with trailing bytes: %v", p.Tag(), err)
		}
	}
}

func TestPayloadDecodeReusesSlices(t *testing.T) {
	// Decoding into a payload with spare capacity must not allocate the
	// modes slice again (the state machine reuses its structs).
	p := &AuthRequest{Method: 1, PreferredModes: []uint32{1, 2}, Payload: []byte("x")}
	enc := p.Encode(nil)
	q := &AuthRequest{PreferredModes: make([]uint32, 0, 4)}
	allocs := testing.AllocsPerRun(100, func() {
		if err := q.Decode(enc); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("AuthRequest.Decode allocated %v times", allocs)
	}
}

func TestPayloadHostileLengths(t *testing.T) {
	var e Encoder
	e.U32(1)
	e.U32(0xFFFFFFF0) // modes count far beyond the input
	if err := new(AuthRequest).Decode(e.B); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge vector count: %v", err)
	}
	e = Encoder{}
	e.U32(1)
	e.U32(100) // below MaxVecLen, but only 0 bytes follow
	if err := new(AuthRequest).Decode(e.B); !errors.Is(err, ErrShort) {
		t.Errorf("vector count beyond input: %v", err)
	}
	e = Encoder{}
	e.U32(0xFFFFFFFF) // AUTH_REPLY_MORE blob length beyond the limit
	if err := new(AuthReplyMore).Decode(e.B); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge blob: %v", err)
	}
	// addrvec with a huge count.
	b := []byte{2, 0xff, 0xff, 0xff, 0x7f}
	if err := new(ServerIdent).Decode(b); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge addrvec: %v", err)
	}
	b = []byte{2, 10, 0, 0, 0} // 10 addresses, no bytes
	if err := new(ServerIdent).Decode(b); !errors.Is(err, ErrShort) {
		t.Errorf("addrvec beyond input: %v", err)
	}
	if err := new(ServerIdent).Decode([]byte{3}); !errors.Is(err, ErrMalformed) {
		t.Errorf("addrvec marker 3: %v", err)
	}
}
