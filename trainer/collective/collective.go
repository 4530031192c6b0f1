// Package collective sums buffers across the workers of one data-parallel training run: a ring
// all-reduce (reduce-scatter, then all-gather) over persistent TCP connections, in pure Go.
//
// A run of n ranks meets in two steps. Rendezvous: every rank but 0 dials rank 0 (the one address
// all know), says who it is and where it listens, and gets back the table of every rank's address.
// Ring: each rank dials the next one, (rank+1) mod n, and accepts the previous one. Every
// connection opens with a hello that carries a token derived from the run's shared value (the job's
// UID and attempt, from the pod's environment): a connection from another job or another attempt of
// this one does not match and is refused.
//
// The sum is deterministic: a buffer is cut into n chunks the same way on every rank, and each
// chunk is added up in the same ring order every time, so a run with a given world size repeats
// bit for bit and every rank ends with the same bits. Chunks travel in segments, so sending,
// receiving and adding overlap.
//
// Every read and write has a deadline, and a rank whose collective fails closes its connections,
// so its neighbours fail at once and the failure runs round the ring: a lost peer ends every rank
// within the I/O timeout, never a hang.
package collective

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
	"unsafe"
)

// Config says who a rank is and how to reach the others.
type Config struct {
	// Rank is this process's index, 0 to Size-1; Size the number of ranks.
	Rank, Size int
	// Rank0 is the address (host:port) rank 0 listens on, known to every rank.
	Rank0 string
	// Listen is the address this rank listens on: Rank0's port for rank 0, ":0" (any port) for the
	// others is fine.
	Listen string
	// Advertise is the host the other ranks reach this one at (its pod IP); the port is the one
	// it listens on. Empty: the listener's own address.
	Advertise string
	// Secret is the run's shared value: ranks with different ones never connect.
	Secret string
	// JoinTimeout bounds Join: the rendezvous and the ring, with retried dials while peers start.
	JoinTimeout time.Duration
	// IOTimeout bounds every read and write once a collective is under way: a peer that stops
	// answering mid-collective ends it within this time.
	IOTimeout time.Duration
	// WaitTimeout bounds the wait for a peer to start a collective (it may still be computing, or
	// writing a checkpoint).
	WaitTimeout time.Duration
}

// Defaults for the zero values of Config's timeouts.
const (
	DefaultJoinTimeout = 5 * time.Minute
	DefaultIOTimeout   = 10 * time.Second
	DefaultWaitTimeout = 10 * time.Minute
)

// segmentFloats is how many values one data frame carries (256 KiB): small enough that a chunk
// crosses in several, so that receiving, adding and sending overlap.
const segmentFloats = 64 << 10

// Comm is one rank's membership in a run. It is not safe for concurrent use.
type Comm struct {
	cfg        Config
	next, prev net.Conn
	// in reads from prev, buffered so that a frame header costs no read call of its own.
	in      *bufio.Reader
	scratch []byte
	err     error
}

// Rank and Size of this member.
func (c *Comm) Rank() int { return c.cfg.Rank }
func (c *Comm) Size() int { return c.cfg.Size }

// Join meets the other ranks and connects the ring. With one rank it connects nothing.
func Join(ctx context.Context, cfg Config) (*Comm, error) {
	if cfg.Size < 1 || cfg.Rank < 0 || cfg.Rank >= cfg.Size {
		return nil, fmt.Errorf("collective: rank %d of %d", cfg.Rank, cfg.Size)
	}
	if cfg.Size > maxRanks {
		return nil, fmt.Errorf("collective: %d ranks, at most %d", cfg.Size, maxRanks)
	}
	cfg.JoinTimeout = orDefault(cfg.JoinTimeout, DefaultJoinTimeout)
	cfg.IOTimeout = orDefault(cfg.IOTimeout, DefaultIOTimeout)
	cfg.WaitTimeout = orDefault(cfg.WaitTimeout, DefaultWaitTimeout)
	c := &Comm{cfg: cfg, scratch: make([]byte, 4*segmentFloats)}
	if cfg.Size == 1 {
		return c, nil
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.JoinTimeout)
	defer cancel()
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("collective: rank %d: listening on %s: %w", cfg.Rank, cfg.Listen, err)
	}
	defer ln.Close()
	// Accept stops when Join ends, whatever the outcome.
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	self, err := advertised(cfg.Advertise, ln.Addr())
	if err != nil {
		return nil, err
	}

	var table []string
	if cfg.Rank == 0 {
		table, err = c.gather(ctx, ln, self)
	} else {
		table, err = c.register(ctx, self)
	}
	if err != nil {
		return nil, err
	}
	if err := c.connectRing(ctx, ln, table); err != nil {
		return nil, err
	}
	return c, nil
}

