// Package checkpoint commits checkpoints to object storage and reads them back verified.
//
// Commit protocol: a checkpoint's data objects go under a fresh directory that is never reused;
// its manifest, with the size and SHA-256 of every object, is written last. A reader trusts a
// checkpoint only when its manifest exists and every object matches it, so a crash at any instant
// of an upload leaves the previous good checkpoint or the new one, never a torn one. What a
// checkpoint holds (weights, optimizer state, data order...) is the trainer's business: this
// package moves named byte streams.
package checkpoint

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	gcblob "gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/kubetrain/kubetrain/internal/blob"
	"github.com/kubetrain/kubetrain/internal/contract"
)

// TestHooks let crash tests act at chosen instants of a commit: BeforeWrite runs before each
// object write (an error fails it), AfterWrite after each one succeeded. Nil hooks do nothing;
// nothing but tests sets them.
var TestHooks struct {
	BeforeWrite func(key string) error
	AfterWrite  func(key string)
}

func writeAll(ctx context.Context, b *blob.Bucket, key string, data []byte) error {
	var opts *gcblob.WriterOptions
	if h := TestHooks.BeforeWrite; h != nil {
		opts = &gcblob.WriterOptions{BeforeWrite: func(func(any) bool) error { return h(key) }}
	}
	if err := b.WriteAll(ctx, key, data, opts); err != nil {
		return err
	}
	if h := TestHooks.AfterWrite; h != nil {
		h(key)
	}
	return nil
}

// Object is a named data object of a checkpoint.
type Object struct {
	Name string
	Data []byte
}

// CorruptError says a checkpoint cannot be trusted, and why.
type CorruptError struct {
	Key    string
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("checkpoint %s is corrupt: %s", e.Key, e.Reason)
}

// Commit writes a checkpoint's objects under a new directory below jobPrefix, then its manifest, and
// returns the manifest's key. m describes the checkpoint; its Objects are filled in here.
func Commit(ctx context.Context, b *blob.Bucket, jobPrefix string, m contract.Manifest, objects []Object) (string, error) {
	nonce, err := newNonce()
	if err != nil {
		return "", err
	}
	dir, err := contract.CheckpointDir(jobPrefix, m.Epoch, nonce)
	if err != nil {
		return "", err
	}
	m.Version = contract.ManifestVersion
	m.Objects = m.Objects[:0]
	seen := map[string]bool{}
	for _, o := range objects {
		if o.Name == "" || o.Name == contract.ManifestName || strings.ContainsAny(o.Name, "/\\") || seen[o.Name] {
			return "", fmt.Errorf("checkpoint object name %q: want a unique plain name other than %s", o.Name, contract.ManifestName)
		}
		seen[o.Name] = true
		sum := sha256.Sum256(o.Data)
		if err := writeAll(ctx, b, dir+o.Name, o.Data); err != nil {
			return "", fmt.Errorf("writing checkpoint object %s%s: %w", dir, o.Name, err)
		}
		m.Objects = append(m.Objects, contract.ManifestObject{Name: o.Name, Size: int64(len(o.Data)), SHA256: hex.EncodeToString(sum[:])})
	}
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return "", err
	}
	key := dir + contract.ManifestName
	if err := writeAll(ctx, b, key, manifest); err != nil {
		return "", fmt.Errorf("writing checkpoint manifest %s: %w", key, err)
	}
	return key, nil
}

// MaxManifestBytes bounds a manifest: it lists a few objects, so anything near this is not one.
const MaxManifestBytes = 1 << 20

// DefaultMaxBytes is the default bound on a checkpoint's objects together (the reference model's
// weights and optimizer state take a few MB).
const DefaultMaxBytes = 1 << 30

