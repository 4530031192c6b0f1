//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/blob"
	"github.com/kubetrain/kubetrain/internal/checkpoint"
	"github.com/kubetrain/kubetrain/internal/contract"
)

const (
	sampleFile = "config/samples/kubetrain_v1alpha1_trainingjob.yaml"
	// trainTimeout bounds one job on the local cluster: the sample's three epochs take about 20 s on
	// one thread; the longer jobs below about a minute.
	trainTimeout = 5 * time.Minute
	// longEpochs gives a job time to be disrupted between its first checkpoint and its end.
	longEpochs = 8
	poll       = 500 * time.Millisecond
)

var _ = Describe("TrainingJob on a real cluster", func() {
	It("trains the sample on Fashion-MNIST to Succeeded, with every epoch, the accuracy and verified checkpoints", func(ctx SpecContext) {
		out, err := kubectl("apply", "-n", ns, "-f", "config/samples/")
		Expect(err).NotTo(HaveOccurred(), out)
		tj := &kubetrainv1alpha1.TrainingJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sample().Name}}
		DeferCleanup(deleteJob, tj)

		tj = waitPhase(ctx, tj, kubetrainv1alpha1.PhaseSucceeded)
		epochs := tj.Spec.Hyperparameters.Epochs
		Expect(historyEpochs(tj)).To(Equal(seq(1, epochs)), "every epoch in status.history")
		Expect(tj.Status.Progress).NotTo(BeNil())
		Expect(tj.Status.Progress.Epoch).To(Equal(epochs))
		Expect(tj.Status.Progress.TestAccuracy).To(BeNumerically(">=", 0.85))
		Expect(tj.Status.Restarts).To(BeZero())
		GinkgoWriter.Printf("%s: %d epochs, test accuracy %.4f\n", tj.Name, epochs, tj.Status.Progress.TestAccuracy)
		expectCheckpointsInBucket(ctx, tj)
		Expect(apimeta.IsStatusConditionTrue(tj.Status.Conditions, kubetrainv1alpha1.ConditionCheckpointed)).To(BeTrue())
	})

	It("resumes from the latest checkpoint when its running worker is deleted, counting one restart", func(ctx SpecContext) {
		tj := createJob(ctx, "worker-deleted", func(tj *kubetrainv1alpha1.TrainingJob) {
			tj.Spec.Hyperparameters.Epochs = longEpochs
		})
		seen := waitCheckpointMidway(ctx, tj)

		By(fmt.Sprintf("deleting the worker after the checkpoint of epoch %d", seen.Epoch))
		deleted := time.Now()
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: podName(tj, 0)}}
		Expect(k8sClient.Delete(ctx, pod)).To(Succeed())

		tj = waitPhase(ctx, tj, kubetrainv1alpha1.PhaseSucceeded)
		Expect(tj.Status.Restarts).To(Equal(int32(1)), "one restart for one deleted worker")
		Expect(tj.Status.Attempt).To(Equal(int32(1)))
		expectResumed(ctx, tj, seen, deleted)
		expectCheckpointsInBucket(ctx, tj)
	})

	It("trains the sample on 2 workers to one worker's accuracy, and restarts both from the checkpoint when one is deleted", func(ctx SpecContext) {
		// Two workers of 1 thread share the node's 2 CPUs with the manager: 900m each.
		workers := func(n int32) func(*kubetrainv1alpha1.TrainingJob) {
			return func(tj *kubetrainv1alpha1.TrainingJob) {
				tj.Spec.Workers = n
				tj.Spec.Resources.GPUs = 0
				tj.Spec.Resources.CPU = ptr.To(resource.MustParse("900m"))
			}
		}
		one := waitPhase(ctx, createJob(ctx, "one-worker", workers(1)), kubetrainv1alpha1.PhaseSucceeded)
		two := waitPhase(ctx, createJob(ctx, "two-workers", workers(2)), kubetrainv1alpha1.PhaseSucceeded)
		GinkgoWriter.Printf("after %d epochs: test accuracy %.4f on one worker, %.4f on two\n",
			two.Status.Progress.Epoch, one.Status.Progress.TestAccuracy, two.Status.Progress.TestAccuracy)
		Expect(two.Status.Progress.Epoch).To(Equal(one.Status.Progress.Epoch))
		Expect(two.Status.Progress.TestAccuracy).To(BeNumerically("~", one.Status.Progress.TestAccuracy, 0.01))
		Expect(two.Status.Workers.Ready).To(Equal("0/2"))
		Expect(historyEpochs(two)).To(Equal(seq(1, two.Spec.Hyperparameters.Epochs)))
		expectCheckpointsInBucket(ctx, two)

		tj := createJob(ctx, "two-workers-deleted", func(tj *kubetrainv1alpha1.TrainingJob) {
			workers(2)(tj)
			tj.Spec.Hyperparameters.Epochs = longEpochs
		})
		seen := waitCheckpointMidway(ctx, tj)
		By(fmt.Sprintf("deleting rank 1 after the checkpoint of epoch %d", seen.Epoch))
		deleted := time.Now()
		Expect(k8sClient.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: tj.Name + "-w1-a0"}})).To(Succeed())
		tj = waitPhase(ctx, tj, kubetrainv1alpha1.PhaseSucceeded)
		Expect(tj.Status.Attempt).To(Equal(int32(1)))
		Expect(tj.Status.Restarts).To(Equal(int32(1)))
		Expect(tj.Status.Disruptions).To(Equal(int32(1)), "a deleted worker is a disruption, its peer's exit no failure")
		Expect(tj.Status.Failures).To(BeZero())
		expectResumed(ctx, tj, seen, deleted)
		rank1 := &corev1.Pod{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: tj.Name + "-w1-a1"}, rank1)).To(Succeed())
		Expect(rank1.Spec.Containers[0].Args).To(ContainElement("--" + contract.FlagResumeFrom + "=" + tj.Status.ResumedFrom.URI))
	})

	It("removes its workers while suspended and resumes from the checkpoint when resumed", func(ctx SpecContext) {
		tj := createJob(ctx, "suspended", func(tj *kubetrainv1alpha1.TrainingJob) {
			tj.Spec.Hyperparameters.Epochs = longEpochs
		})
		seen := waitCheckpointMidway(ctx, tj)

		By("suspending")
		suspended := time.Now()
		setSuspend(ctx, tj, true)
		Eventually(func(g Gomega) {
			g.Expect(getJob(ctx, g, tj).Status.Phase).To(Equal(kubetrainv1alpha1.PhaseSuspended))
			g.Expect(jobPods(ctx, g, tj)).To(BeEmpty(), "the workers are gone")
		}).WithTimeout(time.Minute).WithPolling(poll).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(jobPods(ctx, g, tj)).To(BeEmpty())
		}).WithTimeout(3 * time.Second).WithPolling(poll).Should(Succeed())

		By("resuming")
		setSuspend(ctx, tj, false)
		tj = waitPhase(ctx, tj, kubetrainv1alpha1.PhaseSucceeded)
		Expect(tj.Status.Attempt).To(BeNumerically(">=", 1))
		expectResumed(ctx, tj, seen, suspended)
	})

	It("keeps training while the manager is killed, with no duplicate workers", func(ctx SpecContext) {
		tj := createJob(ctx, "manager-killed", func(tj *kubetrainv1alpha1.TrainingJob) {
			tj.Spec.Hyperparameters.Epochs = longEpochs
		})
		waitCheckpointMidway(ctx, tj)
		worker := &corev1.Pod{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: podName(tj, 0)}, worker)).To(Succeed())

		By("killing the manager's pod")
		managers := &corev1.PodList{}
		Expect(k8sClient.List(ctx, managers, client.InNamespace(operatorNamespace),
			client.MatchingLabels{"control-plane": "controller-manager"})).To(Succeed())
		Expect(managers.Items).NotTo(BeEmpty())
		keepLogs(managers.Items)
		for i := range managers.Items {
			Expect(k8sClient.Delete(ctx, &managers.Items[i], client.GracePeriodSeconds(0))).To(Succeed())
		}

		By("watching the job to the end: one worker, never a second")
		Eventually(func(g Gomega) {
			// A second or replaced worker ends the wait at once; only the phase is waited for.
			if pods := jobPods(ctx, g, tj); len(pods) != 1 || pods[0].UID != worker.UID {
				StopTrying(fmt.Sprintf("job %s has pods %v, want only the first worker %s", tj.Name, uids(pods), worker.UID)).Now()
			}
			g.Expect(getJob(ctx, g, tj).Status.Phase).To(Equal(kubetrainv1alpha1.PhaseSucceeded))
		}).WithTimeout(trainTimeout).WithPolling(poll).Should(Succeed(), "job %s to succeed", tj.Name)
		tj = getJob(ctx, Default, tj)
		Expect(tj.Status.Restarts).To(BeZero())
		Expect(historyEpochs(tj)).To(Equal(seq(1, longEpochs)))

		By("a new manager pod taking over")
		Eventually(func(g Gomega) {
			pods := &corev1.PodList{}
			g.Expect(k8sClient.List(ctx, pods, client.InNamespace(operatorNamespace),
				client.MatchingLabels{"control-plane": "controller-manager"})).To(Succeed())
			g.Expect(pods.Items).To(ContainElement(And(
				Not(WithTransform(func(p corev1.Pod) types.UID { return p.UID }, BeElementOf(uids(managers.Items)))),
				WithTransform(podReady, BeTrue()),
			)))
		}).WithTimeout(2 * time.Minute).WithPolling(poll).Should(Succeed())
	})

	It("stays Pending with the scheduler's reason when it asks for more GPUs than a node has", func(ctx SpecContext) {
		most := int64(0)
		nodes := &corev1.NodeList{}
		Expect(k8sClient.List(ctx, nodes)).To(Succeed())
		for _, n := range nodes.Items {
			q := n.Status.Allocatable[corev1.ResourceName("nvidia.com/gpu")]
			most = max(most, q.Value())
		}
		Expect(most).To(BeNumerically(">=", 1), "the nodes advertise no nvidia.com/gpu")
		tj := createJob(ctx, "too-many-gpus", func(tj *kubetrainv1alpha1.TrainingJob) {
			tj.Spec.Resources.GPUs = int32(most + 1)
		})
		Eventually(func(g Gomega) {
			got := getJob(ctx, g, tj)
			g.Expect(got.Status.Phase).To(Equal(kubetrainv1alpha1.PhasePending))
			c := apimeta.FindStatusCondition(got.Status.Conditions, kubetrainv1alpha1.ConditionReady)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(kubetrainv1alpha1.ReasonUnschedulable))
			g.Expect(c.Message).To(ContainSubstring("Insufficient nvidia.com/gpu"))
		}).WithTimeout(time.Minute).WithPolling(poll).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(getJob(ctx, g, tj).Status.Phase).To(Equal(kubetrainv1alpha1.PhasePending))
		}).WithTimeout(5 * time.Second).WithPolling(poll).Should(Succeed())
	})

	It("rejects an invalid spec at apply, naming the field", func(ctx SpecContext) {
		data, err := os.ReadFile(filepath.Join(repoRoot, sampleFile))
		Expect(err).NotTo(HaveOccurred())
		sampleYAML := strings.Replace(string(data), "name: fashion-mnist", "name: invalid", 1)
		// Edits of the sample's text, as a user makes them.
		for field, edit := range map[string][2]string{
			"spec.hyperparameters.epochs":    {"epochs: 3", "epochs: 0"},
			"spec.hyperparameters.batchSize": {"batchSize: 32", "batchSize: -32"},
			"spec.resources.gpus":            {"gpus: 1", "gpus: -1"},
		} {
			Expect(sampleYAML).To(ContainSubstring(edit[0]))
			file := filepath.Join(GinkgoT().TempDir(), "invalid.yaml")
			Expect(os.WriteFile(file, []byte(strings.Replace(sampleYAML, edit[0], edit[1], 1)), 0o600)).To(Succeed())
			tj := &kubetrainv1alpha1.TrainingJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "invalid"}}
			DeferCleanup(deleteJob, tj)
			out, err := kubectl("apply", "-n", ns, "-f", file)
			Expect(err).To(HaveOccurred(), "kubectl apply accepted %s: %s", edit[1], out)
			Expect(out).To(ContainSubstring(field))
			err = k8sClient.Get(ctx, client.ObjectKeyFromObject(tj), &kubetrainv1alpha1.TrainingJob{})
			Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the invalid job was stored: %v", err)
		}
	})

	It("reports a missing credentials Secret as a condition, not a crash loop, and starts once it exists", func(ctx SpecContext) {
		const secret = "s3-credentials-not-yet"
		tj := createJob(ctx, "missing-secret", func(tj *kubetrainv1alpha1.TrainingJob) {
			tj.Spec.Hyperparameters.Epochs = 1
			tj.Spec.Dataset.CredentialsSecretName = secret
			tj.Spec.Checkpoint.CredentialsSecretName = secret
		})
		Eventually(func(g Gomega) {
			c := apimeta.FindStatusCondition(getJob(ctx, g, tj).Status.Conditions, kubetrainv1alpha1.ConditionStalled)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(c.Reason).To(Equal(kubetrainv1alpha1.ReasonContainerConfig))
			g.Expect(c.Message).To(ContainSubstring(secret))
		}).WithTimeout(time.Minute).WithPolling(poll).Should(Succeed())
		Consistently(func(g Gomega) {
			got := getJob(ctx, g, tj)
			g.Expect(got.Status.Restarts).To(BeZero())
			g.Expect(got.Status.Attempt).To(BeZero())
			pods := jobPods(ctx, g, tj)
			g.Expect(pods).To(HaveLen(1))
			g.Expect(pods[0].Status.Phase).To(Equal(corev1.PodPending))
			for _, cs := range pods[0].Status.ContainerStatuses {
				g.Expect(cs.RestartCount).To(BeZero())
			}
		}).WithTimeout(10 * time.Second).WithPolling(poll).Should(Succeed())

		By("creating the Secret")
		creds := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: s3Secret}, creds)).To(Succeed())
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: secret}, Data: creds.Data,
		})).To(Succeed())
		tj = waitPhase(ctx, tj, kubetrainv1alpha1.PhaseSucceeded)
		Expect(apimeta.IsStatusConditionTrue(tj.Status.Conditions, kubetrainv1alpha1.ConditionStalled)).To(BeFalse())
	})

	It("runs the manager and the workers under the restricted Pod Security Standard", func(ctx SpecContext) {
		for _, name := range []string{operatorNamespace, ns} {
			n := &corev1.Namespace{}
			Expect(k8sClient.Get(ctx, types.NamespacedName{Name: name}, n)).To(Succeed())
			Expect(n.Labels).To(HaveKeyWithValue(enforceLabel, restricted), "namespace %s", name)
		}
		By("the manager running in its namespace")
		managers := &corev1.PodList{}
		Expect(k8sClient.List(ctx, managers, client.InNamespace(operatorNamespace),
			client.MatchingLabels{"control-plane": "controller-manager"})).To(Succeed())
		Expect(managers.Items).To(ContainElement(WithTransform(podReady, BeTrue())))

		By("a worker running in the suite's namespace")
		tj := createJob(ctx, "restricted", func(tj *kubetrainv1alpha1.TrainingJob) {
			tj.Spec.Hyperparameters.Epochs = 1
		})
		waitPhase(ctx, tj, kubetrainv1alpha1.PhaseSucceeded)

		By("the namespace refusing a pod that breaks the standard, so the checks above mean something")
		bad := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "privileged"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "c", Image: "kubetrain/trainer:dev",
				SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
			}}},
		}
		err := k8sClient.Create(ctx, bad, client.DryRunAll)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("violates PodSecurity"))
	})
})

