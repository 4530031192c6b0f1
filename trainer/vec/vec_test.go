package vec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kubetrain/kubetrain/trainer/simd"
)

func TestBestLevelByDefault(t *testing.T) {
	if Level() != simd.Best() {
		t.Errorf("Level() = %v, want the CPU's best %v", Level(), simd.Best())
	}
}

// accelerated lists the assembly levels this CPU runs, each of which the tests compare with the
// portable code: on an AVX2 machine the AVX2 versions, on an AVX-512 machine both. With the purego
// tag (or another architecture) there are none, and the tests check the portable code alone.
func accelerated() []simd.Level { return simd.Available()[1:] }

// levels is the portable level followed by the accelerated ones.
func levels() []simd.Level { return simd.Available() }

// randTies returns values with many exact ties and zeros of both signs, the cases where a max or a
// comparison could tell the versions apart.
func randTies(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		switch rng.IntN(4) {
		case 0:
			s[i] = 0
		case 1:
			s[i] = float32(math.Copysign(0, -1))
		default:
			s[i] = float32(rng.IntN(5) - 2)
		}
	}
	return s
}

func same(t *testing.T, what string, want, got []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
			t.Fatalf("%s[%d]: portable %v, assembly %v (level %v)", what, i, want[i], got[i], Level())
		}
	}
}

// TestAssemblyMatchesPortable runs each function at every level on ragged lengths and compares bits.
func TestAssemblyMatchesPortable(t *testing.T) {
	defer Use(simd.Best())
	rng := rand.New(rand.NewPCG(1, 1))
	for _, n := range []int{1, 7, 8, 9, 15, 16, 17, 32, 100, 1023} {
		a, b, c, d, g := randTies(rng, n), randTies(rng, n), randTies(rng, n), randTies(rng, n), randTies(rng, n)
		run := func(l simd.Level) [][]float32 {
			Use(l)
			relu := append([]float32(nil), a...)
			ReLU(relu)
			rg := make([]float32, n)
			ReLUGrad(rg, g, a)
			m := make([]float32, n)
			Max4(m, a, b, c, d)
			da, db, dc, dd := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
			Max4Grad(da, db, dc, dd, g, m, a, b, c, d)
			return [][]float32{relu, rg, m, da, db, dc, dd}
		}
		want := run(simd.Portable)
		for _, l := range accelerated() {
			got := run(l)
			for i, name := range []string{"ReLU", "ReLUGrad", "Max4", "da", "db", "dc", "dd"} {
				same(t, fmt.Sprintf("n=%d %s", n, name), want[i], got[i])
			}
		}
	}
}

// TestMax4GradRoutesOnce checks that each gradient goes to exactly one input, the first maximum.
func TestMax4GradRoutesOnce(t *testing.T) {
	defer Use(simd.Best())
	for _, l := range levels() {
		Use(l)
		// Eight lanes, so that the AVX2 versions take them; the AVX-512 ones leave them to Go.
		a := []float32{1, 0, 5, 2, 1, 0, 5, 2}
		b := []float32{1, 3, 5, 2, 1, 3, 5, 2}
		c := []float32{0, 3, 1, 2, 0, 3, 1, 2}
		d := []float32{0, 0, 1, 7, 0, 0, 1, 7}
		y := make([]float32, 8)
		Max4(y, a, b, c, d)
		g := []float32{10, 20, 30, 40, 10, 20, 30, 40}
		da, db, dc, dd := make([]float32, 8), make([]float32, 8), make([]float32, 8), make([]float32, 8)
		Max4Grad(da, db, dc, dd, g, y, a, b, c, d)
		want := [][]float32{{10, 0, 30, 0, 10, 0, 30, 0}, {0, 20, 0, 0, 0, 20, 0, 0}, {0, 0, 0, 0, 0, 0, 0, 0}, {0, 0, 0, 40, 0, 0, 0, 40}}
		for k, got := range [][]float32{da, db, dc, dd} {
			same(t, "gradient", want[k], got)
		}
	}
}

// TestMaxPool2Row compares both versions of the row functions, on channel counts the assembly
// takes (multiples of 8 or 16) and ones it leaves to Go.
func TestMaxPool2Row(t *testing.T) {
	defer Use(simd.Best())
	rng := rand.New(rand.NewPCG(1, 1))
	for _, c := range []int{8, 16, 24, 32, 48, 5} {
		const ow = 7
		top, bot, dy := randTies(rng, 2*ow*c+c), randTies(rng, 2*ow*c+c), randTies(rng, ow*c)
		var want [][]float32
		for _, l := range levels() {
			Use(l)
			y := make([]float32, ow*c)
			MaxPool2Row(y, top, bot, c, ow)
			dt, db := make([]float32, 2*ow*c), make([]float32, 2*ow*c)
			MaxPool2RowGrad(dt, db, dy, y, top, bot, c, ow)
			got := [][]float32{y, dt, db}
			if want == nil {
				want = got
			}
			for i, name := range []string{"y", "dxTop", "dxBot"} {
				same(t, fmt.Sprintf("c=%d %s", c, name), want[i], got[i])
			}
		}
		// And the Go version agrees with Max4 element by element.
		y := want[0]
		for j := 0; j < ow; j++ {
			for q := 0; q < c; q++ {
				l, r := 2*j*c+q, (2*j+1)*c+q
				want := maxps(maxps(top[l], top[r]), maxps(bot[l], bot[r]))
				if math.Float32bits(y[j*c+q]) != math.Float32bits(want) {
					t.Fatalf("c=%d: y[%d] = %v, want %v", c, j*c+q, y[j*c+q], want)
				}
			}
		}
	}
}

