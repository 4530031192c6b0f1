// Package blob opens the object storage that holds datasets and checkpoints, by URI:
//
//	s3://bucket[/prefix][?endpoint=URL&region=NAME&use_path_style=true]   any S3-compatible store
//	file:///path                                                          a directory (e.g. a PVC)
//	mem://                                                                in memory, for tests
//
// It is the one way the trainer and the tools reach object storage; the controller never does.
// Buckets are gocloud.dev/blob buckets, so the code above this package does not know which store
// it talks to.
//
// Credentials for s3:// come only from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
// and the optional AWS_SESSION_TOKEN, which the controller maps from the job's Secret). There is
// no fallback: no shared config files, no cloud metadata endpoint.
package blob

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/blob/s3blob"

	"github.com/kubetrain/kubetrain/internal/contract"
)

// Bucket is a bucket of objects, opened on a prefix.
type Bucket = blob.Bucket

// ErrNoCredentials says that an s3:// location was opened without credentials in the environment.
var ErrNoCredentials = errors.New("no S3 credentials: set " + contract.SecretKeyAccessKeyID + " and " +
	contract.SecretKeySecretAccessKey + " (from the TrainingJob's credentialsSecretName)")

// Location is a parsed storage URI.
type Location struct {
	Scheme string
	// Bucket is the S3 bucket; Path the directory of a file:// location.
	Bucket, Path string
	// Prefix is the key prefix inside the bucket, empty or ending in "/".
	Prefix string
	// S3 settings.
	Endpoint, Region string
	PathStyle        bool
}

// PlainHTTP says whether the location's S3 endpoint is plain http://, unencrypted.
func (l Location) PlainHTTP() bool {
	return len(l.Endpoint) >= 7 && strings.EqualFold(l.Endpoint[:7], "http://")
}

// userinfo is the user and password part of a URL, the URI's own or its endpoint's (escaped or not).
var userinfo = regexp.MustCompile(`(?i)(://|%3A%2F%2F)[^/@?&#]*?(@|%40)`)

// HasCredentials says whether uri carries a user or password, its own or its endpoint's.
func HasCredentials(uri string) bool { return userinfo.MatchString(uri) }

// Parse reads a storage URI, naming what is wrong with it. Credentials are never part of a URI:
// one that carries a user or password, in itself or in its endpoint, is refused, and no error
// repeats them.
func Parse(uri string) (Location, error) {
	shown := contract.ShowURI(uri)
	u, err := url.Parse(uri)
	if err != nil {
		return Location{}, fmt.Errorf("storage URI %q is not a URI", shown)
	}
	loc := Location{Scheme: u.Scheme}
	bad := func(format string, a ...any) (Location, error) {
		return Location{}, fmt.Errorf("storage URI %q: %s", shown, fmt.Sprintf(format, a...))
	}
	if HasCredentials(uri) {
		return bad("carries credentials; they come only from the Secret named in credentialsSecretName")
	}
	q := u.Query()
	switch u.Scheme {
	case contract.SchemeS3:
		if u.Host == "" {
			return bad("no bucket: want s3://bucket[/prefix]")
		}
		loc.Bucket = u.Host
		loc.Prefix = strings.Trim(u.Path, "/")
		loc.Endpoint = q.Get("endpoint")
		loc.Region = q.Get("region")
		if loc.Region == "" {
			loc.Region = "us-east-1"
		}
		if v := q.Get("use_path_style"); v != "" {
			if loc.PathStyle, err = strconv.ParseBool(v); err != nil {
				return bad("use_path_style=%q is not a boolean", v)
			}
		}
		for k := range q {
			if k != "endpoint" && k != "region" && k != "use_path_style" {
				return bad("unknown parameter %q (known: endpoint, region, use_path_style)", k)
			}
		}
	case contract.SchemeFile:
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return bad("want file:///absolute/path")
		}
		if len(q) > 0 {
			return bad("file:// takes no parameters")
		}
		loc.Path = u.Path
	case "mem":
		loc.Prefix = strings.Trim(u.Host+u.Path, "/")
	default:
		return bad("scheme %q: want s3://, file:// or mem://", u.Scheme)
	}
	for _, seg := range strings.Split(loc.Prefix+"/"+loc.Path, "/") {
		if seg == ".." {
			return bad("'..' path segments are not allowed")
		}
	}
	if loc.Prefix != "" {
		loc.Prefix += "/"
	}
	return loc, nil
}