// sample is config/samples' TrainingJob, as a user applies it.
func sample() *kubetrainv1alpha1.TrainingJob {
	data, err := os.ReadFile(filepath.Join(repoRoot, sampleFile))
	Expect(err).NotTo(HaveOccurred())
	tj := &kubetrainv1alpha1.TrainingJob{}
	Expect(yaml.UnmarshalStrict(data, tj)).To(Succeed())
	tj.Namespace = ns
	return tj
}

// createJob creates the sample under another name, changed as mutate says, and deletes it after the spec.
func createJob(ctx context.Context, name string, mutate func(*kubetrainv1alpha1.TrainingJob)) *kubetrainv1alpha1.TrainingJob {
	tj := sample()
	tj.Name = name
	mutate(tj)
	Expect(k8sClient.Create(ctx, tj)).To(Succeed())
	DeferCleanup(deleteJob, tj)
	return tj
}

// deleteJob deletes a job and waits for its pods to go, so that the next spec finds the GPU free.
func deleteJob(ctx SpecContext, tj *kubetrainv1alpha1.TrainingJob) {
	keepJob(ctx, tj)
	Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, tj, client.PropagationPolicy(metav1.DeletePropagationForeground)))).To(Succeed())
	Eventually(func(g Gomega) {
		g.Expect(jobPods(ctx, g, tj)).To(BeEmpty())
	}).WithTimeout(2 * time.Minute).WithPolling(poll).Should(Succeed())
}

