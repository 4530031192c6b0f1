package gemm

import (
	"fmt"

	"github.com/kubetrain/kubetrain/trainer/parallel"
)

// Products whose register tiles are fewer than splitTiles and whose inner dimension is longer than
// splitK are split along K into at most maxChunks chunks summed in order afterwards, so that a
// 27x32 weight gradient over 28,800 pixels still keeps every core busy. The split depends only on
// the shapes, which keeps results independent of the thread count.
const (
	splitTiles = 16
	splitK     = 512
	maxChunks  = 16
	// kBlock is how many steps of K a task takes through all its panels at once: a block of B of
	// kBlock rows (64 KiB for 64 columns) stays in the core's L2 cache while the panels reuse it.
	kBlock = 256
)

// Workspace holds the scratch memory and the thread pool of products. It grows to the largest
// product it has served and is then reused, so products in a training loop allocate nothing.
// A Workspace serves one product at a time.
type Workspace struct {
	pool    *parallel.Pool
	scratch []*Scratch // per worker
	bpack   []float32  // B packed row-major with padded columns, when B is transposed or ragged
	part    []float32  // per K-chunk partial products
	task    task
}

// Scratch is one thread's scratch memory. Code that runs its own loop on a pool (one image per
// index, say) gives each worker's Scratch to SgemmSerial.
type Scratch struct {
	apack []float32 // one packed A panel
	tile  []float32 // one register tile for ragged edges
	bpack []float32
	part  []float32
	task  task
	self  []*Scratch
	plan  struct { // the last windowPlan
		m     int
		set   *kernelSet
		tiles []*microKernel
	}
}

// NewWorkspace returns a workspace whose products run on pool.
func NewWorkspace(pool *parallel.Pool) *Workspace {
	ws := &Workspace{pool: pool}
	for range pool.Threads() {
		s := &Scratch{}
		s.self = []*Scratch{s}
		ws.scratch = append(ws.scratch, s)
	}
	return ws
}

// Pool is the thread pool the workspace's products run on.
func (ws *Workspace) Pool() *parallel.Pool { return ws.pool }

// Scratch is worker's scratch memory, for SgemmSerial inside a loop run on Pool.
func (ws *Workspace) Scratch(worker int) *Scratch { return ws.scratch[worker] }

// Sgemm computes C = beta·C + op(A)·op(B), where C is m x n with row stride ldc, op(A) is m x k and
// op(B) is k x n. A is stored row-major with row stride lda as m x k, or as k x m when transA is set;
// likewise B as k x n, or n x k when transB is set. beta must be 0 or 1. With beta 0, C's previous
// contents are ignored (NaNs included).
func Sgemm(ws *Workspace, transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if !checkAll(transA, transB, m, n, k, a, lda, b, ldb, beta, c, ldc) {
		return
	}
	t := &ws.task
	t.setup(ws.scratch, &ws.bpack, &ws.part, transA, transB, m, n, k, a, lda, b, ldb, beta, c, ldc)
	ws.pool.For(t.groups*t.chunks, t)
	if t.chunks > 1 {
		ws.pool.For(m, &t.reduce)
	}
	t.a, t.b, t.c = nil, nil, nil
}

// SgemmSerial is Sgemm on the calling goroutine alone, with s's scratch memory. Its result is
// bit-identical to Sgemm's.
func SgemmSerial(s *Scratch, transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if !checkAll(transA, transB, m, n, k, a, lda, b, ldb, beta, c, ldc) {
		return
	}
	if s.self == nil {
		s.self = []*Scratch{s}
	}
	t := &s.task
	t.setup(s.self, &s.bpack, &s.part, transA, transB, m, n, k, a, lda, b, ldb, beta, c, ldc)
	for i := 0; i < t.groups*t.chunks; i++ {
		t.Do(0, i)
	}
	if t.chunks > 1 {
		for i := 0; i < m; i++ {
			t.reduce.Do(0, i)
		}
	}
	t.a, t.b, t.c = nil, nil, nil
}

