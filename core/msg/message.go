package msg

// Footer flags carried in Header.Flags (CEPH_MSG_FOOTER_*).
const (
	FlagComplete uint8 = 1 // message is complete (not aborted)
	FlagNoCRC    uint8 = 2 // no data crc (msgr1 notion; Ceph still sets it on v2)
	FlagSigned   uint8 = 4 // message is signed (msgr1 notion)

	// FlagsDefault is what Ceph 16.2.15 sends on every msgr2 message (3).
	FlagsDefault = FlagComplete | FlagNoCRC
)

// Message types used with a monitor (FACTS.md §10); other layers may define
// more. The type is a plain uint16 on the wire.
const (
	MsgMonMap             uint16 = 4
	MsgMonGetMap          uint16 = 5
	MsgAuth               uint16 = 17
	MsgAuthReply          uint16 = 18
	MsgMonSubscribe       uint16 = 15
	MsgMonSubscribeAck    uint16 = 16
	MsgMonGetVersion      uint16 = 19
	MsgMonGetVersionReply uint16 = 20
	MsgOSDMap             uint16 = 41
	MsgMonCommand         uint16 = 50
	MsgMonCommandAck      uint16 = 51
	MsgConfig             uint16 = 62
	MsgMgrMap             uint16 = 0x704
)

// HeaderLen is the encoded size of Header (ceph_msg_header2).
const HeaderLen = 41

// Header holds the fields of Ceph's ceph_msg_header2, segment 0 of a
// MESSAGE frame (FACTS.md §7.1). Front/middle/data lengths are not part of
// it: they come from the frame's segment lengths.
type Header struct {
	Seq               uint64 // per-session sequence, first message = 1
	Tid               uint64 // transaction id (0 if unused)
	Type              uint16 // message type
	Priority          uint16 // PrioLow..PrioHighest
	Version           uint16 // encoding version of the payload
	DataPrePaddingLen uint32 // always 0 in Ceph
	DataOff           uint16 // data page offset hint, usually 0
	AckSeq            uint64 // highest seq received from the peer
	Flags             uint8  // footer flags (FlagComplete...)
	CompatVersion     uint16 // oldest decoder version
	Reserved          uint16
}

// Message is one application message: the header plus its three payload
// segments. The messenger owns Seq and AckSeq (it sets them when sending).
//
// Ownership: Front, Middle and Data are borrowed from whoever built the
// message. A received message may alias the connection's read buffer; its
// DataFree (if any) returns that buffer, so call Release when done with it
// and copy anything you keep past Release.
type Message struct {
	Header

	Front  []byte
	Middle []byte
	Data   []byte

	// Src is the sender; set by the receiving connection from the peer's
	// HELLO type and ident gid (it is not on the wire).
	Src EntityName

	// DataFree, if not nil, is called once by Release: a hook for pooled or
	// zero-copy buffers behind Front/Middle/Data.
	DataFree func()
}

// New returns a message of type typ with the given front, default
// priority, version 1 and compat version 1, and Ceph's default flags.
func New(typ uint16, front []byte) *Message {
	return &Message{
		Header: Header{
			Type:          typ,
			Priority:      PrioDefault,
			Version:       1,
			CompatVersion: 1,
			Flags:         FlagsDefault,
		},
		Front: front,
	}
}

// PayloadLen returns len(Front)+len(Middle)+len(Data).
func (m *Message) PayloadLen() int { return len(m.Front) + len(m.Middle) + len(m.Data) }

// Release calls DataFree once (later calls do nothing) and drops the
// references to the payload segments.
//
// The segments are dropped before DataFree runs: DataFree may hand m itself
// back to a pool, and another goroutine may reuse it at once.
func (m *Message) Release() {
	f := m.DataFree
	m.DataFree = nil
	m.Front, m.Middle, m.Data = nil, nil, nil
	if f != nil {
		f()
	}
}
