package protocol

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

// Session is the part of a connection that survives its sockets (Ceph keeps
// these fields in ProtocolV2 and reuses the object across reconnects): the
// policy, cookies, connect_seq, global_seqs, in/out sequence numbers, the
// out queue and, for lossless sessions, the messages sent but not yet
// acknowledged, replayed after a reconnect.
//
// A Session is used by one Machine at a time, from that machine's
// goroutine; between machines (in standby) its owner may call Enqueue,
// SendKeepalive, Info and Discard, with the same single-goroutine rule.
type Session struct {
	policy msg.Policy

	clientCookie  uint64
	serverCookie  uint64
	connectSeq    uint64
	globalSeq     uint64 // our global_seq for the current connection attempt
	peerGlobalSeq uint64
	msgSeq        uint64 // server: msg_seq of the accepted SESSION_RECONNECT

	inSeq      uint64 // highest seq received
	outSeq     uint64 // last seq assigned
	ackPending uint64 // messages received and not yet acknowledged (ack_left)

	queue     prioQueue // new messages by priority
	requeued  fifo      // sent messages to replay (keep their seq), before queue
	sent      fifo      // lossless: sent, not yet acknowledged
	keepalive bool      // a KEEPALIVE2 is wanted

	peerName  msg.EntityName
	peerAddrs msg.AddrVec
	features  uint64

	standby bool // last fault left the session in standby
	release func(*msg.Message)
}

// NewSession returns an empty session for a connection with policy p.
// release is called once for every queued message the session lets go of
// (acknowledged, sent on a lossy session, or discarded); nil means
// (*msg.Message).Release.
func NewSession(p msg.Policy, release func(*msg.Message)) *Session {
	if release == nil {
		release = (*msg.Message).Release
	}
	return &Session{policy: p, release: release}
}

// SessionInfo is a snapshot of a session's counters and identity.
type SessionInfo struct {
	Policy        msg.Policy
	ClientCookie  uint64
	ServerCookie  uint64
	ConnectSeq    uint64
	GlobalSeq     uint64
	PeerGlobalSeq uint64
	InSeq         uint64
	OutSeq        uint64
	PeerName      msg.EntityName
	PeerAddrs     msg.AddrVec
	Features      uint64
	Queued        int // messages waiting to be sent (including replays)
	Unacked       int // lossless: sent and not yet acknowledged
}

// Info returns a snapshot of the session.
func (s *Session) Info() SessionInfo {
	return SessionInfo{
		Policy:        s.policy,
		ClientCookie:  s.clientCookie,
		ServerCookie:  s.serverCookie,
		ConnectSeq:    s.connectSeq,
		GlobalSeq:     s.globalSeq,
		PeerGlobalSeq: s.peerGlobalSeq,
		InSeq:         s.inSeq,
		OutSeq:        s.outSeq,
		PeerName:      s.peerName,
		PeerAddrs:     s.peerAddrs,
		Features:      s.features,
		Queued:        s.queued(),
		Unacked:       s.sent.Len(),
	}
}

// OutSeq, Queued and Unacked are Info's counters without its copy of the
// whole session (the write path reads them per batch, the ack path per ack).
func (s *Session) OutSeq() uint64 { return s.outSeq }

// Queued is Info().Queued.
func (s *Session) Queued() int { return s.queued() }

// Unacked is Info().Unacked.
func (s *Session) Unacked() int { return s.sent.Len() }

// Enqueue queues m for sending (Ceph's send_message). It is sent when a
// Machine over this session is READY, highest priority first.
func (s *Session) Enqueue(m *msg.Message) {
	if m != nil {
		s.queue.push(m)
	}
}

// SendKeepalive asks for a KEEPALIVE2 to be sent once the session is READY.
func (s *Session) SendKeepalive() { s.keepalive = true }

// Discard drops every queued and unacknowledged message (releasing them)
// and forgets the session's identity: Ceph's reset_session without the
// notification. The owner calls it when it closes a connection for good.
func (s *Session) Discard() {
	s.discardQueues()
	s.resetCounters()
}

func (s *Session) queued() int { return s.queue.len() + s.requeued.Len() }

