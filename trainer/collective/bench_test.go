package collective

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"testing"
)

// benchFloats is about the reference CNN's gradient on CIFAR-10 (473,418 parameters), or what
// KT_COLLECTIVE_BENCH_FLOATS says (hack/bench-ddp.sh passes the gradient of the model it trains).
var benchFloats = func() int {
	if n, err := strconv.Atoi(os.Getenv("KT_COLLECTIVE_BENCH_FLOATS")); err == nil && n > 0 {
		return n
	}
	return 473_418
}()

// linkBytes is what each rank's link carries in an all-reduce of the benchmark's buffer across
// size ranks: 2(n-1)/n of it, the numerator of the bus bandwidth.
func linkBytes(size int) int { return 2 * (size - 1) * 4 * benchFloats / size }

// written is n bytes of data, written like a gradient: untouched memory maps the zero page, which no
// real buffer is and which copies faster than any.
func written(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

// BenchmarkAllReduce sums a gradient-sized buffer across 2 and 4 ranks on loopback and reports the
// bus bandwidth, 2(n-1)/n x bytes / time: what each rank's link carries, comparable with
// BenchmarkTCPCopy's.
func BenchmarkAllReduce(b *testing.B) {
	for _, size := range []int{2, 4} {
		b.Run(fmt.Sprintf("ranks=%d", size), func(b *testing.B) {
			comms := joinAll(b, size)
			bufs := make([][]float32, size)
			for r := range bufs {
				bufs[r] = make([]float32, benchFloats)
			}
			b.ResetTimer()
			for range b.N {
				for _, err := range onEveryRank(comms, func(c *Comm) error { return c.AllReduce(bufs[c.Rank()]) }) {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			bus := float64(linkBytes(size)) * float64(b.N) / b.Elapsed().Seconds()
			b.ReportMetric(bus/1e9, "busGB/s")
		})
	}
}

// BenchmarkTCPCopy is the reference: the same bytes sent one way over one loopback TCP connection
// and read into a buffer, as fast as plain io can.
func BenchmarkTCPCopy(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	payload := written(4 * benchFloats)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		buf := make([]byte, len(payload))
		for {
			if _, err := io.ReadFull(conn, buf); err != nil {
				return
			}
			conn.Write([]byte{1}) // done with this copy
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ack := make([]byte, 1)
	b.ResetTimer()
	for range b.N {
		if _, err := conn.Write(payload); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(conn, ack); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(payload))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}

// BenchmarkTCPRing is the reference with the collective's traffic: n plain loopback TCP streams at
// once, each rank writing to the next while reading from the previous, each carrying what a rank's
// link carries in an all-reduce (2(n-1)/n x the buffer), in plain io.Copy-sized writes and reads.
// On a machine whose links are its own CPUs (loopback) this, not one lone stream, is the bandwidth
// the collective can reach.
func BenchmarkTCPRing(b *testing.B) {
	for _, size := range []int{2, 4} {
		b.Run(fmt.Sprintf("ranks=%d", size), func(b *testing.B) {
			lns := make([]net.Listener, size)
			for i := range lns {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				defer ln.Close()
				lns[i] = ln
			}
			next := make([]net.Conn, size)
			prev := make([]net.Conn, size)
			for i := range size {
				c, err := net.Dial("tcp", lns[(i+1)%size].Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				next[i] = c
				a, err := lns[(i+1)%size].Accept()
				if err != nil {
					b.Fatal(err)
				}
				defer a.Close()
				prev[(i+1)%size] = a
			}
			perLink := linkBytes(size)
			out := make([][]byte, size)
			in := make([][]byte, size)
			for i := range size {
				out[i], in[i] = written(perLink), make([]byte, perLink)
			}
			b.ResetTimer()
			for range b.N {
				errs := make(chan error, 2*size)
				for i := range size {
					go func() {
						_, err := next[i].Write(out[i])
						errs <- err
					}()
					go func() {
						_, err := io.ReadFull(prev[i], in[i])
						errs <- err
					}()
				}
				for range 2 * size {
					if err := <-errs; err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(perLink)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}
