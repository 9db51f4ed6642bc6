package ceph

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"testing"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

// testdata/monmap-monmaptool.bin was written by the real 16.2.15 tool:
//
//	monmaptool --create --fsid 11111111-2222-3333-4444-555555555555 \
//	  --addv a '[v2:127.0.0.1:3300,v1:127.0.0.1:6789]' --addv b '[v2:[::1]:3301]' mm
//
// monmaptool --print: epoch 0, min_mon_release 0, election_strategy 1,
// 0: [v2:127.0.0.1:3300/0,v1:127.0.0.1:6789/0] mon.a, 1: v2:[::1]:3301/0 mon.b.
func readMonmaptoolFile(t *testing.T) []byte {
	b, err := os.ReadFile("testdata/monmap-monmaptool.bin")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeMonmaptoolFile(t *testing.T) {
	raw := readMonmaptoolFile(t)
	mm, err := DecodeMonMap(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := &MonMap{
		Fsid:        testFsid,
		Epoch:       0,
		LastChanged: mm.LastChanged, // a timestamp: checked below
		Created:     mm.Created,
		Mons: []MonInfo{
			{Name: "a", Addrs: msg.AddrVec{
				msg.MustParseAddr("v2:127.0.0.1:3300/0"),
				msg.MustParseAddr("v1:127.0.0.1:6789/0"),
			}},
			{Name: "b", Addrs: msg.AddrVec{msg.MustParseAddr("v2:[::1]:3301/0")}},
		},
		Ranks:            []string{"a", "b"},
		ElectionStrategy: 1,
	}
	if !reflect.DeepEqual(mm, want) {
		t.Errorf("decoded\n%+v\nwant\n%+v", mm, want)
	}
	if mm.Created.Sec < 1.5e9 || mm.LastChanged != mm.Created {
		t.Errorf("timestamps %+v %+v", mm.Created, mm.LastChanged)
	}
	// Re-encoding gives monmaptool's bytes exactly.
	if got := mm.Encode(); !bytes.Equal(got, raw) {
		t.Errorf("re-encoded\n got %x\nwant %x", got, raw)
	}
	if a, ok := mm.Mon("a"); !ok || a.Addrs[0].Port() != 3300 {
		t.Errorf("Mon(a) = %+v %v", a, ok)
	}
	if _, ok := mm.Mon("c"); ok {
		t.Error("Mon(c) found")
	}
}

// TestMonMapRoundTrip covers the fields monmaptool leaves empty.
func TestMonMapRoundTrip(t *testing.T) {
	mm := &MonMap{
		Fsid: testFsid, Epoch: 7, LastChanged: wire.UTime{Sec: 1, Nsec: 2}, Created: wire.UTime{Sec: 3, Nsec: 4},
		PersistentFeatures: 0x3f, OptionalFeatures: 1,
		Mons: []MonInfo{
			{Name: "z", Addrs: msg.AddrVec{msg.MustParseAddr("v2:10.0.0.3:3300/0")}, Priority: 1, Weight: 2,
				CrushLoc: map[string]string{"host": "h3", "datacenter": "dc1"}},
			{Name: "m", Addrs: msg.AddrVec{msg.MustParseAddr("v2:10.0.0.2:3300/0")}},
		},
		Ranks:                 []string{"m", "z"},
		MinMonRelease:         16,
		RemovedRanks:          []int32{2, 5},
		ElectionStrategy:      3,
		DisallowedLeaders:     []string{"z"},
		StretchModeEnabled:    true,
		TiebreakerMon:         "m",
		StretchMarkedDownMons: []string{"a", "b"},
	}
	b := mm.Encode()
	got, err := DecodeMonMap(b)
	if err != nil {
		t.Fatal(err)
	}
	// Mons come back sorted by name, as Ceph's std::map.
	want := *mm
	want.Mons = []MonInfo{mm.Mons[1], mm.Mons[0]}
	if !reflect.DeepEqual(got, &want) {
		t.Errorf("round trip\n%+v\nwant\n%+v", got, &want)
	}
	// Through MMonMap.
	m := NewMMonMap(mm).Encode(msg.FeaturesAll)
	x, err := DecodeMMonMap(m)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := x.MonMap(); err != nil || !reflect.DeepEqual(got, &want) {
		t.Errorf("via MMonMap: %+v, %v", got, err)
	}
}

// TestMonMapOlderVersions: struct_v 6 to 8 (Nautilus, Octopus) layouts
// decode, skipping the fields they lack; newer fields appended by a later
// encoder are skipped.
func TestMonMapOlderVersions(t *testing.T) {
	raw := readMonmaptoolFile(t)
	mm, err := DecodeMonMap(raw)
	if err != nil {
		t.Fatal(err)
	}
	// Cut the v9 tail off to build a v7 encoding: v7 ends after
	// min_mon_release; v8 adds removed_ranks(4) strategy(1) disallowed(4);
	// v9 adds stretch bool(1) tiebreaker(4) marked-down(4).
	body := raw[6:]
	v8 := body[:len(body)-9]
	v7 := v8[:len(v8)-9]
	v6 := v7[:len(v7)-1]
	for _, c := range []struct {
		v        byte
		body     []byte
		strategy uint8
	}{{6, v6, 0}, {7, v7, 0}, {8, v8, 1}} {
		e := wire.NewEncoder(nil)
		mark := e.StructStart(c.v, 6)
		e.Raw(c.body)
		e.StructEnd(mark)
		got, err := DecodeMonMap(e.Bytes())
		if err != nil {
			t.Errorf("v%d: %v", c.v, err)
			continue
		}
		if got.Fsid != mm.Fsid || len(got.Mons) != 2 || got.ElectionStrategy != c.strategy || !reflect.DeepEqual(got.Ranks, mm.Ranks) {
			t.Errorf("v%d: %+v", c.v, got)
		}
	}
	// A v10 with an extra trailing field.
	e := wire.NewEncoder(nil)
	mark := e.StructStart(10, 6)
	e.Raw(body)
	e.U64(42)
	e.StructEnd(mark)
	if got, err := DecodeMonMap(e.Bytes()); err != nil || got.Fsid != mm.Fsid || len(got.Mons) != 2 || got.ElectionStrategy != 1 {
		t.Errorf("v10: %+v %v", got, err)
	}
	// Pre-Nautilus layouts and a compat beyond us are refused clearly.
	for _, b := range [][]byte{{1, 0}, {2, 0}, {5, 3, 0, 0, 0, 0}, {12, 10, 0, 0, 0, 0}} {
		if _, err := DecodeMonMap(b); !errors.Is(err, ErrIncompatible) {
			t.Errorf("%x: %v", b, err)
		}
	}
}

func TestMonMapBad(t *testing.T) {
	raw := readMonmaptoolFile(t)
	// Every truncation fails.
	for n := 0; n < len(raw); n++ {
		if _, err := DecodeMonMap(raw[:n]); err == nil {
			t.Errorf("prefix %d decoded", n)
		}
	}
	// A struct_len shorter than the fields is an overrun, not a panic.
	short := bytes.Clone(raw)
	short[2] = 40
	if _, err := DecodeMonMap(short); err == nil {
		t.Error("short struct_len decoded")
	}
	// A rank naming an unknown mon.
	mm, _ := DecodeMonMap(raw)
	mm.Ranks = []string{"a", "x"}
	if _, err := DecodeMonMap(mm.Encode()); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("unknown rank: %v", err)
	}
}

// testdata/mmonmap-front-live.bin is the front of the MMonMap a 16.2.15
// monitor (fsid 1111...5555, mon.a at v2:127.0.0.1:33799) sent in reply to
// MMonGetMap: a bufferlist holding the monmap.
func TestDecodeLiveMMonMap(t *testing.T) {
	front, err := os.ReadFile("testdata/mmonmap-front-live.bin")
	if err != nil {
		t.Fatal(err)
	}
	m := &msg.Message{Header: msg.Header{Type: msg.MsgMonMap, Version: 1, CompatVersion: 1, Priority: 196}, Front: front}
	x, err := DecodeMMonMap(m)
	if err != nil {
		t.Fatal(err)
	}
	mm, err := x.MonMap()
	if err != nil {
		t.Fatal(err)
	}
	a, ok := mm.Mon("a")
	if mm.Fsid != testFsid || mm.Epoch != 1 || mm.MinMonRelease != 16 || mm.PersistentFeatures != 0xff ||
		mm.ElectionStrategy != 1 || !ok || len(a.Addrs) != 1 || a.Addrs[0] != msg.MustParseAddr("v2:127.0.0.1:33799/0") ||
		!reflect.DeepEqual(mm.Ranks, []string{"a"}) {
		t.Errorf("live monmap %+v", mm)
	}
	// Our encoder reproduces the monitor's bytes, front included.
	if re := NewMMonMap(mm).Encode(msg.FeaturesAll); !bytes.Equal(re.Front, front) {
		t.Errorf("re-encoded front\n got %x\nwant %x", re.Front, front)
	}
}
