// Package parallel runs loop bodies on a fixed set of worker goroutines.
//
// Callers keep results deterministic by making each index write only its own output (a tile of a
// matrix, one partial sum), never by relying on which worker ran it. The pool itself never allocates
// once built, so the training loop can use it on every step.
package parallel

import (
	"runtime"
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
//
// A worker whose core is busy elsewhere (a shared machine, a CPU-limited container) must not hold
// up a loop it has not started: workers join a loop explicitly, the caller closes the loop to
// latecomers once it has claimed every index it could, and then waits only for the workers that
// joined. A latecomer finds the loop closed (or a newer one) and leaves the data alone.
type Pool struct {
	threads int
	wake    []chan struct{} // one token wakes a parked worker; stale tokens are harmless
	seq     uint64          // the current loop's number
	// state packs the current loop's number (bits 33 and up), whether it is closed to
	// latecomers (bit 32) and how many workers joined it and are still working (bits 0-31).
	state  atomic.Uint64
	closed atomic.Bool

	// The current loop, written by For before it publishes the loop in state, read by the workers
	// that joined it.
	body    Body
	n       int64
	cursors []cursor
}

const (
	closedBit  = 1 << 32
	activeMask = closedBit - 1
)

func loopSeq(state uint64) uint64 { return state >> 33 }

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
	p.publish()
}

// publish starts a new loop number and wakes the parked workers.
func (p *Pool) publish() {
	p.seq++
	p.state.Store(p.seq << 33)
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
	p.publish()
	p.run(0)
	// Every index is claimed now. Close the loop to latecomers, then wait for those who joined.
	for {
		v := p.state.Load()
		if p.state.CompareAndSwap(v, v|closedBit) {
			break
		}
	}
	for spins := 0; p.state.Load()&activeMask != 0; spins++ {
		if spins&63 == 63 {
			runtime.Gosched()
		}
	}
	p.body = nil
}

func (p *Pool) worker(id int, wake chan struct{}) {
	var seen uint64
	for {
		v := p.state.Load()
		if loopSeq(v) == seen {
			deadline := time.Now().Add(spinFor)
			for spins := 0; loopSeq(p.state.Load()) == seen; spins++ {
				if spins&1023 == 1023 && time.Now().After(deadline) {
					<-wake
				}
			}
			continue
		}
		seen = loopSeq(v)
		if p.closed.Load() {
			return
		}
		// Join the loop unless it is closed or already replaced.
		for loopSeq(v) == seen && v&closedBit == 0 {
			if p.state.CompareAndSwap(v, v+1) {
				p.run(id)
				p.state.Add(^uint64(0)) // leave
				break
			}
			v = p.state.Load()
		}
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
