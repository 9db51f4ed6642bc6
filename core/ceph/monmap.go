package ceph

import (
	"fmt"
	"slices"
	"sort"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

// MonMap is Ceph's monitor map (src/mon/MonMap.h): which monitors form the
// cluster and where they listen.
type MonMap struct {
	Fsid        wire.UUID
	Epoch       uint32
	LastChanged wire.UTime
	Created     wire.UTime
	// PersistentFeatures / OptionalFeatures are mon_feature_t bit sets.
	PersistentFeatures uint64
	OptionalFeatures   uint64
	// Mons are the monitors sorted by name (Ceph's map<string,mon_info_t>).
	Mons []MonInfo
	// Ranks lists monitor names by rank.
	Ranks []string
	// MinMonRelease is the oldest release the monitors run (ceph_release_t:
	// 14 nautilus, 15 octopus, 16 pacific; 0 unknown). struct_v >= 7.
	MinMonRelease uint8
	// Fields of struct_v >= 8.
	RemovedRanks      []int32
	ElectionStrategy  uint8 // 1 classic, 2 disallow, 3 connectivity
	DisallowedLeaders []string
	// Fields of struct_v >= 9 (stretch mode).
	StretchModeEnabled    bool
	TiebreakerMon         string
	StretchMarkedDownMons []string
}

// MonInfo is one monitor of the map (mon_info_t).
type MonInfo struct {
	Name     string
	Addrs    msg.AddrVec // public addresses, e.g. [v2:...:3300, v1:...:6789]
	Priority uint16
	Weight   uint16            // struct_v >= 4
	CrushLoc map[string]string // struct_v >= 5
}

// Mon returns the monitor with the given name.
func (mm *MonMap) Mon(name string) (MonInfo, bool) {
	for _, m := range mm.Mons {
		if m.Name == name {
			return m, true
		}
	}
	return MonInfo{}, false
}

// Encoding versions of MonMap written by Ceph 16.2.15 and of mon_info_t.
const (
	monMapVersion       = 9
	monMapCompat        = 6
	monMapOldestDecoded = 6 // the Nautilus layout; older ones are pre-msgr2
	monInfoVersion      = 5
	monInfoCompat       = 1
	monFeatureVersion   = 1
)

// Encode returns the monmap encoded as Ceph 16.2.15 encodes it for any
// msgr2 peer (MonMap::encode with SERVER_NAUTILUS: struct_v 9, compat 6),
// byte for byte what monmaptool writes.
func (mm *MonMap) Encode() []byte {
	e := wire.NewEncoder(make([]byte, 0, 128+96*len(mm.Mons)))
	mark := e.StructStart(monMapVersion, monMapCompat)
	e.UUID(mm.Fsid)
	e.U32(mm.Epoch)
	e.UTime(mm.LastChanged)
	e.UTime(mm.Created)
	encodeMonFeatures(&e, mm.PersistentFeatures)
	encodeMonFeatures(&e, mm.OptionalFeatures)
	mons := slices.Clone(mm.Mons)
	sort.Slice(mons, func(i, j int) bool { return mons[i].Name < mons[j].Name })
	e.U32(uint32(len(mons)))
	for i := range mons {
		e.String(mons[i].Name)
		encodeMonInfo(&e, &mons[i])
	}
	e.Strings(mm.Ranks)
	e.U8(mm.MinMonRelease)
	removed := slices.Clone(mm.RemovedRanks) // a std::set: sorted, unique
	slices.Sort(removed)
	removed = slices.Compact(removed)
	e.U32(uint32(len(removed)))
	for _, r := range removed {
		e.I32(r)
	}
	e.U8(mm.ElectionStrategy)
	encodeStringSet(&e, mm.DisallowedLeaders)
	e.Bool(mm.StretchModeEnabled)
	e.String(mm.TiebreakerMon)
	encodeStringSet(&e, mm.StretchMarkedDownMons)
	e.StructEnd(mark)
	return e.Bytes()
}

func encodeMonFeatures(e *wire.Encoder, f uint64) {
	mark := e.StructStart(monFeatureVersion, monFeatureVersion)
	e.U64(f)
	e.StructEnd(mark)
}

func encodeMonInfo(e *wire.Encoder, m *MonInfo) {
	mark := e.StructStart(monInfoVersion, monInfoCompat)
	e.String(m.Name)
	e.AddrVec(m.Addrs)
	e.U16(m.Priority)
	e.U16(m.Weight)
	keys := sortedKeys(m.CrushLoc)
	e.StringMap(keys, m.CrushLoc)
	e.StructEnd(mark)
}

// encodeStringSet writes a std::set<std::string>: sorted, unique.
func encodeStringSet(e *wire.Encoder, v []string) {
	s := slices.Clone(v)
	slices.Sort(s)
	s = slices.Compact(s)
	e.Strings(s)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// DecodeMonMap decodes an encoded monmap (the bufferlist of MMonMap, or a
// monmaptool file). It reads the Nautilus and later layouts (struct_v 6
// and up; fields of versions it does not know are skipped); the older
// layouts predate msgr2 and are ErrIncompatible.
func DecodeMonMap(b []byte) (*MonMap, error) {
	const name = "MonMap"
	d := wire.NewDecoder(b)
	if len(b) > 0 && b[0] < monMapOldestDecoded {
		return nil, fmt.Errorf("%w: %s struct_v %d (pre-Nautilus layout)", ErrIncompatible, name, b[0])
	}
	if len(b) > 1 && b[1] > monMapVersion {
		return nil, fmt.Errorf("%w: %s struct_compat %d > %d", ErrIncompatible, name, b[1], monMapVersion)
	}
	v, end := d.StructStart(monMapVersion)
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("ceph: decoding %s: %w", name, err)
	}
	mm := &MonMap{}
	mm.Fsid = d.UUID()
	mm.Epoch = d.U32()
	mm.LastChanged = d.UTime()
	mm.Created = d.UTime()
	mm.PersistentFeatures = decodeMonFeatures(&d)
	mm.OptionalFeatures = decodeMonFeatures(&d)
	// name + mon_info_t: at least 4 + 6 + 4 + 5 bytes.
	n := d.Count(19, maxMonitors)
	for i := 0; i < n && d.Err() == nil; i++ {
		key := d.String(maxStrLen)
		info := decodeMonInfo(&d)
		if d.Err() == nil && info.Name != key {
			d.Fail(fmt.Errorf("%w: mon_info key %q holds mon %q", wire.ErrMalformed, key, info.Name))
		}
		mm.Mons = append(mm.Mons, info)
	}
	mm.Ranks = d.Strings(maxMonitors, maxStrLen)
	if v >= 7 {
		mm.MinMonRelease = d.U8()
	}
	if v >= 8 {
		k := d.Count(4, maxMonitors)
		for i := 0; i < k && d.Err() == nil; i++ {
			mm.RemovedRanks = append(mm.RemovedRanks, d.I32())
		}
		mm.ElectionStrategy = d.U8()
		mm.DisallowedLeaders = d.Strings(maxMonitors, maxStrLen)
	}
	if v >= 9 {
		mm.StretchModeEnabled = d.Bool()
		mm.TiebreakerMon = d.String(maxStrLen)
		mm.StretchMarkedDownMons = d.Strings(maxMonitors, maxStrLen)
	}
	d.StructEnd(end)
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("ceph: decoding %s: %w", name, err)
	}
	for _, r := range mm.Ranks {
		if _, ok := mm.Mon(r); !ok {
			return nil, fmt.Errorf("ceph: decoding %s: %w: rank names unknown mon %q", name, wire.ErrMalformed, r)
		}
	}
	return mm, nil
}

func decodeMonFeatures(d *wire.Decoder) uint64 {
	_, end := d.StructStart(monFeatureVersion)
	f := d.U64()
	d.StructEnd(end)
	return f
}

func decodeMonInfo(d *wire.Decoder) MonInfo {
	var m MonInfo
	v, end := d.StructStart(monInfoVersion)
	m.Name = d.String(maxStrLen)
	// v1/v2 hold a single legacy address, which AddrVec also accepts.
	m.Addrs = d.AddrVec(wire.MaxAddrs)
	if v >= 2 {
		m.Priority = d.U16()
	}
	if v >= 4 {
		m.Weight = d.U16()
	}
	if v >= 5 {
		n := d.Count(8, maxStrings)
		if n > 0 {
			m.CrushLoc = make(map[string]string, n)
		}
		for i := 0; i < n && d.Err() == nil; i++ {
			k := d.String(maxStrLen)
			m.CrushLoc[k] = d.String(maxStrLen)
		}
	}
	d.StructEnd(end)
	return m
}
