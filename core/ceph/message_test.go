package ceph

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

// unhex decodes hex with spaces, newlines and "|" separators ignored.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	s = strings.NewReplacer(" ", "", "\n", "", "\t", "", "|", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var testFsid = wire.UUID{0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55}

// TestGetVersionFrameBytes: MMonGetVersion("osdmap", 4242) as seq 1 is the
// exact frame FACTS.md §4.6 shows, accepted by a live monitor, in both
// frame layouts.
func TestGetVersionFrameBytes(t *testing.T) {
	rev1 := unhex(t, `
11 02 29 00 00 00 08 00 12 00 00 00 08 00 00 00
00 00 00 00 00 00 00 00 00 00 00 00 d1 01 2e 8f
01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
13 00 7f 00 01 00 00 00 00 00 00 00 00 00 00 00
00 00 00 00 03 01 00 00 00 7b d6 cb 4c 92 10 00
00 00 00 00 00 06 00 00 00 6f 73 64 6d 61 70 0e
16 9a 1e 69 00 00 00 00 00 00 00 00`)
	rev0 := unhex(t, `
11 02 29 00 00 00 08 00 12 00 00 00 08 00 00 00
00 00 00 00 00 00 00 00 00 00 00 00 d1 01 2e 8f
01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
13 00 7f 00 01 00 00 00 00 00 00 00 00 00 00 00
00 00 00 00 03 01 00 00 00 92 10 00 00 00 00 00
00 06 00 00 00 6f 73 64 6d 61 70 00 7b d6 cb 4c
16 9a 1e 69 00 00 00 00 00 00 00 00`)
	for _, c := range []struct {
		rev  wire.Rev
		want []byte
	}{{wire.Rev1, rev1}, {wire.Rev0, rev0}} {
		m := (&MMonGetVersion{Handle: 4242, What: "osdmap"}).Encode(msg.FeaturesAll)
		m.Seq = 1 // the messenger's job; fixed here to compare bytes
		got, err := wire.AppendMessageFrame(nil, c.rev, m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, c.want) {
			t.Errorf("%v frame:\n got %x\nwant %x", c.rev, got, c.want)
		}
	}
}

// TestMonCommandFront: the live example of FACTS.md §10.3 (front of 68
// bytes) and its ack (front of 60 bytes, output in the data segment).
func TestMonCommandFront(t *testing.T) {
	const cmd = `{"prefix": "mon versions"}`
	m := (&MMonCommand{Tid: 7, Fsid: testFsid, Cmd: []string{cmd}}).Encode(msg.FeaturesAll)
	want := append(unhex(t, `
0000000000000000 | ffff | 0000000000000000
11111111222233334444555555555555
01000000 1a000000`), cmd...)
	if !bytes.Equal(m.Front, want) || len(m.Front) != 68 {
		t.Errorf("front (%d bytes)\n got %x\nwant %x", len(m.Front), m.Front, want)
	}
	if m.Type != 50 || m.Version != 1 || m.CompatVersion != 1 || m.Priority != msg.PrioDefault || m.Tid != 7 || m.Data != nil {
		t.Errorf("header %+v data %q", m.Header, m.Data)
	}

	const out = `{"ceph version 16.2.15 (618f440892089921c3e944a991122ddc44e60516) pacific (stable)": 1}` + "\n"
	ack := &msg.Message{Header: msg.Header{Type: 51, Tid: 7, Version: 1, CompatVersion: 1, Priority: 196},
		Front: append(unhex(t, `0000000000000000 ffff 0000000000000000 | 00000000 | 00000000 | 01000000 1a000000`), cmd...),
		Data:  []byte(out)}
	if len(ack.Front) != 60 {
		t.Fatalf("ack front %d bytes, FACTS says 60", len(ack.Front))
	}
	a, err := DecodeMMonCommandAck(ack)
	if err != nil {
		t.Fatal(err)
	}
	if a.R != 0 || a.Rs != "" || a.Tid != 7 || !reflect.DeepEqual(a.Cmd, []string{cmd}) || string(a.Output) != out {
		t.Errorf("ack %+v", a)
	}
	// Re-encoding gives the same bytes.
	if re := a.Encode(msg.FeaturesAll); !bytes.Equal(re.Front, ack.Front) || !bytes.Equal(re.Data, ack.Data) {
		t.Errorf("re-encoded ack front %x", re.Front)
	}
}

