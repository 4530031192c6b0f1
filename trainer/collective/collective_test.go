package collective

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubetrain/kubetrain/internal/testutil"
)

func config(rank0 string, rank, size int, secret string) Config {
	listen := "127.0.0.1:0"
	if rank == 0 {
		listen = rank0
	}
	return Config{Rank: rank, Size: size, Rank0: rank0, Listen: listen, Secret: secret,
		JoinTimeout: 20 * time.Second, IOTimeout: 2 * time.Second, WaitTimeout: 5 * time.Second}
}

// joinAll starts size ranks on loopback and returns their Comms, by rank.
func joinAll(t testing.TB, size int) []*Comm {
	t.Helper()
	rank0 := testutil.FreeAddr(t)
	comms := make([]*Comm, size)
	errs := make([]error, size)
	var wg sync.WaitGroup
	for r := range size {
		wg.Go(func() { comms[r], errs[r] = Join(context.Background(), config(rank0, r, size, "job-uid/attempt-0")) })
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	t.Cleanup(func() {
		for _, c := range comms {
			c.Close()
		}
	})
	return comms
}

// onEveryRank runs f on every rank at once and returns each rank's error.
func onEveryRank(comms []*Comm, f func(c *Comm) error) []error {
	errs := make([]error, len(comms))
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Go(func() { errs[r] = f(c) })
	}
	wg.Wait()
	return errs
}

// Every rank ends with the exact sum, for world sizes 1 to 8 and lengths that do not divide evenly
// (shorter than the world size, one segment and a bit, ...).
func TestAllReduceSums(t *testing.T) {
	for size := 1; size <= 8; size++ {
		comms := joinAll(t, size)
		for _, n := range []int{0, 1, 5, 1000, segmentFloats + 3, 3*segmentFloats - 7} {
			bufs := make([][]float32, size)
			want := make([]float32, n)
			for r := range bufs {
				bufs[r] = make([]float32, n)
				for i := range bufs[r] {
					// Small integers: every sum is exact in float32, whatever the order.
					bufs[r][i] = float32((i*7+r*13)%101 - 50)
					want[i] += bufs[r][i]
				}
			}
			for r, err := range onEveryRank(comms, func(c *Comm) error { return c.AllReduce(bufs[c.Rank()]) }) {
				if err != nil {
					t.Fatalf("size %d, length %d, rank %d: %v", size, n, r, err)
				}
			}
			for r := range bufs {
				for i := range want {
					if bufs[r][i] != want[i] {
						t.Fatalf("size %d, length %d: rank %d has [%d] = %v, want %v", size, n, r, i, bufs[r][i], want[i])
					}
				}
			}
		}
	}
}

// With the same inputs, a sum of arbitrary floats comes out bit for bit the same on every rank
// and in every repetition.
func TestAllReduceIsBitIdentical(t *testing.T) {
	const size, n = 5, 2*segmentFloats + 11
	inputs := make([][]float32, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for r := range inputs {
		inputs[r] = make([]float32, n)
		for i := range inputs[r] {
			inputs[r][i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(7)-3)))
		}
	}
	var first []float32
	for rep := range 3 {
		comms := joinAll(t, size)
		bufs := make([][]float32, size)
		for r := range bufs {
			bufs[r] = append([]float32(nil), inputs[r]...)
		}
		for _, err := range onEveryRank(comms, func(c *Comm) error { return c.AllReduce(bufs[c.Rank()]) }) {
			if err != nil {
				t.Fatal(err)
			}
		}
		if first == nil {
			first = bufs[0]
		}
		for r := range bufs {
			for i := range first {
				if math.Float32bits(bufs[r][i]) != math.Float32bits(first[i]) {
					t.Fatalf("repetition %d, rank %d: [%d] = %v, want %v bit for bit", rep, r, i, bufs[r][i], first[i])
				}
			}
		}
	}
}

