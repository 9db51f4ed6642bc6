//go:build !linux

package driver

import "errors"

const hasEpoll = false

func newEpoll() (Driver, error) { return nil, errors.New("driver: epoll is Linux only") }