func getJob(ctx context.Context, g Gomega, tj *kubetrainv1alpha1.TrainingJob) *kubetrainv1alpha1.TrainingJob {
	got := &kubetrainv1alpha1.TrainingJob{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(tj), got)).To(Succeed())
	return got
}

// waitPhase waits for a job's phase and returns the job as it then is; a job that fails instead
// ends the wait at once, with its conditions.
func waitPhase(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob, phase kubetrainv1alpha1.Phase) *kubetrainv1alpha1.TrainingJob {
	var got *kubetrainv1alpha1.TrainingJob
	Eventually(func(g Gomega) {
		got = getJob(ctx, g, tj)
		if got.Status.Phase == kubetrainv1alpha1.PhaseFailed && phase != kubetrainv1alpha1.PhaseFailed {
			StopTrying(fmt.Sprintf("job %s failed: %+v", tj.Name, got.Status.Conditions)).Now()
		}
		g.Expect(got.Status.Phase).To(Equal(phase))
	}).WithTimeout(trainTimeout).WithPolling(poll).Should(Succeed(), "job %s to reach %s", tj.Name, phase)
	return got
}

// waitCheckpointMidway waits for a running job's first checkpoint while at least two epochs remain,
// and returns it.
func waitCheckpointMidway(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob) kubetrainv1alpha1.CheckpointRef {
	var ck kubetrainv1alpha1.CheckpointRef
	Eventually(func(g Gomega) {
		got := getJob(ctx, g, tj)
		g.Expect(got.Status.Phase).To(Equal(kubetrainv1alpha1.PhaseRunning))
		g.Expect(got.Status.LatestCheckpoint).NotTo(BeNil())
		if got.Status.LatestCheckpoint.Epoch > got.Spec.Hyperparameters.Epochs-2 {
			StopTrying(fmt.Sprintf("job %s trained too fast to be disrupted midway: checkpoint of epoch %d",
				tj.Name, got.Status.LatestCheckpoint.Epoch)).Now()
		}
		ck = *got.Status.LatestCheckpoint
	}).WithTimeout(trainTimeout).WithPolling(poll).Should(Succeed(), "a checkpoint of job %s", tj.Name)
	return ck
}

