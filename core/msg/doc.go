// Package msg holds the messenger's plain data types: Message (Ceph's
// ceph_msg_header2 plus front/middle/data), EntityName (entity_name_t),
// Addr and AddrVec (entity_addr_t / entity_addrvec_t), Policy
// (Messenger::Policy), message priorities and Ceph feature bits.
//
// It is layer 0: it imports nothing from core and does no I/O. Wire
// encodings of these types live in core/wire.
package msg