// checkAll panics on inconsistent operands and handles the empty products; it reports whether a
// product remains to be computed.
func checkAll(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) bool {
	if beta != 0 && beta != 1 {
		panic(fmt.Sprintf("gemm: beta %v is not 0 or 1", beta))
	}
	checkOperand("A", transA, m, k, a, lda)
	checkOperand("B", transB, k, n, b, ldb)
	checkOperand("C", false, m, n, c, ldc)
	if m == 0 || n == 0 {
		return false
	}
	if k == 0 {
		if beta == 0 {
			for i := 0; i < m; i++ {
				clear(c[i*ldc : i*ldc+n])
			}
		}
		return false
	}
	return true
}

// setup plans a product: packs B if needed, chooses the K-chunks and sizes the scratch buffers.
func (t *task) setup(scratch []*Scratch, bpack, part *[]float32, transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	kern := current.Load().pick(m)
	*t = task{scratch: scratch, part: part, kern: kern, transA: transA, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc}
	t.reduce.t = t
	mPanels := (m + kern.mr - 1) / kern.mr
	nPanels := (n + kern.nr - 1) / kern.nr
	t.npad = nPanels * kern.nr
	if transB || n%kern.nr != 0 {
		t.b, t.ldb = packB(bpack, transB, k, n, t.npad, b, ldb)
	}
	t.chunks = 1
	if mPanels*nPanels < splitTiles && k > splitK {
		t.chunks = min(maxChunks, (k+splitK/2-1)/(splitK/2))
	}
	t.kc = (k + t.chunks - 1) / t.chunks
	t.chunks = (k + t.kc - 1) / t.kc
	if t.chunks > 1 {
		*part = grow(*part, t.chunks*m*n)
	}
	// Panels are grouped into tasks: few groups reuse each block of B for more panels, two per
	// thread leave work to take over from a thread whose core is busy elsewhere. How panels are
	// grouped does not change any element's arithmetic, so it may depend on the thread count.
	groups := max(1, (2*len(scratch)+t.chunks-1)/t.chunks)
	if len(scratch) == 1 {
		groups = 1
	}
	t.panelsPerTask = (mPanels + min(groups, mPanels) - 1) / min(groups, mPanels)
	t.groups = (mPanels + t.panelsPerTask - 1) / t.panelsPerTask
	for _, s := range scratch {
		s.apack = grow(s.apack, kern.mr*min(t.kc, kBlock))
		s.tile = grow(s.tile, kern.mr*kern.nr)
	}
}

func checkOperand(name string, trans bool, rows, cols int, x []float32, ld int) {
	r, c := rows, cols
	if trans {
		r, c = cols, rows
	}
	if r < 0 || c < 0 || ld < c || (r > 0 && c > 0 && len(x) < (r-1)*ld+c) {
		panic(fmt.Sprintf("gemm: %s is %dx%d with row stride %d but holds %d floats", name, r, c, ld, len(x)))
	}
}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// packB copies op(B) into a row-major k x npad buffer, zero beyond column n.
func packB(buf *[]float32, transB bool, k, n, npad int, b []float32, ldb int) ([]float32, int) {
	*buf = grow(*buf, k*npad)
	dst := *buf
	if !transB {
		for p := 0; p < k; p++ {
			row := dst[p*npad : (p+1)*npad]
			copy(row, b[p*ldb:p*ldb+n])
			clear(row[n:])
		}
		return dst, npad
	}
	// B is stored n x k: transpose in blocks that stay in cache.
	const blk = 32
	for p := 0; p < k; p++ {
		clear(dst[p*npad+n : (p+1)*npad])
	}
	for j0 := 0; j0 < n; j0 += blk {
		j1 := min(j0+blk, n)
		for p0 := 0; p0 < k; p0 += blk {
			p1 := min(p0+blk, k)
			for j := j0; j < j1; j++ {
				src := b[j*ldb+p0 : j*ldb+p1]
				for p, v := range src {
					dst[(p0+p)*npad+j] = v
				}
			}
		}
	}
	return dst, npad
}

// task is one product: index i of the pool loop is one group of row panels times one K-chunk.
type task struct {
	scratch []*Scratch
	part    *[]float32
	kern    *microKernel
	transA  bool
	m, n    int
	k       int
	a       []float32
	lda     int
	b       []float32
	ldb     int
	beta    float32
	c       []float32
	ldc     int

	npad          int
	chunks, kc    int
	panelsPerTask int
	groups        int
	reduce        reduceTask
}