// Credentials are an S3 access key, its secret and an optional session token.
type Credentials struct {
	AccessKeyID, SecretAccessKey, SessionToken string
}

// CredentialsFrom reads credentials from an environment (getenv) under the SDK's names, prefixed.
func CredentialsFrom(getenv func(string) string, prefix string) Credentials {
	return Credentials{getenv(prefix + contract.SecretKeyAccessKeyID), getenv(prefix + contract.SecretKeySecretAccessKey),
		getenv(prefix + contract.SecretKeySessionToken)}
}

// Options are how an s3:// bucket is reached.
type Options struct {
	Credentials Credentials
	// StallTimeout cuts a request through which no byte has moved for this long (DefaultStallTimeout
	// when 0); the SDK then retries it.
	StallTimeout time.Duration
}

// Open opens the bucket of a storage URI, scoped to its prefix, with the process environment's
// credentials. The caller closes it.
func Open(ctx context.Context, uri string) (*Bucket, error) {
	return OpenWith(ctx, uri, Options{Credentials: CredentialsFrom(os.Getenv, "")})
}

// OpenWith is Open with the given options for s3://.
func OpenWith(ctx context.Context, uri string, opts Options) (*Bucket, error) {
	loc, err := Parse(uri)
	if err != nil {
		return nil, err
	}
	var b *blob.Bucket
	switch loc.Scheme {
	case contract.SchemeS3:
		b, err = openS3(ctx, loc, opts)
	case contract.SchemeFile:
		if err := os.MkdirAll(loc.Path, 0o755); err != nil {
			return nil, fmt.Errorf("storage URI %q: %w", uri, err)
		}
		// NoTempDir: the temporary file of a write sits beside its object, so the final rename
		// stays on one filesystem (a mounted volume's).
		b, err = fileblob.OpenBucket(loc.Path, &fileblob.Options{NoTempDir: true})
	case "mem":
		b = memblob.OpenBucket(nil)
	}
	if err != nil {
		return nil, fmt.Errorf("storage URI %q: %w", uri, err)
	}
	if loc.Prefix != "" {
		b = blob.PrefixedBucket(b, loc.Prefix)
	}
	return b, nil
}

func openS3(ctx context.Context, loc Location, opts Options) (*blob.Bucket, error) {
	creds := opts.Credentials
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return nil, ErrNoCredentials
	}
	// The SDK retries a request that fails (5xx, a reset); the guard makes a stalled one fail.
	guard := &stallGuard{base: http.DefaultTransport.(*http.Transport).Clone(), after: cmp.Or(opts.StallTimeout, DefaultStallTimeout)}
	cfg := aws.Config{
		Region: loc.Region,
		// Static credentials only: no credential chain, so no shared files and no metadata endpoint.
		Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey,
			creds.SessionToken)),
		// Checksums only where S3 requires them: older S3-compatible stores reject the newer
		// default trailing checksums. Integrity is ours to check: checkpoint manifests carry SHA-256.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		HTTPClient:                 &http.Client{Transport: guard},
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if loc.Endpoint != "" {
			o.BaseEndpoint = aws.String(loc.Endpoint)
		}
		o.UsePathStyle = loc.PathStyle
	})
	return s3blob.OpenBucket(ctx, client, loc.Bucket, nil)
}