// TestSubscribeFront: the v3 layout of FACTS.md §10.4, and the v0 form for
// peers without SUBSCRIBE2.
func TestSubscribeFront(t *testing.T) {
	s := &MMonSubscribe{What: map[string]SubscribeItem{
		"osdmap": {Start: 0, Flags: SubscribeOnetime},
		"config": {Start: 0},
		"monmap": {Start: 3},
		"mgrmap": {Start: 1},
	}, Hostname: "host1"}
	m := s.Encode(msg.FeaturesAll)
	want := unhex(t, `04000000
06000000 636f6e666967 0000000000000000 00
06000000 6d67726d6170 0100000000000000 00
06000000 6d6f6e6d6170 0300000000000000 00
06000000 6f73646d6170 0000000000000000 01
05000000 686f737431`)
	if m.Type != 15 || m.Version != 3 || m.CompatVersion != 1 {
		t.Errorf("header %+v", m.Header)
	}
	if !bytes.Equal(m.Front, want) {
		t.Errorf("front\n got %x\nwant %x", m.Front, want)
	}
	got, err := DecodeMMonSubscribe(m)
	if err != nil || !reflect.DeepEqual(got, s) {
		t.Errorf("round trip %+v, %v", got, err)
	}

	old := s.Encode(msg.FeaturesAll &^ FeatureSubscribe2)
	if old.Version != 0 {
		t.Errorf("old form version %d", old.Version)
	}
	wantOld := unhex(t, `01000000 06000000 6d6f6e6d6170 0000000000000000 0200000000000000 01`)
	one := &MMonSubscribe{What: map[string]SubscribeItem{"monmap": {Start: 3, Flags: SubscribeOnetime}}}
	if o := one.Encode(0); !bytes.Equal(o.Front, wantOld) {
		t.Errorf("old front\n got %x\nwant %x", o.Front, wantOld)
	}
	got, err = DecodeMMonSubscribe(old)
	if err != nil {
		t.Fatal(err)
	}
	// The old form loses start 1 (have 0 is ambiguous) and the hostname.
	wantBack := map[string]SubscribeItem{
		"osdmap": {Start: 0, Flags: SubscribeOnetime}, "config": {}, "monmap": {Start: 3}, "mgrmap": {Start: 0},
	}
	if !reflect.DeepEqual(got.What, wantBack) || got.Hostname != "" {
		t.Errorf("old round trip %+v", got)
	}
}

