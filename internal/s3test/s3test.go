// Package s3test starts a real S3 server for tests: versitygw (Apache-2.0) with its POSIX backend
// in a temporary directory, listening on loopback. `make test` builds the binary
// (hack/kube-binaries.sh versitygw) and names it in KUBETRAIN_VERSITYGW.
package s3test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubetrain/kubetrain/internal/contract"
)

// EnvBinary names the versitygw binary.
const EnvBinary = "KUBETRAIN_VERSITYGW"

// Server is a running S3 server.
type Server struct {
	// Endpoint is the server's URL, e.g. http://127.0.0.1:40123.
	Endpoint string
	// AccessKey and SecretKey are the root user's credentials.
	AccessKey, SecretKey string
	// Root is the directory whose subdirectories are the buckets.
	Root string
}

// T is what Start needs of a test: a *testing.T, or Ginkgo's GinkgoT().
type T interface {
	Helper()
	Fatalf(format string, args ...any)
	TempDir() string
	Cleanup(func())
	Setenv(key, value string)
}

var _ T = (testing.TB)(nil)

// Start starts a server with the given buckets, stopped when the test ends, and puts its
// credentials in the test's environment the way the controller hands them to a worker.
func Start(t T, buckets ...string) *Server {
	t.Helper()
	bin := os.Getenv(EnvBinary)
	if bin == "" {
		t.Fatalf("%s is not set: run `make test`, which builds versitygw with hack/kube-binaries.sh versitygw", EnvBinary)
	}
	s := &Server{AccessKey: "kubetrain-test", SecretKey: "kubetrain-test-secret", Root: t.TempDir()}
	for _, b := range buckets {
		if err := os.Mkdir(filepath.Join(s.Root, b), 0o755); err != nil {
			t.Fatalf("%v", err)
		}
	}
	addr := freeAddr(t)
	s.Endpoint = "http://" + addr
	cmd := exec.Command(bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--port", addr, "--quiet", "posix", s.Root)
	logFile, err := os.Create(filepath.Join(t.TempDir(), "versitygw.log"))
	if err != nil {
		t.Fatalf("%v", err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting versitygw: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logFile.Close()
	})
	waitReady(t, s.Endpoint, logFile.Name())
	t.Setenv(contract.SecretKeyAccessKeyID, s.AccessKey)
	t.Setenv(contract.SecretKeySecretAccessKey, s.SecretKey)
	return s
}

// URI is an s3:// URI for a bucket and prefix on this server.
func (s *Server) URI(bucket, prefix string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=%s&region=us-east-1&use_path_style=true", bucket, prefix, s.Endpoint)
}

func waitReady(t T, endpoint, log string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			return // any HTTP answer (403 without a signature) means it serves
		}
		select {
		case <-ctx.Done():
			out, _ := os.ReadFile(log)
			t.Fatalf("versitygw did not answer on %s: %s", endpoint, out)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func freeAddr(t T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("%v", err)
	}
	defer l.Close()
	return l.Addr().String()
}
