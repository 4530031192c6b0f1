package collective

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubetrain/kubetrain/internal/testutil"
)

// The process benchmarks run each rank as a process of its own with one Go processor, as the
// trainer's workers run (one process per pod): the test binary, started again with
// envBenchRank set, is a rank (see TestMain).
const (
	envBenchRank  = "KT_COLLECTIVE_BENCH_RANK"
	envBenchSize  = "KT_COLLECTIVE_BENCH_SIZE"
	envBenchRank0 = "KT_COLLECTIVE_BENCH_RANK0"
	envBenchMode  = "KT_COLLECTIVE_BENCH_MODE"
	envBenchIters = "KT_COLLECTIVE_BENCH_ITERS"
)

func TestMain(m *testing.M) {
	if os.Getenv(envBenchRank) != "" {
		if err := benchRank(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// benchRank is one rank of a process benchmark: it joins, then times iters all-reduces of a
// gradient-sized buffer ("allreduce"), or as many plain writes to the next rank and reads from the
// previous of what a rank's link carries in one ("tcp"), and prints the seconds they took.
func benchRank() error {
	rank, _ := strconv.Atoi(os.Getenv(envBenchRank))
	size, _ := strconv.Atoi(os.Getenv(envBenchSize))
	iters, _ := strconv.Atoi(os.Getenv(envBenchIters))
	rank0 := os.Getenv(envBenchRank0)
	listen := "127.0.0.1:0"
	if rank == 0 {
		listen = rank0
	}
	c, err := Join(context.Background(), Config{Rank: rank, Size: size, Rank0: rank0, Listen: listen, Secret: "bench"})
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]float32, benchFloats)
	for i := range buf {
		buf[i] = float32(i%7) * 1e-3
	}
	run := func() error { return c.AllReduce(buf) }
	if os.Getenv(envBenchMode) == "tcp" {
		// The ring's own connections, used plainly: no frames, no adds, no steps.
		perLink := linkBytes(size)
		out, in := written(perLink), make([]byte, perLink)
		run = func() error {
			errs := make(chan error, 1)
			go func() { _, err := c.next.Write(out); errs <- err }()
			if _, err := io.ReadFull(c.in, in); err != nil { // c.in: the barrier may have read ahead
				return err
			}
			return <-errs
		}
	}
	if err := c.Barrier(); err != nil {
		return err
	}
	start := time.Now()
	for range iters {
		if err := run(); err != nil {
			return err
		}
	}
	fmt.Println(time.Since(start).Seconds())
	return nil
}

// BenchmarkProcesses runs 2 and 4 ranks as processes with one Go processor each: the all-reduce's
// bus bandwidth, and the plain TCP streams' over the same ring of connections.
func BenchmarkProcesses(b *testing.B) {
	for _, mode := range []string{"allreduce", "tcp"} {
		for _, size := range []int{2, 4} {
			b.Run(fmt.Sprintf("%s/ranks=%d", mode, size), func(b *testing.B) {
				secs := runRanks(b, mode, size, b.N)
				b.ReportMetric(float64(linkBytes(size))*float64(b.N)/secs/1e9, "busGB/s")
			})
		}
	}
}

// runRanks starts size rank processes and returns rank 0's time for iters operations.
func runRanks(b *testing.B, mode string, size, iters int) float64 {
	b.Helper()
	rank0 := testutil.FreeAddr(b)
	cmds := make([]*exec.Cmd, size)
	outs := make([]strings.Builder, size)
	for r := range cmds {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1", envBenchRank+"="+strconv.Itoa(r), envBenchSize+"="+strconv.Itoa(size),
			envBenchRank0+"="+rank0, envBenchMode+"="+mode, envBenchIters+"="+strconv.Itoa(iters))
		cmd.Stdout, cmd.Stderr = &outs[r], os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		cmds[r] = cmd
	}
	for r, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			b.Fatalf("rank %d: %v", r, err)
		}
	}
	secs, err := strconv.ParseFloat(strings.TrimSpace(outs[0].String()), 64)
	if err != nil {
		b.Fatalf("rank 0 said %q", outs[0].String())
	}
	return secs
}
