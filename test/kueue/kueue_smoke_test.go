package kueue

import (
	"context"
	"encoding/json"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	kueuev1beta2 "sigs.k8s.io/kueue/apis/kueue/v1beta2"
)

// The smoke test: Kueue itself, with Workloads written by hand, before any TrainingJob is
// involved. If it fails, the harness or Kueue's configuration is wrong, not kubetrain.
var _ = Describe("Kueue in the suite", func() {
	It("admits Workloads within the ClusterQueue's quota, and the next one when a Workload finishes", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		cq := newQueues(ctx, ns, "team-a", "1")

		first := gpuWorkload("first", ns, "team-a", 1)
		Expect(k8sClient.Create(ctx, first)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(first), first)).To(Succeed())
			g.Expect(apimeta.IsStatusConditionTrue(first.Status.Conditions, kueuev1beta2.WorkloadQuotaReserved)).To(BeTrue(),
				"conditions: %v", first.Status.Conditions)
			g.Expect(apimeta.IsStatusConditionTrue(first.Status.Conditions, kueuev1beta2.WorkloadAdmitted)).To(BeTrue(),
				"conditions: %v", first.Status.Conditions)
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		Expect(first.Status.Admission).NotTo(BeNil())
		Expect(string(first.Status.Admission.ClusterQueue)).To(Equal(cq.Name))
		Expect(first.Status.Admission.PodSetAssignments).To(HaveLen(1))
		Expect(first.Status.Admission.PodSetAssignments[0].Name).To(BeEquivalentTo("workers"))
		Expect(first.Status.Admission.PodSetAssignments[0].Flavors).To(HaveKeyWithValue(gpuResource, kueuev1beta2.ResourceFlavorReference(gpuFlavor)))

		// The ClusterQueue has one GPU, and the first Workload holds it.
		second := gpuWorkload("second", ns, "team-a", 1)
		Expect(k8sClient.Create(ctx, second)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(second), second)).To(Succeed())
			c := apimeta.FindStatusCondition(second.Status.Conditions, kueuev1beta2.WorkloadQuotaReserved)
			g.Expect(c).NotTo(BeNil(), "conditions: %v", second.Status.Conditions)
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal("Pending"))
			g.Expect(c.Message).To(ContainSubstring("insufficient unused quota for nvidia.com/gpu in flavor gpu"))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		Expect(second.Status.Admission).To(BeNil())
		Expect(apimeta.IsStatusConditionTrue(second.Status.Conditions, kueuev1beta2.WorkloadAdmitted)).To(BeFalse())

		// As a job integration reports its job's end; Kueue then releases the quota.
		finishWorkload(ctx, first)
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(second), second)).To(Succeed())
			g.Expect(apimeta.IsStatusConditionTrue(second.Status.Conditions, kueuev1beta2.WorkloadAdmitted)).To(BeTrue(),
				"conditions: %v", second.Status.Conditions)
			g.Expect(second.Status.Admission).NotTo(BeNil())
			g.Expect(second.Status.Admission.PodSetAssignments[0].Flavors).To(HaveKeyWithValue(gpuResource, kueuev1beta2.ResourceFlavorReference(gpuFlavor)))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	})
})

// gpuWorkload is a Workload owned by nothing, in queue, with one pod set "workers" of one pod
// that asks for gpus GPUs.
func gpuWorkload(name, namespace, queue string, gpus int64) *kueuev1beta2.Workload {
	gpu := *resource.NewQuantity(gpus, resource.DecimalSI)
	return &kueuev1beta2.Workload{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: kueuev1beta2.WorkloadSpec{
			QueueName: kueuev1beta2.LocalQueueName(queue),
			PodSets: []kueuev1beta2.PodSet{{
				Name:  "workers",
				Count: 1,
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{
						Name:  "trainer",
						Image: "kubetrain/trainer:test",
						// An extended resource's request must equal its limit.
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{gpuResource: gpu},
							Limits:   corev1.ResourceList{gpuResource: gpu},
						},
					}},
				}},
			}},
		},
	}
}

// finishFieldManager owns the Finished condition the suite writes, as a job integration would
// under its own name.
const finishFieldManager = "kubetrain-kueue-smoke"

// finishWorkload marks wl Finished (Succeeded) with a server-side apply of that one condition:
// conditions are a map keyed by type, so the apply leaves Kueue's conditions alone.
func finishWorkload(ctx context.Context, wl *kueuev1beta2.Workload) {
	body, err := json.Marshal(map[string]any{
		"apiVersion": kueuev1beta2.GroupVersion.String(),
		"kind":       "Workload",
		"metadata":   map[string]any{"name": wl.Name, "namespace": wl.Namespace},
		"status": map[string]any{"conditions": []metav1.Condition{{
			Type:               kueuev1beta2.WorkloadFinished,
			Status:             metav1.ConditionTrue,
			Reason:             kueuev1beta2.WorkloadFinishedReasonSucceeded,
			Message:            "the job finished",
			LastTransitionTime: metav1.NewTime(time.Now()),
			ObservedGeneration: wl.Generation,
		}}},
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(k8sClient.Status().Patch(ctx, wl, client.RawPatch(types.ApplyPatchType, body),
		client.FieldOwner(finishFieldManager), client.ForceOwnership)).To(Succeed())
}
