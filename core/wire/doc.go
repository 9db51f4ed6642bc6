// Package wire implements Ceph's msgr2 wire format in crc mode: the denc
// encoding primitives, the banner, frames (preamble, segments, epilogue,
// crc32c with Ceph's seeds, rev0 and rev1 layouts) and every control frame
// payload; and the msgr1 format (v1*.go: banner "ceph v027", legacy
// addresses, connect / connect_reply, message header and footer; see
// V1-FACTS.md). It is pure code, no I/O; see /work/shared/msgr2/FACTS.md.
//
// Decoders never panic on bad input and never allocate more than the input
// length (and an explicit maximum) allows. Decoded byte slices alias the
// input (zero copy): copy them if the input buffer is reused.
package wire
