// Package prioq is the queue behind the dispatch queue (Ceph's
// PrioritizedQueue): items carry a priority and a class (the connection they
// came from).
//
//   - Priorities at or above the strict cutoff are served strictly: the
//     highest non-empty priority always goes first.
//   - Priorities below it share what is left by weight: deficit round-robin
//     over the priority levels, each level's quantum being its priority, so a
//     level of priority 40 gets about 40/10 the turns of priority 10 and no
//     level starves.
//   - Within one priority, classes are served round-robin, one item per turn,
//     and each class is FIFO. One busy connection cannot starve another.
//
// Steady-state operation allocates nothing: rings grow and are reused.
// Not safe for concurrent use; the caller locks.
package prioq

import "github.com/msgr-dev/msgr/core/internal/ring"

// level holds one priority: its classes in round-robin order.
type level[K comparable, T any] struct {
	prio    int
	classes map[K]*ring.Ring[T]
	order   ring.Ring[K] // classes with items, in service order
	n       int
	deficit int
	free    []*ring.Ring[T] // emptied class rings kept for reuse
}

func (l *level[K, T]) push(k K, v T) {
	q := l.classes[k]
	if q == nil {
		if n := len(l.free); n > 0 {
			q, l.free = l.free[n-1], l.free[:n-1]
		} else {
			q = &ring.Ring[T]{}
		}
		l.classes[k] = q
		l.order.PushBack(k)
	}
	q.PushBack(v)
	l.n++
}

func (l *level[K, T]) pop() T {
	k := l.order.PopFront()
	q := l.classes[k]
	v := q.PopFront()
	l.n--
	if q.Len() > 0 {
		l.order.PushBack(k) // to the back: round-robin between classes
	} else {
		delete(l.classes, k)
		l.free = append(l.free, q)
	}
	return v
}

// Queue is a prioritized queue of T by class K.
type Queue[K comparable, T any] struct {
	cutoff int
	levels map[int]*level[K, T]
	strict []*level[K, T] // non-empty strict levels, sorted by priority descending
	normal []*level[K, T] // non-empty normal levels, sorted by priority descending
	cursor int            // DRR position in normal
	n      int
}

// New returns a queue where priorities >= strictCutoff are strict.
func New[K comparable, T any](strictCutoff int) *Queue[K, T] {
	return &Queue[K, T]{cutoff: strictCutoff, levels: map[int]*level[K, T]{}}
}

// Len is the number of queued items.
func (q *Queue[K, T]) Len() int { return q.n }

// Push queues v of class k at priority prio.
func (q *Queue[K, T]) Push(prio int, k K, v T) {
	l := q.levels[prio]
	if l == nil {
		l = &level[K, T]{prio: prio, classes: map[K]*ring.Ring[T]{}}
		q.levels[prio] = l
	}
	if l.n == 0 {
		if prio >= q.cutoff {
			q.strict = insertSorted(q.strict, l)
		} else {
			q.normal = insertSorted(q.normal, l)
			l.deficit = 0
		}
	}
	l.push(k, v)
	q.n++
}

func insertSorted[K comparable, T any](ls []*level[K, T], l *level[K, T]) []*level[K, T] {
	i := 0
	for i < len(ls) && ls[i].prio > l.prio {
		i++
	}
	ls = append(ls, nil)
	copy(ls[i+1:], ls[i:])
	ls[i] = l
	return ls
}

func remove[K comparable, T any](ls []*level[K, T], i int) []*level[K, T] {
	copy(ls[i:], ls[i+1:])
	ls[len(ls)-1] = nil
	return ls[:len(ls)-1]
}

// Pop returns the next item, or ok=false when the queue is empty.
func (q *Queue[K, T]) Pop() (v T, ok bool) {
	if len(q.strict) > 0 {
		l := q.strict[0]
		v = l.pop()
		if l.n == 0 {
			q.strict = remove(q.strict, 0)
		}
		q.n--
		return v, true
	}
	if len(q.normal) == 0 {
		return v, false
	}
	// Deficit round-robin: a level spends one unit per item and is refilled
	// by its priority (at least 1) each time the cursor comes round to it.
	for {
		if q.cursor >= len(q.normal) {
			q.cursor = 0
		}
		l := q.normal[q.cursor]
		if l.deficit <= 0 {
			l.deficit += max(l.prio, 1)
		}
		v = l.pop()
		l.deficit--
		q.n--
		if l.n == 0 {
			q.normal = remove(q.normal, q.cursor)
		} else if l.deficit <= 0 {
			q.cursor++
		}
		return v, true
	}
}

// RemoveClass drops every queued item of class k (a connection that was
// reset) and returns them, oldest first within each priority, so the
// caller can release them.
func (q *Queue[K, T]) RemoveClass(k K, out []T) []T {
	for _, group := range [][]*level[K, T]{q.strict, q.normal} {
		for _, l := range group {
			r := l.classes[k]
			if r == nil {
				continue
			}
			for r.Len() > 0 {
				out = append(out, r.PopFront())
				l.n--
				q.n--
			}
			delete(l.classes, k)
			l.free = append(l.free, r)
			// rebuild the class order without k
			for i, n := 0, l.order.Len(); i < n; i++ {
				c := l.order.PopFront()
				if c != k {
					l.order.PushBack(c)
				}
			}
		}
	}
	q.strict = compact(q.strict)
	q.normal = compact(q.normal)
	if q.cursor >= len(q.normal) {
		q.cursor = 0
	}
	return out
}

func compact[K comparable, T any](ls []*level[K, T]) []*level[K, T] {
	j := 0
	for _, l := range ls {
		if l.n > 0 {
			ls[j] = l
			j++
		}
	}
	for i := j; i < len(ls); i++ {
		ls[i] = nil
	}
	return ls[:j]
}
