package main

/*
#include "msgr_impl.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"github.com/msgr-dev/msgr/core/conn"
	"github.com/msgr-dev/msgr/core/messenger"
	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/protocol"
	"github.com/msgr-dev/msgr/core/wire"
)

// setLastError records text as the calling C thread's last error. Export
// calls run on the caller's thread, so the C thread-local is the caller's.
func setLastError(text string) {
	C.msgrc_set_error((*C.char)(unsafe.Pointer(unsafe.StringData(text))), C.size_t(len(text)))
}

// fail records the text and returns code.
func fail(code C.int, format string, args ...any) C.int {
	setLastError("libmsgr: " + fmt.Sprintf(format, args...))
	return code
}

// failErr maps a Go error to its MSGR_E* code and records its text.
func failErr(err error) C.int {
	setLastError("libmsgr: " + err.Error())
	return errCode(err)
}

// errCode is the one mapping from Go errors to MSGR_E* codes.
func errCode(err error) C.int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, messenger.ErrStopped):
		return C.MSGR_ESHUTDOWN
	case errors.Is(err, messenger.ErrAlreadyBound):
		return C.MSGR_ESTATE
	case errors.Is(err, conn.ErrClosed):
		return C.MSGR_ENOTCONN
	case errors.Is(err, msg.ErrBadAddr):
		return C.MSGR_EINVAL
	case errors.Is(err, conn.ErrWaitOnLoop):
		return C.MSGR_EDEADLK
	case errors.Is(err, conn.ErrReadyTimeout), errors.Is(err, conn.ErrIdleTimeout),
		errors.Is(err, conn.ErrWaitTimeout), errors.Is(err, syscall.ETIMEDOUT):
		return C.MSGR_ETIMEDOUT
	case errors.Is(err, syscall.EADDRINUSE), errors.Is(err, syscall.EADDRNOTAVAIL):
		return C.MSGR_EADDRINUSE
	case errors.Is(err, syscall.ECONNREFUSED):
		return C.MSGR_ECONNREFUSED
	case errors.Is(err, syscall.ENOMEM):
		return C.MSGR_ENOMEM
	case errors.Is(err, wire.ErrBadBanner):
		return C.MSGR_EBANNER
	case errors.Is(err, wire.ErrBadCRC):
		return C.MSGR_EBADCRC
	case errors.Is(err, protocol.ErrAuthRefused), errors.Is(err, protocol.ErrAuthSignature):
		return C.MSGR_EAUTH
	case errors.Is(err, protocol.ErrMissingFeatures), errors.Is(err, wire.ErrFeatures):
		return C.MSGR_EFEATURES
	case errors.Is(err, wire.ErrTooLarge), errors.Is(err, protocol.ErrFrameTooLarge):
		return C.MSGR_EMSGSIZE
	case errors.Is(err, wire.ErrMalformed), errors.Is(err, wire.ErrBadPreamble),
		errors.Is(err, wire.ErrBadEpilogue), errors.Is(err, wire.ErrUnknownTag),
		errors.Is(err, protocol.ErrUnexpectedFrame):
		return C.MSGR_EPROTO
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return C.MSGR_EIO
	}
	return C.MSGR_EIO
}

// guard turns a Go panic in an export into MSGR_EINTERNAL: deferred first
// thing in every export, so a panic never unwinds into C (which would kill
// the host process).
func guard(rc *C.int) {
	if r := recover(); r != nil {
		*rc = fail(C.MSGR_EINTERNAL, "internal error (recovered Go panic): %v", r)
	}
}

// recoverVoid is guard for exports without a status to return.
func recoverVoid() {
	if r := recover(); r != nil {
		setLastError(fmt.Sprintf("libmsgr: internal error (recovered Go panic): %v", r))
	}
}

// writeCString copies s into the C buffer buf[0:n] with a NUL, truncating
// to fit; MSGR_ERANGE if it was truncated.
func writeCString(buf *C.char, n C.size_t, s string) C.int {
	if buf == nil || n == 0 {
		return fail(C.MSGR_ERANGE, "buffer of length 0")
	}
	dst := unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(n))
	k := copy(dst[:len(dst)-1], s)
	dst[k] = 0
	if k < len(s) {
		return fail(C.MSGR_ERANGE, "buffer of %d bytes too small for %d bytes", int(n), len(s)+1)
	}
	return 0
}
