package stack

import (
	"sync/atomic"

	"github.com/msgr-dev/msgr/core/event"
)

// Worker is one event loop of a Stack (Ceph Worker/PosixWorker). Every
// socket lives on one worker from creation to Close; its handlers run on
// Center's loop thread.
type Worker struct {
	ID     int
	Center *event.Center

	stack *Stack
	conns atomic.Int64
}

// NumConns is how many connections count against this worker: each counts
// from creation (accept, or the Connect call) until Close or a failed
// connect. Any goroutine.
func (w *Worker) NumConns() int { return int(w.conns.Load()) }

// Stack returns the stack the worker belongs to.
func (w *Worker) Stack() *Stack { return w.stack }
