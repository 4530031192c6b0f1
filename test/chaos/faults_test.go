package chaos

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// errCrashed is what every request of a crashed manager gets: its process is gone.
var errCrashed = errors.New("chaos: the manager crashed")

// faults is an http.RoundTripper between one manager and the API server. It counts the manager's
// writes, and as configured: crashes the manager after its k-th write, answers a fraction of its
// TrainingJob status writes with 409 Conflict, and delivers its pod watch events late.
type faults struct {
	// crashAfter, when positive, crashes the manager right after its crashAfter-th write has
	// reached the API server: the manager never sees the answer, and every request after it
	// fails, as if the process died while the write was on the wire.
	crashAfter int
	// crashOn, when set, makes only the writes of that kind ("POST pods") count toward crashAfter.
	crashOn string
	// conflictRate is the fraction of the manager's TrainingJob status writes answered with a 409
	// Conflict that never reaches the API server.
	conflictRate float64
	// podWatchDelay, when set, says how late each chunk of a pod watch is delivered: the pod
	// informer, and with it the manager's cache, lags behind the API server.
	podWatchDelay func(*rand.Rand) time.Duration

	mu      sync.Mutex
	rng     *rand.Rand
	onCrash func()
	crashed bool
	// crashedOn is the write the manager crashed after, "POST pods".
	crashedOn string
	writes    map[string]int // by verb and resource, "POST pods"; every attempt, refused or not
	total     int
	counted   int      // the writes that count toward crashAfter
	deleted   []string // names of the pods the manager asked to delete
	conflict  int      // status writes answered with a 409
	// conflictNext is how many of the next status writes of a job, by name, are answered with a
	// 409 whatever conflictRate says.
	conflictNext map[string]int
}

func newFaults(seed uint64) *faults {
	return &faults{rng: rand.New(rand.NewPCG(seed, 12)), writes: map[string]int{}}
}

func (f *faults) setOnCrash(cancel func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onCrash = cancel
}

// wrap is the rest.Config's WrapTransport.
func (f *faults) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) { return f.roundTrip(next, req) })
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (fn roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return fn(req) }

func (f *faults) roundTrip(next http.RoundTripper, req *http.Request) (*http.Response, error) {
	r := parseRequest(req)
	f.mu.Lock()
	if f.crashed {
		f.mu.Unlock()
		closeBody(req)
		return nil, errCrashed
	}
	crashNow, conflict := false, false
	if r.write() {
		f.writes[r.key()]++
		f.total++
		if r.verb == http.MethodDelete && r.resource == "pods" {
			f.deleted = append(f.deleted, r.name)
		}
		if f.crashOn == "" || f.crashOn == r.key() {
			f.counted++
		}
		crashNow = f.counted == f.crashAfter
		if crashNow {
			f.crashed, f.crashedOn = true, r.key()
		}
		if !crashNow && r.resource == "trainingjobs" && r.subresource == "status" &&
			(r.verb == http.MethodPatch || r.verb == http.MethodPut) {
			switch {
			case f.conflictNext[r.name] > 0:
				f.conflictNext[r.name]--
				conflict = true
			case f.conflictRate > 0:
				conflict = f.rng.Float64() < f.conflictRate
			}
			if conflict {
				f.conflict++
			}
		}
	}
	var delay func() time.Duration
	if f.podWatchDelay != nil && r.verb == http.MethodGet && r.resource == "pods" && r.watch {
		delay = func() time.Duration {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.podWatchDelay(f.rng)
		}
	}
	onCrash := f.onCrash
	f.mu.Unlock()

	if conflict {
		closeBody(req)
		return conflictResponse(req, r), nil
	}
	resp, err := next.RoundTrip(req)
	if crashNow {
		if resp != nil {
			resp.Body.Close()
		}
		if onCrash != nil {
			onCrash()
		}
		return nil, errCrashed
	}
	if err == nil && delay != nil {
		resp.Body = newDelayedBody(resp.Body, delay)
	}
	return resp, err
}

// conflictOnNext answers the next n status writes of the named job with a 409.
func (f *faults) conflictOnNext(job string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conflictNext == nil {
		f.conflictNext = map[string]int{}
	}
	f.conflictNext[job] += n
}

