package blob_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"gocloud.dev/gcerrors"

	"github.com/kubetrain/kubetrain/internal/blob"
	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/internal/s3test"
)

func TestParse(t *testing.T) {
	cases := map[string]struct {
		uri     string
		want    blob.Location
		wantErr string
	}{
		"s3 with settings": {uri: "s3://ckpt/runs/a?endpoint=http://127.0.0.1:7070&region=eu-west-1&use_path_style=true",
			want: blob.Location{Scheme: "s3", Bucket: "ckpt", Prefix: "runs/a/", Endpoint: "http://127.0.0.1:7070", Region: "eu-west-1", PathStyle: true}},
		"s3 bucket only":               {uri: "s3://ckpt", want: blob.Location{Scheme: "s3", Bucket: "ckpt", Region: "us-east-1"}},
		"file":                         {uri: "file:///data/ckpt", want: blob.Location{Scheme: "file", Path: "/data/ckpt"}},
		"mem":                          {uri: "mem://x", want: blob.Location{Scheme: "mem", Prefix: "x/"}},
		"unknown scheme":               {uri: "gs://b/p", wantErr: `scheme "gs"`},
		"no bucket":                    {uri: "s3:///p", wantErr: "no bucket"},
		"unknown param":                {uri: "s3://b?acl=public", wantErr: `unknown parameter "acl"`},
		"bad bool":                     {uri: "s3://b?use_path_style=maybe", wantErr: "not a boolean"},
		"relative file":                {uri: "file://data/x", wantErr: "file:///absolute/path"},
		"escaping prefix":              {uri: "s3://b/a/../../etc", wantErr: "'..'"},
		"escaping file":                {uri: "file:///data/../etc", wantErr: "'..'"},
		"file with params":             {uri: "file:///d?x=1", wantErr: "no parameters"},
		"endpoint credentials":         {uri: "s3://b/p?endpoint=https://KEY:SECRET@minio:9000", wantErr: "carries credentials"},
		"escaped endpoint credentials": {uri: "s3://b/p?endpoint=https%3A%2F%2FKEY%3ASECRET%40minio", wantErr: "carries credentials"},
		"own credentials":              {uri: "s3://KEY:SECRET@b/p", wantErr: "carries credentials"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := blob.Parse(tc.uri)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want one containing %q", tc.uri, err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), contract.ShowURI(tc.uri)) {
					t.Errorf("error %q does not name the URI", err)
				}
				if strings.Contains(err.Error(), "SECRET") {
					t.Errorf("error %q repeats the credentials", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v", tc.uri, got, err, tc.want)
			}
		})
	}
}

// roundTrip writes, lists, reads and deletes through a bucket.
func roundTrip(t *testing.T, uri string) {
	ctx := context.Background()
	b, err := blob.Open(ctx, uri)
	if err != nil {
		t.Fatalf("Open(%s): %v", uri, err)
	}
	defer b.Close()
	if err := b.WriteAll(ctx, "job/a.bin", []byte("hello"), nil); err != nil {
		t.Fatalf("write: %v", err)
	}
	got, err := b.ReadAll(ctx, "job/a.bin")
	if err != nil || string(got) != "hello" {
		t.Fatalf("read = %q, %v; want hello", got, err)
	}
	it := b.List(nil)
	var keys []string
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, obj.Key)
	}
	if strings.Join(keys, ",") != "job/a.bin" {
		t.Errorf("list = %v, want [job/a.bin]", keys)
	}
	if err := b.Delete(ctx, "job/a.bin"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadAll(ctx, "job/a.bin"); gcerrors.Code(err) != gcerrors.NotFound {
		t.Errorf("read after delete: %v, want NotFound", err)
	}
}

func TestS3AgainstARealServer(t *testing.T) {
	srv := s3test.Start(t, "checkpoints")
	roundTrip(t, srv.URI("checkpoints", "runs"))
}

func TestS3WithoutCredentialsFailsClearly(t *testing.T) {
	srv := s3test.Start(t, "checkpoints")
	t.Setenv(contract.SecretKeyAccessKeyID, "")
	t.Setenv(contract.SecretKeySecretAccessKey, "")
	_, err := blob.Open(context.Background(), srv.URI("checkpoints", "runs"))
	if !errors.Is(err, blob.ErrNoCredentials) || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Fatalf("Open without credentials: %v, want an error naming AWS_ACCESS_KEY_ID", err)
	}
}

func TestS3WithWrongCredentialsIsRefused(t *testing.T) {
	srv := s3test.Start(t, "checkpoints")
	t.Setenv(contract.SecretKeySecretAccessKey, "wrong")
	b, err := blob.Open(context.Background(), srv.URI("checkpoints", "runs"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.WriteAll(context.Background(), "x", []byte("x"), nil)
	if err == nil {
		t.Fatal("a write with a wrong secret was accepted")
	}
	if !blob.CredentialsRefused(err) {
		t.Errorf("a wrong secret is not taken for refused credentials: %v", err)
	}
	t.Setenv(contract.SecretKeySecretAccessKey, srv.SecretKey)
	b2, _ := blob.Open(context.Background(), srv.URI("checkpoints", "runs"))
	defer b2.Close()
	if _, err := b2.ReadAll(context.Background(), "missing"); err == nil || blob.CredentialsRefused(err) {
		t.Errorf("a missing object: %v, want an error that is not refused credentials", err)
	}
}

func TestFileAndMem(t *testing.T) {
	roundTrip(t, "file://"+t.TempDir()+"/ckpt")
	roundTrip(t, "mem://runs")
}

// Reads stop at their limit: an object larger than the reader may take is refused, naming it.
func TestReadAtMost(t *testing.T) {
	ctx := context.Background()
	b, err := blob.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.WriteAll(ctx, "obj", []byte("0123456789"), nil); err != nil {
		t.Fatal(err)
	}
	if data, err := blob.ReadAtMost(ctx, b, "obj", 10); err != nil || string(data) != "0123456789" {
		t.Fatalf("ReadAtMost at the object's size: %q, %v", data, err)
	}
	_, err = blob.ReadAtMost(ctx, b, "obj", 9)
	var large *blob.TooLargeError
	if !errors.As(err, &large) || large.Key != "obj" || large.Size != 10 || large.Limit != 9 {
		t.Fatalf("ReadAtMost past the limit: %v, want a TooLargeError for obj of 10 bytes", err)
	}
	var sink strings.Builder
	if _, err := blob.CopyAtMost(ctx, &sink, b, "obj", 3); !errors.As(err, &large) || sink.Len() != 0 {
		t.Fatalf("CopyAtMost past the limit: %v after copying %d bytes, want a TooLargeError before any", err, sink.Len())
	}
}
