//go:build e2e

// Package e2e runs kubetrain end to end on the cluster that KUBECONFIG points at: real pods on a
// real kubelet, the operator deployed from config/ and the trainer image training on Fashion-MNIST
// from the S3 server of config/s3. hack/test-e2e.sh brings up the local cluster, deploys and runs
// this suite (`make test-e2e`, part of `make test`); on kind, `make test-e2e-kind`.
//
// The suite does not skip: a missing prerequisite (no KUBECONFIG, no operator, no kubectl) fails it.
package e2e

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/internal/manager"
)

// The operator and the S3 server as config/default and config/s3 deploy them.
const (
	operatorNamespace = "kubetrain-system"
	managerDeployment = "kubetrain-controller-manager"
	s3Service         = "s3"
	s3Secret          = "kubetrain-s3"
	// restricted is the Pod Security Standard every namespace of the suite enforces.
	enforceLabel = "pod-security.kubernetes.io/enforce"
	restricted   = "restricted"
)

var (
	k8sClient  client.Client // reads straight from the API server, never from a cache
	kubectlBin string
	repoRoot   string
	// ns is the suite's namespace, under the restricted Pod Security Standard.
	ns string
	// s3Endpoint is the S3 server's NodePort as this process reaches it; the pods use the Service.
	s3Endpoint string
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "kubetrain e2e suite")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	if os.Getenv("KUBECONFIG") == "" {
		Fail("KUBECONFIG is not set: run `make test-e2e`, which brings up the local cluster and deploys kubetrain into it")
	}
	var err error
	repoRoot, err = filepath.Abs("../..")
	Expect(err).NotTo(HaveOccurred())
	kubectlBin = os.Getenv("KUBECTL")
	if kubectlBin == "" {
		kubectlBin, err = exec.LookPath("kubectl")
		Expect(err).NotTo(HaveOccurred(), "no kubectl: set KUBECTL or put kubectl on PATH")
	}
	cfg, err := ctrl.GetConfig()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(cfg, client.Options{Scheme: manager.Scheme()})
	Expect(err).NotTo(HaveOccurred())

	By("finding the operator and the S3 server (hack/deploy.sh)")
	Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: operatorNamespace, Name: managerDeployment}, d)).To(Succeed())
		g.Expect(d.Status.AvailableReplicas).To(BeNumerically(">=", 1))
	}).WithTimeout(2*time.Minute).Should(Succeed(), "the manager is not deployed and available: run hack/deploy.sh")
	secret := &corev1.Secret{}
	Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: operatorNamespace, Name: s3Secret}, secret)).To(Succeed())
	// blob.Open takes credentials from the environment only, as the trainer does.
	Expect(os.Setenv(contract.SecretKeyAccessKeyID, string(secret.Data[contract.SecretKeyAccessKeyID]))).To(Succeed())
	Expect(os.Setenv(contract.SecretKeySecretAccessKey, string(secret.Data[contract.SecretKeySecretAccessKey]))).To(Succeed())
	canary.values = []string{string(secret.Data[contract.SecretKeyAccessKeyID]), string(secret.Data[contract.SecretKeySecretAccessKey])}
	s3Endpoint = nodePortEndpoint(ctx)

	By("creating the suite's namespace under the restricted Pod Security Standard, with the S3 credentials")
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-", Labels: map[string]string{
		enforceLabel: restricted, "pod-security.kubernetes.io/enforce-version": "latest",
	}}}
	Expect(k8sClient.Create(ctx, nsObj)).To(Succeed())
	ns = nsObj.Name
	DeferCleanup(func(ctx SpecContext) {
		Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, nsObj))).To(Succeed())
	})
	Expect(k8sClient.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: s3Secret},
		Data:       secret.Data,
	})).To(Succeed())
})

// nodePortEndpoint is the S3 server's URL on the first node's InternalIP and the Service's NodePort.
func nodePortEndpoint(ctx context.Context) string {
	svc := &corev1.Service{}
	Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: operatorNamespace, Name: s3Service}, svc)).To(Succeed())
	Expect(svc.Spec.Ports).NotTo(BeEmpty())
	port := svc.Spec.Ports[0].NodePort
	Expect(port).NotTo(BeZero(), "Service %s/%s has no NodePort", operatorNamespace, s3Service)
	nodes := &corev1.NodeList{}
	Expect(k8sClient.List(ctx, nodes)).To(Succeed())
	Expect(nodes.Items).NotTo(BeEmpty())
	for _, a := range nodes.Items[0].Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return "http://" + net.JoinHostPort(a.Address, strconv.Itoa(int(port)))
		}
	}
	Fail(fmt.Sprintf("node %s has no InternalIP", nodes.Items[0].Name))
	return ""
}

// reachable rewrites a storage URI that names the in-cluster endpoint to the one this process reaches.
func reachable(uri string) string {
	u, err := url.Parse(uri)
	Expect(err).NotTo(HaveOccurred())
	q := u.Query()
	q.Set("endpoint", s3Endpoint)
	u.RawQuery = q.Encode()
	return u.String()
}

// kubectl runs kubectl against the cluster from the repository's root and returns its combined output.
func kubectl(args ...string) (string, error) {
	cmd := exec.Command(kubectlBin, args...)
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	return string(out), err
}
