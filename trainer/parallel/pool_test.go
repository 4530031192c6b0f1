package parallel

import (
	"testing"
)

type countBody struct{ hits []int32 }

func (b *countBody) Do(_, i int) { b.hits[i]++ }

func TestForRunsEveryIndexOnce(t *testing.T) {
	for _, threads := range []int{1, 2, 3, 8} {
		p := New(threads)
		for _, n := range []int{0, 1, 2, 7, 100} {
			b := &countBody{hits: make([]int32, n)}
			p.For(n, b)
			for i, h := range b.hits {
				if h != 1 {
					t.Errorf("threads=%d n=%d: index %d ran %d times, want 1", threads, n, i, h)
				}
			}
		}
		p.Close()
	}
}

func TestForDoesNotAllocate(t *testing.T) {
	p := New(2)
	defer p.Close()
	b := &countBody{hits: make([]int32, 64)}
	if allocs := testing.AllocsPerRun(100, func() { p.For(64, b) }); allocs != 0 {
		t.Errorf("For allocated %v times per run, want 0", allocs)
	}
}

// TestManyLoops runs thousands of short loops back to back, the pattern of a training step, where
// a worker may still be leaving one loop as the next opens.
func TestManyLoops(t *testing.T) {
	p := New(3)
	defer p.Close()
	b := &countBody{hits: make([]int32, 50)}
	for loop := 0; loop < 5000; loop++ {
		n := 1 + loop%50
		clear(b.hits)
		p.For(n, b)
		for i := 0; i < n; i++ {
			if b.hits[i] != 1 {
				t.Fatalf("loop %d: index %d ran %d times, want 1", loop, i, b.hits[i])
			}
		}
	}
}
