package conn

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrWaitTimeout is WaitHeld's error when the deadline passed first.
var ErrWaitTimeout = errTimeout{}

// ErrWaitOnLoop: WaitHeld on a worker loop would wait for itself.
var ErrWaitOnLoop = errors.New("conn: WaitHeld on a worker loop would deadlock")

type errTimeout struct{}

func (errTimeout) Error() string { return "conn: timed out waiting for the queue to drain" }
func (errTimeout) Timeout() bool { return true }

// heldWait lets senders block until the connection holds few enough
// messages (flow control without polling: the sender sleeps, the worker
// wakes it). The worker's cost while nobody waits is one atomic load per
// write batch and per ack.
type heldWait struct {
	below atomic.Int64 // lowest threshold a waiter wants; -1: none waits
	mu    sync.Mutex
	ch    chan struct{} // closed (and replaced) to wake every waiter
}

// held is what the connection holds for the peer as of the last write or
// ack: queued in the session plus written and unacknowledged.
func (c *Connection) held() int64 { return c.queued.Load() + c.unacked.Load() }

// noteHeld runs after queued or unacked changed (worker) and wakes the
// waiters once the connection holds no more than one of them wants.
func (c *Connection) noteHeld() {
	if t := c.hw.below.Load(); t >= 0 && c.held() <= t {
		c.wakeHeld()
	}
}

func (c *Connection) wakeHeld() {
	c.hw.mu.Lock()
	if c.hw.ch != nil {
		close(c.hw.ch)
		c.hw.ch = nil
	}
	c.hw.below.Store(-1)
	c.hw.mu.Unlock()
}

// WaitHeld blocks until the connection holds at most max messages (Send
// staged, queued, and on lossless sessions written but unacknowledged:
// Stats' Queued + Unacked), the timeout passes (ErrWaitTimeout; <0 waits
// for ever), or the connection closes (ErrClosed). Not from a worker
// loop: the loop that would drain the queue is the caller. Any other
// goroutine.
func (c *Connection) WaitHeld(max int, timeout time.Duration) error {
	var timer *time.Timer
	var expired <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	if c.onAnyLoop() {
		return ErrWaitOnLoop
	}
	for {
		if c.State() == StateClosed {
			return ErrClosed
		}
		st := c.Stats()
		if st.Queued+st.Unacked <= max {
			return nil
		}
		if timeout == 0 {
			return ErrWaitTimeout
		}
		c.hw.mu.Lock()
		if c.hw.ch == nil {
			c.hw.ch = make(chan struct{})
		}
		ch := c.hw.ch
		if b := c.hw.below.Load(); b < 0 || int64(max) < b {
			c.hw.below.Store(int64(max))
		}
		c.hw.mu.Unlock()
		// Look again: the worker may have drained between Stats and the
		// registration, and then it will not wake us.
		if st := c.Stats(); st.Queued+st.Unacked <= max {
			return nil
		}
		if timer == nil && timeout > 0 {
			timer = time.NewTimer(timeout)
			expired = timer.C
		}
		select {
		case <-ch:
		case <-expired:
			return ErrWaitTimeout
		}
	}
}
