package storagefaults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/kubetrain/kubetrain/internal/blob"
	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/internal/s3test"
	"github.com/kubetrain/kubetrain/trainer/cli"
	"github.com/kubetrain/kubetrain/trainer/data"
)

// store is a real S3 server with a fault proxy in front of it and a tiny dataset in it.
type store struct {
	srv   *s3test.Server
	proxy *Proxy
}

const (
	dataBucket = "data"
	ckptBucket = "ckpt"
)

func startStore(t *testing.T) *store {
	t.Helper()
	srv := s3test.Start(t, dataBucket, ckptBucket)
	p, err := Start(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	s := &store{srv: srv, proxy: p}
	s.putDataset(t)
	return s
}

// uri is an s3:// URI through the proxy.
func (s *store) uri(bucket, prefix string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=%s&region=us-east-1&use_path_style=true", bucket, prefix, s.proxy.Endpoint)
}

// direct opens a bucket on the server itself, past the proxy.
func (s *store) direct(t *testing.T, bucket, prefix string) *blob.Bucket {
	t.Helper()
	b, err := blob.Open(context.Background(), s.srv.URI(bucket, prefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// putDataset uploads a tiny CIFAR-10-shaped dataset to data/cifar.
func (s *store) putDataset(t *testing.T) {
	dir := t.TempDir()
	if err := data.WriteCIFAR10(dir, data.Synthetic(5, 200, 40)); err != nil {
		t.Fatal(err)
	}
	b := s.direct(t, dataBucket, "cifar")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.WriteAll(context.Background(), e.Name(), raw, nil); err != nil {
			t.Fatal(err)
		}
	}
}

type result struct {
	code           int
	stdout, stderr string
	res            contract.Result
	took           time.Duration
}

// train runs the trainer's Main, as the binary does, with the store's credentials.
func (s *store) train(t *testing.T, args ...string) result {
	t.Helper()
	log := filepath.Join(t.TempDir(), "termination-log")
	if err := os.WriteFile(log, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	args = append([]string{"--allow-plain-http", "--threads=1", "--seed=3", "--scratch-dir=" + t.TempDir()}, args...)
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := cli.Main(context.Background(), args, map[string]string{cli.EnvTerminationLog: log}, &stdout, &stderr)
	r := result{code: code, stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	raw, _ := os.ReadFile(log)
	if err := json.Unmarshal(raw, &r.res); err != nil {
		t.Fatalf("termination log %q: %v", raw, err)
	}
	return r
}

// localDataset writes the tiny dataset to a local directory, for runs whose faults are elsewhere.
func (s *store) localDataset(t *testing.T) string {
	dir := t.TempDir()
	if err := data.WriteCIFAR10(dir, data.Synthetic(5, 200, 40)); err != nil {
		t.Fatal(err)
	}
	return dir
}

var weightsRE = regexp.MustCompile(`weights sha256 ([0-9a-f]{64})`)

// weightsHash is the hash of the final weights a successful run printed.
func weightsHash(t *testing.T, r result) string {
	t.Helper()
	m := weightsRE.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no weights hash in the output (exit %d):\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	return m[1]
}
