package controllers

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	kueuev1beta2 "sigs.k8s.io/kueue/apis/kueue/v1beta2"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

func queued(tj *testutil.TrainingJobWrapper) *testutil.TrainingJobWrapper {
	tj.Labels = map[string]string{KueueQueueNameLabel: "team-a"}
	return tj
}

// A job in a queue runs only while Kueue admits it, whatever spec.runPolicy.suspend says: the
// KueueReconciler may not have suspended it yet when the controller first sees it.
func TestQueuedJobWaitsForAdmission(t *testing.T) {
	tj := queued(testutil.MakeTrainingJob("a", "ns")).Obj()
	waiting := &queueAdmission{message: "waiting in Kueue LocalQueue team-a: insufficient quota"}
	p := planQueuedJob(tj, nil, waiting, testNow, testCfg)
	got := summarize(p)
	want := planSummary{Phase: kubetrainv1alpha1.PhaseSuspended, Events: []string{"Normal/Queued"},
		Conditions: conds("False/Queued", asExpected, asExpected, "Suspended", "True/Queued")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("a job Kueue has not admitted (-want +got):\n%s", diff)
	}
	for _, typ := range []string{kubetrainv1alpha1.ConditionSuspended, kubetrainv1alpha1.ConditionReady} {
		if c := apimeta.FindStatusCondition(p.status.Conditions, typ); c == nil || c.Message != waiting.message {
			t.Errorf("the %s condition does not say why the job waits: %+v", typ, c)
		}
	}

	admitted := &queueAdmission{admitted: true, nodeSelector: map[string]string{"pool": "gpu"}}
	p = planQueuedJob(tj, nil, admitted, testNow, testCfg)
	if !p.createWorkers || p.admission != admitted {
		t.Fatalf("an admitted job does not create its workers with the admission: %+v", summarize(p))
	}
}

// An eviction ends the attempt the way a suspension does: the workers stop, nothing counts as a
// failure or a disruption, and the next attempt resumes from the latest checkpoint.
func TestEvictionEndsTheAttemptLikeASuspension(t *testing.T) {
	tj := queued(testutil.MakeTrainingJob("a", "ns")).Workers(2).Status(started(kubetrainv1alpha1.PhaseRunning, 0)).Obj()
	pods := []*corev1.Pod{
		testutil.MakeWorkerPod(tj, 0, 0).Phase(corev1.PodRunning).Obj(),
		testutil.MakeWorkerPod(tj, 1, 0).Phase(corev1.PodRunning).Obj(),
	}
	p := planQueuedJob(tj, pods, &queueAdmission{message: "evicted by Kueue (InactiveWorkload): deactivated"}, testNow, testCfg)
	got := summarize(p)
	if got.Phase != kubetrainv1alpha1.PhaseSuspended || len(got.DeletePods) != 2 || got.Attempt != 1 ||
		got.Failures != 0 || got.Disruptions != 0 || got.Restarts != 0 || got.CreateWorkers {
		t.Fatalf("an evicted job: %+v", got)
	}
}

func TestAdmissionAppliesToWorkerPods(t *testing.T) {
	tj := testutil.MakeTrainingJob("a", "ns").GPUs(1).Obj()
	tj.Spec.Template = &kubetrainv1alpha1.WorkerTemplate{NodeSelector: map[string]string{"zone": "a", "pool": "any"}}
	pod := constructWorkerPod(tj, 0, testCfg)
	a := &queueAdmission{admitted: true, nodeSelector: map[string]string{"pool": "gpu"},
		tolerations: []corev1.Toleration{{Key: "spot", Operator: corev1.TolerationOpExists}},
		labels:      map[string]string{kueuePodSetLabel: workersPodSet}}
	a.applyTo(pod)
	if diff := cmp.Diff(map[string]string{"zone": "a", "pool": "gpu"}, pod.Spec.NodeSelector); diff != "" {
		t.Errorf("node selector (-want +got):\n%s", diff)
	}
	if n := len(pod.Spec.Tolerations); n != 2 || pod.Spec.Tolerations[1].Key != "spot" {
		t.Errorf("tolerations: want the GPU one and the flavor's, got %+v", pod.Spec.Tolerations)
	}
	if pod.Labels[kueuePodSetLabel] != workersPodSet || pod.Labels[kubetrainv1alpha1.LabelRank] != "0" {
		t.Errorf("labels: %v", pod.Labels)
	}
	if tj.Spec.Template.NodeSelector["pool"] != "any" {
		t.Errorf("applying an admission changed the job's own node selector: %v", tj.Spec.Template.NodeSelector)
	}
	var none *queueAdmission
	plain := constructWorkerPod(tj, 0, testCfg)
	none.applyTo(plain)
	if plain.Spec.NodeSelector["pool"] != "any" {
		t.Errorf("no admission changed the pod: %v", plain.Spec.NodeSelector)
	}
}

