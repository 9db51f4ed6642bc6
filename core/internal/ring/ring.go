// Package ring is the growable double-ended ring buffer behind the
// messenger's queues: a session's out queue levels and its sent and replay
// lists (core/protocol), and the dispatch queue's per-connection FIFOs
// (core/internal/prioq). It reuses its backing array, so a steady flow
// allocates nothing. Not safe for concurrent use.
package ring

// Ring is a deque. The zero value is empty and ready.
type Ring[T any] struct {
	buf  []T // a power of two long, so indexes wrap with a mask
	head int
	n    int
}

// Len is the number of items.
func (r *Ring[T]) Len() int { return r.n }

// grow doubles the buffer (16 at first), the items moved to its start.
func (r *Ring[T]) grow() {
	size := 2 * len(r.buf)
	if size == 0 {
		size = 16
	}
	nb := make([]T, size)
	for i := 0; i < r.n; i++ {
		nb[i] = r.buf[(r.head+i)&(len(r.buf)-1)]
	}
	r.buf, r.head = nb, 0
}

// PushBack appends v.
func (r *Ring[T]) PushBack(v T) {
	if r.n == len(r.buf) {
		r.grow()
	}
	// A mask, not %: the division was most of the push, itself 5% of a
	// W2 sender's profile.
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = v
	r.n++
}

// PushFront prepends v.
func (r *Ring[T]) PushFront(v T) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.head = (r.head - 1) & (len(r.buf) - 1)
	r.buf[r.head] = v
	r.n++
}

// Front is the first item (the zero T if empty).
func (r *Ring[T]) Front() T {
	if r.n == 0 {
		var zero T
		return zero
	}
	return r.buf[r.head]
}

// Back is the last item (the zero T if empty).
func (r *Ring[T]) Back() T {
	if r.n == 0 {
		var zero T
		return zero
	}
	return r.buf[(r.head+r.n-1)&(len(r.buf)-1)]
}

// PopFront removes and returns the first item (the zero T if empty).
func (r *Ring[T]) PopFront() T {
	var zero T
	if r.n == 0 {
		return zero
	}
	v := r.buf[r.head]
	r.buf[r.head] = zero // let the collector have it
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	return v
}

// PopBack removes and returns the last item (the zero T if empty).
func (r *Ring[T]) PopBack() T {
	var zero T
	if r.n == 0 {
		return zero
	}
	i := (r.head + r.n - 1) & (len(r.buf) - 1)
	v := r.buf[i]
	r.buf[i] = zero
	r.n--
	return v
}