func (s *Session) discardQueues() {
	for m := s.sent.PopFront(); m != nil; m = s.sent.PopFront() {
		s.release(m)
	}
	for m := s.requeued.PopFront(); m != nil; m = s.requeued.PopFront() {
		s.release(m)
	}
	s.queue.drain(s.release)
	s.keepalive = false
}

func (s *Session) resetCounters() {
	s.outSeq, s.inSeq, s.ackPending = 0, 0, 0
	s.clientCookie, s.serverCookie = 0, 0
	s.connectSeq, s.peerGlobalSeq, s.msgSeq = 0, 0, 0
}

// requeueSent moves the unacknowledged messages back to the front of the
// send order (Ceph's requeue_sent): they are replayed first, with the same
// sequence numbers, after a reconnect. Ceph puts them at the front of the
// HIGHEST priority queue; a separate queue keeps them ahead of any
// priority, so a replay can never be renumbered.
func (s *Session) requeueSent() {
	s.outSeq -= uint64(s.sent.Len())
	for m := s.sent.PopBack(); m != nil; m = s.sent.PopBack() {
		s.requeued.PushFront(m)
	}
}

// discardRequeuedUpTo drops replays the peer already has (seq <= seq) and
// returns the new out_seq (Ceph's discard_requeued_up_to). With nothing
// requeued, out_seq becomes seq.
func (s *Session) discardRequeuedUpTo(seq uint64) {
	if s.requeued.Len() == 0 {
		s.outSeq = seq
		return
	}
	for m := s.requeued.Front(); m != nil && m.Seq != 0 && m.Seq <= seq; m = s.requeued.Front() {
		s.requeued.PopFront()
		s.release(m)
		s.outSeq++
	}
}

// handleAck releases the kept messages with seq <= ack. It returns whether
// anything was released.
func (s *Session) handleAck(ack uint64) bool {
	if s.policy.Lossy {
		return false // lossy sessions keep nothing
	}
	n := false
	for m := s.sent.Front(); m != nil && m.Seq <= ack; m = s.sent.Front() {
		s.sent.PopFront()
		s.release(m)
		n = true
	}
	return n
}

// nextOutgoing returns the next message to send: replays first, then the
// highest priority.
func (s *Session) nextOutgoing() *msg.Message {
	if m := s.requeued.PopFront(); m != nil {
		return m
	}
	return s.queue.pop()
}

// randomCookie returns a random non-zero cookie.
func randomCookie(r func() uint64) uint64 {
	if r == nil {
		r = rand.Uint64
	}
	for {
		if c := r(); c != 0 {
			return c
		}
	}
}

// ReadyInfo describes a session that just opened on a Machine.
type ReadyInfo struct {
	Role      Role
	PeerName  msg.EntityName // peer type from HELLO, number from the ident
	PeerAddrs msg.AddrVec
	// Features are the connection features (both sides' supported sets
	// intersected); message encoders use them.
	Features uint64
	Lossy    bool
	// Reconnect: an existing session was resumed (SESSION_RECONNECT_OK);
	// queued messages were replayed.
	Reconnect bool
	// Replaced is set on a server machine that took over an existing
	// connection's session (Registry.Reuse): the owner moves the machine
	// into that connection.
	Replaced Existing
	// Auth is what authentication established (client: the global id
	// assigned by the server; server: the client's name and global id).
	Auth AuthResult
}

// Events receives what a Machine reports. The machine calls it from its
// own goroutine, inside Feed (or AppendOutput for Released). A callback may
// call Send and SendKeepalive on the machine, nothing else.
type Events interface {
	// Ready: the session is open and messages flow.
	Ready(info ReadyInfo)
	// Message: a message arrived, in order, never a duplicate. The
	// message and its buffers belong to the callee.
	Message(m *msg.Message)
	// Acked: the peer acknowledged every message up to seq (lossless
	// sessions; the kept copies were released through the session's
	// release func).
	Acked(seq uint64)
	// RemoteReset: the peer reset the session (SESSION_RESET(full), or a
	// peer that restarted): queued messages were dropped and sequence
	// numbers restarted (Ceph's ms_handle_remote_reset).
	RemoteReset()
	// Keepalive: the peer sent KEEPALIVE2 (already answered).
	Keepalive(stamp time.Time)
	// KeepaliveAck: the peer acknowledged our KEEPALIVE2 sent at stamp.
	KeepaliveAck(stamp time.Time)
	// LearnedAddr: a client that had no address learned it from the
	// server's HELLO; addrs are now its addresses.
	LearnedAddr(addrs msg.AddrVec)
}