// The Workload stands for the job's workers: their number and what each asks for; a change to
// either is a new Workload.
func TestWorkloadMatchesTheJob(t *testing.T) {
	tj := queued(testutil.MakeTrainingJob("a", "ns")).Workers(2).GPUs(1).Obj()
	tj.Spec.Resources.CPU = ptrQuantity("2")
	wl := constructWorkload(tj, testCfg)
	if wl.Spec.QueueName != "team-a" || len(wl.Spec.PodSets) != 1 || wl.Spec.PodSets[0].Count != 2 {
		t.Fatalf("workload: %+v", wl.Spec)
	}
	req := wl.Spec.PodSets[0].Template.Spec.Containers[0].Resources.Requests
	if req.Name("nvidia.com/gpu", resource.DecimalSI).Value() != 1 || req.Cpu().MilliValue() != 2000 {
		t.Errorf("requests: %v", req)
	}
	// What the API server gives back: quantities in canonical form, empty lists dropped.
	stored := wl.DeepCopy()
	stored.Spec.PodSets[0].Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("2000m")
	if !podSetsMatch(workerPodSets(tj, testCfg), stored.Spec.PodSets) {
		t.Errorf("a stored copy of the job's workload does not match it")
	}
	more := tj.DeepCopy()
	more.Spec.Workers = 3
	if podSetsMatch(workerPodSets(more, testCfg), stored.Spec.PodSets) {
		t.Errorf("a workload for 2 workers matches a job of 3")
	}
	bigger := tj.DeepCopy()
	bigger.Spec.Resources.GPUs = 2
	if podSetsMatch(workerPodSets(bigger, testCfg), stored.Spec.PodSets) {
		t.Errorf("a workload for 1 GPU per worker matches a job of 2")
	}
	other := tj.DeepCopy()
	other.UID = "uid-other"
	if workloadName(other) == workloadName(tj) {
		t.Errorf("a job created again under the same name shares its Workload's name: %s", workloadName(tj))
	}
}

func TestAdmissionOfAWorkload(t *testing.T) {
	s := runtime.NewScheme()
	if err := kueuev1beta2.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	flavor := &kueuev1beta2.ResourceFlavor{ObjectMeta: metav1.ObjectMeta{Name: "gpu"},
		Spec: kueuev1beta2.ResourceFlavorSpec{NodeLabels: map[string]string{"pool": "gpu"},
			Tolerations: []corev1.Toleration{{Key: "spot", Operator: corev1.TolerationOpExists}}}}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(flavor).Build()
	wl := &kueuev1beta2.Workload{Spec: kueuev1beta2.WorkloadSpec{QueueName: "team-a"}}
	wl.Status.Conditions = []metav1.Condition{{Type: kueuev1beta2.WorkloadQuotaReserved, Status: metav1.ConditionFalse,
		Reason: "Pending", Message: "couldn't assign flavors to pod set workers: insufficient quota"}}
	a, err := admissionOf(context.Background(), c, wl)
	if err != nil || a.admitted || a.message != "waiting in Kueue LocalQueue team-a: couldn't assign flavors to pod set workers: insufficient quota" {
		t.Fatalf("pending workload: %+v, %v", a, err)
	}
	wl.Status.Admission = &kueuev1beta2.Admission{ClusterQueue: "gpus", PodSetAssignments: []kueuev1beta2.PodSetAssignment{{
		Name: workersPodSet, Flavors: map[corev1.ResourceName]kueuev1beta2.ResourceFlavorReference{"nvidia.com/gpu": "gpu", "cpu": "gpu"}}}}
	wl.Status.Conditions = []metav1.Condition{
		{Type: kueuev1beta2.WorkloadQuotaReserved, Status: metav1.ConditionTrue, Reason: "QuotaReserved"},
		{Type: kueuev1beta2.WorkloadAdmitted, Status: metav1.ConditionTrue, Reason: "Admitted"},
	}
	a, err = admissionOf(context.Background(), c, wl)
	if err != nil || !a.admitted || a.nodeSelector["pool"] != "gpu" || len(a.tolerations) != 1 ||
		a.labels[kueueClusterQueueLabel] != "gpus" || a.labels[kueueLocalQueueLabel] != "team-a" {
		t.Fatalf("admitted workload: %+v, %v", a, err)
	}
	wl.Status.Conditions = append(wl.Status.Conditions, metav1.Condition{Type: kueuev1beta2.WorkloadEvicted,
		Status: metav1.ConditionTrue, Reason: "Preempted", Message: "preempted by a higher-priority workload"})
	if a, err = admissionOf(context.Background(), c, wl); err != nil || a.admitted {
		t.Fatalf("evicted workload still admitted: %+v, %v", a, err)
	}
}

func ptrQuantity(s string) *resource.Quantity {
	q := resource.MustParse(s)
	return &q
}
