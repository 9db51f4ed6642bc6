//go:build !linux

package driver

import "errors"

var errNoUring = errors.New("driver: io_uring is Linux only")

// UringAvailable reports why io_uring cannot be used: it is Linux only.
func UringAvailable() error { return errNoUring }

func newUringDriver() (Driver, error) { return nil, errNoUring }
