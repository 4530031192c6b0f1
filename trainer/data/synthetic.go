package data

import "math/rand/v2"

// Sizes of the built-in synthetic dataset.
const (
	SyntheticTrain = 10000
	SyntheticTest  = 2000
)

// Synthetic returns a CIFAR-10-shaped dataset generated from seed. Each class has a prototype, a
// coarse 4x4 grid of random colours; an example is its class's prototype, shifted by up to two
// pixels, plus per-pixel noise. The classes are learnable (the reference model exceeds 0.9 test
// accuracy in an epoch) but not trivially so, since noise and shifts blur the prototypes.
func Synthetic(seed uint64, train, test int) *Dataset {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	var protos [Classes][4 * 4 * 3]float64
	for c := range protos {
		for i := range protos[c] {
			protos[c][i] = 40 + 175*rng.Float64()
		}
	}
	gen := func(n int) *Split {
		s := &Split{Height: cifarSide, Width: cifarSide, Channels: 3, Images: make([]uint8, n*3*cifarPixels), Labels: make([]uint8, n)}
		for i := 0; i < n; i++ {
			c := rng.IntN(Classes)
			s.Labels[i] = uint8(c)
			dx, dy := rng.IntN(5)-2, rng.IntN(5)-2
			img := s.Images[i*3*cifarPixels : (i+1)*3*cifarPixels]
			for y := 0; y < cifarSide; y++ {
				gy := min(max((y+dy)/8, 0), 3)
				for x := 0; x < cifarSide; x++ {
					gx := min(max((x+dx)/8, 0), 3)
					for ch := 0; ch < 3; ch++ {
						v := protos[c][(gy*4+gx)*3+ch] + 60*rng.NormFloat64()
						img[(y*cifarSide+x)*3+ch] = uint8(min(max(v, 0), 255))
					}
				}
			}
		}
		return s
	}
	return &Dataset{Name: "synthetic cifar10", Train: gen(train), Test: gen(test)}
}
