package contract

import (
	"path"
	"strings"
	"testing"
	"unicode"
)

func TestJobPrefix(t *testing.T) {
	got, err := JobPrefix("team-a", "mnist", "6f1c", 0)
	if err != nil || got != "team-a/mnist/6f1c/rank-0/" {
		t.Fatalf("JobPrefix = %q, %v; want team-a/mnist/6f1c/rank-0/", got, err)
	}
	for name, args := range map[string][3]string{
		"dot-dot namespace": {"..", "a", "u"},
		"slash in name":     {"ns", "a/../../b", "u"},
		"empty uid":         {"ns", "a", ""},
		"control char":      {"ns", "a\nb", "u"},
		"backslash":         {"ns", `a\b`, "u"},
	} {
		if _, err := JobPrefix(args[0], args[1], args[2], 0); err == nil {
			t.Errorf("%s: JobPrefix(%q) accepted", name, args)
		}
	}
}

// FuzzJobPrefix checks that whatever the strings, a prefix that is returned stays below the
// configured prefix: relative, clean, with exactly the expected segments; and so does a
// checkpoint directory below it.
func FuzzJobPrefix(f *testing.F) {
	for _, s := range [][4]string{{"ns", "job", "uid", "a1b2"}, {"..", ".", "/", ".."}, {"a/b", "c\x00", "\\", "x-y"}, {"ns", "j", "..%2f", "n/m"}} {
		f.Add(s[0], s[1], s[2], 3, 7, s[3])
	}
	f.Fuzz(func(t *testing.T, ns, name, uid string, rank, epoch int, nonce string) {
		p, err := JobPrefix(ns, name, uid, rank)
		if err != nil {
			return
		}
		if strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/") {
			t.Fatalf("prefix %q is absolute or not a directory", p)
		}
		trimmed := strings.TrimSuffix(p, "/")
		if path.Clean(trimmed) != trimmed {
			t.Fatalf("prefix %q is not clean", p)
		}
		segs := strings.Split(trimmed, "/")
		if len(segs) != 4 || segs[0] != ns || segs[1] != name || segs[2] != uid {
			t.Fatalf("prefix %q does not have the segments namespace/name/uid/rank", p)
		}
		for _, s := range segs {
			if s == "" || s == "." || s == ".." || strings.Contains(s, `\`) {
				t.Fatalf("prefix %q has segment %q", p, s)
			}
		}
		for _, r := range p {
			if unicode.IsControl(r) {
				t.Fatalf("prefix %q has a control character", p)
			}
		}
		// A checkpoint's directory is one more plain segment below it.
		dir, err := CheckpointDir(p, epoch, nonce)
		if err != nil {
			return
		}
		rest, ok := strings.CutPrefix(dir, p)
		if !ok || strings.Count(rest, "/") != 1 || !strings.HasSuffix(rest, "/") || !strings.HasPrefix(rest, "ckpt-") || strings.Contains(rest, "..") {
			t.Fatalf("CheckpointDir(%q, %d, %q) = %q", p, epoch, nonce, dir)
		}
	})
}

func TestCheckpointKeyAndURI(t *testing.T) {
	const base = "s3://ckpt/runs?endpoint=http://127.0.0.1:9000"
	key := "ns/job/uid/rank-0/ckpt-000001-ab/manifest.json"
	uri := CheckpointURI(base, key)
	if uri != "s3://ckpt/runs/ns/job/uid/rank-0/ckpt-000001-ab/manifest.json?endpoint=http://127.0.0.1:9000" {
		t.Fatalf("CheckpointURI = %q", uri)
	}
	if got, ok := CheckpointKey(base, uri); !ok || got != key {
		t.Errorf("CheckpointKey(CheckpointURI(key)) = %q, %v; want %q", got, ok, key)
	}
	if got, ok := CheckpointKey("file:///data", "file:///data/a/b"); !ok || got != "a/b" {
		t.Errorf("file location: %q, %v", got, ok)
	}
	for _, elsewhere := range []string{
		"", "s3://other/runs/x", "s3://ckpt/runs2/x", "s3://ckpt/x", "file:///ckpt/runs/x",
		"s3://ckpt/runs/x?endpoint=http://evil:9000", "s3://u:p@ckpt/runs/x",
	} {
		if key, ok := CheckpointKey(base, elsewhere); ok {
			t.Errorf("CheckpointKey(%q) = %q, want elsewhere", elsewhere, key)
		}
	}
}

// A URI is printed without credentials and without its query, but with its endpoint's host.
func TestShowURI(t *testing.T) {
	for uri, want := range map[string]string{
		"s3://b/runs/x/manifest.json":                                  "s3://b/runs/x/manifest.json",
		"s3://b/runs?endpoint=https://KEY:SECRET@minio:9000&region=eu": "s3://b/runs (endpoint https://minio:9000)",
		"s3://KEY:SECRET@b/runs?X-Amz-Signature=abc":                   "s3://b/runs",
		"s3://b/p?endpoint=http%3A%2F%2Fuser%3Apw%40host%3A7070":       "s3://b/p (endpoint http://host:7070)",
		"file:///data/x?token=abc":                                     "file:///data/x",
		"s3://b/%zz":                                                   "(a URI that does not parse)",
	} {
		if got := ShowURI(uri); got != want {
			t.Errorf("ShowURI(%q) = %q, want %q", uri, got, want)
		}
	}
}