// NopEvents implements Events with methods that do nothing; embed it to
// implement only some.
type NopEvents struct{}

// Ready does nothing.
func (NopEvents) Ready(ReadyInfo) {}

// Message drops the message (releasing it).
func (NopEvents) Message(m *msg.Message) { m.Release() }

// Acked does nothing.
func (NopEvents) Acked(uint64) {}

// RemoteReset does nothing.
func (NopEvents) RemoteReset() {}

// Keepalive does nothing.
func (NopEvents) Keepalive(time.Time) {}

// KeepaliveAck does nothing.
func (NopEvents) KeepaliveAck(time.Time) {}

// LearnedAddr does nothing.
func (NopEvents) LearnedAddr(msg.AddrVec) {}

// readyFrame handles the frames of an open session (Ceph's READY state):
// MESSAGE, ACK, KEEPALIVE2 and KEEPALIVE2_ACK. Anything else faults.
func (m *Machine) readyFrame(f *wire.Frame) error {
	switch f.Tag {
	case wire.TagMessage:
		return m.receiveMessage(f)
	case wire.TagAck:
		var p wire.Ack
		if err := p.Decode(f.Payload()); err != nil {
			return decodeErr(f.Tag, err)
		}
		m.ack(p.Seq)
		return nil
	case wire.TagKeepalive2:
		var p wire.Keepalive2
		if err := p.Decode(f.Payload()); err != nil {
			return decodeErr(f.Tag, err)
		}
		if err := m.emit(&wire.Keepalive2Ack{Timestamp: p.Timestamp}); err != nil {
			return err
		}
		m.ev.Keepalive(p.Timestamp.Time())
		return nil
	case wire.TagKeepalive2Ack:
		var p wire.Keepalive2Ack
		if err := p.Decode(f.Payload()); err != nil {
			return decodeErr(f.Tag, err)
		}
		m.ev.KeepaliveAck(p.Timestamp.Time())
		return nil
	}
	return m.unexpected(f.Tag)
}

// receiveMessage delivers a MESSAGE in order and drops duplicates (Ceph's
// handle_message): a seq at or below in_seq was already delivered (a
// replay after reconnect). A gap is allowed (lossy peers may skip).
func (m *Machine) receiveMessage(f *wire.Frame) error {
	s := m.sess
	var h msg.Message
	if err := wire.DecodeMessage(f, &h); err != nil {
		return decodeErr(f.Tag, err)
	}
	if h.Seq <= s.inSeq {
		m.ack(h.AckSeq)
		return nil
	}
	// Copy the payload out of the owner's read buffer, into one buffer.
	total := len(h.Front) + len(h.Middle) + len(h.Data)
	var rm *msg.Message
	var buf []byte
	if nm := m.cfg.NewMessage; nm != nil {
		rm, buf = nm(total)
		if len(buf) != total {
			if rm != nil {
				rm.Release()
			}
			return fmt.Errorf("protocol: Config.NewMessage(%d) returned a %d-byte buffer", total, len(buf))
		}
	} else {
		rm = &msg.Message{}
		if total > 0 {
			buf = make([]byte, total)
		}
	}
	rm.Header, rm.Src = h.Header, s.peerName
	rm.Front = sub(buf, 0, h.Front)
	rm.Middle = sub(buf, len(h.Front), h.Middle)
	rm.Data = sub(buf, len(h.Front)+len(h.Middle), h.Data)
	s.inSeq = h.Seq
	if !s.policy.Lossy {
		s.ackPending++
	}
	m.ev.Message(rm)
	m.ack(h.AckSeq)
	return nil
}