// TestRoundTrips encodes and decodes every message, checking the header
// each encoder sets.
func TestRoundTrips(t *testing.T) {
	type codec struct {
		name              string
		in                any
		enc               func() *msg.Message
		dec               func(*msg.Message) (any, error)
		typ, ver, compat  uint16
		wantFront, wantDt string // hex, "" = no check
	}
	ver := &MMonGetVersion{Handle: 1, What: "monmap"}
	rep := &MMonGetVersionReply{Handle: 1, Version: 5, OldestVersion: 1}
	gm := &MMonGetMap{}
	mm := &MMonMap{MonMapBL: []byte{9, 6, 0, 0, 0, 0}}
	sa := &MMonSubscribeAck{Interval: 300, Fsid: testFsid}
	cmd := &MMonCommand{Tid: 3, Fsid: testFsid, Cmd: []string{`{"prefix":"status"}`, "x"}, Input: []byte("in")}
	ack := &MMonCommandAck{Tid: 3, R: -22, Rs: "bad", Cmd: []string{"c"}, Output: []byte("out")}
	ping := &MPing{}
	cases := []codec{
		{"MMonGetVersion", ver, func() *msg.Message { return ver.Encode(msg.FeaturesAll) },
			func(m *msg.Message) (any, error) { return DecodeMMonGetVersion(m) }, 19, 1, 1,
			"0100000000000000 06000000 6d6f6e6d6170", ""},
		{"MMonGetVersionReply", rep, func() *msg.Message { return rep.Encode(msg.FeaturesAll) },
			func(m *msg.Message) (any, error) { return DecodeMMonGetVersionReply(m) }, 20, 2, 2,
			"0100000000000000 0500000000000000 0100000000000000", ""},
		{"MMonGetMap", gm, func() *msg.Message { return gm.Encode(msg.FeaturesAll) },
			func(m *msg.Message) (any, error) { return DecodeMMonGetMap(m) }, 5, 1, 1, "", ""},
		{"MMonMap", mm, func() *msg.Message { return mm.Encode(msg.FeaturesAll) },
			func(m *msg.Message) (any, error) { return DecodeMMonMap(m) }, 4, 1, 1, "06000000 090600000000", ""},
		{"MMonSubscribeAck", sa, func() *msg.Message { return sa.Encode(msg.FeaturesAll) },
			func(m *msg.Message) (any, error) { return DecodeMMonSubscribeAck(m) }, 16, 1, 1,
			"2c010000 11111111222233334444555555555555", ""},
		{"MMonCommand", cmd, func() *msg.Message { return cmd.Encode(msg.FeaturesAll) },
			func(m *msg.Message) (any, error) { return DecodeMMonCommand(m) }, 50, 1, 1, "", "696e"},
		{"MMonCommandAck", ack, func() *msg.Message { return ack.Encode(msg.FeaturesAll) },
			func(m *msg.Message) (any, error) { return DecodeMMonCommandAck(m) }, 51, 1, 1,
			"0000000000000000 ffff 0000000000000000 eaffffff 03000000 626164 01000000 01000000 63", "6f7574"},
		{"MPing", ping, func() *msg.Message { return ping.Encode(msg.FeaturesAll) },
			func(m *msg.Message) (any, error) { return DecodeMPing(m) }, 2, 1, 1, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := c.enc()
			if m.Type != c.typ || m.Version != c.ver || m.CompatVersion != c.compat ||
				m.Priority != msg.PrioDefault || m.Flags != msg.FlagsDefault {
				t.Errorf("header %+v, want type %d v%d compat %d", m.Header, c.typ, c.ver, c.compat)
			}
			if c.wantFront != "" && !bytes.Equal(m.Front, unhex(t, c.wantFront)) {
				t.Errorf("front %x, want %s", m.Front, c.wantFront)
			}
			if c.wantDt != "" && !bytes.Equal(m.Data, unhex(t, c.wantDt)) {
				t.Errorf("data %x, want %s", m.Data, c.wantDt)
			}
			got, err := c.dec(m)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.in) {
				t.Errorf("round trip %+v, want %+v", got, c.in)
			}
			// Another message type is refused.
			other := *m
			other.Type = 999
			if _, err := c.dec(&other); !errors.Is(err, ErrType) {
				t.Errorf("type 999: %v", err)
			}
			// An encoding whose compat is beyond this decoder is refused.
			newer := *m
			newer.Version, newer.CompatVersion = 100, 100
			if _, err := c.dec(&newer); !errors.Is(err, ErrIncompatible) {
				t.Errorf("compat 100: %v", err)
			}
			if _, err := c.dec(nil); !errors.Is(err, ErrType) {
				t.Errorf("nil message: %v", err)
			}
		})
	}
}

