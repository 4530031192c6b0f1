package blob

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// DefaultStallTimeout is how long an S3 request may go without a byte moving either way before it
// is cut as stalled.
const DefaultStallTimeout = time.Minute

// StallError says that the store sent nothing, and took nothing, for a while: a response whose
// headers or body stopped coming. It is a connection error to the SDK's retryer, which retries
// the request; a body cut part way is resumed by CopyAtMost.
type StallError struct {
	Method, URL string
	After       time.Duration
}

func (e *StallError) Error() string {
	return fmt.Sprintf("%s %s: the store sent nothing for %v (stalled)", e.Method, e.URL, e.After)
}

// ConnectionError and Timeout make the SDK's retryer treat a stall as the lost connection it is.
func (e *StallError) ConnectionError() bool { return true }
func (e *StallError) Timeout() bool         { return true }

// stallGuard is an http.RoundTripper that cuts a request when no byte of its body or of its
// answer has moved for after. An overall deadline cannot tell a large download from a stalled
// one; this can, and so a stall is retried long before the caller's deadline.
type stallGuard struct {
	base  http.RoundTripper
	after time.Duration
}

func (g *stallGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	stall := &StallError{Method: req.Method, URL: req.URL.Redacted(), After: g.after}
	w := &watchdog{timer: time.AfterFunc(g.after, func() { cancel(stall) }), after: g.after}
	out := req.WithContext(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		out.Body = &guardedBody{ReadCloser: req.Body, w: w}
	}
	resp, err := g.base.RoundTrip(out)
	if err != nil {
		w.stop()
		cancel(nil)
		if context.Cause(ctx) == error(stall) {
			return nil, stall
		}
		return nil, err
	}
	resp.Body = &guardedBody{ReadCloser: resp.Body, w: w, done: func() { cancel(nil) }, cut: func() error {
		if context.Cause(ctx) == error(stall) {
			return stall
		}
		return nil
	}}
	w.kick()
	return resp, nil
}

// watchdog fires its timer unless kicked within after.
type watchdog struct {
	mu    sync.Mutex
	timer *time.Timer
	after time.Duration
}

func (w *watchdog) kick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer.Reset(w.after)
}

func (w *watchdog) stop() { w.timer.Stop() }

// guardedBody kicks the watchdog on every byte read; cut says whether the watchdog ended it.
type guardedBody struct {
	io.ReadCloser
	w    *watchdog
	done func()
	cut  func() error
}

func (b *guardedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.kick()
	}
	if err != nil && err != io.EOF && b.cut != nil {
		if stall := b.cut(); stall != nil {
			err = stall
		}
	}
	return n, err
}

func (b *guardedBody) Close() error {
	err := b.ReadCloser.Close()
	if b.done != nil {
		b.w.stop()
		b.done()
	}
	return err
}