// sub copies src into buf at off and returns that part of buf (nil for an
// empty src, as DecodeMessage gives).
func sub(buf []byte, off int, src []byte) []byte {
	if len(src) == 0 {
		return nil
	}
	d := buf[off : off+len(src) : off+len(src)]
	copy(d, src)
	return d
}

// ack releases what the peer acknowledged and reports progress.
func (m *Machine) ack(seq uint64) {
	if m.sess.handleAck(seq) {
		m.ev.Acked(seq)
	}
}

// Send queues a message (Ceph's send_message). The machine sets its Seq
// and AckSeq when it is written. The session owns it until it is released
// (see NewSession). A closed machine still queues into its session, which
// may live on in the next machine. A server machine has no session before
// the client's HELLO: a message sent then is released at once.
func (m *Machine) Send(mm *msg.Message) { enqueueOn(m.sess, mm) }

// enqueueOn queues mm on s, or releases it when there is no session yet (a
// server before the peer identified itself): Send of both machines.
func enqueueOn(s *Session, mm *msg.Message) {
	if s == nil {
		if mm != nil {
			mm.Release()
		}
		return
	}
	s.Enqueue(mm)
}

// hasOutput reports whether an open session has something to write: a
// keepalive, queued messages or an ack owed (Pending of both machines).
func (s *Session) hasOutput() bool {
	return s.keepalive || s.queued() > 0 || s.ackPending > 0
}

// SendKeepalive asks for a KEEPALIVE2 frame (sent once READY).
func (m *Machine) SendKeepalive() {
	if m.sess != nil {
		m.sess.SendKeepalive()
	}
}

// Pending reports whether AppendOutput has something to write.
func (m *Machine) Pending() bool {
	if len(m.out) > 0 {
		return true
	}
	return m.state == StateReady && m.sess.hasOutput()
}

// AppendOutput appends the bytes to write to dst and returns it: pending
// handshake and control frames, then (once READY) a KEEPALIVE2 if one was
// asked for, queued messages in send order until dst holds at least max
// bytes (at least one message is written when any is queued), and an ACK
// frame if messages were received and nothing else carries the ack.
// Reusing dst between calls avoids allocation. Lossy sessions release each
// message once encoded; lossless ones keep it until acknowledged.
func (m *Machine) AppendOutput(dst []byte, max int) []byte {
	dst, _ = m.AppendOutputV(dst, nil, max, 0)
	return dst
}

// OutRef is a segment AppendOutputV left out of its byte output, to be
// written from the message's own buffer: the output stream is dst[:Off],
// then Data, then the bytes of dst up to the next OutRef's Off, and so on.
// Msg, when not nil, belongs to the caller from then on (a lossy session
// no longer holds it): release it once Data has been written or dropped.
// A lossless session keeps its messages until acknowledged, which cannot
// happen before they are written; the caller must drop its OutRefs before
// the session can discard or requeue them (a fault, a close).
type OutRef struct {
	Off  int
	Data []byte
	Msg  *msg.Message
}

