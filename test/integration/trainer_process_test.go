package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/controllers"
	"github.com/kubetrain/kubetrain/internal/blob"
	"github.com/kubetrain/kubetrain/internal/checkpoint"
	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/internal/s3test"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

// This spec plays the kubelet for one worker: it runs the real trainer binary as a local process with
// exactly the pod's arguments and environment, authenticated with a token for the pod's
// ServiceAccount bound to the pod object, writing checkpoints to a real S3 server.
var _ = Describe("The trainer binary against the API server and S3", func() {
	It("reports its epochs and checkpoints into status and leaves verified checkpoints in the bucket", func(ctx context.Context) {
		srv := s3test.Start(GinkgoT(), "ckpt")
		trainerBin := filepath.Join(GinkgoT().TempDir(), "trainer")
		build := exec.Command("go", "build", "-o", trainerBin, "./trainer/cmd/trainer")
		build.Dir = repoRoot
		out, err := build.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "%s", out)

		ns := newNamespace(ctx)
		tj := createJob(ctx, newJob("real", ns).Epochs(2).Checkpoint(srv.URI("ckpt", "runs"), "s3-creds").AllowPlainHTTP())
		pod := waitPod(ctx, tj, 0)
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Phase(corev1.PodRunning) })

		// The pod's environment as the kubelet would resolve it.
		c := pod.Spec.Containers[0]
		env := []string{"PATH=" + os.Getenv("PATH"), "TMPDIR=" + GinkgoT().TempDir()}
		for _, e := range c.Env {
			switch {
			case e.ValueFrom == nil:
				if e.Name != "TMPDIR" {
					env = append(env, e.Name+"="+e.Value)
				}
			case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
				env = append(env, e.Name+"="+pod.Name)
			case e.ValueFrom.SecretKeyRef != nil && e.Name == contract.SecretKeyAccessKeyID:
				env = append(env, e.Name+"="+srv.AccessKey)
			case e.ValueFrom.SecretKeyRef != nil && e.Name == contract.SecretKeySecretAccessKey:
				env = append(env, e.Name+"="+srv.SecretKey)
			}
		}
		termLog := filepath.Join(GinkgoT().TempDir(), "termination-log")
		Expect(os.WriteFile(termLog, nil, 0o644)).To(Succeed())
		env = append(env, "KUBECONFIG="+podKubeconfig(ctx, pod), contract.EnvPrefix+"TERMINATION_LOG="+termLog)

		cmd := exec.CommandContext(ctx, trainerBin, append(c.Args, "--scratch-dir="+GinkgoT().TempDir(), "--threads=2")...)
		cmd.Env = env
		output, err := cmd.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "trainer: %s", output)
		Expect(string(output)).NotTo(ContainSubstring("warning"), "the trainer could not report")

		// The kubelet reports the exit, with the termination message.
		message, err := os.ReadFile(termLog)
		Expect(err).NotTo(HaveOccurred())
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Exited(0, string(message)) })

		got := expectPhase(ctx, tj, kubetrainv1alpha1.PhaseSucceeded)
		Expect(got.Status.History).To(HaveLen(2))
		Expect(got.Status.Progress.EpochText).To(Equal("2/2"))
		Expect(got.Status.Progress.Attempt).To(HaveValue(Equal(int32(0))), "the report does not say which attempt made it")
		Expect(got.Status.Progress.TestAccuracy).To(BeNumerically(">", 0.5))
		Expect(got.Status.LatestCheckpoint).NotTo(BeNil())
		Expect(got.Status.LatestCheckpoint.Epoch).To(Equal(int32(2)))
		Expect(got.Status.LatestCheckpoint.Bytes).To(BeNumerically(">", 1<<20), "the checkpoint's size (the model has 473,418 parameters)")
		Expect(got.Status.ModelURI).To(Equal(got.Status.LatestCheckpoint.URI))
		Expect(condition(got, kubetrainv1alpha1.ConditionCheckpointed).Message).To(ContainSubstring("epoch 2: "))

		// The checkpoints exist under the job's keys, and their manifests verify.
		b, err := blob.Open(ctx, srv.URI("ckpt", "runs"))
		Expect(err).NotTo(HaveOccurred())
		defer b.Close()
		prefix, err := contract.JobPrefix(ns, "real", string(got.UID), 0)
		Expect(err).NotTo(HaveOccurred())
		entries, err := checkpoint.List(ctx, b, prefix)
		Expect(err).NotTo(HaveOccurred())
		Expect(entries).To(HaveLen(2))
		for _, e := range entries {
			_, _, err := checkpoint.Read(ctx, b, e.Key, checkpoint.DefaultMaxBytes)
			Expect(err).NotTo(HaveOccurred())
			Expect(got.Status.ModelURI).To(ContainSubstring(strings.TrimSuffix(entries[0].Key, contract.ManifestName)))
		}
	})
})

// podKubeconfig is a kubeconfig with the token a pod's projected volume would hold: the pod's
// ServiceAccount, bound to the pod.
func podKubeconfig(ctx context.Context, pod *corev1.Pod) string {
	cs, err := kubernetes.NewForConfig(cfg)
	Expect(err).NotTo(HaveOccurred())
	Expect(pod.Spec.ServiceAccountName).To(Equal(controllers.TrainerServiceAccount))
	tok, err := cs.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600),
			BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["trainer"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	kc.Contexts["trainer"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "trainer"}
	kc.CurrentContext = "trainer"
	path := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(clientcmd.WriteToFile(*kc, path)).To(Succeed())
	return path
}