// Read reads the checkpoint whose manifest is at key and verifies every object against it. A
// checkpoint that fails verification is a *CorruptError naming the object and what differs; so is
// one whose objects together are larger than maxBytes, found from the manifest before any object
// is read. No object is read past the size its manifest gives.
func Read(ctx context.Context, b *blob.Bucket, key string, maxBytes int64) (contract.Manifest, []Object, error) {
	var m contract.Manifest
	raw, err := blob.ReadAtMost(ctx, b, key, MaxManifestBytes)
	if err != nil {
		var large *blob.TooLargeError
		switch {
		case gcerrors.Code(err) == gcerrors.NotFound:
			return m, nil, &CorruptError{Key: key, Reason: "no manifest"}
		case errors.As(err, &large):
			return m, nil, &CorruptError{Key: key, Reason: "manifest: " + err.Error()}
		}
		return m, nil, fmt.Errorf("reading checkpoint manifest %s: %w", key, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, nil, &CorruptError{Key: key, Reason: "manifest is not valid JSON: " + err.Error()}
	}
	if m.Version != contract.ManifestVersion {
		return m, nil, &CorruptError{Key: key, Reason: fmt.Sprintf("manifest version %d, want %d", m.Version, contract.ManifestVersion)}
	}
	var total int64
	for _, o := range m.Objects {
		if o.Size < 0 || o.Size > maxBytes-total {
			return m, nil, &CorruptError{Key: key, Reason: fmt.Sprintf(
				"the manifest lists objects of more than %d bytes together (object %s: %d bytes), the most a checkpoint may hold", maxBytes, o.Name, o.Size)}
		}
		total += o.Size
	}
	dir := strings.TrimSuffix(key, contract.ManifestName)
	objects := make([]Object, 0, len(m.Objects))
	for _, o := range m.Objects {
		// An object lies in its checkpoint's directory: a name that would reach elsewhere (a
		// manifest written by hand, or damaged) makes the checkpoint corrupt, not a way out.
		if err := contract.CheckKeyComponent(o.Name); err != nil {
			return m, nil, &CorruptError{Key: key, Reason: fmt.Sprintf("object name %q: %v", o.Name, err)}
		}
		data, err := blob.ReadAtMost(ctx, b, dir+o.Name, o.Size)
		var large *blob.TooLargeError
		switch {
		case gcerrors.Code(err) == gcerrors.NotFound:
			return m, nil, &CorruptError{Key: key, Reason: fmt.Sprintf("object %s is missing", o.Name)}
		case errors.As(err, &large):
			return m, nil, &CorruptError{Key: key, Reason: fmt.Sprintf("object %s is larger than the %d bytes the manifest says", o.Name, o.Size)}
		case err != nil:
			return m, nil, fmt.Errorf("reading checkpoint object %s%s: %w", dir, o.Name, err)
		}
		if int64(len(data)) != o.Size {
			return m, nil, &CorruptError{Key: key, Reason: fmt.Sprintf("object %s has %d bytes, the manifest says %d", o.Name, len(data), o.Size)}
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != o.SHA256 {
			return m, nil, &CorruptError{Key: key, Reason: fmt.Sprintf("object %s has SHA-256 %s, the manifest says %s", o.Name, got, o.SHA256)}
		}
		objects = append(objects, Object{Name: o.Name, Data: data})
	}
	return m, objects, nil
}

// Entry is a checkpoint found below a job prefix.
type Entry struct {
	// Key of the manifest.
	Key   string
	Epoch int
}

// List finds the committed checkpoints below a job prefix, newest (highest epoch) first. Only
// directories with a manifest count; their content is not verified here.
func List(ctx context.Context, b *blob.Bucket, jobPrefix string) ([]Entry, error) {
	dirs, err := checkpointDirs(ctx, b, jobPrefix)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, d := range dirs {
		ok, err := b.Exists(ctx, d.dir+contract.ManifestName)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, Entry{Key: d.dir + contract.ManifestName, Epoch: d.epoch})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Epoch > out[j].Epoch })
	return out, nil
}

// Latest reads the newest checkpoint that verifies, trying preferred first (the one the controller
// named). Each corrupt checkpoint skipped is reported through skipped; none found is (nil, nil).
func Latest(ctx context.Context, b *blob.Bucket, jobPrefix, preferred string, maxBytes int64, skipped func(error)) (*contract.Manifest, []Object, string, error) {
	entries, err := List(ctx, b, jobPrefix)
	if err != nil {
		return nil, nil, "", err
	}
	keys := make([]string, 0, len(entries)+1)
	if preferred != "" {
		keys = append(keys, preferred)
	}
	for _, e := range entries {
		if e.Key != preferred {
			keys = append(keys, e.Key)
		}
	}
	for _, k := range keys {
		m, objects, err := Read(ctx, b, k, maxBytes)
		var corrupt *CorruptError
		if errors.As(err, &corrupt) {
			if skipped != nil {
				skipped(err)
			}
			continue
		}
		if err != nil {
			return nil, nil, "", err
		}
		return &m, objects, k, nil
	}
	return nil, nil, "", nil
}

