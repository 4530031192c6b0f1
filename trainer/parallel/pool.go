// Package parallel runs loop bodies on a fixed set of worker goroutines.
//
// A Pool hands out loop indices dynamically, so which worker runs an index varies from run to run:
// callers keep results deterministic by making each index write only its own output (a tile of a
// matrix, one partial sum), never by relying on which worker ran it. The pool itself never allocates
// once built, so the training loop can use it on every step.
package parallel

import (
	"sync"
	"sync/atomic"
)

// Body is a loop body. Do runs index i on the worker numbered worker (0 <= worker < Pool.Threads()),
// so a body may keep per-worker scratch space. Implementations are usually long-lived structs: passing
// a pointer to one does not allocate, where a closure would.
type Body interface {
	Do(worker, i int)
}

// Pool runs Bodies over index ranges on Threads() goroutines, the caller's included.
// A Pool serves one caller at a time.
type Pool struct {
	threads int
	start   []chan struct{}
	wg      sync.WaitGroup

	// The current loop, set by For before it wakes the workers.
	body Body
	n    int64
	next atomic.Int64
}

// New starts a pool of threads workers (at least 1). The calling goroutine counts as one of them.
func New(threads int) *Pool {
	if threads < 1 {
		threads = 1
	}
	p := &Pool{threads: threads}
	for w := 1; w < threads; w++ {
		ch := make(chan struct{})
		p.start = append(p.start, ch)
		go p.worker(w, ch)
	}
	return p
}

// Threads is the number of workers.
func (p *Pool) Threads() int { return p.threads }

// Close stops the workers. The pool must not be used afterwards.
func (p *Pool) Close() {
	for _, ch := range p.start {
		close(ch)
	}
	p.start = nil
}

// For runs body.Do(worker, i) for every i in [0, n) and returns when all have finished.
func (p *Pool) For(n int, body Body) {
	if n <= 0 {
		return
	}
	if p.threads == 1 || n == 1 {
		for i := 0; i < n; i++ {
			body.Do(0, i)
		}
		return
	}
	p.body = body
	p.n = int64(n)
	p.next.Store(0)
	helpers := min(len(p.start), n-1)
	p.wg.Add(helpers)
	for w := 0; w < helpers; w++ {
		p.start[w] <- struct{}{}
	}
	p.run(0)
	p.wg.Wait()
	p.body = nil
}

func (p *Pool) worker(id int, start chan struct{}) {
	for range start {
		p.run(id)
		p.wg.Done()
	}
}

func (p *Pool) run(worker int) {
	for {
		i := p.next.Add(1) - 1
		if i >= p.n {
			return
		}
		p.body.Do(worker, int(i))
	}
}
