package ceph

import (
	"errors"
	"fmt"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

// Message types of this package that core/msg does not name
// (CEPH_MSG_* in Ceph's msgr.h).
const (
	MsgPing uint16 = 2 // CEPH_MSG_PING
)

// Ceph feature bits the encoders here look at (CEPH_FEATURE_*); the others
// are in core/msg.
const (
	FeatureSubscribe2 uint64 = 1 << 4  // MMonSubscribe v2+ (start/flags items)
	FeatureMonNames   uint64 = 1 << 5  // monmap with mon names
	FeatureMonEnc     uint64 = 1 << 15 // versioned monmap encoding
)

// Errors returned (wrapped; test with errors.Is) by the Decode functions,
// besides core/wire's ErrShort / ErrTooLarge / ErrMalformed for a bad
// payload.
var (
	// ErrType: the message is not of the type the decoder reads.
	ErrType = errors.New("ceph: wrong message type")
	// ErrIncompatible: the sender's encoding is newer than this decoder
	// can read (header compat version, or a struct_compat, too high).
	ErrIncompatible = errors.New("ceph: incompatible encoding version")
)

// Bounds for variable-length fields, on top of the check against the
// remaining input that core/wire always makes.
const (
	maxStrings  = 1 << 16  // elements of a vector<string> / map
	maxStrLen   = 64 << 20 // one string
	maxMonitors = 1 << 10  // monitors in a monmap
)

// newMessage returns a message with Ceph's header defaults for typ (default
// priority, flags COMPLETE|NOCRC) and the given encoding versions.
func newMessage(typ, version, compat uint16) *msg.Message {
	m := msg.New(typ, nil)
	m.Version = version
	m.CompatVersion = compat
	return m
}

// checkHeader verifies that m is a message of type typ whose encoding a
// decoder of version head can read. A compat version of 0 means "same as
// version" (Ceph's encode turns 0 into the version).
func checkHeader(m *msg.Message, typ uint16, name string, head uint16) error {
	if m == nil {
		return fmt.Errorf("%w: nil message, want %s", ErrType, name)
	}
	if m.Type != typ {
		return fmt.Errorf("%w: type %d, want %s (%d)", ErrType, m.Type, name, typ)
	}
	compat := m.CompatVersion
	if compat == 0 {
		compat = m.Version
	}
	if compat > head {
		return fmt.Errorf("%w: %s v%d compat %d, this decoder reads up to v%d", ErrIncompatible, name, m.Version, compat, head)
	}
	return nil
}

// decodeErr wraps the decoder's error (if any) with the message name.
func decodeErr(name string, d *wire.Decoder) error {
	if err := d.Err(); err != nil {
		return fmt.Errorf("ceph: decoding %s: %w", name, err)
	}
	return nil
}

// encodePaxos writes the PaxosServiceMessage prefix (paxos_encode): u64
// version, i16 deprecated_session_mon (-1), u64 deprecated_session_mon_tid.
func encodePaxos(e *wire.Encoder, version uint64) {
	e.U64(version)
	e.U16(0xffff) // deprecated_session_mon = -1
	e.U64(0)      // deprecated_session_mon_tid
}

// decodePaxos reads the PaxosServiceMessage prefix and returns its version.
func decodePaxos(d *wire.Decoder) uint64 {
	v := d.U64()
	d.Skip(2 + 8) // deprecated session mon and tid
	return v
}

// --- MMonGetVersion (19) / MMonGetVersionReply (20) ---

// MMonGetVersion asks a monitor for the latest epoch of a map ("osdmap",
// "monmap", "mdsmap"). Handle is the caller's cookie, echoed in the reply.
type MMonGetVersion struct {
	Handle uint64
	What   string
}

// Encode builds the message: front u64 handle, string what; v1.
func (x *MMonGetVersion) Encode(features uint64) *msg.Message {
	m := newMessage(msg.MsgMonGetVersion, 1, 1)
	e := wire.NewEncoder(make([]byte, 0, 12+len(x.What)))
	e.U64(x.Handle)
	e.String(x.What)
	m.Front = e.Bytes()
	return m
}

// DecodeMMonGetVersion reads an MMonGetVersion.
func DecodeMMonGetVersion(m *msg.Message) (*MMonGetVersion, error) {
	const name = "MMonGetVersion"
	if err := checkHeader(m, msg.MsgMonGetVersion, name, 1); err != nil {
		return nil, err
	}
	d := wire.NewDecoder(m.Front)
	x := &MMonGetVersion{Handle: d.U64(), What: d.String(maxStrLen)}
	return x, decodeErr(name, &d)
}

// MMonGetVersionReply answers MMonGetVersion: the latest and the oldest
// epoch the monitor has of the map.
type MMonGetVersionReply struct {
	Handle        uint64
	Version       uint64
	OldestVersion uint64 // only sent by v2+ encoders (0 from older ones)
}

// Encode builds the message: u64 handle, version, oldest_version; v2.
func (x *MMonGetVersionReply) Encode(features uint64) *msg.Message {
	m := newMessage(msg.MsgMonGetVersionReply, 2, 2)
	e := wire.NewEncoder(make([]byte, 0, 24))
	e.U64(x.Handle)
	e.U64(x.Version)
	e.U64(x.OldestVersion)
	m.Front = e.Bytes()
	return m
}

// DecodeMMonGetVersionReply reads an MMonGetVersionReply.
func DecodeMMonGetVersionReply(m *msg.Message) (*MMonGetVersionReply, error) {
	const name = "MMonGetVersionReply"
	if err := checkHeader(m, msg.MsgMonGetVersionReply, name, 2); err != nil {
		return nil, err
	}
	d := wire.NewDecoder(m.Front)
	x := &MMonGetVersionReply{Handle: d.U64(), Version: d.U64()}
	if m.Version >= 2 {
		x.OldestVersion = d.U64()
	}
	return x, decodeErr(name, &d)
}

// --- MMonGetMap (5) / MMonMap (4) ---

// MMonGetMap asks a monitor for its monmap (answered with MMonMap). It has
// no payload.
type MMonGetMap struct{}

// Encode builds the message: empty front, v1.
func (x *MMonGetMap) Encode(features uint64) *msg.Message {
	return newMessage(msg.MsgMonGetMap, 1, 1)
}

// DecodeMMonGetMap checks that m is an MMonGetMap.
func DecodeMMonGetMap(m *msg.Message) (*MMonGetMap, error) {
	if err := checkHeader(m, msg.MsgMonGetMap, "MMonGetMap", 1); err != nil {
		return nil, err
	}
	return &MMonGetMap{}, nil
}

// MMonMap carries an encoded MonMap (a bufferlist in the front). Decode the
// map with MonMap; build one with NewMMonMap.
type MMonMap struct {
	// MonMapBL is the encoded monmap (MonMap.Encode / DecodeMonMap).
	MonMapBL []byte
}

// NewMMonMap encodes mm into an MMonMap.
func NewMMonMap(mm *MonMap) *MMonMap { return &MMonMap{MonMapBL: mm.Encode()} }

// MonMap decodes the carried monmap.
func (x *MMonMap) MonMap() (*MonMap, error) { return DecodeMonMap(x.MonMapBL) }

// Encode builds the message: front = bufferlist(monmap), v1. The monmap is
// sent as it is: MonMap.Encode writes the Nautilus+ form, which every
// msgr2 peer reads (Ceph re-encodes only for peers without MONENC or
// MSG_ADDR2, which cannot speak msgr2).
func (x *MMonMap) Encode(features uint64) *msg.Message {
	m := newMessage(msg.MsgMonMap, 1, 1)
	e := wire.NewEncoder(make([]byte, 0, 4+len(x.MonMapBL)))
	e.Blob(x.MonMapBL)
	m.Front = e.Bytes()
	return m
}

// DecodeMMonMap reads an MMonMap (the monmap stays encoded: call MonMap).
func DecodeMMonMap(m *msg.Message) (*MMonMap, error) {
	const name = "MMonMap"
	if err := checkHeader(m, msg.MsgMonMap, name, 1); err != nil {
		return nil, err
	}
	d := wire.NewDecoder(m.Front)
	x := &MMonMap{MonMapBL: d.Blob(len(m.Front))}
	return x, decodeErr(name, &d)
}

// --- MMonSubscribe (15) / MMonSubscribeAck (16) ---

// Subscription flags (CEPH_SUBSCRIBE_*).
const (
	SubscribeOnetime uint8 = 1 // send one map, then forget the subscription
)

// SubscribeItem is one subscription (ceph_mon_subscribe_item): send maps
// from epoch Start on.
type SubscribeItem struct {
	Start uint64
	Flags uint8 // SubscribeOnetime
}

// MMonSubscribe subscribes to maps ("monmap", "osdmap", "config",
// "mgrmap", ...) by name.
type MMonSubscribe struct {
	What     map[string]SubscribeItem
	Hostname string // v3+
}

// Encode builds the message: v3 (map<string, {u64 start, u8 flags}>, then
// the hostname), or the v0 form for a peer without SUBSCRIBE2.
func (x *MMonSubscribe) Encode(features uint64) *msg.Message {
	keys := sortedKeys(x.What)
	e := wire.NewEncoder(nil)
	e.U32(uint32(len(keys)))
	if features&FeatureSubscribe2 == 0 {
		// Old form: {u64 unused, u64 have, u8 onetime}; have = start-1.
		for _, k := range keys {
			it := x.What[k]
			e.String(k)
			e.U64(0)
			e.U64(max(it.Start, 1) - 1)
			e.Bool(it.Flags&SubscribeOnetime != 0)
		}
		m := newMessage(msg.MsgMonSubscribe, 0, 1)
		m.Front = e.Bytes()
		return m
	}
	for _, k := range keys {
		it := x.What[k]
		e.String(k)
		e.U64(it.Start)
		e.U8(it.Flags)
	}
	e.String(x.Hostname)
	m := newMessage(msg.MsgMonSubscribe, 3, 1)
	m.Front = e.Bytes()
	return m
}

// DecodeMMonSubscribe reads an MMonSubscribe of any version.
func DecodeMMonSubscribe(m *msg.Message) (*MMonSubscribe, error) {
	const name = "MMonSubscribe"
	if err := checkHeader(m, msg.MsgMonSubscribe, name, 3); err != nil {
		return nil, err
	}
	d := wire.NewDecoder(m.Front)
	old := m.Version < 2
	itemLen := 9
	if old {
		itemLen = 17
	}
	n := d.Count(4+itemLen, maxStrings)
	x := &MMonSubscribe{What: make(map[string]SubscribeItem, n)}
	for i := 0; i < n && d.Err() == nil; i++ {
		k := d.String(maxStrLen)
		var it SubscribeItem
		if old {
			d.Skip(8) // unused
			if have := d.U64(); have != 0 {
				it.Start = have + 1
			}
			if d.Bool() {
				it.Flags = SubscribeOnetime
			}
		} else {
			it.Start = d.U64()
			it.Flags = d.U8()
		}
		x.What[k] = it
	}
	if m.Version >= 3 {
		x.Hostname = d.String(maxStrLen)
	}
	if err := decodeErr(name, &d); err != nil {
		return nil, err
	}
	return x, nil
}

// MMonSubscribeAck is the monitor's answer to a subscription from a client
// that lacks MON_STATEFUL_SUB (a Pacific monitor sends none to clients
// with the full feature set): renew within Interval seconds.
type MMonSubscribeAck struct {
	Interval uint32
	Fsid     wire.UUID // absent from very old senders (zero)
}

// Encode builds the message: u32 interval, fsid; v1.
func (x *MMonSubscribeAck) Encode(features uint64) *msg.Message {
	m := newMessage(msg.MsgMonSubscribeAck, 1, 1)
	e := wire.NewEncoder(make([]byte, 0, 20))
	e.U32(x.Interval)
	e.UUID(x.Fsid)
	m.Front = e.Bytes()
	return m
}

// DecodeMMonSubscribeAck reads an MMonSubscribeAck.
func DecodeMMonSubscribeAck(m *msg.Message) (*MMonSubscribeAck, error) {
	const name = "MMonSubscribeAck"
	if err := checkHeader(m, msg.MsgMonSubscribeAck, name, 1); err != nil {
		return nil, err
	}
	d := wire.NewDecoder(m.Front)
	x := &MMonSubscribeAck{Interval: d.U32()}
	if d.Err() == nil && d.Remaining() > 0 {
		x.Fsid = d.UUID()
	}
	return x, decodeErr(name, &d)
}

// --- MMonCommand (50) / MMonCommandAck (51) ---

// MMonCommand runs a monitor command: Cmd holds JSON command strings, e.g.
// `{"prefix": "status", "format": "json"}`. The reply (MMonCommandAck)
// carries the same Tid.
type MMonCommand struct {
	Tid  uint64    // header tid; identifies the request
	Fsid wire.UUID // must be the cluster's fsid, or the monitor ignores the command
	Cmd  []string
	// Input is the command's input buffer (Ceph's inbl), sent as the data
	// segment; usually empty.
	Input []byte
	// PaxosVersion is the PaxosServiceMessage version (0 for commands).
	PaxosVersion uint64
}

// Encode builds the message: front = paxos prefix, fsid, vector<string>
// cmd; data = Input; v1.
func (x *MMonCommand) Encode(features uint64) *msg.Message {
	m := newMessage(msg.MsgMonCommand, 1, 1)
	m.Tid = x.Tid
	e := wire.NewEncoder(nil)
	encodePaxos(&e, x.PaxosVersion)
	e.UUID(x.Fsid)
	e.Strings(x.Cmd)
	m.Front = e.Bytes()
	m.Data = x.Input
	return m
}

// DecodeMMonCommand reads an MMonCommand (Input aliases m.Data).
func DecodeMMonCommand(m *msg.Message) (*MMonCommand, error) {
	const name = "MMonCommand"
	if err := checkHeader(m, msg.MsgMonCommand, name, 1); err != nil {
		return nil, err
	}
	d := wire.NewDecoder(m.Front)
	x := &MMonCommand{Tid: m.Tid, Input: m.Data}
	x.PaxosVersion = decodePaxos(&d)
	x.Fsid = d.UUID()
	x.Cmd = d.Strings(maxStrings, maxStrLen)
	if err := decodeErr(name, &d); err != nil {
		return nil, err
	}
	return x, nil
}

// MMonCommandAck is a monitor's answer to MMonCommand: R is 0 or -errno,
// Rs the status text, Output the command's output (JSON or plain text, in
// the data segment).
type MMonCommandAck struct {
	Tid          uint64 // the request's tid
	R            int32
	Rs           string
	Cmd          []string // the request's command, echoed
	Output       []byte
	PaxosVersion uint64
}

// Encode builds the message: front = paxos prefix, i32 r, string rs,
// vector<string> cmd; data = Output; v1.
func (x *MMonCommandAck) Encode(features uint64) *msg.Message {
	m := newMessage(msg.MsgMonCommandAck, 1, 1)
	m.Tid = x.Tid
	e := wire.NewEncoder(nil)
	encodePaxos(&e, x.PaxosVersion)
	e.I32(x.R)
	e.String(x.Rs)
	e.Strings(x.Cmd)
	m.Front = e.Bytes()
	m.Data = x.Output
	return m
}

// DecodeMMonCommandAck reads an MMonCommandAck (Output aliases m.Data).
func DecodeMMonCommandAck(m *msg.Message) (*MMonCommandAck, error) {
	const name = "MMonCommandAck"
	if err := checkHeader(m, msg.MsgMonCommandAck, name, 1); err != nil {
		return nil, err
	}
	d := wire.NewDecoder(m.Front)
	x := &MMonCommandAck{Tid: m.Tid, Output: m.Data}
	x.PaxosVersion = decodePaxos(&d)
	x.R = d.I32()
	x.Rs = d.String(maxStrLen)
	x.Cmd = d.Strings(maxStrings, maxStrLen)
	if err := decodeErr(name, &d); err != nil {
		return nil, err
	}
	return x, nil
}

// --- MPing (2) ---

// MPing is Ceph's ping message. Ceph's MPing has no payload of its own;
// a monitor answers one with an MPing whose front is set directly to a
// string holding a JSON health/mon_status report (what `ceph ping mon.X`
// prints). Payload is that front, uninterpreted; see PongJSON.
type MPing struct {
	Payload []byte
}

// Encode builds the message: front = Payload (empty for a ping), v1.
func (x *MPing) Encode(features uint64) *msg.Message {
	m := newMessage(MsgPing, 1, 1)
	m.Front = x.Payload
	return m
}

// DecodeMPing reads an MPing (Payload aliases m.Front).
func DecodeMPing(m *msg.Message) (*MPing, error) {
	if err := checkHeader(m, MsgPing, "MPing", 1); err != nil {
		return nil, err
	}
	return &MPing{Payload: m.Front}, nil
}

// PongJSON returns the JSON report of a monitor's ping reply: the front
// decoded as a string.
func (x *MPing) PongJSON() (string, error) {
	d := wire.NewDecoder(x.Payload)
	s := d.String(maxStrLen)
	if err := decodeErr("MPing reply", &d); err != nil {
		return "", err
	}
	return s, nil
}

// --- MAuth (17) / MAuthReply (18) ---

// Auth protocol numbers (CEPH_AUTH_*).
const (
	AuthUnknown uint32 = 0 // MAuth: negotiate
	AuthNone    uint32 = 1
)

// MAuth is a client's authentication request to a monitor, the way msgr1
// sessions authenticate (msgr2 does it in AUTH frames; V1-FACTS.md §6.1).
// With Protocol 0 it negotiates: the payload lists the methods the client
// supports, its name and its global id (0 for a new client).
type MAuth struct {
	Protocol    uint32
	Methods     []uint32 // supported methods (negotiation payload)
	NameType    msg.EntityType
	NameID      string // "admin" of client.admin
	GlobalID    uint64
	MonmapEpoch uint32
}

// Encode builds the message: paxos prefix, u32 protocol, bufferlist
// payload {u8 1, vector<u32> methods, EntityName, u64 global_id}, u32
// monmap epoch; v1 compat 1.
func (x *MAuth) Encode(features uint64) *msg.Message {
	m := newMessage(msg.MsgAuth, 1, 1)
	p := wire.NewEncoder(make([]byte, 0, 32+len(x.NameID)))
	p.U8(1)
	p.U32s(x.Methods)
	p.AuthEntityName(x.NameType, x.NameID)
	p.U64(x.GlobalID)
	e := wire.NewEncoder(make([]byte, 0, 34+len(p.B)))
	encodePaxos(&e, 0)
	e.U32(x.Protocol)
	e.Blob(p.Bytes())
	e.U32(x.MonmapEpoch)
	m.Front = e.Bytes()
	return m
}

// DecodeMAuth reads an MAuth with a negotiation payload (Protocol 0); for
// other protocols Methods and the name are left empty.
func DecodeMAuth(m *msg.Message) (*MAuth, error) {
	const name = "MAuth"
	if err := checkHeader(m, msg.MsgAuth, name, 1); err != nil {
		return nil, err
	}
	d := wire.NewDecoder(m.Front)
	decodePaxos(&d)
	x := &MAuth{Protocol: d.U32()}
	payload := d.Blob(maxStrLen)
	x.MonmapEpoch = d.U32()
	if err := decodeErr(name, &d); err != nil {
		return nil, err
	}
	if x.Protocol == AuthUnknown {
		p := wire.NewDecoder(payload)
		if v := p.U8(); v != 1 && p.Err() == nil {
			return nil, fmt.Errorf("%w: MAuth payload v%d", ErrIncompatible, v)
		}
		x.Methods = p.U32s(nil, 64)
		x.NameType, x.NameID = p.AuthEntityName(maxStrLen)
		x.GlobalID = p.U64()
		if err := decodeErr(name+" payload", &p); err != nil {
			return nil, err
		}
	}
	return x, nil
}

// MAuthReply answers MAuth: the chosen protocol, a result (0 or -errno)
// and, on success, the client's global id.
type MAuthReply struct {
	Protocol uint32
	Result   int32
	GlobalID uint64
	Payload  []byte
	Message  string
}

// Encode builds the message: u32 protocol, i32 result, u64 global_id,
// bufferlist payload, string message; v1.
func (x *MAuthReply) Encode(features uint64) *msg.Message {
	m := newMessage(msg.MsgAuthReply, 1, 1)
	e := wire.NewEncoder(make([]byte, 0, 24+len(x.Payload)+len(x.Message)))
	e.U32(x.Protocol)
	e.I32(x.Result)
	e.U64(x.GlobalID)
	e.Blob(x.Payload)
	e.String(x.Message)
	m.Front = e.Bytes()
	return m
}

// DecodeMAuthReply reads an MAuthReply.
func DecodeMAuthReply(m *msg.Message) (*MAuthReply, error) {
	const name = "MAuthReply"
	if err := checkHeader(m, msg.MsgAuthReply, name, 1); err != nil {
		return nil, err
	}
	d := wire.NewDecoder(m.Front)
	x := &MAuthReply{Protocol: d.U32(), Result: d.I32(), GlobalID: d.U64()}
	x.Payload = d.Blob(maxStrLen)
	x.Message = d.String(maxStrLen)
	return x, decodeErr(name, &d)
}