// maxRanks bounds the world size (and so the rendezvous table a rank accepts).
const maxRanks = 1024

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func advertised(host string, addr net.Addr) (string, error) {
	_, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "", err
	}
	if host == "" {
		return addr.String(), nil
	}
	return net.JoinHostPort(host, port), nil
}

// gather is rank 0's rendezvous: it accepts every other rank's hello and answers each with the
// table of addresses. A connection that does not belong to the run is refused and forgotten.
func (c *Comm) gather(ctx context.Context, ln net.Listener, self string) ([]string, error) {
	table := make([]string, c.cfg.Size)
	table[0] = self
	conns := make([]net.Conn, c.cfg.Size)
	defer func() {
		for _, conn := range conns {
			if conn != nil {
				conn.Close()
			}
		}
	}()
	for joined := 1; joined < c.cfg.Size; {
		conn, err := ln.Accept()
		if err != nil {
			return nil, c.joinErr(ctx, fmt.Sprintf("waiting for %d more rank(s) to join", c.cfg.Size-joined), err)
		}
		h, err := c.readHello(conn, purposeJoin)
		if err == nil && conns[h.rank] != nil {
			err = fmt.Errorf("rank %d joined twice", h.rank)
		}
		if err != nil || h.rank == 0 {
			conn.Close() // not one of this run's ranks: refused
			continue
		}
		conns[h.rank], table[h.rank] = conn, h.addr
		joined++
	}
	payload := encodeTable(table)
	for _, conn := range conns[1:] {
		conn.SetWriteDeadline(time.Now().Add(c.cfg.IOTimeout))
		if err := writeFrame(conn, frameTable, payload); err != nil {
			return nil, fmt.Errorf("collective: rank 0: sending the table: %w", err)
		}
	}
	return table, nil
}

// register is the rendezvous of a rank but 0: it tells rank 0 where it listens and reads the table.
func (c *Comm) register(ctx context.Context, self string) ([]string, error) {
	conn, err := c.dial(ctx, c.cfg.Rank0, purposeJoin, self)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	payload, err := readFrame(conn, frameTable, maxTableBytes)
	if err != nil {
		return nil, c.joinErr(ctx, "reading the table of ranks from rank 0", err)
	}
	table, err := decodeTable(payload, c.cfg.Size)
	if err != nil {
		return nil, fmt.Errorf("collective: rank %d: the table from rank 0: %w", c.cfg.Rank, err)
	}
	return table, nil
}

// connectRing dials the next rank and accepts the previous one.
func (c *Comm) connectRing(ctx context.Context, ln net.Listener, table []string) error {
	n, r := c.cfg.Size, c.cfg.Rank
	type dialed struct {
		conn net.Conn
		err  error
	}
	out := make(chan dialed, 1)
	go func() {
		conn, err := c.dial(ctx, table[(r+1)%n], purposeRing, "")
		out <- dialed{conn, err}
	}()
	prev := (r - 1 + n) % n
	for c.prev == nil {
		conn, err := ln.Accept()
		if err != nil {
			d := <-out
			if d.conn != nil {
				d.conn.Close()
			}
			return c.joinErr(ctx, fmt.Sprintf("waiting for rank %d to connect", prev), err)
		}
		h, err := c.readHello(conn, purposeRing)
		if err != nil || h.rank != prev {
			conn.Close() // a stray connection: refused
			continue
		}
		c.prev = conn
	}
	d := <-out
	if d.err != nil {
		c.prev.Close()
		return d.err
	}
	c.next = d.conn
	c.in = bufio.NewReaderSize(c.prev, 64<<10)
	for _, conn := range []net.Conn{c.next, c.prev} {
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
	}
	return nil
}

