package contract

import (
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The key layout of checkpoints in object storage, below the configured prefix:
//
//	<namespace>/<job name>/<job UID>/rank-<rank>/ckpt-<epoch>-<nonce>/<object>...
//	<namespace>/<job name>/<job UID>/rank-<rank>/ckpt-<epoch>-<nonce>/manifest.json
//
// Every checkpoint is written under a fresh directory (the nonce is never reused) and its manifest
// is written last: a reader only trusts a checkpoint whose manifest exists and whose objects match
// the sizes and SHA-256 digests it lists.

// ManifestName is the last object of a checkpoint to be written.
const ManifestName = "manifest.json"

// ManifestVersion is the format of Manifest this release writes.
const ManifestVersion = 1

// maxKeyComponent bounds one component of a key: Kubernetes names and UIDs are shorter.
const maxKeyComponent = 253

// JobPrefix is the key prefix of a job's worker's checkpoints, ending in "/". Each component must
// be a single path segment: empty, ".", "..", a "/", a backslash or a control character is an
// error, so no user-supplied string can escape the configured prefix.
func JobPrefix(namespace, name, uid string, rank int) (string, error) {
	if rank < 0 {
		return "", fmt.Errorf("checkpoint key: rank %d is negative", rank)
	}
	for _, c := range []struct{ what, v string }{{"namespace", namespace}, {"job name", name}, {"job UID", uid}} {
		if err := CheckKeyComponent(c.v); err != nil {
			return "", fmt.Errorf("checkpoint key: %s %q: %w", c.what, c.v, err)
		}
	}
	return namespace + "/" + name + "/" + uid + "/rank-" + strconv.Itoa(rank) + "/", nil
}

// ShowURI is how a storage URI is printed in logs, events, conditions and errors: its scheme, host
// and path, and the scheme and host of its endpoint; never a user, a password or the rest of the
// query (the whole URI is the spec's and stays in status, where the operator needs it).
func ShowURI(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "(a URI that does not parse)"
	}
	shown := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	if ep, err := url.Parse(u.Query().Get("endpoint")); err == nil && ep.Host != "" {
		shown += " (endpoint " + (&url.URL{Scheme: ep.Scheme, Host: ep.Host}).String() + ")"
	}
	return shown
}

// CheckpointURI is the URI of a key in the checkpoint location base (a --checkpoint-uri): what
// status and --resume-from carry. A key that is already a URI is returned as it is.
func CheckpointURI(base, key string) string {
	u, err := url.Parse(base)
	if err != nil || strings.Contains(key, "://") {
		return key
	}
	u.Path = path.Join("/", u.Path, key)
	return u.String()
}

// CheckpointKey is the key of uri in the checkpoint location base, the inverse of CheckpointURI;
// ok is false for a URI elsewhere: another scheme, bucket, endpoint or path, or one with a user.
func CheckpointKey(base, uri string) (key string, ok bool) {
	b, err1 := url.Parse(base)
	u, err2 := url.Parse(uri)
	if uri == "" || err1 != nil || err2 != nil || u.User != nil || u.Scheme != b.Scheme || u.Host != b.Host || u.RawQuery != b.RawQuery {
		return "", false
	}
	prefix := strings.Trim(b.Path, "/")
	p := strings.Trim(u.Path, "/")
	if prefix == "" {
		return p, true
	}
	// Whole segments only: s3://b/runs does not hold s3://b/runs2/x.
	key, ok = strings.CutPrefix(p, prefix+"/")
	return key, ok
}

// CheckpointDir is the directory of a new checkpoint below a job prefix.
func CheckpointDir(jobPrefix string, epoch int, nonce string) (string, error) {
	if err := CheckKeyComponent(nonce); err != nil || strings.TrimFunc(nonce, isAlnum) != "" {
		return "", fmt.Errorf("checkpoint key: nonce %q must be letters and digits", nonce)
	}
	return fmt.Sprintf("%sckpt-%06d-%s/", jobPrefix, epoch, nonce), nil
}

func isAlnum(r rune) bool { return r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r)) }

// CheckKeyComponent says what is wrong with s as one segment of a key: empty, "." or "..", too
// long, or holding a path separator or a control character.
func CheckKeyComponent(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty")
	case s == "." || s == "..":
		return fmt.Errorf("not a name")
	case len(s) > maxKeyComponent:
		return fmt.Errorf("longer than %d bytes", maxKeyComponent)
	case strings.ContainsAny(s, `/\`):
		return fmt.Errorf("contains a path separator")
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("contains a control or invalid character")
		}
	}
	return nil
}

// Manifest describes a committed checkpoint.
type Manifest struct {
	Version int `json:"version"`
	// Job says whose checkpoint this is.
	Job CheckpointJob `json:"job"`
	// Epoch is the number of completed epochs the checkpoint holds.
	Epoch int `json:"epoch"`
	// Step is the number of optimizer steps taken.
	Step int64 `json:"step"`
	// ConfigHash identifies the model and hyperparameters: a checkpoint of another configuration
	// must not be resumed from.
	ConfigHash string    `json:"configHash"`
	Created    time.Time `json:"created"`
	// Metrics after the checkpoint's epoch, for retention (the best is kept) and for people.
	Loss          float64 `json:"loss"`
	TrainAccuracy float64 `json:"trainAccuracy"`
	TestAccuracy  float64 `json:"testAccuracy"`
	// Objects are the checkpoint's data objects, relative to its directory.
	Objects []ManifestObject `json:"objects"`
}

// CheckpointJob identifies the job and worker that wrote a checkpoint.
type CheckpointJob struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
	Rank      int    `json:"rank"`
	Attempt   int    `json:"attempt"`
}

// ManifestObject is one data object of a checkpoint.
type ManifestObject struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}
