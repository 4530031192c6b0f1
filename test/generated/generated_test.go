// Package generated checks that the files controller-gen writes (the CRD, the manager's ClusterRole,
// the DeepCopy methods) match the markers they come from: a marker changed without `make manifests
// generate` fails here.
package generated

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// generatedFiles are the outputs of `make manifests generate`, relative to the repository root.
var generatedFiles = []string{
	"config/crd/bases/kubetrain.io_trainingjobs.yaml",
	"config/rbac/role.yaml",
	"api/v1alpha1/zz_generated.deepcopy.go",
}

// sources are what the generators read.
var sources = []string{"go.mod", "go.sum", "api", "controllers", "internal", "config", "hack/boilerplate.go.txt"}

func TestGeneratedFilesAreCurrent(t *testing.T) {
	root := repoRoot(t)
	dir := generateInCopy(t, root, nil)
	for _, f := range generatedFiles {
		want := readFile(t, filepath.Join(dir, f))
		got := readFile(t, filepath.Join(root, f))
		if !bytes.Equal(want, got) {
			t.Errorf("%s is stale: run `make manifests generate` and commit the result", f)
		}
	}
	bases, err := filepath.Glob(filepath.Join(dir, "config/crd/bases/*.yaml"))
	if err != nil || len(bases) != 1 {
		t.Errorf("controller-gen wrote %d CRDs (%v), want 1", len(bases), err)
	}
}

// The check bites: a marker changed in the sources changes what is generated.
func TestGeneratedFilesCheckDetectsAChangedMarker(t *testing.T) {
	root := repoRoot(t)
	dir := generateInCopy(t, root, func(dir string) {
		types := filepath.Join(dir, "api/v1alpha1/trainingjob_types.go")
		src := readFile(t, types)
		changed := bytes.Replace(src, []byte("+kubebuilder:validation:Maximum=65536"), []byte("+kubebuilder:validation:Maximum=4096"), 1)
		if bytes.Equal(src, changed) {
			t.Fatal("the batch size marker to change is not in trainingjob_types.go")
		}
		if err := os.WriteFile(types, changed, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	crd := "config/crd/bases/kubetrain.io_trainingjobs.yaml"
	if bytes.Equal(readFile(t, filepath.Join(dir, crd)), readFile(t, filepath.Join(root, crd))) {
		t.Errorf("changing a marker left %s unchanged: the staleness check cannot fail", crd)
	}
}

// generateInCopy copies the generators' sources into a temporary directory, lets edit change them,
// and runs the Makefile's own `manifests generate` there.
func generateInCopy(t *testing.T, root string, edit func(dir string)) string {
	t.Helper()
	dir := t.TempDir()
	for _, s := range sources {
		if out, err := exec.Command("cp", "-r", "--parents", s, dir).CombinedOutput(); err != nil {
			t.Fatalf("copying %s: %v: %s", s, err, out)
		}
	}
	for _, f := range generatedFiles {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if edit != nil {
		edit(dir)
	}
	args := []string{"-C", root, "--no-print-directory", "manifests", "generate", "GEN_DIR=" + dir}
	if cg := os.Getenv("CONTROLLER_GEN"); cg != "" {
		args = append(args, "CONTROLLER_GEN="+cg)
	}
	cmd := exec.Command("make", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return dir
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(root) // cp --parents copies paths relative to the root
	return root
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
