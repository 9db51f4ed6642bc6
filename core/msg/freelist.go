package msg

import (
	"sync"
	"sync/atomic"
)

// Link is embedded in objects kept on a FreeList.
type Link[T any] struct{ next *T }

func (l *Link[T]) link() *Link[T] { return l }

// Linked is satisfied by *T when T embeds Link[T].
type Linked[T any] interface {
	*T
	link() *Link[T]
}

// FreeList recycles objects that one thread takes and another gives back:
// messages a worker receives and a C or Python thread releases, or a C
// thread sends and a worker releases. sync.Pool keeps a cache per P, so
// in that pattern nearly every Get missed its P's cache and stole from the
// other's (measured: ~4% of each thread in a W2 profile). Put pushes on a
// lock-free stack; Get takes the whole stack with one swap (so no ABA)
// under a mutex (several getters may exist) and pops from the getters'
// own list. It keeps at most Max objects (0: 65536); past that Put drops
// the object for the collector. The zero value is ready.
type FreeList[T any, P Linked[T]] struct {
	Max int64

	head  atomic.Pointer[T]
	n     atomic.Int64
	mu    sync.Mutex
	local *T // getters' list (mu)
}

const defaultFreeMax = 1 << 16

// Put gives x back; the caller must not touch it afterwards. Any goroutine.
func (f *FreeList[T, P]) Put(x *T) {
	max := f.Max
	if max <= 0 {
		max = defaultFreeMax
	}
	if f.n.Add(1) > max {
		f.n.Add(-1)
		return
	}
	l := P(x).link()
	for {
		h := f.head.Load()
		l.next = h
		if f.head.CompareAndSwap(h, x) {
			return
		}
	}
}

// Get returns a free object, or nil if there is none. Any goroutine.
func (f *FreeList[T, P]) Get() *T {
	f.mu.Lock()
	x := f.popLocked()
	f.mu.Unlock()
	if x != nil {
		f.n.Add(-1)
	}
	return x
}

// GetMany fills out with free objects under one lock and returns how many
// it found (the rest of out is left as it was).
func (f *FreeList[T, P]) GetMany(out []*T) int {
	k := 0
	f.mu.Lock()
	for k < len(out) {
		x := f.popLocked()
		if x == nil {
			break
		}
		out[k] = x
		k++
	}
	f.mu.Unlock()
	if k > 0 {
		f.n.Add(int64(-k))
	}
	return k
}

func (f *FreeList[T, P]) popLocked() *T {
	x := f.local
	if x == nil {
		if x = f.head.Swap(nil); x == nil {
			return nil
		}
	}
	l := P(x).link()
	f.local, l.next = l.next, nil
	return x
}

// Len is how many objects the list holds (approximate while in use).
func (f *FreeList[T, P]) Len() int { return int(f.n.Load()) }