// Prune keeps the newest keep checkpoints and the best by test accuracy, and deletes the others
// (manifest first, so a reader never finds a manifest whose objects are gone) along with the
// directories of uploads that never committed: those without a manifest. A manifest that cannot
// be read is an error, and one that reads as damaged counts as committed: Prune deletes nothing
// that may be a good checkpoint read badly, except by retention. Call it after a commit, from the
// only writer, with the key of the manifest just committed: that checkpoint is never deleted, even
// where an older one of the same epoch (one a resumed attempt could not read) ties with it.
func Prune(ctx context.Context, b *blob.Bucket, jobPrefix string, keep int, committedKey string) error {
	dirs, err := checkpointDirs(ctx, b, jobPrefix)
	if err != nil {
		return err
	}
	type committed struct {
		dir   string
		epoch int
		acc   float64
	}
	var done []committed
	var torn []string
	for _, d := range dirs {
		raw, err := blob.ReadAtMost(ctx, b, d.dir+contract.ManifestName, MaxManifestBytes)
		var large *blob.TooLargeError
		if gcerrors.Code(err) == gcerrors.NotFound || errors.As(err, &large) {
			torn = append(torn, d.dir)
			continue
		}
		if err != nil {
			return err
		}
		// A manifest that does not parse was still written by a commit (it is written last, in
		// one piece): it may only have been read badly this time. Retention decides on it by its
		// directory's epoch, as on any other, and never takes it for the best.
		m := contract.Manifest{TestAccuracy: math.Inf(-1)}
		_ = json.Unmarshal(raw, &m)
		done = append(done, committed{d.dir, d.epoch, m.TestAccuracy})
	}
	newest := strings.TrimSuffix(committedKey, contract.ManifestName)
	sort.SliceStable(done, func(i, j int) bool {
		if done[i].epoch != done[j].epoch {
			return done[i].epoch > done[j].epoch
		}
		return done[i].dir == newest && done[j].dir != newest
	})
	best := -1
	for i, c := range done {
		if best < 0 || c.acc > done[best].acc {
			best = i
		}
	}
	var drop []string
	for i, c := range done {
		if i >= max(keep, 1) && i != best {
			drop = append(drop, c.dir)
		}
	}
	for _, dir := range append(drop, torn...) {
		if err := deleteDir(ctx, b, dir); err != nil {
			return err
		}
	}
	return nil
}

type ckptDir struct {
	dir   string
	epoch int
}

// checkpointDirs lists the ckpt-<epoch>-<nonce>/ directories below a job prefix.
func checkpointDirs(ctx context.Context, b *blob.Bucket, jobPrefix string) ([]ckptDir, error) {
	it := b.List(&gcblob.ListOptions{Prefix: jobPrefix, Delimiter: "/"})
	var out []ckptDir
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing checkpoints under %s: %w", jobPrefix, err)
		}
		if !obj.IsDir {
			continue
		}
		var epoch int
		var nonce string
		name := strings.TrimSuffix(strings.TrimPrefix(obj.Key, jobPrefix), "/")
		if n, _ := fmt.Sscanf(strings.Replace(name, "-", " ", 2), "ckpt %d %s", &epoch, &nonce); n != 2 {
			continue
		}
		out = append(out, ckptDir{dir: obj.Key, epoch: epoch})
	}
}

// deleteDir deletes a checkpoint directory, its manifest first.
func deleteDir(ctx context.Context, b *blob.Bucket, dir string) error {
	if err := b.Delete(ctx, dir+contract.ManifestName); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("deleting %s%s: %w", dir, contract.ManifestName, err)
	}
	it := b.List(&gcblob.ListOptions{Prefix: dir})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := b.Delete(ctx, obj.Key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return fmt.Errorf("deleting %s: %w", obj.Key, err)
		}
	}
}

func newNonce() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}
