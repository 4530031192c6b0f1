package recovery

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/manager"
)

// apiRequest is one request a manager sent to the API server, as the server's audit log would show
// it: what it did to which object, and the answer.
type apiRequest struct {
	verb                  string // create, update, patch, delete, get, list or watch
	resource, subresource string
	namespace, name       string // name comes from the body for a create
	code                  int    // the HTTP status; 0 when no answer came back
	at                    time.Time
}

func (r apiRequest) write() bool {
	return r.verb == "create" || r.verb == "update" || r.verb == "patch" || r.verb == "delete"
}

// apiLog sits in a manager's transport (rest.Config.WrapTransport): it records every request the
// manager sends, and can kill the manager's connection to the API server as a crash would: from
// then on nothing it sends arrives.
type apiLog struct {
	mu   sync.Mutex
	reqs []apiRequest
	dead atomic.Bool
	// afterResponse, when set, is called after each answer, outside the lock (e.g. to kill the
	// manager after its k-th pod create).
	afterResponse func(apiRequest)
}

// errKilled is what every request of a killed manager fails with; it never reaches the server.
var errKilled = errors.New("recovery test: the manager was killed")

// config is cfg with the log in its transport.
func (l *apiLog) config(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			if l.dead.Load() {
				return nil, errKilled
			}
			r := describeRequest(req)
			resp, err := rt.RoundTrip(req)
			if resp != nil {
				r.code = resp.StatusCode
			}
			r.at = time.Now()
			l.mu.Lock()
			l.reqs = append(l.reqs, r)
			hook := l.afterResponse
			l.mu.Unlock()
			if hook != nil {
				hook(r)
			}
			return resp, err
		})
	}
	return c
}

// setAfterResponse sets the hook called after each answer.
func (l *apiLog) setAfterResponse(hook func(apiRequest)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.afterResponse = hook
}

// kill cuts the manager off: no request it sends from now on reaches the server.
func (l *apiLog) kill() { l.dead.Store(true) }

// requests returns the recorded requests that match.
func (l *apiLog) requests(match func(apiRequest) bool) []apiRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []apiRequest
	for _, r := range l.reqs {
		if match(r) {
			out = append(out, r)
		}
	}
	return out
}

// writesIn are the writes the manager sent about objects in namespace ns (events aside: they are
// the manager's diary, not the state it keeps).
func (l *apiLog) writesIn(ns string) []apiRequest {
	return l.requests(func(r apiRequest) bool { return r.write() && r.namespace == ns && r.resource != "events" })
}

// creates are the create requests of a resource in namespace ns.
func (l *apiLog) creates(resource, ns string) []apiRequest {
	return l.requests(func(r apiRequest) bool { return r.verb == "create" && r.resource == resource && r.namespace == ns })
}

// podCreates are the pod creates for workers of job tj (named <job>-w<rank>-a<attempt>).
func (l *apiLog) podCreates(tj *kubetrainv1alpha1.TrainingJob) []apiRequest {
	return l.requests(func(r apiRequest) bool {
		return r.verb == "create" && r.resource == "pods" && r.namespace == tj.Namespace && strings.HasPrefix(r.name, tj.Name+"-w")
	})
}

// statusWrites are the writes to TrainingJob status in namespace ns.
func (l *apiLog) statusWrites(ns string) []apiRequest {
	return l.requests(func(r apiRequest) bool {
		return r.write() && r.resource == "trainingjobs" && r.subresource == "status" && r.namespace == ns
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// describeRequest reads what a request does from its method and path
// (/api/v1/namespaces/NS/RESOURCE/NAME/SUBRESOURCE, /apis/GROUP/VERSION/...), and, for a create, the
// object's name from its body.
func describeRequest(req *http.Request) apiRequest {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		parts = nil
	}
	var r apiRequest
	if len(parts) >= 3 && parts[0] == "namespaces" {
		r.namespace, parts = parts[1], parts[2:]
	}
	if len(parts) > 0 {
		r.resource = parts[0]
	}
	if len(parts) > 1 {
		r.name = parts[1]
	}
	if len(parts) > 2 {
		r.subresource = parts[2]
	}
	switch req.Method {
	case http.MethodPost:
		r.verb = "create"
		r.name = bodyName(req)
	case http.MethodPut:
		r.verb = "update"
	case http.MethodPatch:
		r.verb = "patch"
	case http.MethodDelete:
		r.verb = "delete"
	default:
		r.verb = "get"
		if r.name == "" {
			r.verb = "list"
		}
		if req.URL.Query().Get("watch") == "true" {
			r.verb = "watch"
		}
	}
	return r
}

// bodyName is metadata.name of a request's body, read without consuming it, in whichever encoding
// the client chose (JSON, protobuf, CBOR).
func bodyName(req *http.Request) string {
	if req.Body == nil {
		return ""
	}
	var body []byte
	if req.GetBody != nil {
		rc, err := req.GetBody()
		if err != nil {
			return ""
		}
		body, _ = io.ReadAll(rc)
		rc.Close()
	} else {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	mediaType, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	info, ok := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), mediaType)
	if !ok {
		return ""
	}
	obj, _, err := info.Serializer.Decode(body, nil, nil)
	if err != nil {
		return "" // a kind the scheme does not know (a token review): its name does not matter here
	}
	if o, ok := obj.(metav1.Object); ok {
		return o.GetName()
	}
	return ""
}

var codecs = serializer.NewCodecFactory(manager.Scheme())