// TestTruncatedFronts: every strict prefix of a valid front is an error
// (never a panic), except the prefixes that are themselves valid older
// encodings.
func TestTruncatedFronts(t *testing.T) {
	msgs := []struct {
		m     *msg.Message
		dec   func(*msg.Message) error
		valid map[int]bool // prefix lengths that decode
	}{
		{(&MMonGetVersion{Handle: 1, What: "osdmap"}).Encode(msg.FeaturesAll),
			func(m *msg.Message) error { _, err := DecodeMMonGetVersion(m); return err }, nil},
		{(&MMonGetVersionReply{Handle: 1, Version: 2, OldestVersion: 1}).Encode(msg.FeaturesAll),
			func(m *msg.Message) error { _, err := DecodeMMonGetVersionReply(m); return err }, nil},
		{(&MMonMap{MonMapBL: []byte("abc")}).Encode(msg.FeaturesAll),
			func(m *msg.Message) error { _, err := DecodeMMonMap(m); return err }, nil},
		{(&MMonSubscribe{What: map[string]SubscribeItem{"a": {1, 1}}, Hostname: "h"}).Encode(msg.FeaturesAll),
			func(m *msg.Message) error { _, err := DecodeMMonSubscribe(m); return err }, nil},
		{(&MMonSubscribeAck{Interval: 1, Fsid: testFsid}).Encode(msg.FeaturesAll),
			func(m *msg.Message) error { _, err := DecodeMMonSubscribeAck(m); return err },
			map[int]bool{4: true}}, // no fsid: a very old sender
		{(&MMonCommand{Fsid: testFsid, Cmd: []string{"x"}}).Encode(msg.FeaturesAll),
			func(m *msg.Message) error { _, err := DecodeMMonCommand(m); return err }, nil},
		{(&MMonCommandAck{R: 1, Rs: "r", Cmd: []string{"x"}}).Encode(msg.FeaturesAll),
			func(m *msg.Message) error { _, err := DecodeMMonCommandAck(m); return err }, nil},
	}
	for _, c := range msgs {
		full := c.m.Front
		for n := 0; n < len(full); n++ {
			m := *c.m
			m.Front = full[:n]
			err := c.dec(&m)
			if c.valid[n] {
				if err != nil {
					t.Errorf("type %d prefix %d: %v", m.Type, n, err)
				}
				continue
			}
			if err == nil {
				t.Errorf("type %d: prefix %d of %d decoded", m.Type, n, len(full))
			} else if !errors.Is(err, wire.ErrShort) {
				t.Errorf("type %d prefix %d: %v is not ErrShort", m.Type, n, err)
			}
		}
	}
}

// TestHugeCounts: a declared count or length far beyond the input is an
// error before anything is allocated for it.
func TestHugeCounts(t *testing.T) {
	front := unhex(t, `0000000000000000 ffff 0000000000000000 11111111222233334444555555555555 ffffff7f`)
	m := &msg.Message{Header: msg.Header{Type: msg.MsgMonCommand, Version: 1}, Front: front}
	if _, err := DecodeMMonCommand(m); err == nil {
		t.Error("2^31 commands decoded")
	}
	sub := &msg.Message{Header: msg.Header{Type: msg.MsgMonSubscribe, Version: 3}, Front: unhex(t, `ffffffff`)}
	if _, err := DecodeMMonSubscribe(sub); err == nil {
		t.Error("2^32 subscriptions decoded")
	}
	mmap := &msg.Message{Header: msg.Header{Type: msg.MsgMonMap, Version: 1}, Front: unhex(t, `ffffff0f 00`)}
	if _, err := DecodeMMonMap(mmap); err == nil {
		t.Errorf("huge monmap blob: %v", err)
	}
}

func TestPongJSON(t *testing.T) {
	p := &MPing{Payload: append(unhex(t, `02000000`), "{}"...)}
	if s, err := p.PongJSON(); err != nil || s != "{}" {
		t.Errorf("PongJSON = %q, %v", s, err)
	}
	p.Payload = p.Payload[:5]
	if _, err := p.PongJSON(); !errors.Is(err, wire.ErrShort) {
		t.Errorf("short pong: %v", err)
	}
}

