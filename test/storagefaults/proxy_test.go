package storagefaults

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The proxy's faults are what the client sees: each case reads one object through it with a plain
// HTTP client and checks the symptom, so a scenario test cannot pass because a fault did nothing.
func TestProxyFaults(t *testing.T) {
	body := strings.Repeat("0123456789", 1000)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	defer upstream.Close()
	p, err := Start(upstream.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	cases := map[string]struct {
		rule Rule
		// check judges what the client got: the status, the body read and the error.
		check func(status int, got string, err error) string
	}{
		"none": {Rule{Key: "^other$"}, func(status int, got string, err error) string {
			if err != nil || status != 200 || got != body {
				return "want the object unchanged"
			}
			return ""
		}},
		"latency": {Rule{Fault: Latency, Delay: 300 * time.Millisecond}, func(status int, got string, err error) string {
			if err != nil || got != body {
				return "want the object, later"
			}
			return ""
		}},
		"reset": {Rule{Fault: Reset}, func(status int, got string, err error) string {
			if !errors.Is(err, syscall.ECONNRESET) {
				return "want a connection reset"
			}
			return ""
		}},
		"500": {Rule{Fault: Status500}, func(status int, got string, err error) string {
			if status != 500 || !strings.Contains(got, "<Code>InternalError</Code>") {
				return "want a 500 with an S3 error"
			}
			return ""
		}},
		"503": {Rule{Fault: Status503}, func(status int, got string, err error) string {
			if status != 503 || !strings.Contains(got, "<Code>SlowDown</Code>") {
				return "want a 503 with an S3 error"
			}
			return ""
		}},
		"truncate": {Rule{Fault: Truncate}, func(status int, got string, err error) string {
			if status != 200 || !errors.Is(err, io.ErrUnexpectedEOF) || got != body[:len(body)/2] {
				return "want half the object, then an unexpected EOF"
			}
			return ""
		}},
		"corrupt": {Rule{Fault: Corrupt}, func(status int, got string, err error) string {
			if err != nil || len(got) != len(body) || got[0] != ^body[0] {
				return "want the object's length with other bytes"
			}
			return ""
		}},
		"stall": {Rule{Fault: Stall}, func(status int, got string, err error) string {
			if status != 200 || !errors.Is(err, context.DeadlineExceeded) || got != body[:len(body)/2] {
				return "want half the object, then nothing until the client's deadline"
			}
			return ""
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p.Clear()
			rule := p.Inject(tc.rule)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.Endpoint+"/bucket/key", nil)
			var status int
			var got []byte
			resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
			if err == nil {
				status = resp.StatusCode
				got, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if why := tc.check(status, string(got), err); why != "" {
				t.Errorf("status %d, %d bytes, error %v: %s", status, len(got), err, why)
			}
			if wantHits := map[bool]int{true: 0, false: 1}[name == "none"]; p.Hits(rule) != wantHits {
				t.Errorf("the rule fired %d times, want %d; requests %q", p.Hits(rule), wantHits, p.Log())
			}
		})
	}
}
