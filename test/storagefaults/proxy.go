// Package storagefaults tests the trainer against an object store that misbehaves: a fault-injecting
// HTTP proxy on loopback sits between the trainer and a real S3 server (versitygw) and answers
// chosen requests with latency, connection resets, 500 and 503 errors, truncated or corrupted
// bodies, or a response that starts and never finishes.
package storagefaults

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Fault is what the proxy does to a request instead of, or on the way to, forwarding it.
type Fault int

const (
	// Latency forwards the request after Rule.Delay.
	Latency Fault = iota
	// Reset takes the whole request, then closes the client's connection with a TCP reset instead
	// of answering it.
	Reset
	// Status500 and Status503 answer with that status and an S3 error body, forwarding nothing.
	Status500
	Status503
	// Truncate forwards the request, sends the answer's headers (its full Content-Length) and half
	// its body, then closes the connection: the client reads an unexpected EOF.
	Truncate
	// Corrupt forwards the request and sends its answer, every body byte inverted: same length,
	// wrong content.
	Corrupt
	// Stall forwards the request, sends the answer's headers and half its body, then sends nothing
	// more until the client gives up. An answer without a body stalls before its headers.
	Stall
)

func (f Fault) String() string {
	return [...]string{"latency", "reset", "500", "503", "truncate", "corrupt", "stall"}[f]
}

// Rule injects a fault into the requests it matches.
type Rule struct {
	// Method matches the HTTP method ("" any); Key is a regular expression the request's object
	// key must match ("" any). The key is the path after the bucket, "" for a listing.
	Method, Key string
	Fault       Fault
	Delay       time.Duration // for Latency
	// Times is how many matching requests get the fault, after Skip matching ones passed
	// untouched; 0 is every one (a persistent fault).
	Times, Skip int

	seen, hits int
}

// Proxy is a fault-injecting HTTP proxy in front of an S3 endpoint.
type Proxy struct {
	// Endpoint is the proxy's URL, to use as the S3 endpoint.
	Endpoint string

	upstream *url.URL
	srv      *http.Server
	tr       *http.Transport

	mu    sync.Mutex
	rules []*Rule
	log   []string
}

// Start starts a proxy to upstream (an http:// URL) on loopback; Close stops it.
func Start(upstream string) (*Proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Endpoint: "http://" + l.Addr().String(), upstream: u, tr: &http.Transport{}}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go p.srv.Serve(l)
	return p, nil
}

// Close stops the proxy and drops its connections, stalled ones included.
func (p *Proxy) Close() {
	p.srv.Close()
	p.tr.CloseIdleConnections()
}

// Inject adds a rule; the first rule that matches a request decides its fault. It returns the rule,
// whose Hits say how often it fired.
func (p *Proxy) Inject(r Rule) *Rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	rule := r
	p.rules = append(p.rules, &rule)
	return &rule
}

// Clear removes every rule: the proxy forwards everything from now on.
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules, p.log = nil, nil
}

// Hits is how many requests a rule has injected its fault into.
func (p *Proxy) Hits(r *Rule) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return r.hits
}

// Log lists the requests seen, as "METHOD key -> fault" or "METHOD key", in order.
func (p *Proxy) Log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.log...)
}

// objectKey is the key of a path-style request: the path after /bucket/.
func objectKey(r *http.Request) string {
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)
	if len(parts) < 2 {
		return ""
	}
	return parts[1]
}

// fault picks the fault for a request, if any, and logs it.
func (p *Proxy) fault(r *http.Request) *Rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := objectKey(r)
	entry := r.Method + " " + key
	if q := r.URL.Query(); q.Has("list-type") {
		entry += "?list prefix=" + q.Get("prefix")
	}
	for _, rule := range p.rules {
		if (rule.Method != "" && rule.Method != r.Method) || !regexp.MustCompile(rule.Key).MatchString(key) {
			continue
		}
		rule.seen++
		if rule.seen <= rule.Skip || (rule.Times > 0 && rule.hits >= rule.Times) {
			break
		}
		rule.hits++
		p.log = append(p.log, entry+" -> "+rule.Fault.String())
		return rule
	}
	p.log = append(p.log, entry)
	return nil
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rule := p.fault(r)
	if rule != nil {
		switch rule.Fault {
		case Latency:
			select {
			case <-time.After(rule.Delay):
			case <-r.Context().Done():
				return
			}
		case Reset:
			io.Copy(io.Discard, r.Body)
			resetConn(w)
			return
		case Status500, Status503:
			code, s3code := http.StatusInternalServerError, "InternalError"
			if rule.Fault == Status503 {
				code, s3code = http.StatusServiceUnavailable, "SlowDown"
			}
			io.Copy(io.Discard, r.Body) // so that the client reads the answer, not a broken upload
			w.Header().Set("Content-Type", "application/xml")
			w.Header().Set("Connection", "close")
			w.WriteHeader(code)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected by the fault proxy</Message></Error>`, s3code)
			return
		}
	}
	resp, err := p.forward(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	if resp.ContentLength >= 0 {
		w.Header().Set("Content-Length", fmt.Sprint(resp.ContentLength))
	}
	if rule == nil || rule.Fault == Latency {
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	if rule.Fault != Stall || len(body) > 0 {
		w.WriteHeader(resp.StatusCode)
	}
	switch rule.Fault {
	case Corrupt:
		for i := range body {
			body[i] ^= 0xff
		}
		w.Write(body)
	case Truncate:
		w.Write(body[:len(body)/2])
		if conn := hijack(w); conn != nil {
			conn.Close()
		}
	case Stall:
		if len(body) > 0 { // else the headers would complete the answer: stall before them
			w.Write(body[:len(body)/2])
			w.(http.Flusher).Flush()
		}
		<-r.Context().Done() // the client gave up, or the proxy closed
		if conn := hijack(w); conn != nil {
			conn.Close()
		}
	}
}

// forward sends the request to the upstream server, unchanged: its Host header is kept, since the
// client's signature covers it.
func (p *Proxy) forward(r *http.Request) (*http.Response, error) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = p.upstream.Scheme, p.upstream.Host
	out.Host = r.Host
	if r.ContentLength == 0 {
		out.Body = nil
	}
	return p.tr.RoundTrip(out)
}

// hijack takes the connection from the server after flushing what was written to it.
func hijack(w http.ResponseWriter) net.Conn {
	w.(http.Flusher).Flush()
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return nil
	}
	buf.Flush()
	return conn
}

// resetConn closes the client's connection with a TCP reset (SO_LINGER 0).
func resetConn(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack() // nothing written: nothing to flush
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}
