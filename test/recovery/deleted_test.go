package recovery

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

// Issue 12, scenario 6: jobs deleted while the manager is down.
//
// In a cluster the garbage collector deletes a deleted job's pods and Service: they carry the job
// as their controlling owner. With foreground propagation the API server keeps the job, marked
// deleted, under the garbage collector's foregroundDeletion finalizer until those are gone. envtest
// runs no garbage collector, so this spec asserts what the manager owns: it sets no finalizer of its
// own (a job deleted while it is down is gone at once, and one deleted in the foreground carries
// only the collector's finalizer), it creates and writes nothing for a deleted job, and everything
// it created is owned by its job, so the collector finds it.
var _ = Describe("Jobs deleted while the manager is down", func() {
	It("leave no finalizer and no orphan, and get nothing new from the restarted manager", func(ctx context.Context) {
		ns := newNamespace(ctx)
		run := startManager(suiteOptions())
		DeferCleanup(func() { run.stop() })

		background := []*kubetrainv1alpha1.TrainingJob{
			createJob(ctx, newJob("solo", ns)),
			createJob(ctx, newJob("pair", ns).Workers(2)),
		}
		foreground := createJob(ctx, newJob("fg", ns).Workers(2))
		jobs := append([]*kubetrainv1alpha1.TrainingJob{foreground}, background...)
		for _, tj := range jobs {
			for _, pod := range waitPods(ctx, tj, 0) {
				setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Phase(corev1.PodRunning) })
			}
			expectPhase(ctx, tj, kubetrainv1alpha1.PhaseRunning)
		}
		run.stop()
		podsBefore := objectUIDs(ctx, ns, &corev1.PodList{})
		servicesBefore := objectUIDs(ctx, ns, &corev1.ServiceList{})
		Expect(podsBefore).To(HaveLen(5))
		Expect(servicesBefore).To(HaveLen(2), "the Services of the jobs of two workers")

		for _, tj := range background {
			Expect(k8sClient.Delete(ctx, tj)).To(Succeed())
		}
		Expect(k8sClient.Delete(ctx, foreground, client.PropagationPolicy(metav1.DeletePropagationForeground))).To(Succeed())

		before := reconcileCount()
		run = startManager(suiteOptions())
		// The first list has the deleted jobs' pods; each sends its job to the controller.
		waitReconciled(before, len(jobs))
		Consistently(func(g Gomega) {
			for _, tj := range background {
				err := k8sClient.Get(ctx, client.ObjectKeyFromObject(tj), &kubetrainv1alpha1.TrainingJob{})
				g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "job %s: %v", tj.Name, err)
			}
			got := getJob(ctx, g, foreground)
			g.Expect(got.DeletionTimestamp).NotTo(BeNil())
			g.Expect(got.Finalizers).To(ConsistOf(metav1.FinalizerDeleteDependents),
				"only the garbage collector's finalizer holds a job deleted in the foreground")
			// The manager neither created nor deleted a pod or Service: deleting them is the
			// garbage collector's work.
			g.Expect(objectUIDs(ctx, ns, &corev1.PodList{})).To(Equal(podsBefore))
			g.Expect(objectUIDs(ctx, ns, &corev1.ServiceList{})).To(Equal(servicesBefore))
		}).WithTimeout(consistently).WithPolling(interval).Should(Succeed())
		run.stop()
		Expect(run.log.writesIn(ns)).To(BeEmpty(), "the restarted manager wrote for deleted jobs")

		// Nothing is orphaned: every pod and Service left is controlled by its deleted job and
		// blocks that job's foreground deletion, so the garbage collector collects it.
		owners := map[types.UID]string{}
		for _, tj := range jobs {
			owners[tj.UID] = tj.Name
		}
		var pods corev1.PodList
		Expect(k8sClient.List(ctx, &pods, client.InNamespace(ns))).To(Succeed())
		var svcs corev1.ServiceList
		Expect(k8sClient.List(ctx, &svcs, client.InNamespace(ns))).To(Succeed())
		var objs []client.Object
		for i := range pods.Items {
			objs = append(objs, &pods.Items[i])
		}
		for i := range svcs.Items {
			objs = append(objs, &svcs.Items[i])
		}
		for _, obj := range objs {
			ref := metav1.GetControllerOf(obj)
			Expect(ref).NotTo(BeNil(), "%s has no controlling owner", obj.GetName())
			Expect(owners).To(HaveKey(ref.UID), "%s is controlled by %s, not one of the deleted jobs", obj.GetName(), ref.UID)
			Expect(ref.BlockOwnerDeletion).To(HaveValue(BeTrue()), "%s does not hold its job's foreground deletion", obj.GetName())
		}

		// What the garbage collector would do next: delete the dependents, then drop its finalizer.
		collectGarbage(ctx, ns)
		got := getJob(ctx, Default, foreground)
		got.Finalizers = nil
		Expect(k8sClient.Update(ctx, got)).To(Succeed())
		Eventually(func() error {
			return k8sClient.Get(ctx, client.ObjectKeyFromObject(foreground), &kubetrainv1alpha1.TrainingJob{})
		}).WithTimeout(timeout).WithPolling(interval).Should(Satisfy(apierrors.IsNotFound))
	})
})

// objectUIDs maps the names of a namespace's objects of a kind (a list type) to their UIDs.
func objectUIDs(ctx context.Context, ns string, list client.ObjectList) map[string]types.UID {
	Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
	out := map[string]types.UID{}
	Expect(meta.EachListItem(list, func(o runtime.Object) error {
		obj := o.(client.Object)
		out[obj.GetName()] = obj.GetUID()
		return nil
	})).To(Succeed())
	return out
}
