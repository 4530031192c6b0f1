//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The local cluster of hack/local-cluster.sh, only: a second cluster beside the one under test. The
// kind targets filter this label out; hack/test-e2e.sh names the cluster under test in
// E2E_LOCAL_CLUSTER.
var _ = Describe("hack/local-cluster.sh", Label("local-cluster"), func() {
	It("runs a second cluster beside the first without collisions, and cleans up after a killed one", func(ctx SpecContext) {
		first := os.Getenv("E2E_LOCAL_CLUSTER")
		Expect(first).NotTo(BeEmpty(), "E2E_LOCAL_CLUSTER names the local cluster under test (hack/test-e2e.sh sets it)")
		second := first + "x"
		firstEnv := clusterEnv(first)
		firstDir := filepath.Dir(firstEnv["KUBECONFIG"])
		DeferCleanup(func() { localCluster("down", second) })
		netnsBefore := netnsNames()

		By("bringing up cluster " + second + " with two GPUs beside " + first)
		localCluster("up", second, "GPUS=2")
		secondEnv := clusterEnv(second)
		secondDir := filepath.Dir(secondEnv["KUBECONFIG"])
		Expect(secondEnv["NODE_IP"]).NotTo(Equal(firstEnv["NODE_IP"]))
		Expect(secondDir).NotTo(Equal(firstDir))

		By("each cluster seeing its own node only, with its own GPUs, both Ready")
		for _, c := range []struct {
			name, kubeconfig string
			gpus             int64
		}{{first, firstEnv["KUBECONFIG"], -1}, {second, secondEnv["KUBECONFIG"], 2}} {
			cl := clientFor(c.kubeconfig)
			nodes := &corev1.NodeList{}
			Expect(cl.List(ctx, nodes)).To(Succeed())
			Expect(nodes.Items).To(HaveLen(1))
			Expect(nodes.Items[0].Name).To(Equal(c.name))
			Expect(nodeReady(nodes.Items[0])).To(BeTrue(), "node %s Ready", c.name)
			if c.gpus >= 0 {
				q := nodes.Items[0].Status.Capacity["nvidia.com/gpu"]
				Expect(q.Value()).To(Equal(c.gpus))
			}
			// CoreDNS ran as a real pod on each node.
			pods := &corev1.PodList{}
			Expect(cl.List(ctx, pods, client.InNamespace("kube-system"), client.MatchingLabels{"k8s-app": "kube-dns"})).To(Succeed())
			Expect(pods.Items).To(ContainElement(WithTransform(podReady, BeTrue())), "CoreDNS in %s", c.name)
		}

		By("killing every process of " + second + " with SIGKILL, as a crashed run would leave it")
		pids, err := filepath.Glob(filepath.Join(secondDir, "run", "*.pid"))
		Expect(err).NotTo(HaveOccurred())
		Expect(pids).NotTo(BeEmpty())
		for _, f := range pids {
			data, err := os.ReadFile(f)
			Expect(err).NotTo(HaveOccurred())
			pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
			Expect(err).NotTo(HaveOccurred())
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		}

		By("`down` leaving nothing of " + second + " behind")
		localCluster("down", second)
		Expect(secondDir).NotTo(BeADirectory())
		Expect(exec.Command("ip", "netns", "pids", "kt-"+second).Run()).To(HaveOccurred(), "netns kt-%s", second)
		Expect(exec.Command("ip", "link", "show", "kt-"+second+"-h").Run()).To(HaveOccurred(), "interface kt-%s-h", second)
		mounts, err := os.ReadFile("/proc/mounts")
		Expect(err).NotTo(HaveOccurred())
		Expect(string(mounts)).NotTo(ContainSubstring(secondDir+"/"), "mounts under %s", secondDir)
		Expect(processesMentioning(secondDir)).To(BeEmpty(), "processes of %s", second)
		Expect(netnsBefore).To(ContainElements(netnsNames()), "no new network namespace stays, no pod's either")
		cgroups, err := filepath.Glob("/sys/fs/cgroup/*/kubetrain-" + second)
		Expect(err).NotTo(HaveOccurred())
		Expect(cgroups).To(BeEmpty())

		By(first + " untouched")
		Eventually(func(g Gomega) {
			nodes := &corev1.NodeList{}
			g.Expect(clientFor(firstEnv["KUBECONFIG"]).List(ctx, nodes)).To(Succeed())
			g.Expect(nodes.Items).To(HaveLen(1))
			g.Expect(nodeReady(nodes.Items[0])).To(BeTrue())
		}).WithTimeout(30 * time.Second).WithPolling(poll).Should(Succeed())
	})
})

// localCluster runs hack/local-cluster.sh CMD NAME with extra environment, failing the spec on error.
func localCluster(cmd, name string, env ...string) string {
	c := exec.Command(filepath.Join(repoRoot, "hack", "local-cluster.sh"), cmd, name)
	c.Dir = repoRoot
	c.Env = append(os.Environ(), env...)
	out, err := c.CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "hack/local-cluster.sh %s %s: %s", cmd, name, out)
	return string(out)
}

// clusterEnv reads `hack/local-cluster.sh env NAME`: KUBECONFIG, KUBECTL and NODE_IP.
func clusterEnv(name string) map[string]string {
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(localCluster("env", name)))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
		if ok {
			env[k] = v
		}
	}
	Expect(env).To(HaveKey("KUBECONFIG"))
	Expect(env).To(HaveKey("NODE_IP"))
	return env
}

func clientFor(kubeconfig string) client.Client {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	Expect(err).NotTo(HaveOccurred())
	cl, err := client.New(cfg, client.Options{})
	Expect(err).NotTo(HaveOccurred())
	return cl
}

func nodeReady(n corev1.Node) bool {
	return slices.ContainsFunc(n.Status.Conditions, func(c corev1.NodeCondition) bool {
		return c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
	})
}

// processesMentioning lists the processes whose command line names dir, as "pid: cmdline".
func processesMentioning(dir string) []string {
	var found []string
	entries, err := os.ReadDir("/proc")
	Expect(err).NotTo(HaveOccurred())
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil || e.Name() == strconv.Itoa(os.Getpid()) {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), dir) {
			found = append(found, fmt.Sprintf("%s: %s", e.Name(), strings.ReplaceAll(string(cmdline), "\x00", " ")))
		}
	}
	return found
}

// netnsNames are the named network namespaces (ip netns): the clusters' own and any pod's that a
// containerd left in the shared directory.
func netnsNames() []string {
	entries, err := os.ReadDir("/run/netns")
	if os.IsNotExist(err) {
		return nil
	}
	Expect(err).NotTo(HaveOccurred())
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
