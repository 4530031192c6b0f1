package vec

import (
	"math"
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/cpu"
)

func TestAcceleratedOnThisCPU(t *testing.T) {
	if !assemblyBuilt {
		if Accelerated() {
			t.Error("built with the purego tag, yet the assembly is in use")
		}
		return
	}
	if Accelerated() != cpu.X86.HasAVX512F {
		t.Errorf("Accelerated() = %v on a CPU with AVX-512F %v", Accelerated(), cpu.X86.HasAVX512F)
	}
}

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
			t.Fatalf("%s[%d]: portable %v, assembly %v", what, i, want[i], got[i])
		}
	}
}

// TestAssemblyMatchesPortable runs each function both ways on ragged lengths and compares bits.
func TestAssemblyMatchesPortable(t *testing.T) {
	if !hasAVX512 {
		t.Skip("no AVX-512 on this CPU: only the portable versions exist (TestAcceleratedOnThisCPU checks detection)")
	}
	defer Use(true)
	rng := rand.New(rand.NewPCG(1, 1))
	for _, n := range []int{1, 15, 16, 17, 32, 100, 1023} {
		a, b, c, d, g := randTies(rng, n), randTies(rng, n), randTies(rng, n), randTies(rng, n), randTies(rng, n)
		run := func(accel bool) [][]float32 {
			Use(accel)
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
		want, got := run(false), run(true)
		for i, name := range []string{"ReLU", "ReLUGrad", "Max4", "da", "db", "dc", "dd"} {
			same(t, name, want[i], got[i])
		}
	}
}

// TestMax4GradRoutesOnce checks that each gradient goes to exactly one input, the first maximum.
func TestMax4GradRoutesOnce(t *testing.T) {
	for _, accel := range []bool{false, true} {
		Use(accel)
		a := []float32{1, 0, 5, 2}
		b := []float32{1, 3, 5, 2}
		c := []float32{0, 3, 1, 2}
		d := []float32{0, 0, 1, 7}
		y := make([]float32, 4)
		Max4(y, a, b, c, d)
		g := []float32{10, 20, 30, 40}
		da, db, dc, dd := make([]float32, 4), make([]float32, 4), make([]float32, 4), make([]float32, 4)
		Max4Grad(da, db, dc, dd, g, y, a, b, c, d)
		want := [][]float32{{10, 0, 30, 0}, {0, 20, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 40}}
		for k, got := range [][]float32{da, db, dc, dd} {
			same(t, "gradient", want[k], got)
		}
	}
	Use(true)
}

// TestCopyStrided compares both versions on every segment length the assembly takes and on
// overlapping source segments (as im2col reads them), leaving the gaps untouched.
func TestCopyStrided(t *testing.T) {
	defer Use(true)
	rng := rand.New(rand.NewPCG(1, 1))
	src := randTies(rng, 500)
	for seg := 1; seg <= 20; seg++ {
		for _, strides := range [][2]int{{seg, 3}, {seg + 5, seg}, {28, 3}} {
			var got [2][]float32
			for k, accel := range []bool{false, true} {
				Use(accel)
				dst := make([]float32, 400)
				for i := range dst {
					dst[i] = -7
				}
				CopyStrided(dst, strides[0], src[1:], strides[1], 9, seg)
				got[k] = dst
			}
			same(t, "CopyStrided", got[0], got[1])
			for i := 0; i < 9; i++ {
				for j := 0; j < seg; j++ {
					if got[1][i*strides[0]+j] != src[1+i*strides[1]+j] {
						t.Fatalf("seg %d strides %v: segment %d element %d not copied", seg, strides, i, j)
					}
				}
			}
		}
	}
}

// TestMaxPool2Row compares both versions of the row functions, on channel counts the assembly
// takes (multiples of 16) and ones it leaves to Go.
func TestMaxPool2Row(t *testing.T) {
	defer Use(true)
	rng := rand.New(rand.NewPCG(1, 1))
	for _, c := range []int{16, 32, 48, 5} {
		const ow = 7
		top, bot, dy := randTies(rng, 2*ow*c+c), randTies(rng, 2*ow*c+c), randTies(rng, ow*c)
		var got [2][][]float32
		for k, accel := range []bool{false, true} {
			Use(accel)
			y := make([]float32, ow*c)
			MaxPool2Row(y, top, bot, c, ow)
			dt, db := make([]float32, 2*ow*c), make([]float32, 2*ow*c)
			MaxPool2RowGrad(dt, db, dy, y, top, bot, c, ow)
			got[k] = [][]float32{y, dt, db}
		}
		for i, name := range []string{"y", "dxTop", "dxBot"} {
			same(t, name, got[0][i], got[1][i])
		}
		// And the Go version agrees with Max4 element by element.
		y := got[0][0]
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
