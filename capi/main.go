// Command capi is libmsgr.so, the C ABI of msgr: the only cgo package.
//
// Build it with -buildmode=c-shared; `make lib` (or CMake) passes what makes
// it a proper shared library:
//
//	go build -buildmode=c-shared -o build/lib/libmsgr.so.0.2.0 \
//	  -ldflags '-extldflags "-Wl,-soname,libmsgr.so.0 -Wl,--version-script=capi/exports.map"' ./capi
//
// The soname carries the major version (Go sets none by default), and the
// version script exports msgr_* only: the shim's msgrc_* helpers, the Go
// exports msgrgo_* and the Go runtime's own symbols stay local. The header
// cgo generates (_cgo_export.h) is an internal detail and never installed;
// include/msgr.h is the contract, and shim.c implements it exactly, so the
// C compiler checks every prototype against the header.
//
// Layout: shim.c (every msgr_* function; messages are C memory handled
// entirely in C), msgr_impl.h (internals shared with Go), handles.go (id
// tables), errors.go (Go errors to MSGR_E* codes, last-error text),
// messenger.go, conn.go, dispatcher.go, pull.go (the Go side of each part),
// message.go (C message <-> msg.Message). capi_test.go builds the library
// and runs the C programs of testdata/ against it.
package main

/*
#cgo CFLAGS: -I${SRCDIR}/../include -O2 -Wall -Wextra -Wno-unused-parameter
#include "msgr_impl.h"
*/
import "C"

// main is required by -buildmode=c-shared and never runs.
func main() {}
