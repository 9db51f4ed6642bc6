//go:build linux

package driver

import (
	"time"

	"golang.org/x/sys/unix"
)

// poll waits with ppoll(2), whose timespec timeout keeps sub-millisecond
// timers precise (unix.Poll would also allocate the timespec per call).
func (d *Poll) poll(timeout time.Duration) (int, error) {
	var ts *unix.Timespec
	if timeout >= 0 {
		d.ts = unix.NsecToTimespec(int64(timeout))
		ts = &d.ts
	}
	return unix.Ppoll(d.pfds, ts, nil)
}
