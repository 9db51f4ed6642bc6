package protocol

import (
	"github.com/msgr-dev/msgr/core/internal/ring"
	"github.com/msgr-dev/msgr/core/msg"
)

// fifo is a session's message list (sent, replay, a priority level).
type fifo = ring.Ring[*msg.Message]

// prioQueue is Ceph's out_queue: a FIFO per priority, the highest priority
// served first. Levels are kept sorted by descending priority and are never
// removed (there are only a handful of distinct priorities in practice), so
// pushing and popping do not allocate once a level exists.
type prioQueue struct {
	levels []prioLevel
	n      int
}

type prioLevel struct {
	prio uint16
	q    fifo
}

func (p *prioQueue) len() int { return p.n }

func (p *prioQueue) push(m *msg.Message) {
	prio := m.Priority
	i := 0
	for i < len(p.levels) && p.levels[i].prio > prio {
		i++
	}
	if i == len(p.levels) || p.levels[i].prio != prio {
		p.levels = append(p.levels, prioLevel{})
		copy(p.levels[i+1:], p.levels[i:])
		p.levels[i] = prioLevel{prio: prio}
	}
	p.levels[i].q.PushBack(m)
	p.n++
}

func (p *prioQueue) pop() *msg.Message {
	if p.n == 0 {
		return nil
	}
	for i := range p.levels {
		if m := p.levels[i].q.PopFront(); m != nil {
			p.n--
			return m
		}
	}
	return nil
}

// drain removes every message, calling f on each (in queue order).
func (p *prioQueue) drain(f func(*msg.Message)) {
	for m := p.pop(); m != nil; m = p.pop() {
		f(m)
	}
}