// A rank that dies in the middle of a collective (its connections close) or hangs ends every other
// rank's collective with an error within the timeouts: nobody waits for ever.
func TestALostRankEndsTheOthers(t *testing.T) {
	for _, how := range []string{"killed", "hung"} {
		t.Run(how, func(t *testing.T) {
			const size, lost = 4, 2
			comms := joinAll(t, size)
			done := make(chan []error, 1)
			go func() {
				done <- onEveryRank(comms, func(c *Comm) error {
					if c.Rank() == lost {
						if how == "killed" {
							// The scenario itself: the rank dies while the others wait in a collective.
							time.Sleep(200 * time.Millisecond)
							c.Close()
						}
						return nil // hung: it never takes part
					}
					buf := make([]float32, 4*segmentFloats)
					for {
						if err := c.AllReduce(buf); err != nil {
							return err
						}
					}
				})
			}()
			select {
			case errs := <-done:
				for r, err := range errs {
					if r != lost && err == nil {
						t.Errorf("rank %d: no error", r)
					}
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the other ranks still wait, 30 s after rank 2 was lost")
			}
			// A broken Comm stays broken.
			if err := comms[0].AllReduce(make([]float32, 8)); err == nil {
				t.Error("AllReduce on a broken Comm succeeded")
			}
		})
	}
}

// A connection from another run (another job, or another attempt of this one: another secret) is
// refused, and the run still forms from its own ranks.
func TestAStrayConnectionIsRefused(t *testing.T) {
	rank0 := testutil.FreeAddr(t)
	comms := make([]*Comm, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	wg.Go(func() { comms[0], errs[0] = Join(context.Background(), config(rank0, 0, 2, "job/attempt-1")) })

	// A rank 1 of attempt 0, still running, tries first.
	strayCfg := config(rank0, 1, 2, "job/attempt-0")
	strayCfg.JoinTimeout = 3 * time.Second
	_, err := Join(context.Background(), strayCfg)
	if err == nil {
		t.Fatal("a rank of another attempt joined")
	}
	wg.Go(func() { comms[1], errs[1] = Join(context.Background(), config(rank0, 1, 2, "job/attempt-1")) })
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
		defer comms[r].Close()
	}
	bufs := [][]float32{{1, 2}, {3, 4}}
	for _, err := range onEveryRank(comms, func(c *Comm) error { return c.AllReduce(bufs[c.Rank()]) }) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if bufs[0][0] != 4 || bufs[1][1] != 6 {
		t.Errorf("sums %v, want [4 6] on both", bufs)
	}
}

// Join names what it waited for when a rank never comes.
func TestJoinTimesOutNamingTheWait(t *testing.T) {
	cfg := config(testutil.FreeAddr(t), 0, 3, "s")
	cfg.JoinTimeout = time.Second
	_, err := Join(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "waiting for 2 more rank(s) to join") || !strings.Contains(err.Error(), "within 1s") {
		t.Fatalf("Join: %v", err)
	}
}

func TestFramesRejectWhatBreaksTheProtocol(t *testing.T) {
	var b strings.Builder
	writeFrame(&b, frameData, make([]byte, 12))
	good := b.String()
	cases := map[string]struct {
		data string
		typ  byte
		into int
	}{
		"wrong magic":  {"XXXX" + good[4:], frameData, 12},
		"wrong type":   {good, frameHello, 12},
		"wrong length": {good, frameData, 8},
		"truncated":    {good[:len(good)-1], frameData, 12},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := readFrameInto(strings.NewReader(tc.data), tc.typ, make([]byte, tc.into))
			var fe *FrameError
			if err == nil || (name != "truncated" && !errors.As(err, &fe)) {
				t.Fatalf("read %q: %v, want an error", name, err)
			}
		})
	}
	if _, err := readFrame(strings.NewReader(good), frameData, 11); err == nil {
		t.Error("a payload over the limit was read")
	}
}