// expectResumed checks that a job's later attempt started from a checkpoint no older than seen, that
// status and the new worker's arguments name it, and that no epoch up to it was trained again after
// the disruption.
func expectResumed(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob, seen kubetrainv1alpha1.CheckpointRef, disrupted time.Time) {
	from := tj.Status.ResumedFrom
	Expect(from).NotTo(BeNil(), "status.resumedFrom")
	Expect(from.Epoch).To(BeNumerically(">=", seen.Epoch))
	Expect(from.URI).To(ContainSubstring(fmt.Sprintf("/ckpt-%06d-", from.Epoch)))
	Expect(from.Attempt).To(Equal(tj.Status.Attempt))
	GinkgoWriter.Printf("%s: attempt %d resumed from the checkpoint of epoch %d (seen before the disruption: epoch %d)\n",
		tj.Name, tj.Status.Attempt, from.Epoch, seen.Epoch)

	pod := &corev1.Pod{}
	Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: podName(tj, tj.Status.Attempt)}, pod)).To(Succeed())
	Expect(pod.Spec.Containers[0].Args).To(ContainElement("--" + contract.FlagResumeFrom + "=" + from.URI))

	// Epochs reported after the disruption all come after the checkpoint: nothing was trained from
	// scratch. The slack covers status times in whole seconds and an epoch the old worker finished
	// before it saw SIGTERM; a new worker takes longer than that to start and train an epoch.
	later := 0
	for _, m := range tj.Status.History {
		if m.Time != nil && m.Time.After(disrupted.Add(3*time.Second)) {
			Expect(m.Epoch).To(BeNumerically(">", from.Epoch), "epoch %d reported at %s, after the disruption", m.Epoch, m.Time)
			later++
		}
	}
	Expect(later).To(BeNumerically(">=", 1), "epochs trained after resuming")
	Expect(historyEpochs(tj)).To(Equal(seq(1, tj.Spec.Hyperparameters.Epochs)))
}

