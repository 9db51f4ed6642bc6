package prioq

import (
	"testing"

	"github.com/stretchr/testify/require"
)

type item struct {
	conn, prio, seq int
}

func TestStrictOrderAndFIFO(t *testing.T) {
	q := New[int, item](64)
	prios := []int{64, 255, 127, 196, 127, 255, 64}
	for i, p := range prios {
		q.Push(p, 1, item{1, p, i})
	}
	var got []int
	for {
		v, ok := q.Pop()
		if !ok {
			break
		}
		got = append(got, v.seq)
	}
	require.Equal(t, []int{1, 5, 3, 2, 4, 0, 6}, got)
	require.Equal(t, 0, q.Len())
}

func TestRoundRobinClassesWithinPriority(t *testing.T) {
	q := New[int, item](64)
	// connection 1 floods, connections 2 and 3 have one each
	for i := 0; i < 10; i++ {
		q.Push(127, 1, item{1, 127, i})
	}
	q.Push(127, 2, item{2, 127, 0})
	q.Push(127, 3, item{3, 127, 0})
	var conns []int
	for i := 0; i < 4; i++ {
		v, ok := q.Pop()
		require.True(t, ok)
		conns = append(conns, v.conn)
	}
	require.Equal(t, []int{1, 2, 3, 1}, conns)
	// per-class FIFO preserved
	last := 1
	for {
		v, ok := q.Pop()
		if !ok {
			break
		}
		require.Equal(t, 1, v.conn)
		require.Equal(t, last+1, v.seq)
		last = v.seq
	}
}

func TestWeightedBelowCutoff(t *testing.T) {
	q := New[int, item](64)
	for i := 0; i < 1000; i++ {
		q.Push(40, 1, item{1, 40, i})
		q.Push(10, 2, item{2, 10, i})
	}
	counts := map[int]int{}
	for i := 0; i < 500; i++ {
		v, ok := q.Pop()
		require.True(t, ok)
		counts[v.prio]++
	}
	// 40:10 weights → 400:100 in the first 500
	require.InDelta(t, 400, counts[40], 10)
	require.InDelta(t, 100, counts[10], 10)
	// and the low one never starves entirely
	require.Greater(t, counts[10], 0)
}

func TestStrictBeatsNormal(t *testing.T) {
	q := New[int, item](64)
	q.Push(10, 1, item{1, 10, 0})
	q.Push(63, 1, item{1, 63, 1})
	q.Push(64, 1, item{1, 64, 2})
	v, _ := q.Pop()
	require.Equal(t, 2, v.seq)
}

func TestRemoveClass(t *testing.T) {
	q := New[int, item](64)
	for i := 0; i < 5; i++ {
		q.Push(127, 1, item{1, 127, i})
		q.Push(127, 2, item{2, 127, i})
		q.Push(10, 1, item{1, 10, i})
	}
	removed := q.RemoveClass(1, nil)
	require.Len(t, removed, 10)
	require.Equal(t, 5, q.Len())
	for i := 0; i < 5; i++ {
		v, ok := q.Pop()
		require.True(t, ok)
		require.Equal(t, 2, v.conn)
		require.Equal(t, i, v.seq)
	}
	_, ok := q.Pop()
	require.False(t, ok)
}

func BenchmarkPushPop(b *testing.B) {
	q := New[int, int](64)
	for i := 0; i < 64; i++ { // warm the rings
		q.Push(127, i%4, i)
	}
	for q.Len() > 0 {
		q.Pop()
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		q.Push(127, i&3, i)
		q.Pop()
	}
}
