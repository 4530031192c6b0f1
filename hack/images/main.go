// Command images builds kubetrain's container images without Docker: the same static binaries and
// entrypoints as the Dockerfile's targets, as image tarballs that `ctr images import` (containerd) or
// `docker load` accept.
//
//	go run ./hack/images -out DIR [-tag dev] [-sandbox] [-s3] [-dns] [manager trainer pause s3 coredns]
//
// Each image is one layer on an empty base: the binary, a passwd entry for the non-root user 65532
// (distroless's "nonroot") and the host's CA certificates, for S3 over HTTPS.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Image is one of kubetrain's images: what the Dockerfile's target of the same name builds.
type Image struct {
	// Name is the Dockerfile target and the repository's last element.
	Name string
	// Package is the Go package of the binary.
	Package string
	// Entrypoint is the binary's path in the image.
	Entrypoint string
	// Module is the directory of the Go module that builds Package, relative to the repository;
	// empty for the repository's own.
	Module string
}

// Images are kubetrain's images. A test checks the Dockerfile against them.
var Images = []Image{
	{Name: "manager", Package: "./cmd/manager", Entrypoint: "/manager"},
	{Name: "trainer", Package: "./trainer/cmd/trainer", Entrypoint: "/trainer"},
}

// SandboxImage is the local cluster's pod sandbox ("pause") image, under the name containerd's CRI
// plugin asks for; no Dockerfile builds it.
var SandboxImage = Image{Name: "pause", Package: "./hack/pause", Entrypoint: "/pause"}

// S3Image is the S3 server (versitygw, pinned in hack/tools) that the demo and the e2e suite run in
// the cluster; no Dockerfile builds it.
var S3Image = Image{Name: "s3", Package: "github.com/versity/versitygw/cmd/versitygw", Entrypoint: "/versitygw", Module: "hack/tools"}

// DNSImage is CoreDNS (pinned in hack/coredns), the local cluster's DNS server; no Dockerfile builds
// it.
var DNSImage = Image{Name: "coredns", Package: "github.com/coredns/coredns", Entrypoint: "/coredns", Module: "hack/coredns"}

// SandboxRef is the reference containerd's configuration names.
const SandboxRef = "registry.k8s.io/pause:3.10"

// User runs every image: distroless's non-root user.
const User = "65532:65532"

// Repository prefixes the image names: kubetrain/manager:dev.
const Repository = "kubetrain"

// caBundle is where Debian keeps the CA certificates copied into the images.
const caBundle = "/etc/ssl/certs/ca-certificates.crt"

func main() {
	out := flag.String("out", "bin/images", "directory for the image tarballs")
	tag := flag.String("tag", "dev", "image tag")
	sandbox := flag.Bool("sandbox", false, "also build the pod sandbox (pause) image, as "+SandboxRef)
	s3 := flag.Bool("s3", false, "also build the S3 server's image (versitygw)")
	dns := flag.Bool("dns", false, "also build the DNS server's image (CoreDNS)")
	flag.Parse()
	want := map[string]bool{}
	for _, n := range flag.Args() {
		want[n] = true
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fail(err)
	}
	images := Images
	if *sandbox {
		images = append(images, SandboxImage)
	}
	if *s3 {
		images = append(images, S3Image)
	}
	if *dns {
		images = append(images, DNSImage)
	}
	images = slices.DeleteFunc(images, func(im Image) bool { return len(want) > 0 && !want[im.Name] })
	// Linking dominates and runs mostly on one core: build the images side by side.
	paths := make([]string, len(images))
	errs := make([]error, len(images))
	var wg sync.WaitGroup
	for i, im := range images {
		wg.Go(func() {
			if paths[i], errs[i] = Build(im, *tag, *out); errs[i] != nil {
				errs[i] = fmt.Errorf("image %s: %w", im.Name, errs[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		fail(err)
	}
	for _, p := range paths {
		fmt.Println(p)
	}
}

// Ref is an image's reference: kubetrain/NAME:TAG (the sandbox image's own).
func Ref(im Image, tag string) string {
	if im == SandboxImage {
		return SandboxRef
	}
	return fmt.Sprintf("%s/%s:%s", Repository, im.Name, tag)
}

// Build compiles an image's binary and writes the image tarball into dir; it returns its path.
func Build(im Image, tag, dir string) (string, error) {
	bin, err := filepath.Abs(filepath.Join(dir, im.Name+".bin"))
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, im.Package)
	cmd.Dir = im.Module
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building %s: %w", im.Package, err)
	}
	defer os.Remove(bin)
	layer, err := rootfs(im, bin)
	if err != nil {
		return "", err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return "", err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.OS = "amd64", "linux"
	cfg.Config.Entrypoint = []string{im.Entrypoint}
	cfg.Config.User = User
	cfg.Config.WorkingDir = "/"
	cfg.Config.Env = []string{"PATH=/", "SSL_CERT_FILE=" + caBundle}
	cfg.Config.Labels = map[string]string{"org.opencontainers.image.title": "kubetrain-" + im.Name}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return "", err
	}
	ref, err := name.NewTag(Ref(im, tag))
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, im.Name+".tar")
	return path, tarball.WriteToFile(path, ref, img)
}

// rootfs is the image's single layer: the binary, /etc/passwd and /etc/group with the non-root
// user, and the CA bundle. Files are owned by root and dated at the epoch, so builds repeat.
func rootfs(im Image, bin string) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(path string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: path, Mode: mode, Size: int64(len(data)), ModTime: time.Unix(0, 0),
			Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"etc/", "etc/ssl/", "etc/ssl/certs/", "tmp/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Name: d, Mode: mode, ModTime: time.Unix(0, 0), Typeflag: tar.TypeDir}); err != nil {
			return nil, err
		}
	}
	binData, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(caBundle)
	if err != nil {
		return nil, fmt.Errorf("CA certificates (apt-get install ca-certificates): %w", err)
	}
	files := []struct {
		path string
		mode int64
		data []byte
	}{
		{im.Entrypoint[1:], 0o755, binData},
		{"etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{"etc/group", 0o644, []byte("root:x:0:\nnonroot:x:65532:\n")},
		{caBundle[1:], 0o644, ca},
	}
	for _, f := range files {
		if err := add(f.path, f.mode, f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "images:", err)
	os.Exit(1)
}
