// Package parallel runs loop bodies on a fixed set of worker goroutines.
//
// Callers keep results deterministic by making each index write only its own output (a tile of a
// matrix, one partial sum), never by relying on which worker ran it. The pool itself never allocates
// once built, so the training loop can use it on every step.
package parallel

import (
	"sync"
	"sync/atomic"
	"time"
)

// Body is a loop body. Do runs index i on the worker numbered worker (0 <= worker < Pool.Threads()),
// so a body may keep per-worker scratch space. Implementations are usually long-lived structs: passing
// a pointer to one does not allocate, where a closure would.
type Body interface {
	Do(worker, i int)
}

// Pool runs Bodies over index ranges on Threads() goroutines, the caller's included.
// A Pool serves one caller at a time.
//
// Waking a parked goroutine costs tens of microseconds on a virtual machine, and a training step
// runs a few dozen loops, so idle workers first spin for a while (spinFor) watching for the next
// loop, and only then park until For wakes them.
type Pool struct {
	threads int
	wake    []chan struct{} // one token wakes a parked worker; stale tokens are harmless
	wg      sync.WaitGroup
	gen     atomic.Uint64 // counts loops; a worker runs each generation exactly once
	closed  atomic.Bool

	// The current loop, set by For before it advances gen.
	body    Body
	n       int64
	cursors []cursor
}

// spinFor is how long an idle worker watches for the next loop before parking.
const spinFor = 200 * time.Microsecond

// New starts a pool of threads workers (at least 1). The calling goroutine counts as one of them.
func New(threads int) *Pool {
	if threads < 1 {
		threads = 1
	}
	p := &Pool{threads: threads, cursors: make([]cursor, threads)}
	for w := 1; w < threads; w++ {
		ch := make(chan struct{}, 1)
		p.wake = append(p.wake, ch)
		go p.worker(w, ch)
	}
	return p
}

// Threads is the number of workers.
func (p *Pool) Threads() int { return p.threads }

// Close stops the workers. The pool must not be used afterwards.
func (p *Pool) Close() {
	p.closed.Store(true)
	p.gen.Add(1)
	for _, ch := range p.wake {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
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
	for i := range p.cursors {
		p.cursors[i].next.Store(0)
	}
	p.wg.Add(len(p.wake))
	p.gen.Add(1)
	for _, ch := range p.wake {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	p.run(0)
	p.wg.Wait()
	p.body = nil
}

func (p *Pool) worker(id int, wake chan struct{}) {
	var seen uint64
	for {
		if p.gen.Load() == seen {
			deadline := time.Now().Add(spinFor)
			for spins := 0; p.gen.Load() == seen; spins++ {
				if spins&1023 == 1023 && time.Now().After(deadline) {
					<-wake
				}
			}
		}
		seen = p.gen.Load()
		if p.closed.Load() {
			return
		}
		p.run(id)
		p.wg.Done()
	}
}

// run works through the loop's indices: first worker's own contiguous block, then whatever is left
// of the others' blocks. The same indices go to the same worker loop after loop while all workers
// keep up, so the data a worker touched in one loop (an image's activations, a block of weights) is
// still in its core's cache in the next; and a worker whose core is busy elsewhere (a shared
// machine) has its indices taken over instead of holding everyone up.
func (p *Pool) run(worker int) {
	n, t := int(p.n), p.threads
	for b := 0; b < t; b++ {
		blk := (worker + b) % t
		lo, hi := blk*n/t, (blk+1)*n/t
		cur := &p.cursors[blk].next
		for {
			i := lo + int(cur.Add(1)) - 1
			if i >= hi {
				break
			}
			p.body.Do(worker, i)
		}
	}
}

// cursor is one block's next index, padded to its own cache line.
type cursor struct {
	next atomic.Int64
	_    [56]byte
}
