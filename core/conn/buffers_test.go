package conn

import (
	"testing"
)

// TestRxClass checks the size classes: each class holds its sizes, and
// oversized payloads are not pooled.
func TestRxClass(t *testing.T) {
	for _, n := range []int{0, 1, 64, 256, 257, 1024, 1025, 4096, 65536, 1 << 20, 16 << 20} {
		c := rxClass(n)
		if c < 0 || 1<<(rxMinShift+2*c) < n {
			t.Fatalf("class %d for %d bytes", c, n)
		}
		if c > 0 && 1<<(rxMinShift+2*(c-1)) >= n {
			t.Fatalf("class %d for %d bytes is not the smallest", c, n)
		}
	}
	if rxClass(16<<20+1) != -1 {
		t.Fatal("a payload over 16 MiB is pooled")
	}
}

// TestRxMessagePool checks that a released message goes back to the pool
// cleared, and that one kept (not released) keeps its payload while others
// come and go.
func TestRxMessagePool(t *testing.T) {
	kept, kb := newRxMessage(100)
	copy(kb, "kept")
	kept.Front = kb
	for i := 0; i < 100; i++ {
		m, b := newRxMessage(100)
		if len(b) != 100 || cap(b) != 100 || m.DataFree == nil {
			t.Fatalf("buffer len %d cap %d, DataFree %v", len(b), cap(b), m.DataFree != nil)
		}
		if m == kept || &b[0] == &kb[0] {
			t.Fatal("a message not released was handed out again")
		}
		if m.Type != 0 || m.Front != nil {
			t.Fatalf("pooled message not cleared: %+v", m)
		}
		m.Type = 7
		m.Front = b
		copy(b, "junk")
		m.Release()
		m.Release() // a second Release does nothing
	}
	if string(kept.Front[:4]) != "kept" {
		t.Fatalf("kept message changed: %q", kept.Front[:4])
	}
	big, bb := newRxMessage(16<<20 + 1)
	if len(bb) != 16<<20+1 || big.DataFree != nil {
		t.Fatal("oversized message")
	}
}

// TestSharedPoolReadRoom: configs with the same sizes share their pools,
// and a buffer grown for a large frame, once pooled, lets a connection
// that takes it read no more at once than ReadBuf (what it holds for the
// dispatch throttle stays bounded whichever buffer it got).
func TestSharedPoolReadRoom(t *testing.T) {
	a := &Config{ReadBuf: 8 << 10}
	b := &Config{ReadBuf: 8 << 10}
	a.init()
	b.init()
	if a.rpool != b.rpool || a.rpool == a.wpool {
		t.Fatalf("pools: a.r %p b.r %p a.w %p", a.rpool, b.rpool, a.wpool)
	}
	// As a grown buffer comes back from the pool (sync.Pool may drop it,
	// so hand it over directly).
	c := &Connection{cfg: b, rbuf: make([]byte, 1<<20)}
	if r := c.readRoom(); r != 8<<10 {
		t.Fatalf("read room %d of a %d-byte buffer, want ReadBuf %d", r, len(c.rbuf), 8<<10)
	}
	c.rend = len(c.rbuf) - 100
	if r := c.readRoom(); r != 100 {
		t.Fatalf("read room %d with 100 bytes left", r)
	}
}
