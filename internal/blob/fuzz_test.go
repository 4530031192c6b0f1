package blob

import (
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary strings to Parse: it accepts only a known scheme, and nothing it
// accepts climbs out of its prefix.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"s3://bucket/prefix?endpoint=http://127.0.0.1:9000&use_path_style=true&region=eu-west-1",
		"s3://bucket", "file:///data/runs", "mem://x/y", "s3://b/../etc", "file://host/x", "s3://b/p?unknown=1",
		"s3://b/%2e%2e/x", "file:///a/./b//c", "S3://b", "s3://b/p?use_path_style=maybe",
		"s3://b/p?endpoint=https://k:s@h", "s3://u@b/p",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		loc, err := Parse(uri)
		if err != nil {
			return
		}
		switch loc.Scheme {
		case "s3", "file", "mem":
		default:
			t.Fatalf("%q accepted with scheme %q", uri, loc.Scheme)
		}
		if loc.Prefix != "" && !strings.HasSuffix(loc.Prefix, "/") {
			t.Fatalf("%q: prefix %q does not end in /", uri, loc.Prefix)
		}
		for _, seg := range strings.Split(loc.Prefix+"/"+loc.Path, "/") {
			if seg == ".." {
				t.Fatalf("%q accepted with a '..' segment: %+v", uri, loc)
			}
		}
		if HasCredentials(uri) {
			t.Fatalf("%q accepted with credentials in it", uri)
		}
		if loc.Scheme == "s3" && loc.Bucket == "" {
			t.Fatalf("%q accepted without a bucket", uri)
		}
	})
}