// FuzzDecoders feeds arbitrary fronts to every decoder: errors are fine,
// panics are not, and whatever decodes must re-encode and decode the same.
func FuzzDecoders(f *testing.F) {
	f.Add(uint16(19), uint16(1), []byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 'a'})
	f.Add(uint16(15), uint16(3), []byte{1, 0, 0, 0, 1, 0, 0, 0, 'a', 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0})
	f.Add(uint16(15), uint16(1), []byte{1, 0, 0, 0, 1, 0, 0, 0, 'a', 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add(uint16(4), uint16(1), []byte{2, 0, 0, 0, 9, 6})
	f.Add(uint16(51), uint16(1), make([]byte, 40))
	f.Fuzz(func(t *testing.T, typ, ver uint16, front []byte) {
		m := &msg.Message{Header: msg.Header{Type: typ, Version: ver}, Front: front}
		DecodeMMonGetVersion(m)
		DecodeMMonGetVersionReply(m)
		DecodeMMonGetMap(m)
		if x, err := DecodeMMonMap(m); err == nil {
			DecodeMonMap(x.MonMapBL)
		}
		DecodeMMonSubscribeAck(m)
		DecodeMMonCommand(m)
		DecodeMMonCommandAck(m)
		DecodeMPing(m)
		DecodeMonMap(front)
		if x, err := DecodeMMonSubscribe(m); err == nil && ver >= 3 {
			y, err := DecodeMMonSubscribe(x.Encode(msg.FeaturesAll))
			if err != nil || !reflect.DeepEqual(x, y) {
				t.Fatalf("subscribe round trip %+v -> %+v, %v", x, y, err)
			}
		}
	})
}

// TestMAuthFront: the real CLI's first msgr1 message (V1-FACTS.md §10.2,
// front of 60 bytes), and an MAuthReply as a monitor sends it (§6.1).
func TestMAuthFront(t *testing.T) {
	m := (&MAuth{Protocol: AuthUnknown, Methods: []uint32{AuthNone}, NameType: msg.EntityClient, NameID: "admin"}).Encode(msg.FeaturesAll)
	want := unhex(t, `
0000000000000000 ffff 0000000000000000 | 00000000 | 1e000000
01 01000000 01000000 | 08000000 05000000 61646d696e | 0000000000000000 | 00000000`)
	if !bytes.Equal(m.Front, want) || len(m.Front) != 60 {
		t.Errorf("front (%d bytes)\n got %x\nwant %x", len(m.Front), m.Front, want)
	}
	if m.Type != 17 || m.Version != 1 || m.CompatVersion != 1 || m.Priority != msg.PrioDefault {
		t.Errorf("header %+v", m.Header)
	}
	a, err := DecodeMAuth(m)
	if err != nil || a.Protocol != 0 || !reflect.DeepEqual(a.Methods, []uint32{1}) || a.NameType != msg.EntityClient || a.NameID != "admin" || a.GlobalID != 0 {
		t.Errorf("decoded %+v %v", a, err)
	}
	r := (&MAuthReply{Protocol: AuthNone, GlobalID: 4097}).Encode(msg.FeaturesAll)
	if len(r.Front) != 24 {
		t.Errorf("reply front %d bytes, V1-FACTS says 24", len(r.Front))
	}
	rr, err := DecodeMAuthReply(r)
	if err != nil || rr.Protocol != 1 || rr.Result != 0 || rr.GlobalID != 4097 || len(rr.Payload) != 0 || rr.Message != "" {
		t.Errorf("reply %+v %v", rr, err)
	}
	// Truncated fronts are errors, not panics.
	for n := 0; n < len(m.Front); n++ {
		if _, err := DecodeMAuth(&msg.Message{Header: m.Header, Front: m.Front[:n]}); err == nil {
			t.Fatalf("MAuth front cut at %d decoded", n)
		}
	}
	for n := 0; n < len(r.Front); n++ {
		if _, err := DecodeMAuthReply(&msg.Message{Header: r.Header, Front: r.Front[:n]}); err == nil {
			t.Fatalf("MAuthReply front cut at %d decoded", n)
		}
	}
}