// pendingConflicts is how many of the conflicts conflictOnNext asked for are still to come.
func (f *faults) pendingConflicts(job string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conflictNext[job]
}

func (f *faults) hasCrashed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.crashed
}

// writeCounts is a copy of the writes so far, by verb and resource.
func (f *faults) writeCounts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.writes))
	for k, v := range f.writes {
		out[k] = v
	}
	return out
}

func (f *faults) totalWrites() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total
}

func (f *faults) deletedPods() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.deleted...)
}

func (f *faults) conflicts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conflict
}

// showWrites prints write counts in a stable order, for failure messages.
func showWrites(w map[string]int) string {
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %d; ", k, w[k])
	}
	return b.String()
}

// apiRequest is what a request does, read from its method and path.
type apiRequest struct {
	verb, group, resource, name, subresource string
	watch                                    bool
}

// key names the request's verb and resource, "POST pods", "PATCH trainingjobs/status".
func (r apiRequest) key() string {
	if r.subresource != "" {
		return r.verb + " " + r.resource + "/" + r.subresource
	}
	return r.verb + " " + r.resource
}

func (r apiRequest) write() bool {
	switch r.verb {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// parseRequest reads /api/v1/[namespaces/NS/]RESOURCE[/NAME[/SUBRESOURCE]] and its /apis/GROUP/VERSION/
// twin.
func parseRequest(req *http.Request) apiRequest {
	r := apiRequest{verb: req.Method, watch: req.URL.Query().Get("watch") == "true"}
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		r.group, parts = parts[1], parts[3:]
	default:
		return r
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	for i, p := range []*string{&r.resource, &r.name, &r.subresource} {
		if i < len(parts) {
			*p = parts[i]
		}
	}
	return r
}

// conflictResponse is the API server's answer to a write on a stale resourceVersion, word for word.
func conflictResponse(req *http.Request, r apiRequest) *http.Response {
	status := apierrors.NewConflict(schema.GroupResource{Group: r.group, Resource: r.resource}, r.name,
		errors.New("the object has been modified; please apply your changes to the latest version and try again")).ErrStatus
	status.Kind, status.APIVersion = "Status", "v1"
	body, err := json.Marshal(status)
	if err != nil {
		panic(err)
	}
	return &http.Response{
		Status: "409 Conflict", StatusCode: http.StatusConflict,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": []string{"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// closeBody closes a request's body that will not be sent: a RoundTripper must.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// delayedBody delivers each chunk read from a watch response no earlier than its own delay after
// it arrived, in order: the delays do not add up, so the stream lags but never falls ever further
// behind.
type delayedBody struct {
	inner   io.ReadCloser
	chunks  chan delayedChunk
	done    chan struct{}
	close   sync.Once
	pending []byte
	err     error
}

type delayedChunk struct {
	data []byte
	due  time.Time
	err  error
}

func newDelayedBody(inner io.ReadCloser, delay func() time.Duration) *delayedBody {
	b := &delayedBody{inner: inner, chunks: make(chan delayedChunk, 1024), done: make(chan struct{})}
	go b.pump(delay)
	return b
}

func (b *delayedBody) pump(delay func() time.Duration) {
	for {
		buf := make([]byte, 32<<10)
		n, err := b.inner.Read(buf)
		c := delayedChunk{data: buf[:n], due: time.Now().Add(delay()), err: err}
		select {
		case b.chunks <- c:
		case <-b.done:
			return
		}
		if err != nil {
			return
		}
	}
}

func (b *delayedBody) Read(p []byte) (int, error) {
	for len(b.pending) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		var c delayedChunk
		select {
		case c = <-b.chunks:
		case <-b.done:
			return 0, io.ErrClosedPipe
		}
		t := time.NewTimer(time.Until(c.due))
		select {
		case <-t.C:
		case <-b.done:
			t.Stop()
			return 0, io.ErrClosedPipe
		}
		b.pending, b.err = c.data, c.err
	}
	n := copy(p, b.pending)
	b.pending = b.pending[n:]
	return n, nil
}

func (b *delayedBody) Close() error {
	b.close.Do(func() { close(b.done) })
	return b.inner.Close()
}
