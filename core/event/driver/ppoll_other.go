//go:build unix && !linux

package driver

import (
	"time"

	"golang.org/x/sys/unix"
)

// poll waits with poll(2); the timeout is rounded up to a millisecond.
func (d *Poll) poll(timeout time.Duration) (int, error) {
	return unix.Poll(d.pfds, durationToMs(timeout))
}
