package protocol

import "github.com/msgr-dev/msgr/core/msg"

// fifo is a growable ring of messages. It reuses its backing array, so a
// steady flow of messages does not allocate.
type fifo struct {
	buf  []*msg.Message
	head int
	n    int
}

func (q *fifo) len() int { return q.n }

func (q *fifo) grow() {
	size := 2 * len(q.buf)
	if size == 0 {
		size = 16
	}
	nb := make([]*msg.Message, size)
	for i := 0; i < q.n; i++ {
		nb[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head = nb, 0
}

func (q *fifo) pushBack(m *msg.Message) {
	if q.n == len(q.buf) {
		q.grow()
	}
	q.buf[(q.head+q.n)%len(q.buf)] = m
	q.n++
}

func (q *fifo) pushFront(m *msg.Message) {
	if q.n == len(q.buf) {
		q.grow()
	}
	q.head = (q.head - 1 + len(q.buf)) % len(q.buf)
	q.buf[q.head] = m
	q.n++
}

func (q *fifo) front() *msg.Message {
	if q.n == 0 {
		return nil
	}
	return q.buf[q.head]
}

func (q *fifo) back() *msg.Message {
	if q.n == 0 {
		return nil
	}
	return q.buf[(q.head+q.n-1)%len(q.buf)]
}

func (q *fifo) popFront() *msg.Message {
	if q.n == 0 {
		return nil
	}
	m := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return m
}

func (q *fifo) popBack() *msg.Message {
	if q.n == 0 {
		return nil
	}
	i := (q.head + q.n - 1) % len(q.buf)
	m := q.buf[i]
	q.buf[i] = nil
	q.n--
	return m
}

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
	p.levels[i].q.pushBack(m)
	p.n++
}

func (p *prioQueue) pop() *msg.Message {
	if p.n == 0 {
		return nil
	}
	for i := range p.levels {
		if m := p.levels[i].q.popFront(); m != nil {
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
