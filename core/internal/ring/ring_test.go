package ring

import "testing"

// TestWrap exercises wrap-around and growth with both ends against a slice
// model, over enough steps to grow past 16 and wrap many times.
func TestWrap(t *testing.T) {
	var q Ring[*int]
	var want []*int
	vals := make([]int, 1000)
	for i := range vals {
		vals[i] = i
	}
	for i := 0; i < len(vals); i++ {
		v := &vals[i]
		switch i % 7 {
		case 0, 1, 2:
			q.PushBack(v)
			want = append(want, v)
		case 3:
			q.PushFront(v)
			want = append([]*int{v}, want...)
		case 4:
			if got := q.PopFront(); got != want[0] {
				t.Fatalf("step %d: PopFront %d want %d", i, *got, *want[0])
			}
			want = want[1:]
		case 5:
			if got := q.PopBack(); got != want[len(want)-1] {
				t.Fatalf("step %d: PopBack %d want %d", i, *got, *want[len(want)-1])
			}
			want = want[:len(want)-1]
		case 6:
			q.PushBack(v)
			want = append(want, v)
		}
		if q.Len() != len(want) || q.Front() != want[0] || q.Back() != want[len(want)-1] {
			t.Fatalf("step %d: len %d want %d", i, q.Len(), len(want))
		}
	}
	for len(want) > 0 {
		if got := q.PopFront(); got != want[0] {
			t.Fatal("PopFront order")
		}
		want = want[1:]
	}
	if q.PopFront() != nil || q.PopBack() != nil || q.Front() != nil || q.Back() != nil || q.Len() != 0 {
		t.Fatal("empty ring returned an item")
	}
	// Emptied, it is reused without growing.
	c := cap(q.buf)
	for i := 0; i < 3*c; i++ {
		q.PushBack(&vals[0])
		q.PopFront()
	}
	if cap(q.buf) != c {
		t.Fatalf("steady push/pop grew the buffer %d -> %d", c, cap(q.buf))
	}
}