// AppendOutputV is AppendOutput that leaves message segments of at least
// minRef bytes out of dst (minRef <= 0: none) and appends an OutRef to refs
// for each instead, so the caller can write them with writev without
// copying them. The bytes written (dst with the refs spliced in) are
// those AppendOutput would give. max counts the referenced bytes too.
func (m *Machine) AppendOutputV(dst []byte, refs []OutRef, max, minRef int) ([]byte, []OutRef) {
	dst = append(dst, m.out...)
	m.out = m.out[:0]
	if m.state != StateReady {
		return dst, refs
	}
	s := m.sess
	if s.keepalive {
		s.keepalive = false
		dst = wire.AppendControlFrame(dst, m.rev, &wire.Keepalive2{Timestamp: wire.UTimeOf(m.cfg.Now())})
	}
	refBytes := 0
	for len(dst)+refBytes < max || max <= 0 {
		mm := s.nextOutgoing()
		if mm == nil {
			break
		}
		s.outSeq++
		mm.Seq = s.outSeq
		mm.AckSeq = s.inSeq
		s.ackPending = 0
		if mm.CompatVersion == 0 {
			mm.CompatVersion = mm.Version // as Ceph's encode does
		}
		var err error
		nrefs := len(refs)
		if minRef > 0 && mm.PayloadLen() >= minRef {
			dst, refs, err = appendMessageFrameV(dst, refs, m.rev, mm, minRef)
		} else {
			dst, err = wire.AppendMessageFrame(dst, m.rev, mm)
		}
		if err != nil {
			// Only a segment over 4 GiB fails: drop it rather than
			// wedge the queue. Its seq is taken back.
			s.outSeq--
			s.release(mm)
			continue
		}
		for _, r := range refs[nrefs:] {
			refBytes += len(r.Data)
		}
		switch {
		case !s.policy.Lossy:
			s.sent.PushBack(mm)
		case len(refs) > nrefs:
			refs[len(refs)-1].Msg = mm // released by the caller once written
		default:
			s.release(mm)
		}
	}
	if s.ackPending > 0 && s.queued() == 0 {
		s.ackPending = 0
		dst = wire.AppendControlFrame(dst, m.rev, &wire.Ack{Seq: s.inSeq})
	}
	return dst, refs
}

// appendMessageFrameV builds mm's MESSAGE frame as wire.AppendMessageFrame
// does (crc mode), but segments of at least minRef bytes go to refs
// instead of dst.
func appendMessageFrameV(dst []byte, refs []OutRef, rev wire.Rev, mm *msg.Message, minRef int) ([]byte, []OutRef, error) {
	segs := [wire.MaxSegments][]byte{nil, mm.Front, mm.Middle, mm.Data}
	n := 1
	for i := 1; i < wire.MaxSegments; i++ {
		if uint64(len(segs[i])) > math.MaxUint32 {
			return dst, refs, fmt.Errorf("%w: message segment %d is %d bytes", wire.ErrTooLarge, i, len(segs[i]))
		}
		if len(segs[i]) > 0 {
			n = i + 1
		}
	}
	var lens, crcs [wire.MaxSegments]uint32
	start := len(dst)
	dst = append(dst, make([]byte, wire.PreambleLen)...)
	hdr := len(dst)
	dst = wire.AppendHeader2(dst, &mm.Header)
	lens[0] = uint32(len(dst) - hdr)
	crcs[0] = wire.CRC32C(wire.SegmentCRCSeed, dst[hdr:])
	if rev == wire.Rev1 && lens[0] > 0 {
		dst = binary.LittleEndian.AppendUint32(dst, crcs[0])
	}
	for i := 1; i < n; i++ {
		seg := segs[i]
		lens[i] = uint32(len(seg))
		crcs[i] = wire.CRC32C(wire.SegmentCRCSeed, seg)
		if len(seg) >= minRef {
			refs = append(refs, OutRef{Off: len(dst), Data: seg})
		} else {
			dst = append(dst, seg...)
		}
	}
	pre := dst[start : start+wire.PreambleLen]
	pre[0] = byte(wire.TagMessage)
	pre[1] = byte(n)
	for i := 0; i < wire.MaxSegments; i++ {
		o := 2 + 6*i
		if i < n {
			align := wire.AlignDefault
			if i == 3 {
				align = wire.AlignPage
			}
			binary.LittleEndian.PutUint32(pre[o:], lens[i])
			binary.LittleEndian.PutUint16(pre[o+4:], align)
		} else {
			clear(pre[o : o+6])
		}
	}
	pre[26], pre[27] = 0, 0
	binary.LittleEndian.PutUint32(pre[28:], wire.CRC32C(wire.PreambleCRCSeed, pre[:28]))
	switch {
	case rev == wire.Rev0:
		dst = append(dst, 0)
		for i := 0; i < wire.MaxSegments; i++ {
			dst = binary.LittleEndian.AppendUint32(dst, crcs[i])
		}
	case n > 1:
		dst = append(dst, wire.LateStatusComplete)
		for i := 1; i < wire.MaxSegments; i++ {
			dst = binary.LittleEndian.AppendUint32(dst, crcs[i])
		}
	}
	return dst, refs, nil
}