func (t *task) Do(worker, i int) {
	g, chunk := i%t.groups, i/t.groups
	k0 := chunk * t.kc
	k1 := min(k0+t.kc, t.k)
	// Where this chunk's result goes: C itself, or the chunk's own partial product.
	dst, ldd, acc := t.c, t.ldc, t.beta == 1
	if t.chunks > 1 {
		dst, ldd, acc = (*t.part)[chunk*t.m*t.n:(chunk+1)*t.m*t.n], t.n, false
	}
	p0 := g * t.panelsPerTask
	p1 := min(p0+t.panelsPerTask, (t.m+t.kern.mr-1)/t.kern.mr)
	// The chunk in blocks of kBlock steps, each block through every panel of the task, so that the
	// block's part of B is read from memory once and then from cache; every block after the first
	// adds to what the previous ones left in dst.
	for kb := k0; kb < k1; kb += kBlock {
		t.block(worker, p0, p1, kb, min(kBlock, k1-kb), dst, ldd, acc || kb > k0)
	}
}

// block computes steps [k0, k0+kl) of panels [p0, p1) into dst.
func (t *task) block(worker, p0, p1, k0, kl int, dst []float32, ldd int, acc bool) {
	mr, nr := t.kern.mr, t.kern.nr
	apack := t.scratch[worker].apack[:mr*kl]
	tile := t.scratch[worker].tile
	for panel := p0; panel < p1; panel++ {
		i0 := panel * mr
		rows := min(mr, t.m-i0)
		// Full panels are read in place, A's layout permitting; the rest is packed.
		a, lda, kf := apack, mr, t.kern.cols
		switch {
		case rows == mr && t.transA:
			a, lda = t.a[k0*t.lda+i0:], t.lda
		case rows == mr && t.kern.rows != nil:
			a, lda, kf = t.a[i0*t.lda+k0:], t.lda, t.kern.rows
		default:
			t.packA(apack, i0, rows, k0, kl)
		}
		// The full tiles of a full panel in one call, straight into C.
		j0 := 0
		if full := t.n / nr; rows == mr && full > 0 {
			kf(kl, a, lda, t.b[k0*t.ldb:], t.ldb, dst[i0*ldd:], ldd, acc, full)
			j0 = full * nr
		}
		for ; j0 < t.n; j0 += nr {
			cols := min(nr, t.n-j0)
			b := t.b[k0*t.ldb+j0:]
			// A ragged edge: compute the whole tile aside, keep the part inside C.
			kf(kl, a, lda, b, t.ldb, tile, nr, false, 1)
			for r := 0; r < rows; r++ {
				d := dst[(i0+r)*ldd+j0 : (i0+r)*ldd+j0+cols]
				s := tile[r*nr : r*nr+cols]
				if acc {
					for j, v := range s {
						d[j] += v
					}
				} else {
					copy(d, s)
				}
			}
		}
	}
}

// packA copies rows [i0, i0+rows) and columns [k0, k0+kl) of op(A) into dst as kl groups of mr
// floats, zero beyond the last row.
func (t *task) packA(dst []float32, i0, rows, k0, kl int) {
	mr := t.kern.mr
	if t.transA {
		for p := 0; p < kl; p++ {
			d := dst[p*mr : (p+1)*mr]
			copy(d, t.a[(k0+p)*t.lda+i0:(k0+p)*t.lda+i0+rows])
			clear(d[rows:])
		}
		return
	}
	if rows < mr {
		clear(dst)
	}
	for r := 0; r < rows; r++ {
		src := t.a[(i0+r)*t.lda+k0 : (i0+r)*t.lda+k0+kl]
		d := dst[r:]
		for p, v := range src {
			d[p*mr] = v
		}
	}
}

// reduceTask adds the K-chunks' partial products into C, row i per index, chunks in order.
type reduceTask struct{ t *task }

func (r *reduceTask) Do(_, i int) {
	t := r.t
	row := t.c[i*t.ldc : i*t.ldc+t.n]
	if t.beta == 0 {
		clear(row)
	}
	for ch := 0; ch < t.chunks; ch++ {
		p := (*t.part)[ch*t.m*t.n+i*t.n : ch*t.m*t.n+(i+1)*t.n]
		for j, v := range p {
			row[j] += v
		}
	}
}
