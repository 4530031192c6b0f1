// Command peak-flops measures this machine's peak FP32 rate: loops of independent fused multiply-adds
// (AVX2 on Y registers, AVX-512 on Z registers), on 1 thread and on every CPU at once. The trainer's
// kernels are judged against these figures (see hack/bench-pytorch and the gemm benchmarks).
package main

import (
	"flag"
	"fmt"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/cpu"
)

// fmaAVX2 and fmaAVX512 run n iterations of 12 independent FMAs on 8- and 16-float registers.
func fmaAVX2(n int)
func fmaAVX512(n int)

const fmasPerIteration = 12

func measure(name string, lanes int, f func(int), threads int, d time.Duration) float64 {
	const n = 1 << 22
	f(n) // warm up (and bring the core to its AVX frequency)
	var wg sync.WaitGroup
	iters := make([]int, threads)
	start := time.Now()
	for t := range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			for time.Since(start) < d {
				f(n)
				iters[t] += n
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	total := 0
	for _, i := range iters {
		total += i
	}
	gf := float64(total) * fmasPerIteration * float64(lanes) * 2 / el / 1e9
	fmt.Printf("%-8s threads %d: %7.1f GFLOP/s (%.1f per thread)\n", name, threads, gf, gf/float64(threads))
	return gf
}

func main() {
	d := flag.Duration("duration", 2*time.Second, "how long each measurement runs")
	flag.Parse()
	threads := runtime.GOMAXPROCS(0)
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		measure("AVX2", 8, fmaAVX2, 1, *d)
		measure("AVX2", 8, fmaAVX2, threads, *d)
	}
	if cpu.X86.HasAVX512F {
		measure("AVX-512", 16, fmaAVX512, 1, *d)
		measure("AVX-512", 16, fmaAVX512, threads, *d)
	}
}