// dial connects to addr and says hello, retrying while the peer is not up yet.
func (c *Comm) dial(ctx context.Context, addr string, purpose byte, self string) (net.Conn, error) {
	var last error
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err == nil {
			conn.SetWriteDeadline(time.Now().Add(c.cfg.IOTimeout))
			if err = writeFrame(conn, frameHello, c.hello(purpose, self)); err == nil {
				conn.SetWriteDeadline(time.Time{})
				return conn, nil
			}
			conn.Close()
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, c.joinErr(ctx, "connecting to "+addr, last)
		case <-time.After(wait):
		}
	}
}

func (c *Comm) joinErr(ctx context.Context, doing string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("collective: rank %d of %d: %s: not done within %v: %w", c.cfg.Rank, c.cfg.Size, doing, c.cfg.JoinTimeout, err)
	}
	return fmt.Errorf("collective: rank %d of %d: %s: %w", c.cfg.Rank, c.cfg.Size, doing, err)
}

// AllReduce replaces buf, on every rank, by the sum of every rank's buf. All ranks must pass
// buffers of the same length. After an error the Comm is broken: every later call fails.
//
// It runs 2(n-1) steps: in step s a rank sends one chunk to the next rank and receives another
// from the previous one, adding it in during the first n-1 steps (reduce-scatter: rank r then holds
// the whole sum of chunk r+1) and copying it during the others (all-gather). What a step sends is
// what the step before received, so the steps are one pipeline: a segment goes on as soon as it
// has arrived and been added, and no step waits for the whole of the one before.
func (c *Comm) AllReduce(buf []float32) error {
	if c.err != nil {
		return c.err
	}
	n, r := c.cfg.Size, c.cfg.Rank
	if n == 1 {
		return nil
	}
	chunk := func(i int) []float32 {
		i = (i%n + n) % n
		return buf[len(buf)*i/n : len(buf)*(i+1)/n]
	}
	steps := 2 * (n - 1)
	sendChunk := func(s int) []float32 {
		if s < n-1 {
			return chunk(r - s)
		}
		return chunk(r + 1 - (s - (n - 1)))
	}
	recvChunk := func(s int) []float32 { return sendChunk(s + 1) }

	// ready carries one token per received segment that the next step sends on.
	ready := make(chan struct{}, steps*(len(buf)/n/segmentFloats+2))
	failed := make(chan struct{})
	sent := make(chan error, 1)
	go func() {
		sent <- c.send(steps, sendChunk, ready, failed)
	}()
	err := c.receive(steps, recvChunk, ready)
	if err != nil {
		close(failed)
		c.next.Close() // unblocks a send in progress; the Comm is broken either way
		<-sent
		return c.fail(err)
	}
	if err := <-sent; err != nil {
		return c.fail(err)
	}
	return nil
}

// send writes every step's chunk, segment by segment, to the next rank; from the second step on,
// a segment only once it has been received (ready).
func (c *Comm) send(steps int, chunk func(int) []float32, ready, failed <-chan struct{}) error {
	for s := range steps {
		data := chunk(s)
		for off := 0; off < len(data); off += segmentFloats {
			if s > 0 {
				select {
				case <-ready:
				case <-failed:
					return nil
				}
			}
			c.next.SetWriteDeadline(time.Now().Add(c.cfg.WaitTimeout))
			if err := writeFrame(c.next, frameData, floatBytes(data[off:min(off+segmentFloats, len(data))])); err != nil {
				return fmt.Errorf("sending to rank %d: %w", (c.cfg.Rank+1)%c.cfg.Size, err)
			}
		}
	}
	return nil
}