// refusals are the S3 error codes with which a store refuses the credentials themselves: retrying
// with the same ones cannot help. XAdminUserNotFound is versitygw's InvalidAccessKeyId.
var refusals = map[string]bool{
	"AccessDenied": true, "InvalidAccessKeyId": true, "SignatureDoesNotMatch": true,
	"InvalidToken": true, "ExpiredToken": true, "XAdminUserNotFound": true,
}

// CredentialsRefused says whether err is a store refusing the credentials (an unknown key, a wrong
// secret, an expired token, no permission): a configuration error, not a transient one.
func CredentialsRefused(err error) bool {
	var api smithy.APIError
	if errors.As(err, &api) && refusals[api.ErrorCode()] {
		return true
	}
	var resp *smithyhttp.ResponseError
	return errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusForbidden
}

// TooLargeError says that an object is larger than a reader may take.
type TooLargeError struct {
	Key         string
	Size, Limit int64
}

func (e *TooLargeError) Error() string {
	if e.Size < 0 {
		return fmt.Sprintf("%s is larger than %d bytes, the most it may be", e.Key, e.Limit)
	}
	return fmt.Sprintf("%s is %d bytes, more than the %d it may be", e.Key, e.Size, e.Limit)
}

// ReadAtMost reads a whole object of at most limit bytes. A larger one is a *TooLargeError, found
// from its listed size before any of it is read, or after limit bytes when the store's size is
// wrong: nothing read from storage is held in memory unbounded.
func ReadAtMost(ctx context.Context, b *Bucket, key string, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := CopyAtMost(ctx, &buf, b, key, limit); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// readAttempts is how many times CopyAtMost opens an object: a body cut part way (a dropped
// connection, a truncated answer, a stall) is resumed where it stopped. The SDK retries whole
// requests, but not a body that fails after its headers arrived.
const readAttempts = 4

// readBackoff is the wait before the first resumption; it doubles for each further one.
const readBackoff = 200 * time.Millisecond

// CopyAtMost copies an object of at most limit bytes into w, and returns how many bytes it wrote.
// A larger object is a *TooLargeError, found as ReadAtMost finds it. A read that fails part way
// is resumed from where it stopped (readAttempts in all, with backoff, within ctx), provided the
// object has not changed meanwhile; an error of w is not retried.
func CopyAtMost(ctx context.Context, w io.Writer, b *Bucket, key string, limit int64) (int64, error) {
	r, err := b.NewReader(ctx, key, nil)
	if err != nil {
		return 0, err
	}
	size, modTime := r.Size(), r.ModTime()
	if size > limit {
		r.Close()
		return 0, &TooLargeError{Key: key, Size: size, Limit: limit}
	}
	var n int64
	for attempt := 1; ; attempt++ {
		dst := &errWriter{w: w}
		m, err := io.Copy(dst, io.LimitReader(r, limit+1-n))
		r.Close()
		n += m
		switch {
		case n > limit:
			return n, &TooLargeError{Key: key, Size: -1, Limit: limit}
		case err == nil:
			return n, nil
		case dst.err != nil || ctx.Err() != nil:
			return n, err
		case attempt == readAttempts:
			return n, fmt.Errorf("read %d of %d bytes in %d attempts: %w", n, size, attempt, err)
		}
		select {
		case <-ctx.Done():
			return n, fmt.Errorf("read %d of %d bytes: %w (then %w)", n, size, err, ctx.Err())
		case <-time.After(readBackoff << (attempt - 1)):
		}
		if r, err = b.NewRangeReader(ctx, key, n, -1, nil); err != nil {
			return n, err
		}
		if now := r.Size(); now != size || !r.ModTime().Equal(modTime) {
			r.Close()
			return n, fmt.Errorf("%s changed while it was read (%d bytes, then %d)", key, size, now)
		}
	}
}

// errWriter remembers its writer's error, which is not the store's and not retried.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil {
		e.err = err
	}
	return n, err
}