// TestTranspose compares every level with the definition on shapes with and without ragged edges
// and with row strides longer than the rows.
func TestTranspose(t *testing.T) {
	defer Use(simd.Best())
	rng := rand.New(rand.NewPCG(1, 1))
	for _, sh := range [][2]int{{1, 1}, {8, 8}, {16, 24}, {5408, 32}, {33, 17}, {7, 9}, {64, 3}} {
		rows, cols := sh[0], sh[1]
		lds, ldd := cols+3, rows+5
		src := randTies(rng, rows*lds)
		for _, l := range levels() {
			Use(l)
			dst := make([]float32, cols*ldd)
			for i := range dst {
				dst[i] = -7
			}
			Transpose(dst, ldd, src, lds, rows, cols)
			for j := 0; j < cols; j++ {
				for i := 0; i < ldd; i++ {
					want := float32(-7)
					if i < rows {
						want = src[i*lds+j]
					}
					if math.Float32bits(dst[j*ldd+i]) != math.Float32bits(want) {
						t.Fatalf("level %v %dx%d: dst[%d][%d] = %v, want %v", l, rows, cols, j, i, dst[j*ldd+i], want)
					}
				}
			}
		}
	}
}

// TestPatches compares every level with the definition, on channel counts whose segments take one
// register, two, or more than the assembly handles, and checks that nothing past the matrix is
// written.
func TestPatches(t *testing.T) {
	defer Use(simd.Best())
	rng := rand.New(rand.NewPCG(1, 1))
	for _, sh := range [][5]int{{28, 28, 1, 3, 3}, {32, 32, 3, 3, 3}, {9, 7, 2, 3, 3}, {6, 5, 5, 3, 3}, {5, 6, 8, 2, 2}, {4, 4, 7, 3, 3}, {3, 3, 1, 3, 3}, {3, 4, 1, 3, 3}, {3, 3, 1, 1, 1}, {9, 2, 1, 1, 2}, {2, 9, 3, 1, 1}} {
		h, w, c, kh, kw := sh[0], sh[1], sh[2], sh[3], sh[4]
		oh, ow, k := h-kh+1, w-kw+1, kh*kw*c+1
		x := randTies(rng, h*w*c)
		for i := range x {
			x[i] += float32(i) // distinct values, so a misplaced copy shows
		}
		for _, l := range levels() {
			Use(l)
			dst := make([]float32, oh*ow*k+8)
			for i := range dst {
				dst[i] = -7
			}
			Patches(dst[:oh*ow*k], x, h, w, c, kh, kw)
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					row := dst[(oy*ow+ox)*k : (oy*ow+ox+1)*k]
					for ky := 0; ky < kh; ky++ {
						for j := 0; j < kw*c; j++ {
							if want := x[((oy+ky)*w+ox)*c+j]; row[ky*kw*c+j] != want {
								t.Fatalf("level %v %v: pixel (%d,%d) segment %d float %d = %v, want %v", l, sh, oy, ox, ky, j, row[ky*kw*c+j], want)
							}
						}
					}
					if row[k-1] != 1 {
						t.Fatalf("level %v %v: pixel (%d,%d) has bias column %v", l, sh, oy, ox, row[k-1])
					}
				}
			}
			for i := oh * ow * k; i < len(dst); i++ {
				if dst[i] != -7 {
					t.Fatalf("level %v %v: wrote %v past the matrix at %d", l, sh, dst[i], i)
				}
			}
		}
	}
}

// TestMaxPool2ArgRow compares every level with the definition: the pooled maximum after the bias
// and the ReLU, and the place of the first maximum, on pixels wider than their channels.
func TestMaxPool2ArgRow(t *testing.T) {
	defer Use(simd.Best())
	rng := rand.New(rand.NewPCG(5, 5))
	for _, c := range []int{8, 32, 5} {
		const ow, base, step = 7, 1000, 6
		ps := c + 3
		off := [4]int32{base, base + 3, base + 90, base + 93}
		top, bot, bias := randTies(rng, 2*ow*ps), randTies(rng, 2*ow*ps), randTies(rng, c)
		for _, l := range levels() {
			Use(l)
			y, arg := make([]float32, ow*c), make([]int32, ow*c)
			MaxPool2ArgRow(y, arg, top, bot, bias, c, ps, ow, off, step)
			for j := 0; j < ow; j++ {
				for ch := 0; ch < c; ch++ {
					win := []float32{top[2*j*ps+ch], top[(2*j+1)*ps+ch], bot[2*j*ps+ch], bot[(2*j+1)*ps+ch]}
					m := maxps(maxps(win[0], win[1]), maxps(win[2], win[3]))
					q := 0
					for q < 3 && win[q] != m {
						q++
					}
					want := m + bias[ch]
					if !(want > 0) {
						want = 0
					}
					i := j*c + ch
					if math.Float32bits(y[i]) != math.Float32bits(want) || arg[i] != off[q]+int32(j)*step {
						t.Fatalf("level %v, c=%d: pixel %d channel %d: y %v arg %d, want %v and %d (window %v)", l, c, j, ch, y[i], arg[i], want, off[q]+int32(j)*step, win)
					}
				}
			}
		}
	}
}