// receive reads every step's chunk from the previous rank, adding during the reduce-scatter and
// copying during the all-gather, and passes each segment on to send.
func (c *Comm) receive(steps int, chunk func(int) []float32, ready chan<- struct{}) error {
	n := c.cfg.Size
	first := true
	for s := range steps {
		data := chunk(s)
		for off := 0; off < len(data); off += segmentFloats {
			seg := data[off:min(off+segmentFloats, len(data))]
			timeout := c.cfg.IOTimeout
			if first {
				timeout, first = c.cfg.WaitTimeout, false // the previous rank may still be computing
			}
			c.prev.SetReadDeadline(time.Now().Add(timeout))
			// The all-gather's segments land in place; the reduce-scatter's are added in.
			into := floatBytes(seg)
			if s < n-1 {
				into = c.scratch[:4*len(seg)]
			}
			if _, err := readFrameInto(c.in, frameData, into); err != nil {
				return fmt.Errorf("receiving from rank %d: %w", (c.cfg.Rank-1+n)%n, err)
			}
			if s < n-1 {
				add(seg, unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(into))), len(seg)))
			}
			if s < steps-1 {
				ready <- struct{}{}
			}
		}
	}
	return nil
}

// add adds src into dst, of the same length, four at a time.
func add(dst, src []float32) {
	n := len(dst) &^ 3
	src = src[:len(dst)]
	for i := 0; i < n; i += 4 {
		d, v := dst[i:i+4:i+4], src[i:i+4:i+4]
		d[0] += v[0]
		d[1] += v[1]
		d[2] += v[2]
		d[3] += v[3]
	}
	for i := n; i < len(dst); i++ {
		dst[i] += src[i]
	}
}

// Barrier returns once every rank has called it.
func (c *Comm) Barrier() error {
	var one [1]float32
	return c.AllReduce(one[:])
}

// fail breaks the Comm: it closes both connections, so that the neighbours' collectives fail at
// once and the failure runs round the ring.
func (c *Comm) fail(err error) error {
	c.err = fmt.Errorf("collective: rank %d of %d: %w", c.cfg.Rank, c.cfg.Size, err)
	c.Close()
	return c.err
}

// Close closes the ring's connections.
func (c *Comm) Close() error {
	for _, conn := range []net.Conn{c.next, c.prev} {
		if conn != nil {
			conn.Close()
		}
	}
	if c.err == nil {
		c.err = errors.New("collective: closed")
	}
	return nil
}

// floatBytes views values as their little-endian bytes (every platform the trainer runs on).
func floatBytes(v []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
}

// Frames: magic, type, payload length (little-endian), payload.
const (
	frameMagic  = 0x4b54_4331 // "KTC1"
	frameHello  = 1
	frameTable  = 2
	frameData   = 3
	headerBytes = 4 + 1 + 4

	purposeJoin = 1 // a rank registering with rank 0
	purposeRing = 2 // a rank connecting to its next

	maxHelloBytes = 1 + 32 + 4 + 4 + 2 + 255
	maxTableBytes = 4 + maxRanks*(2+255)
)

// FrameError is a frame that breaks the protocol: a wrong magic number, type or length.
type FrameError struct{ Reason string }

func (e *FrameError) Error() string { return "collective: bad frame: " + e.Reason }

// writeFrame writes a frame in one call (one writev on a connection), so that a header never
// travels alone.
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	var h [headerBytes]byte
	binary.LittleEndian.PutUint32(h[0:], frameMagic)
	h[4] = typ
	binary.LittleEndian.PutUint32(h[5:], uint32(len(payload)))
	bufs := net.Buffers{h[:], payload}
	_, err := bufs.WriteTo(w)
	return err
}

// readFrame reads one frame of type typ with a payload of at most limit bytes.
func readFrame(r io.Reader, typ byte, limit int) ([]byte, error) {
	n, err := readHeader(r, typ)
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, &FrameError{fmt.Sprintf("payload of %d bytes, at most %d", n, limit)}
	}
	buf := make([]byte, n)
	_, err = io.ReadFull(r, buf)
	return buf, err
}

// readFrameInto reads one frame of type typ whose payload fills buf exactly.
func readFrameInto(r io.Reader, typ byte, buf []byte) ([]byte, error) {
	n, err := readHeader(r, typ)
	if err != nil {
		return nil, err
	}
	if n != len(buf) {
		return nil, &FrameError{fmt.Sprintf("payload of %d bytes, want %d", n, len(buf))}
	}
	_, err = io.ReadFull(r, buf)
	return buf, err
}

