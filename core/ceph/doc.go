// Package ceph encodes and decodes the payloads of real Ceph messages, the
// ones a client exchanges with a monitor (FACTS.md §10): MMonGetVersion /
// MMonGetVersionReply, MMonGetMap / MMonMap (with the MonMap inside),
// MMonSubscribe / MMonSubscribeAck, MMonCommand / MMonCommandAck and MPing.
// Wire formats are those of Ceph 16.2.15 (Pacific).
//
// # The pattern (follow it to add another Ceph message)
//
// Each message is a Go type named after Ceph's C++ class, holding the
// decoded fields (never the header bookkeeping the messenger owns: seq,
// ack_seq). It has two functions:
//
//	// Encode builds the message: header type, version, compat version and
//	// priority as Ceph sets them, and the payload in Front (and Middle /
//	// Data where Ceph puts something there). features are the connection's
//	// features (protocol.ReadyInfo.Features); encoders that depend on them
//	// (Ceph's encode_payload(features)) pick the encoding from them.
//	func (x *MMonFoo) Encode(features uint64) *msg.Message
//
//	// DecodeMMonFoo checks the header type and compat version, then reads
//	// the payload with a bounded wire.Decoder. Bad input is an error
//	// (wrapping ErrType, ErrIncompatible or a core/wire error), never a
//	// panic; trailing bytes a newer sender appended are ignored, as Ceph
//	// does.
//	func DecodeMMonFoo(m *msg.Message) (*MMonFoo, error)
//
// The steps: take the type number, HEAD_VERSION and COMPAT_VERSION from the
// C++ class (a class that sets none has version 1 and compat = version);
// mirror encode_payload field by field with wire.Encoder (start the front
// with encodePaxos for a PaxosServiceMessage); mirror decode_payload with
// wire.Decoder, honouring its "if (header.version >= N)" branches; then add
// a table test with bytes seen on the wire.
//
// Decoded strings are copies; decoded byte slices (MMonCommandAck.Output,
// MMonMap.MonMapBL, MPing.Payload...) alias the message's segments: copy
// them to keep them past msg.Message.Release.
//
// This package is layer 6, above the messenger. The message types use only
// core/msg and core/wire, so they serve a client and a server alike;
// MonClient (monclient.go) and MonServer (monserver.go, the engine of
// `msgr serve`) run them over a core/messenger Messenger, and RawConn
// (rawconn.go) drives a protocol.Machine on a plain socket, for the cases
// the messenger does not expose (forcing msgr2.0 framing).
package ceph
