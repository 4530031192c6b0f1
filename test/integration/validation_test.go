package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
)

// jobYAML is a valid TrainingJob with extra lines spliced into its spec.
func jobYAML(name, specExtra string) string {
	return fmt.Sprintf(`apiVersion: kubetrain.io/v1alpha1
kind: TrainingJob
metadata:
  name: %s
spec:
  dataset:
    uri: synthetic://cifar10
%s`, name, specExtra)
}

var _ = Describe("Admission", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	apply := func(doc string) (string, error) {
		f := filepath.Join(GinkgoT().TempDir(), "job.yaml")
		Expect(os.WriteFile(f, []byte(doc), 0o600)).To(Succeed())
		return kubectlErr("apply", "-n", ns, "-f", f)
	}

	It("accepts config/samples/ and fills in the defaults", func(ctx context.Context) {
		out := kubectl("apply", "-n", ns, "-f", "config/samples/")
		Expect(out).To(ContainSubstring("trainingjob.kubetrain.io/fashion-mnist created"))

		out, err := apply(jobYAML("minimal", ""))
		Expect(err).NotTo(HaveOccurred(), out)
		tj := &kubetrainv1alpha1.TrainingJob{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "minimal"}, tj)).To(Succeed())
		Expect(tj.Spec.Model.Preset).To(Equal("reference-cnn"))
		Expect(tj.Spec.Workers).To(Equal(int32(1)))
		Expect(tj.Spec.Hyperparameters).To(Equal(kubetrainv1alpha1.Hyperparameters{
			Epochs: 10, BatchSize: 32, LearningRate: 0.001, Optimizer: "adam", Seed: 1}))
		Expect(*tj.Spec.RunPolicy.BackoffLimit).To(Equal(int32(3)))
		Expect(tj.Spec.Resources.GPUResourceName).To(Equal("nvidia.com/gpu"))
	})

	DescribeTable("rejects an invalid spec at apply, naming the field",
		func(specExtra, field, why string) {
			out, err := apply(jobYAML("bad", specExtra))
			Expect(err).To(HaveOccurred(), "accepted:\n%s", specExtra)
			Expect(out).To(ContainSubstring(field), "the error does not name %s", field)
			Expect(out).To(ContainSubstring(why))
		},
		Entry("zero epochs", "  hyperparameters:\n    epochs: 0\n", "spec.hyperparameters.epochs", "greater than or equal to 1"),
		Entry("zero batch size", "  hyperparameters:\n    batchSize: 0\n", "spec.hyperparameters.batchSize", "greater than or equal to 1"),
		Entry("zero learning rate", "  hyperparameters:\n    learningRate: 0\n", "spec.hyperparameters.learningRate", "greater than 0"),
		Entry("huge learning rate", "  hyperparameters:\n    learningRate: 11\n", "spec.hyperparameters.learningRate", "at most 10"),
		Entry("unknown optimizer", "  hyperparameters:\n    optimizer: rmsprop\n", "spec.hyperparameters.optimizer", "Unsupported value"),
		Entry("target accuracy above 1", "  hyperparameters:\n    targetTestAccuracy: 1.5\n", "spec.hyperparameters.targetTestAccuracy", "at most 1"),
		Entry("negative seed", "  hyperparameters:\n    seed: -1\n", "spec.hyperparameters.seed", "greater than or equal to 0"),
		Entry("too many workers", "  workers: 65\n", "spec.workers", "less than or equal to 64"),
		Entry("no workers", "  workers: 0\n", "spec.workers", "greater than or equal to 1"),
		Entry("unknown model", "  model:\n    preset: resnet50\n", "spec.model.preset", "Unsupported value"),
		Entry("dataset over http", "  dataset:\n    uri: http://example.com/data\n", "spec.dataset.uri", "must be s3://"),
		Entry("credentials in the dataset endpoint", "  dataset:\n    uri: s3://data/x?endpoint=https://KEY:SECRET@minio:9000\n", "spec.dataset.uri", "must not carry credentials"),
		Entry("escaped credentials in the checkpoint endpoint", "  checkpoint:\n    uri: s3://ckpt/x?endpoint=https%3A%2F%2FKEY%3ASECRET%40minio\n", "spec.checkpoint.uri", "must not carry credentials"),
		Entry("credentials in the resume endpoint", "  checkpoint:\n    uri: s3://ckpt/x\n    resumeFrom: s3://ckpt/x/m.json?endpoint=http://a:b@minio\n", "spec.checkpoint.resumeFrom", "must not carry credentials"),
		Entry("plain http dataset endpoint", "  dataset:\n    uri: s3://data/x?endpoint=http://minio:9000\n", "spec.dataset.uri", "allowPlainHTTP: true"),
		Entry("plain http checkpoint endpoint", "  checkpoint:\n    uri: s3://ckpt/x?region=eu&endpoint=HTTP%3A%2F%2Fminio\n", "spec.checkpoint.uri", "allowPlainHTTP: true"),
		Entry("plain http resume endpoint", "  checkpoint:\n    uri: s3://ckpt/x\n    resumeFrom: s3://ckpt/x/m.json?endpoint=http://minio\n", "spec.checkpoint.resumeFrom", "allowPlainHTTP: true"),
		Entry("dataset opt-in does not cover checkpoints", "  dataset:\n    uri: s3://data/x?endpoint=http://minio\n    allowPlainHTTP: true\n  checkpoint:\n    uri: s3://ckpt/x?endpoint=http://minio\n", "spec.checkpoint.uri", "allowPlainHTTP: true"),
		Entry("dataset path escaping", "  dataset:\n    uri: file:///data/../etc\n", "spec.dataset.uri", "'..'"),
		Entry("dataset format", "  dataset:\n    uri: file:///data\n    format: png\n", "spec.dataset.format", "Unsupported value"),
		Entry("synthetic set as idx", "  dataset:\n    uri: synthetic://cifar10\n    format: idx\n", "spec.dataset.format", "cifar10 format"),
		Entry("dataset secret name", "  dataset:\n    uri: s3://data/x\n    credentialsSecretName: Bad_Name\n", "spec.dataset.credentialsSecretName", "should match"),
		Entry("checkpoint scheme", "  checkpoint:\n    uri: gs://bucket/runs\n", "spec.checkpoint.uri", "must be s3://"),
		Entry("checkpoint secret name", "  checkpoint:\n    uri: s3://ckpt\n    credentialsSecretName: UPPER\n", "spec.checkpoint.credentialsSecretName", "should match"),
		Entry("checkpoint keep", "  checkpoint:\n    uri: s3://ckpt\n    keep: 0\n", "spec.checkpoint.keep", "greater than or equal to 1"),
		Entry("checkpoint interval", "  checkpoint:\n    uri: s3://ckpt\n    everyEpochs: 0\n", "spec.checkpoint.everyEpochs", "greater than or equal to 1"),
		Entry("negative GPUs", "  resources:\n    gpus: -1\n", "spec.resources.gpus", "greater than or equal to 0"),
		Entry("GPU resource name", "  resources:\n    gpuResourceName: gpu\n", "spec.resources.gpuResourceName", "should match"),
		Entry("zero scratch", "  resources:\n    scratch: \"0\"\n", "spec.resources.scratch", "must be more than 0"),
		Entry("zero scratch as a number", "  resources:\n    scratch: 0\n", "spec.resources.scratch", "must be more than 0"),
		Entry("negative scratch", "  resources:\n    scratch: -1Gi\n", "spec.resources.scratch", "must be more than 0"),
		Entry("memory quantity", "  resources:\n    memory: lots\n", "spec.resources.memory", "should match"),
		Entry("negative backoff limit", "  runPolicy:\n    backoffLimit: -1\n", "spec.runPolicy.backoffLimit", "greater than or equal to 0"),
		Entry("zero deadline", "  runPolicy:\n    activeDeadlineSeconds: 0\n", "spec.runPolicy.activeDeadlineSeconds", "greater than or equal to 1"),
		Entry("a deadline past any clock", "  runPolicy:\n    activeDeadlineSeconds: 9300000000\n", "spec.runPolicy.activeDeadlineSeconds", "less than or equal to 2147483647"),
		Entry("negative TTL", "  runPolicy:\n    ttlSecondsAfterFinished: -5\n", "spec.runPolicy.ttlSecondsAfterFinished", "greater than or equal to 0"),
		Entry("reserved env", "  template:\n    env:\n    - name: KUBETRAIN_EPOCHS\n      value: \"99\"\n", "spec.template.env", "reserved"),
		Entry("reserved label", "  template:\n    labels:\n      kubetrain.io/rank: \"7\"\n", "spec.template.labels", "reserved"),
		Entry("reserved volume", "  template:\n    volumes:\n    - name: scratch\n      emptyDir: {}\n", "spec.template.volumes", "reserved"),
		Entry("unknown field", "  epochs: 3\n", "spec.epochs", "unknown field"),
		Entry("managedBy without a domain", "  managedBy: multikueue\n", "spec.managedBy", "domain-prefixed name"),
	)

	It("keeps spec.managedBy as the job was created", func(ctx context.Context) {
		for name, patch := range map[string]string{
			"unmanaged": `{"spec":{"managedBy":"kueue.x-k8s.io/multikueue"}}`,           // added
			"managed":   `{"spec":{"managedBy":"kubetrain.io/trainingjob-controller"}}`, // changed
		} {
			w := newJob(name, ns).Suspend(true)
			if name == "managed" {
				w.Spec.ManagedBy = ptr.To("example.com/other")
			}
			createJob(ctx, w)
			out, err := kubectlErr("patch", "trainingjob", name, "-n", ns, "--type=merge", "-p", patch)
			Expect(err).To(HaveOccurred(), "%s: %s was accepted", name, patch)
			Expect(out).To(ContainSubstring("spec.managedBy is immutable"))
		}
		out, err := kubectlErr("patch", "trainingjob", "managed", "-n", ns, "--type=json", "-p", `[{"op":"remove","path":"/spec/managedBy"}]`)
		Expect(err).To(HaveOccurred(), "removing spec.managedBy was accepted")
		Expect(out).To(ContainSubstring("spec.managedBy is immutable"))
	})

	It("deploys the operator from config/default", func() {
		out := kubectl("apply", "-k", "config/default", "--dry-run=server")
		for _, want := range []string{"customresourcedefinition.apiextensions.k8s.io/trainingjobs.kubetrain.io",
			"deployment.apps/kubetrain-controller-manager", "clusterrole.rbac.authorization.k8s.io/kubetrain-manager-role",
			"validatingadmissionpolicy.admissionregistration.k8s.io/kubetrain-trainer-own-job",
			"validatingadmissionpolicy.admissionregistration.k8s.io/kubetrain-trainingjob-author-rights",
			"validatingadmissionpolicy.admissionregistration.k8s.io/kubetrain-manager-creates-workers-only"} {
			Expect(out).To(ContainSubstring(want))
		}
	})

	It("accepts plain http:// endpoints where the job opts in, and https:// without", func() {
		out, err := apply(jobYAML("plain", "    allowPlainHTTP: true\n  checkpoint:\n    uri: s3://ckpt/x?endpoint=http://minio:9000\n    resumeFrom: s3://ckpt/x/m.json?endpoint=http://minio:9000\n    allowPlainHTTP: true\n"))
		Expect(err).NotTo(HaveOccurred(), out)
		out, err = apply(jobYAML("tls", "  checkpoint:\n    uri: s3://ckpt/x?endpoint=https://minio\n  resources:\n    scratch: 50Gi\n"))
		Expect(err).NotTo(HaveOccurred(), out)
	})

	It("rejects names its workers' host names or Service could not take", func() {
		for name, extra := range map[string]string{
			strings.Repeat("a", 60): "",               // a 60-character name: host name a...a-w0 would pass 63 at rank 10
			"resnet.v2":             "",               // a dot: no host name
			"7b-model":              "  workers: 2\n", // a Service name must start with a letter
		} {
			out, err := apply(jobYAML(name, extra))
			Expect(err).To(HaveOccurred(), "accepted %q", name)
			Expect(out).To(ContainSubstring("metadata.name must"))
		}
		out, err := apply(jobYAML(strings.Repeat("a", 59), ""))
		Expect(err).NotTo(HaveOccurred(), out)
		out, err = apply(jobYAML("7b-model", ""))
		Expect(err).NotTo(HaveOccurred(), "one worker needs no Service: %s", out)
	})

	It("keeps model, dataset and hyperparameters immutable once the job has started", func(ctx context.Context) {
		tj := createJob(ctx, newJob("started", ns))
		Eventually(func(g Gomega) {
			g.Expect(getJob(ctx, g, tj).Status.StartTime).NotTo(BeNil())
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

		for field, patch := range map[string]string{
			"spec.dataset":         `{"spec":{"dataset":{"uri":"file:///elsewhere"}}}`,
			"spec.hyperparameters": `{"spec":{"hyperparameters":{"epochs":99}}}`,
			"spec.model":           `{"spec":{"model":{"preset":"reference-cnn"}}}`, // unchanged: allowed
		} {
			out, err := kubectlErr("patch", "trainingjob", "started", "-n", ns, "--type=merge", "-p", patch)
			if field == "spec.model" {
				Expect(err).NotTo(HaveOccurred(), out)
				continue
			}
			Expect(err).To(HaveOccurred(), "changing %s was accepted", field)
			Expect(out).To(ContainSubstring(field + " is immutable once the job has started"))
		}
		// What the next attempt's pods look like may change.
		kubectl("patch", "trainingjob", "started", "-n", ns, "--type=merge",
			"-p", `{"spec":{"template":{"nodeSelector":{"pool":"gpu"}}}}`)
	})

	It("keeps the hyperparameters of a job that started fixed while it is suspended", func(ctx context.Context) {
		tj := createJob(ctx, newJob("paused", ns))
		Eventually(func(g Gomega) {
			g.Expect(getJob(ctx, g, tj).Status.StartTime).NotTo(BeNil())
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		patchSuspend(ctx, tj, true)
		got := expectPhase(ctx, tj, kubetrainv1alpha1.PhaseSuspended)
		Expect(got.Status.StartTime).To(BeNil(), "a suspension clears startTime: the rule must not rest on it alone")
		out, err := kubectlErr("patch", "trainingjob", "paused", "-n", ns, "--type=merge", "-p", `{"spec":{"hyperparameters":{"learningRate":0.01}}}`)
		Expect(err).To(HaveOccurred(), "a suspended job that had started took a new learning rate")
		Expect(out).To(ContainSubstring("spec.hyperparameters is immutable once the job has started"))
	})

	It("lets a job that never started change its dataset", func(ctx context.Context) {
		tj := createJob(ctx, newJob("held", ns).Suspend(true))
		expectPhase(ctx, tj, kubetrainv1alpha1.PhaseSuspended)
		Expect(k8sClient.Patch(ctx, tj, client.RawPatch(types.MergePatchType,
			[]byte(`{"spec":{"dataset":{"uri":"file:///data/fashion-mnist","format":"idx"}}}`)))).To(Succeed())
	})
})
