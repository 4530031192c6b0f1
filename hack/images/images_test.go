package main

import (
	"archive/tar"
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// dockerStage is what a final Dockerfile stage says about how its image runs.
type dockerStage struct {
	entrypoint []string
	user       string
}

// dockerStages reads the Dockerfile's stages by name.
func dockerStages(t *testing.T) map[string]*dockerStage {
	f, err := os.Open("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	from := regexp.MustCompile(`(?i)^FROM\s+\S+\s+AS\s+(\S+)`)
	stages := map[string]*dockerStage{}
	var cur *dockerStage
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case from.MatchString(line):
			cur = &dockerStage{}
			stages[from.FindStringSubmatch(line)[1]] = cur
		case cur != nil && strings.HasPrefix(line, "USER "):
			cur.user = strings.TrimSpace(strings.TrimPrefix(line, "USER "))
		case cur != nil && strings.HasPrefix(line, "ENTRYPOINT "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "ENTRYPOINT ")), &cur.entrypoint); err != nil {
				t.Fatalf("Dockerfile: %q is not an exec-form ENTRYPOINT: %v", line, err)
			}
		}
	}
	return stages
}

// The images built here and the Dockerfile's must run the same way: same entrypoint, same user.
func TestDockerfileMatchesTheImagesBuiltWithoutDocker(t *testing.T) {
	stages := dockerStages(t)
	for _, im := range Images {
		st, ok := stages[im.Name]
		if !ok {
			t.Errorf("the Dockerfile has no target %q", im.Name)
			continue
		}
		if len(st.entrypoint) != 1 || st.entrypoint[0] != im.Entrypoint {
			t.Errorf("Dockerfile target %s: ENTRYPOINT %q, the image tool uses %q", im.Name, st.entrypoint, im.Entrypoint)
		}
		if st.user != User {
			t.Errorf("Dockerfile target %s: USER %q, the image tool uses %q", im.Name, st.user, User)
		}
	}
	for stage, st := range stages {
		if st.entrypoint != nil && !knownImage(stage) {
			t.Errorf("Dockerfile target %s is not built by hack/images", stage)
		}
	}
}

func knownImage(n string) bool {
	for _, im := range Images {
		if im.Name == n {
			return true
		}
	}
	return false
}

// The trainer image, read back: its config runs the entrypoint as the non-root user, and the
// binary in its layer runs.
func TestTrainerImage(t *testing.T) {
	t.Chdir("../..")
	im := Images[1]
	dir := t.TempDir()
	path, err := Build(im, "test", dir)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(Ref(im, "test"))
	img, err := tarball.ImageFromPath(path, &tag)
	if err != nil {
		t.Fatalf("reading %s back: %v", path, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Config.Entrypoint, " ") != "/trainer" || cfg.Config.User != User || cfg.OS != "linux" {
		t.Errorf("config: entrypoint %q, user %q, os %q", cfg.Config.Entrypoint, cfg.Config.User, cfg.OS)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers, %v; want one", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]int64{}
	tr := tar.NewReader(rc)
	bin := filepath.Join(dir, "extracted")
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = h.Mode
		if h.Name == "trainer" {
			f, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
	for _, want := range []string{"trainer", "etc/passwd", "etc/ssl/certs/ca-certificates.crt"} {
		if _, ok := files[want]; !ok {
			t.Errorf("the layer has no %s: %v", want, files)
		}
	}
	if files["trainer"]&0o111 == 0 {
		t.Errorf("/trainer is not executable: mode %o", files["trainer"])
	}
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Usage: trainer") {
		t.Errorf("the image's binary does not run: %v\n%s", err, out)
	}
}
