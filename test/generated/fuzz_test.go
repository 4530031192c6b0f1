package generated

import (
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEveryFuzzTargetRuns checks that hack/fuzz.sh, which `make test` runs, names every fuzz
// target of the repository with its package: a new target left out would only replay its seeds.
func TestEveryFuzzTargetRuns(t *testing.T) {
	root := repoRoot(t)
	script := string(readFile(t, filepath.Join(root, "hack/fuzz.sh")))
	decl := regexp.MustCompile(`(?m)^func (Fuzz\w+)\(f \*testing\.F\)`)
	found := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllSubmatch(readFile(t, path), -1) {
			found++
			want := `"` + string(m[1]) + " ./" + rel + "/ "
			if !strings.Contains(script, want) {
				t.Errorf("%s: hack/fuzz.sh does not run %s", path, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < 6 {
		t.Errorf("found %d fuzz targets, want at least the 6 of the readers and key layout", found)
	}
}
