package wire

import (
	"errors"
	"fmt"
)

// Errors returned (possibly wrapped, test with errors.Is) by the decoders.
var (
	// ErrShort: the input ends before the declared or fixed size.
	ErrShort = errors.New("wire: short input")
	// ErrTooLarge: a declared length or count exceeds its limit.
	ErrTooLarge = errors.New("wire: declared size too large")
	// ErrMalformed: a field has a value the format does not allow.
	ErrMalformed = errors.New("wire: malformed input")
	// ErrBadCRC: a preamble or segment crc32c does not match.
	ErrBadCRC = errors.New("wire: bad crc")
	// ErrBadPreamble: the preamble is inconsistent (segment count, empty
	// last segment, size).
	ErrBadPreamble = errors.New("wire: bad preamble")
	// ErrBadEpilogue: a rev1 epilogue with an invalid late_status.
	ErrBadEpilogue = errors.New("wire: bad epilogue")
	// ErrUnknownTag: a frame tag this package does not know.
	ErrUnknownTag = errors.New("wire: unknown frame tag")
	// ErrBadBanner: the banner prefix or length is wrong.
	ErrBadBanner = errors.New("wire: bad banner")
	// ErrMsgr1Banner: the peer speaks msgr1 ("ceph v027").
	ErrMsgr1Banner = errors.New("wire: peer speaks msgr1")
	// ErrFeatures: banner feature bits are incompatible.
	ErrFeatures = errors.New("wire: incompatible msgr2 features")
)

func errf(base error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{base}, args...)...)
}