func readHeader(r io.Reader, typ byte) (int, error) {
	var h [headerBytes]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, err
	}
	if m := binary.LittleEndian.Uint32(h[0:]); m != frameMagic {
		return 0, &FrameError{fmt.Sprintf("magic %#x, want %#x", m, frameMagic)}
	}
	if h[4] != typ {
		return 0, &FrameError{fmt.Sprintf("type %d, want %d", h[4], typ)}
	}
	return int(binary.LittleEndian.Uint32(h[5:])), nil
}

// hello is what a connection opens with.
type hello struct {
	purpose    byte
	token      [32]byte
	rank, size int
	addr       string
}

// token binds a connection to the run: the same secret, hence the same job and attempt.
func token(secret string) [32]byte {
	return sha256.Sum256([]byte("kubetrain collective v1\x00" + secret))
}

func (c *Comm) hello(purpose byte, addr string) []byte {
	var b bytes.Buffer
	b.WriteByte(purpose)
	t := token(c.cfg.Secret)
	b.Write(t[:])
	binary.Write(&b, binary.LittleEndian, uint32(c.cfg.Rank))
	binary.Write(&b, binary.LittleEndian, uint32(c.cfg.Size))
	binary.Write(&b, binary.LittleEndian, uint16(len(addr)))
	b.WriteString(addr)
	return b.Bytes()
}

// readHello reads and checks a hello: the run's token, a rank of this world size, the purpose.
func (c *Comm) readHello(conn net.Conn, purpose byte) (hello, error) {
	conn.SetReadDeadline(time.Now().Add(c.cfg.IOTimeout))
	defer conn.SetReadDeadline(time.Time{})
	payload, err := readFrame(conn, frameHello, maxHelloBytes)
	if err != nil {
		return hello{}, err
	}
	h, err := parseHello(payload)
	switch {
	case err != nil:
		return h, err
	case h.token != token(c.cfg.Secret):
		return h, &FrameError{"a connection from another run (token mismatch)"}
	case h.purpose != purpose:
		return h, &FrameError{fmt.Sprintf("purpose %d, want %d", h.purpose, purpose)}
	case h.size != c.cfg.Size || h.rank < 0 || h.rank >= h.size:
		return h, &FrameError{fmt.Sprintf("rank %d of %d in a run of %d", h.rank, h.size, c.cfg.Size)}
	}
	return h, nil
}

func parseHello(p []byte) (hello, error) {
	var h hello
	if len(p) < 1+32+4+4+2 {
		return h, &FrameError{fmt.Sprintf("hello of %d bytes", len(p))}
	}
	h.purpose = p[0]
	copy(h.token[:], p[1:33])
	h.rank = int(binary.LittleEndian.Uint32(p[33:]))
	h.size = int(binary.LittleEndian.Uint32(p[37:]))
	n := int(binary.LittleEndian.Uint16(p[41:]))
	if len(p) != 43+n {
		return h, &FrameError{fmt.Sprintf("hello of %d bytes with an address of %d", len(p), n)}
	}
	h.addr = string(p[43:])
	return h, nil
}

func encodeTable(table []string) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint32(len(table)))
	for _, a := range table {
		binary.Write(&b, binary.LittleEndian, uint16(len(a)))
		b.WriteString(a)
	}
	return b.Bytes()
}

func decodeTable(p []byte, size int) ([]string, error) {
	if len(p) < 4 || int(binary.LittleEndian.Uint32(p)) != size {
		return nil, &FrameError{fmt.Sprintf("a table not of %d ranks", size)}
	}
	p = p[4:]
	table := make([]string, size)
	for i := range table {
		if len(p) < 2 {
			return nil, &FrameError{"truncated table"}
		}
		n := int(binary.LittleEndian.Uint16(p))
		if len(p) < 2+n {
			return nil, &FrameError{"truncated table"}
		}
		table[i], p = string(p[2:2+n]), p[2+n:]
	}
	if len(p) != 0 {
		return nil, &FrameError{fmt.Sprintf("%d bytes after the table", len(p))}
	}
	return table, nil
}
