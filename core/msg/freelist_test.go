package msg

import (
	"sync"
	"testing"
)

type item struct {
	Link[item]
	v int
}

func TestFreeListLIFOAndBound(t *testing.T) {
	var f FreeList[item, *item]
	f.Max = 3
	if f.Get() != nil {
		t.Fatal("Get on an empty list")
	}
	a, b, c, d := &item{v: 1}, &item{v: 2}, &item{v: 3}, &item{v: 4}
	f.Put(a)
	f.Put(b)
	f.Put(c)
	f.Put(d) // over Max: dropped
	if f.Len() != 3 {
		t.Fatalf("Len %d, want 3", f.Len())
	}
	out := make([]*item, 5)
	if n := f.GetMany(out); n != 3 || out[0] != c || out[1] != b || out[2] != a {
		t.Fatalf("GetMany: %d %v", n, out)
	}
	if f.Len() != 0 || f.Get() != nil {
		t.Fatal("not empty after taking everything")
	}
	if a.next != nil || c.next != nil {
		t.Fatal("a taken object still links to the list")
	}
}

// Concurrent putters and getters: every object comes back exactly once.
func TestFreeListConcurrent(t *testing.T) {
	var f FreeList[item, *item]
	const per, workers = 2000, 4
	all := make([]*item, per*workers)
	for i := range all {
		all[i] = &item{v: i}
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(part []*item) {
			defer wg.Done()
			for _, x := range part {
				f.Put(x)
				if y := f.Get(); y != nil {
					f.Put(y)
				}
			}
		}(all[w*per : (w+1)*per])
	}
	wg.Wait()
	seen := map[int]bool{}
	for x := f.Get(); x != nil; x = f.Get() {
		if seen[x.v] {
			t.Fatalf("object %d twice", x.v)
		}
		seen[x.v] = true
	}
	if len(seen) != len(all) {
		t.Fatalf("got %d of %d back", len(seen), len(all))
	}
}
