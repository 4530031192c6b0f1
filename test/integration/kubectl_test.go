package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// kubectl runs the kubectl that sits beside kube-apiserver in KUBEBUILDER_ASSETS against the test
// API server, and returns its output; it fails the spec when kubectl fails.
func kubectl(args ...string) string {
	out, err := kubectlErr(args...)
	Expect(err).NotTo(HaveOccurred(), "kubectl %v: %s", args, out)
	return out
}

func kubectlErr(args ...string) (string, error) {
	bin := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	cmd := exec.Command(bin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func fmtEpoch(epoch, epochs int32) string { return fmt.Sprintf("%d/%d", epoch, epochs) }

func unstructuredFrom(m map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: m}
}