// expectCheckpointsInBucket reads every checkpoint of a job back from the bucket, verifying each
// object against its manifest, and matches status to the newest.
func expectCheckpointsInBucket(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob) {
	b, err := blob.Open(ctx, reachable(tj.Spec.Checkpoint.URI))
	Expect(err).NotTo(HaveOccurred())
	defer b.Close()
	prefix, err := contract.JobPrefix(tj.Namespace, tj.Name, string(tj.UID), 0)
	Expect(err).NotTo(HaveOccurred())
	entries, err := checkpoint.List(ctx, b, prefix)
	Expect(err).NotTo(HaveOccurred())
	Expect(entries).NotTo(BeEmpty(), "checkpoints under %s", prefix)
	Expect(len(entries)).To(BeNumerically("<=", tj.Spec.Checkpoint.Keep), "pruned to spec.checkpoint.keep")
	Expect(entries[0].Epoch).To(Equal(int(tj.Spec.Hyperparameters.Epochs)))
	for _, e := range entries {
		m, objects, err := checkpoint.Read(ctx, b, e.Key, checkpoint.DefaultMaxBytes)
		Expect(err).NotTo(HaveOccurred(), "checkpoint %s", e.Key)
		Expect(m.Epoch).To(Equal(e.Epoch))
		Expect(objects).NotTo(BeEmpty())
	}
	latest := tj.Status.LatestCheckpoint
	Expect(latest).NotTo(BeNil())
	Expect(uriPath(latest.URI)).To(HaveSuffix("/"+entries[0].Key), "status.latestCheckpoint is the newest in the bucket")
	Expect(tj.Status.ModelURI).NotTo(BeEmpty())
	Expect(uriPath(tj.Status.ModelURI)).To(HaveSuffix("/" + entries[0].Key))
	GinkgoWriter.Printf("%s: %d checkpoints verified in the bucket, newest %s\n", tj.Name, len(entries), entries[0].Key)
}

func uriPath(uri string) string {
	path, _, _ := strings.Cut(uri, "?")
	return path
}

func setSuspend(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob, suspend bool) {
	patch := []byte(fmt.Sprintf(`{"spec":{"runPolicy":{"suspend":%t}}}`, suspend))
	Expect(k8sClient.Patch(ctx, tj, client.RawPatch(types.MergePatchType, patch))).To(Succeed())
}

// jobPods are the job's pods, found by label.
func jobPods(ctx context.Context, g Gomega, tj *kubetrainv1alpha1.TrainingJob) []corev1.Pod {
	pods := &corev1.PodList{}
	g.Expect(k8sClient.List(ctx, pods, client.InNamespace(tj.Namespace),
		client.MatchingLabels{kubetrainv1alpha1.LabelJobName: tj.Name})).To(Succeed())
	return pods.Items
}

// podName is the worker of rank 0 in an attempt, as the controller names it.
func podName(tj *kubetrainv1alpha1.TrainingJob, attempt int32) string {
	return fmt.Sprintf("%s-w0-a%d", tj.Name, attempt)
}

func historyEpochs(tj *kubetrainv1alpha1.TrainingJob) []int32 {
	var epochs []int32
	for _, m := range tj.Status.History {
		epochs = append(epochs, m.Epoch)
	}
	slices.Sort(epochs)
	return slices.Compact(epochs)
}

func seq(from, to int32) []int32 {
	var s []int32
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func podReady(p corev1.Pod) bool {
	return slices.ContainsFunc(p.Status.Conditions, func(c corev1.PodCondition) bool {
		return c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue
	})
}

func uids(pods []corev1.Pod) []types.UID {
	var out []types.UID
	for _, p := range pods {
		out = append(out, p.UID)
	}
	return out
}
