package controllers

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

var (
	testNow   = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	testCfg   = Config{TrainerImage: "trainer:test", BackoffBase: 10 * time.Second, BackoffMax: 5 * time.Minute, TerminationGracePeriodSeconds: 30}
	minuteAgo = metav1.NewTime(testNow.Add(-time.Minute))
)

// planSummary is what a test compares of a plan: the decisions, not every timestamp.
type planSummary struct {
	Phase                   kubetrainv1alpha1.Phase
	Attempt, Restarts       int32
	Failures, Disruptions   int32
	Workers                 kubetrainv1alpha1.WorkerCounts
	Started, AttemptStarted bool
	Completed               bool
	RestartAfter            time.Duration
	CreateWorkers           bool
	DeletePods              []string
	DeleteJob               bool
	RequeueAfter            time.Duration
	Events                  []string
	Conditions              map[string]string // type -> "Status/Reason"
}

func summarize(p plan) planSummary {
	st := p.status
	s := planSummary{
		Phase: st.Phase, Attempt: st.Attempt, Restarts: st.Restarts, Failures: st.Failures, Disruptions: st.Disruptions,
		Workers: st.Workers, Started: st.StartTime != nil, AttemptStarted: st.AttemptStartTime != nil,
		Completed: st.CompletionTime != nil, CreateWorkers: p.createWorkers, DeleteJob: p.deleteJob,
		RequeueAfter: p.requeueAfter, Conditions: map[string]string{},
	}
	// Ready says how many workers run, out of how many: checked here for every case, then left out.
	if r := st.Workers.Ready; r != "" && !strings.HasPrefix(r, fmt.Sprintf("%d/", st.Workers.Running)) {
		s.Workers.Ready = "does not match the running workers: " + r
	} else {
		s.Workers.Ready = ""
	}
	if st.RestartAfter != nil {
		s.RestartAfter = st.RestartAfter.Sub(testNow)
	}
	for _, pod := range p.deletePods {
		s.DeletePods = append(s.DeletePods, pod.Name)
	}
	sort.Strings(s.DeletePods)
	for _, e := range p.events {
		s.Events = append(s.Events, e.eventType+"/"+e.reason)
	}
	for _, c := range st.Conditions {
		s.Conditions[c.Type] = string(c.Status) + "/" + c.Reason
	}
	return s
}

// health conditions as "Ready, Reconciling, Stalled" with reasons.
func conds(ready, reconciling, stalled string, extra ...string) map[string]string {
	m := map[string]string{"Ready": ready, "Reconciling": reconciling, "Stalled": stalled}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

const asExpected = "False/AsExpected"

// started is the status of a job whose attempt's pods were created a minute ago.
func started(phase kubetrainv1alpha1.Phase, attempt int32) kubetrainv1alpha1.TrainingJobStatus {
	return kubetrainv1alpha1.TrainingJobStatus{Phase: phase, Attempt: attempt, StartTime: &minuteAgo, AttemptStartTime: &minuteAgo}
}

func TestPlanJob(t *testing.T) {
	job := func() *testutil.TrainingJobWrapper { return testutil.MakeTrainingJob("a", "ns") }
	pod := func(j *testutil.TrainingJobWrapper, attempt int32) *testutil.PodWrapper {
		return testutil.MakeWorkerPod(j.Obj(), 0, attempt)
	}
	withStatus := func(st kubetrainv1alpha1.TrainingJobStatus) *testutil.TrainingJobWrapper {
		return job().Status(st)
	}
	failedOnce := started(kubetrainv1alpha1.PhaseRunning, 0)
	backoffDone := kubetrainv1alpha1.TrainingJobStatus{Phase: kubetrainv1alpha1.PhaseRestarting, Attempt: 1, Restarts: 1, Failures: 1,
		StartTime: &minuteAgo, RestartAfter: &minuteAgo}
	backoffWaiting := backoffDone
	future := metav1.NewTime(testNow.Add(7 * time.Second))
	backoffWaiting.RestartAfter = &future
	exhausted := started(kubetrainv1alpha1.PhaseRunning, 3)
	exhausted.Failures = 3
	succeeded := kubetrainv1alpha1.TrainingJobStatus{Phase: kubetrainv1alpha1.PhaseSucceeded, StartTime: &minuteAgo, CompletionTime: &minuteAgo}
	failed := succeeded
	failed.Phase = kubetrainv1alpha1.PhaseFailed
	suspended := kubetrainv1alpha1.TrainingJobStatus{Phase: kubetrainv1alpha1.PhaseSuspended, Attempt: 1}

	cases := map[string]struct {
		job  *testutil.TrainingJobWrapper
		pods func(j *testutil.TrainingJobWrapper) []*corev1.Pod
		want planSummary
	}{
		"new job creates its workers": {
			job: job(),
			want: planSummary{Phase: kubetrainv1alpha1.PhasePending, Started: true, AttemptStarted: true, CreateWorkers: true,
				Workers: kubetrainv1alpha1.WorkerCounts{Pending: 1}, Events: []string{"Normal/PodsCreated"},
				Conditions: conds("False/PodsPending", asExpected, asExpected)},
		},
		"new suspended job creates nothing": {
			job: job().Suspend(true),
			want: planSummary{Phase: kubetrainv1alpha1.PhaseSuspended, Events: []string{"Normal/Suspended"},
				Conditions: conds("False/Suspended", asExpected, asExpected, "Suspended", "True/Suspended")},
		},
		"pending worker": {
			job:  withStatus(started(kubetrainv1alpha1.PhasePending, 0)),
			pods: func(j *testutil.TrainingJobWrapper) []*corev1.Pod { return []*corev1.Pod{pod(j, 0).Obj()} },
			want: planSummary{Phase: kubetrainv1alpha1.PhasePending, Started: true, AttemptStarted: true,
				Workers:    kubetrainv1alpha1.WorkerCounts{Pending: 1},
				Conditions: conds("False/PodsPending", asExpected, asExpected)},
		},
		"unschedulable worker shows the scheduler's reason": {
			job: withStatus(started(kubetrainv1alpha1.PhasePending, 0)),
			pods: func(j *testutil.TrainingJobWrapper) []*corev1.Pod {
				return []*corev1.Pod{pod(j, 0).Unschedulable("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.").Obj()}
			},
			want: planSummary{Phase: kubetrainv1alpha1.PhasePending, Started: true, AttemptStarted: true,
				Workers:    kubetrainv1alpha1.WorkerCounts{Pending: 1},
				Conditions: conds("False/Unschedulable", asExpected, asExpected)},
		},
		"missing secret stalls the job": {
			job: withStatus(started(kubetrainv1alpha1.PhasePending, 0)),
			pods: func(j *testutil.TrainingJobWrapper) []*corev1.Pod {
				return []*corev1.Pod{pod(j, 0).Waiting("CreateContainerConfigError", `secret "s3" not found`).Obj()}
			},
			want: planSummary{Phase: kubetrainv1alpha1.PhasePending, Started: true, AttemptStarted: true,
				Workers: kubetrainv1alpha1.WorkerCounts{Pending: 1}, Events: []string{"Warning/ContainerConfigError"},
				Conditions: conds("False/ContainerConfigError", asExpected, "True/ContainerConfigError")},
		},
		"worker starts running": {
			job: withStatus(started(kubetrainv1alpha1.PhasePending, 0)),
			pods: func(j *testutil.TrainingJobWrapper) []*corev1.Pod {
				return []*corev1.Pod{pod(j, 0).Phase(corev1.PodRunning).Obj()}
			},
			want: planSummary{Phase: kubetrainv1alpha1.PhaseRunning, Started: true, AttemptStarted: true,
				Workers: kubetrainv1alpha1.WorkerCounts{Running: 1}, Events: []string{"Normal/Running"},
				Conditions: conds("True/Running", asExpected, asExpected)},
		},
		"running worker keeps running, no new event": {
			job: withStatus(started(kubetrainv1alpha1.PhaseRunning, 0)),
			pods: func(j *testutil.TrainingJobWrapper) []*corev1.Pod {
				return []*corev1.Pod{pod(j, 0).Phase(corev1.PodRunning).Obj()}
			},
			want: planSummary{Phase: kubetrainv1alpha1.PhaseRunning, Started: true, AttemptStarted: true,
				Workers:    kubetrainv1alpha1.WorkerCounts{Running: 1},
				Conditions: conds("True/Running", asExpected, asExpected)},
		},
		"worker succeeds": {
			job: withStatus(started(kubetrainv1alpha1.PhaseRunning, 0)),
			pods: func(j *testutil.TrainingJobWrapper) []*corev1.Pod {
				return []*corev1.Pod{pod(j, 0).Exited(0, "").Obj()}
			},
			want: planSummary{Phase: kubetrainv1alpha1.PhaseSucceeded, Started: true, AttemptStarted: true, Completed: true,
				Workers: kubetrainv1alpha1.WorkerCounts{Succeeded: 1}, Events: []string{"Normal/Succeeded"},
				Conditions: conds("True/Succeeded", asExpected, asExpected, "Succeeded", "True/Succeeded")},
		},
		"retriable failure waits for the backoff": {
			job: withStatus(failedOnce),
			pods: func(j *testutil.TrainingJobWrapper) []*corev1.Pod {
				return []*corev1.Pod{pod(j, 0).Exited(1, "panic").Obj()}
			},
			want: planSummary{Phase: kubetrainv1alpha1.PhaseRestarting, Attempt: 1, Restarts: 1, Failures: 1, Started: true,
				Workers: kubetrainv1alpha1.WorkerCounts{Failed: 1}, RestartAfter: 10 * time.Second, RequeueAfter: 10 * time.Second,
				Events:     []string{"Warning/WorkerFailed"},
				Conditions: conds("False/Backoff", "True/Backoff", asExpected)},
		},
		"backoff still running": {
			job: withStatus(backoffWaiting),
			pods: func(j *testutil.TrainingJobWrapper) []*corev1.Pod {
				return []*corev1.Pod{pod(j, 0).Exited(1, "").Obj()}
			},
			want: planSummary{Phase: kubetrainv1alpha1.PhaseRestarting, Attempt: 1, Restarts: 1, Failures: 1, Started: true,
				RestartAfter: 7 * time.Second, RequeueAfter: 7 * time.Second,
				Conditions: conds("False/Backoff", "True/Backoff", asExpected)},
		},
		"backoff over: the next attempt starts": {
			job: withStatus(backoffDone),
			pods: func(j *testutil.TrainingJobWrapper) []*corev1.Pod {
				return []*corev1.Pod{pod(j, 0).Exited(1, "").Obj()}
			},
			want: planSummary{Phase: kubetrainv1alpha1.PhasePending, Attempt: 1, Restarts: 1, Failures: 1, Started: true,
				AttemptStarted: true, CreateWorkers: true, Workers: kubetrainv1alpha1.WorkerCounts{Pending: 1},
				Events:     []string{"Normal/PodsCreated"},
				Conditions: conds("False/PodsPending", asExpected, asExpected)},
		},
		"failures beyond the backoff limit fail the job": {
			job: withStatus(exhausted),
			pods: func(j *testutil.TrainingJobWrapper) []*corev1.Pod {
				return []*corev1.Pod{pod(j, 3).Exited(137, "").Obj()}
			},
			want: planSummary{Phase: kubetrainv1alpha1.PhaseFailed, Attempt: 3, Failures: 4, Started: true, AttemptStarted: true,
				Completed: true, Workers: kubetrainv1alpha1.WorkerCounts{Failed: 1}, Events: []string{"Warning/BackoffLimitExceeded"},
				Conditions: conds("False/BackoffLimitExceeded", asExpected, "True/BackoffLimitExceeded", "Failed", "True/BackoffLimitExceeded")},
		},
		"invalid configuration is not retried": {
			job: withStatus(failedOnce),
			pods: func(j *testutil.TrainingJobWrapper) []*corev1.Pod {
				return []*corev1.Pod{pod(j, 0).Exited(64, `{"outcome":"InvalidConfig","message":"--epochs: must be at least 1"}`).Obj()}
			},
			want: planSummary{Phase: kubetrainv1alpha1.PhaseFailed, Started: true, AttemptStarted: true, Completed: true,
				Workers: kubetrainv1alpha1.WorkerCounts{Failed: 1}, Events: []string{"Warning/PermanentFailure"},
				Conditions: conds("False/PermanentFailure", asExpected, "True/PermanentFailure", "Failed", "True/PermanentFailure")},
		},
		"eviction is a disruption: restarted at once, not counted as a failure": {
			job: withStatus(failedOnce),
			pods: func(j *testutil.TrainingJobWrapper) []*corev1.Pod {
				return []*corev1.Pod{pod(j, 0).Disrupted("EvictionByEvictionAPI").Obj()}
			},
			want: planSummary{Phase: kubetrainv1alpha1.PhasePending, Attempt: 1, Restarts: 1, Disruptions: 1, Started: true,
				AttemptStarted: true, CreateWorkers: true, Workers: kubetrainv1alpha1.WorkerCounts{Pending: 1},
				Events:     []string{"Warning/WorkerDisrupted", "Normal/PodsCreated"},
				Conditions: conds("False/PodsPending", asExpected, asExpected)},
		},
		"a clean stop on SIGTERM of a pod being deleted is a disruption": {
			job: withStatus(failedOnce),
			pods: func(j *testutil.TrainingJobWrapper) []*corev1.Pod {
				return []*corev1.Pod{pod(j, 0).Exited(143, "").Deleting(testNow).Obj()}
			},
			want: planSummary{Phase: kubetrainv1alpha1.PhasePending, Attempt: 1, Restarts: 1, Disruptions: 1, Started: true,
				AttemptStarted: true, CreateWorkers: true, Workers: kubetrainv1alpha1.WorkerCounts{Pending: 1},
				Events:     []string{"Warning/WorkerDisrupted", "Normal/PodsCreated"},
				Conditions: conds("False/PodsPending", asExpected, asExpected)},
		},
		"a SIGTERM nobody recorded sending is a failure, with a backoff": {
			job: withStatus(failedOnce),
			pods: func(j *testutil.TrainingJobWrapper) []*corev1.Pod {
				return []*corev1.Pod{pod(j, 0).Exited(143, "").Obj()}
			},
			want: planSummary{Phase: kubetrainv1alpha1.PhaseRestarting, Attempt: 1, Restarts: 1, Failures: 1, Started: true,
				Workers: kubetrainv1alpha1.WorkerCounts{Failed: 1}, RestartAfter: 10 * time.Second, RequeueAfter: 10 * time.Second,
				Events:     []string{"Warning/WorkerFailed"},
				Conditions: conds("False/Backoff", "True/Backoff", asExpected)},
		},
		"a deleted worker is a disruption": {
			job: withStatus(failedOnce),
			want: planSummary{Phase: kubetrainv1alpha1.PhasePending, Attempt: 1, Restarts: 1, Disruptions: 1, Started: true,
				AttemptStarted: true, CreateWorkers: true, Workers: kubetrainv1alpha1.WorkerCounts{Pending: 1},
				Events:     []string{"Warning/WorkerDisrupted", "Normal/PodsCreated"},
				Conditions: conds("False/PodsPending", asExpected, asExpected)},
		},
		"a worker being deleted disrupts the attempt, and the next one waits for it to stop": {
			job: withStatus(failedOnce),
			pods: func(j *testutil.TrainingJobWrapper) []*corev1.Pod {
				return []*corev1.Pod{pod(j, 0).Phase(corev1.PodRunning).Deleting(testNow).Obj()}
			},
			want: planSummary{Phase: kubetrainv1alpha1.PhaseRestarting, Attempt: 1, Restarts: 1, Disruptions: 1, Started: true,
				Events:     []string{"Warning/WorkerDisrupted"},
				Conditions: conds("False/Restarting", "True/Restarting", asExpected)},
		},
		"suspending stops the workers and ends the attempt": {
			job: withStatus(started(kubetrainv1alpha1.PhaseRunning, 0)).Suspend(true),
			pods: func(j *testutil.TrainingJobWrapper) []*corev1.Pod {
				return []*corev1.Pod{pod(j, 0).Phase(corev1.PodRunning).Obj()}
			},
			want: planSummary{Phase: kubetrainv1alpha1.PhaseSuspended, Attempt: 1, DeletePods: []string{"a-w0-a0"},
				Events:     []string{"Normal/Suspended"},
				Conditions: conds("False/Suspended", asExpected, asExpected, "Suspended", "True/Suspended")},
		},
		"resuming starts the next attempt": {
			job: withStatus(suspended),
			pods: func(j *testutil.TrainingJobWrapper) []*corev1.Pod {
				return []*corev1.Pod{pod(j, 0).Exited(143, "").Obj()}
			},
			want: planSummary{Phase: kubetrainv1alpha1.PhasePending, Attempt: 1, Started: true, AttemptStarted: true,
				CreateWorkers: true, Workers: kubetrainv1alpha1.WorkerCounts{Pending: 1},
				Events:     []string{"Normal/Resumed", "Normal/PodsCreated"},
				Conditions: conds("False/PodsPending", asExpected, asExpected, "Suspended", "False/Resumed")},
		},
		"resuming waits for the suspended attempt's pods to stop": {
			job: withStatus(suspended),
			pods: func(j *testutil.TrainingJobWrapper) []*corev1.Pod {
				return []*corev1.Pod{pod(j, 0).Phase(corev1.PodRunning).Deleting(testNow).Obj()}
			},
			want: planSummary{Phase: kubetrainv1alpha1.PhaseRestarting, Attempt: 1,
				Conditions: conds("False/Restarting", "True/Restarting", asExpected)},
		},
		"deadline passed fails the job and stops the workers": {
			job: withStatus(started(kubetrainv1alpha1.PhaseRunning, 0)).ActiveDeadlineSeconds(30),
			pods: func(j *testutil.TrainingJobWrapper) []*corev1.Pod {
				return []*corev1.Pod{pod(j, 0).Phase(corev1.PodRunning).Obj()}
			},
			want: planSummary{Phase: kubetrainv1alpha1.PhaseFailed, Started: true, AttemptStarted: true, Completed: true,
				DeletePods: []string{"a-w0-a0"}, Events: []string{"Warning/DeadlineExceeded"},
				Conditions: conds("False/DeadlineExceeded", asExpected, "True/DeadlineExceeded", "Failed", "True/DeadlineExceeded")},
		},
		"deadline ahead asks for a pass when it passes": {
			job: withStatus(started(kubetrainv1alpha1.PhaseRunning, 0)).ActiveDeadlineSeconds(90),
			pods: func(j *testutil.TrainingJobWrapper) []*corev1.Pod {
				return []*corev1.Pod{pod(j, 0).Phase(corev1.PodRunning).Obj()}
			},
			want: planSummary{Phase: kubetrainv1alpha1.PhaseRunning, Started: true, AttemptStarted: true, RequeueAfter: 30 * time.Second,
				Workers:    kubetrainv1alpha1.WorkerCounts{Running: 1},
				Conditions: conds("True/Running", asExpected, asExpected)},
		},
		"a succeeded job stays succeeded when its pods vanish": {
			job:  withStatus(succeeded),
			want: planSummary{Phase: kubetrainv1alpha1.PhaseSucceeded, Started: true, Completed: true, Conditions: map[string]string{}},
		},
		"a failed job stops pods that still run and starts none": {
			job: withStatus(failed),
			pods: func(j *testutil.TrainingJobWrapper) []*corev1.Pod {
				return []*corev1.Pod{pod(j, 0).Phase(corev1.PodRunning).Obj()}
			},
			want: planSummary{Phase: kubetrainv1alpha1.PhaseFailed, Started: true, Completed: true, DeletePods: []string{"a-w0-a0"},
				Conditions: map[string]string{}},
		},
		"TTL passed deletes the job": {
			job:  withStatus(succeeded).TTLSecondsAfterFinished(60),
			want: planSummary{Phase: kubetrainv1alpha1.PhaseSucceeded, Started: true, Completed: true, DeleteJob: true, Conditions: map[string]string{}},
		},
		"TTL ahead asks for a pass when it passes": {
			job: withStatus(succeeded).TTLSecondsAfterFinished(100),
			want: planSummary{Phase: kubetrainv1alpha1.PhaseSucceeded, Started: true, Completed: true, RequeueAfter: 40 * time.Second,
				Conditions: map[string]string{}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var pods []*corev1.Pod
			if tc.pods != nil {
				pods = tc.pods(tc.job)
			}
			got := summarize(planJob(tc.job.Obj(), pods, testNow, testCfg))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("plan (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestPlanStampsGenerationOnConditions(t *testing.T) {
	tj := testutil.MakeTrainingJob("a", "ns").Obj()
	tj.Generation = 7
	p := planJob(tj, nil, testNow, testCfg)
	if p.status.ObservedGeneration != 7 {
		t.Errorf("observedGeneration = %d, want 7", p.status.ObservedGeneration)
	}
	for _, c := range p.status.Conditions {
		if c.ObservedGeneration != 7 {
			t.Errorf("condition %s has observedGeneration %d, want 7", c.Type, c.ObservedGeneration)
		}
	}
}

func TestBackoff(t *testing.T) {
	cfg := Config{BackoffBase: 10 * time.Second, BackoffMax: 60 * time.Second}
	cases := map[int32]time.Duration{1: 10 * time.Second, 2: 20 * time.Second, 3: 40 * time.Second, 4: 60 * time.Second, 30: 60 * time.Second}
	for n, want := range cases {
		if got := backoff(n, cfg); got != want {
			t.Errorf("backoff(%d) = %s, want %s", n, got, want)
		}
	}
}

// While a failed attempt's backoff runs, the Ready condition says why it failed (e.g. a storage
// deadline that passed), and later passes keep saying it.
func TestBackoffSaysWhyTheAttemptFailed(t *testing.T) {
	tj := testutil.MakeTrainingJob("a", "ns").Status(started(kubetrainv1alpha1.PhaseRunning, 0)).Obj()
	why := `{"outcome":"Retriable","message":"dataset s3://d/x: the download did not finish within --fetch-timeout=1h0m0s"}`
	pods := []*corev1.Pod{testutil.MakeWorkerPod(tj, 0, 0).Exited(contract.ExitRetriable, why).Obj()}
	first := planJob(tj, pods, testNow, testCfg)
	ready := apimeta.FindStatusCondition(first.status.Conditions, kubetrainv1alpha1.ConditionReady)
	if ready == nil || ready.Reason != kubetrainv1alpha1.ReasonBackoff ||
		!strings.Contains(ready.Message, "attempt 0 failed") || !strings.Contains(ready.Message, "did not finish within --fetch-timeout=1h0m0s") {
		t.Fatalf("Ready during the backoff: %+v, want the failure's message", ready)
	}
	tj.Status = first.status
	later := planJob(tj, pods, testNow.Add(3*time.Second), testCfg)
	if again := apimeta.FindStatusCondition(later.status.Conditions, kubetrainv1alpha1.ConditionReady); again == nil || again.Message != ready.Message {
		t.Errorf("a later pass during the backoff says %+v, want %q", again, ready.Message)
	}
}

// A pass that reads a stale job (its last status write not seen yet) and finds a worker of the
// ending attempt still stopping does not start the next attempt: attempts never overlap.
func TestNextAttemptWaitsForStoppingWorkers(t *testing.T) {
	tj := testutil.MakeTrainingJob("a", "ns").Workers(3).Status(started(kubetrainv1alpha1.PhaseRunning, 0)).Obj()
	pods := []*corev1.Pod{ // rank 0 already gone, rank 1 preempted, rank 2 in its grace period
		testutil.MakeWorkerPod(tj, 1, 0).Disrupted("PreemptionByScheduler").Obj(),
		testutil.MakeWorkerPod(tj, 2, 0).Phase(corev1.PodRunning).Deleting(testNow.Add(-time.Second)).Obj(),
	}
	p := planJob(tj, pods, testNow, testCfg)
	if p.createWorkers || p.status.Phase != kubetrainv1alpha1.PhaseRestarting {
		t.Fatalf("the next attempt starts while rank 2 stops: %+v", summarize(p))
	}
}

// When one worker of several is deleted, the others lose their peer and exit retriably: the attempt
// counts as disrupted, not failed.
func TestPeersOfADeletedWorkerDoNotCountAsFailed(t *testing.T) {
	tj := testutil.MakeTrainingJob("a", "ns").Workers(2).Status(started(kubetrainv1alpha1.PhaseRunning, 0)).Obj()
	pods := []*corev1.Pod{
		testutil.MakeWorkerPod(tj, 0, 0).Exited(contract.ExitRetriable, `{"message":"collective: rank 0 of 2: receiving from rank 1: EOF"}`).Obj(),
		testutil.MakeWorkerPod(tj, 1, 0).Phase(corev1.PodRunning).Deleting(testNow).Obj(),
	}
	p := planJob(tj, pods, testNow, testCfg)
	if st := p.status; st.Disruptions != 1 || st.Failures != 0 || p.createWorkers || st.RestartAfter != nil {
		t.Fatalf("plan %+v, want one disruption, no failure, and no new worker while rank 1 stops", summarize(p))
	}
}

// A deadline too long for a time.Duration (stored before admission capped it) is no deadline, not
// an immediate failure.
func TestHugeDeadlineDoesNotOverflow(t *testing.T) {
	tj := testutil.MakeTrainingJob("a", "ns").ActiveDeadlineSeconds(9_300_000_000).
		Status(started(kubetrainv1alpha1.PhaseRunning, 0)).Obj()
	p := planJob(tj, []*corev1.Pod{testutil.MakeWorkerPod(tj, 0, 0).Phase(corev1.PodRunning).Obj()}, testNow, testCfg)
	if p.status.Phase != kubetrainv1alpha1.PhaseRunning {
		t.Fatalf("a 9.3e9 s deadline: %+v", summarize(p))
	}
}

// Workers that succeeded while the manager was away make the job Succeeded, even when the manager
// comes back after the job's deadline.
func TestSuccessComesBeforeTheDeadline(t *testing.T) {
	tj := testutil.MakeTrainingJob("a", "ns").ActiveDeadlineSeconds(30).Status(started(kubetrainv1alpha1.PhaseRunning, 0)).Obj()
	p := planJob(tj, []*corev1.Pod{testutil.MakeWorkerPod(tj, 0, 0).Exited(0, `{"outcome":"Succeeded"}`).Obj()}, testNow, testCfg)
	if p.status.Phase != kubetrainv1alpha1.PhaseSucceeded {
		t.Fatalf("a succeeded worker a minute into a 30 s deadline: %+v", summarize(p))
	}
}

// A pass that reads a job being suspended before its own status write landed (a conflict) finds
// its workers stopping or stopped by SIGTERM: that is the suspension, not a disruption.
func TestSuspensionIsNotADisruption(t *testing.T) {
	tj := testutil.MakeTrainingJob("a", "ns").Workers(2).Suspend(true).Status(started(kubetrainv1alpha1.PhaseRunning, 0)).Obj()
	pods := []*corev1.Pod{
		testutil.MakeWorkerPod(tj, 0, 0).Exited(contract.ExitTerminated, `{"outcome":"Terminated"}`).Obj(),
		testutil.MakeWorkerPod(tj, 1, 0).Phase(corev1.PodRunning).Deleting(testNow).Obj(),
	}
	p := planJob(tj, pods, testNow, testCfg)
	if st := p.status; st.Phase != kubetrainv1alpha1.PhaseSuspended || st.Disruptions != 0 || st.Restarts != 0 || st.Failures != 0 {
		t.Fatalf("a suspension counted as something else: %+v", summarize(p))
	}
}

// How a failed worker ended decides whether its attempt is retried at once without counting (a
// disruption) or counts against the backoff limit. What the worker brought on itself counts.
func TestClassifyFailedPod(t *testing.T) {
	tj := testutil.MakeTrainingJob("a", "ns").Obj()
	pod := func() *testutil.PodWrapper { return testutil.MakeWorkerPod(tj, 0, 0) }
	shutdown := pod()
	shutdown.Status.Phase, shutdown.Status.Reason = corev1.PodFailed, "Terminated"
	shutdown.Status.Message = "Pod was terminated in response to imminent node shutdown."
	cases := map[string]struct {
		pod  *corev1.Pod
		want contract.ExitClass
	}{
		"preempted":                         {pod().Disrupted("PreemptionByScheduler").Obj(), contract.ExitClassDisruption},
		"evicted for the node's memory":     {pod().Disrupted("TerminationByKubelet").Evicted("The node was low on resource: memory. ").Obj(), contract.ExitClassDisruption},
		"evicted by an older kubelet":       {pod().Evicted("The node was low on resource: ephemeral-storage. ").Obj(), contract.ExitClassDisruption},
		"node shutdown, older kubelet":      {shutdown.Obj(), contract.ExitClassDisruption},
		"a full scratch volume":             {pod().Evicted(`Usage of EmptyDir volume "scratch" exceeds the limit "1Gi". `).Obj(), contract.ExitClassRetriable},
		"over its ephemeral storage limit":  {pod().Evicted(`Container trainer exceeded its local ephemeral storage limit "1Gi". `).Obj(), contract.ExitClassRetriable},
		"SIGTERM while being deleted":       {pod().Exited(143, "").Deleting(testNow).Obj(), contract.ExitClassDisruption},
		"SIGTERM from nobody known":         {pod().Exited(143, "").Obj(), contract.ExitClassRetriable},
		"SIGTERM of a preempted pod":        {pod().Exited(143, "").Disrupted("PreemptionByScheduler").Obj(), contract.ExitClassDisruption},
		"a configuration error stays fatal": {pod().Exited(contract.ExitInvalidConfig, "").Deleting(testNow).Obj(), contract.ExitClassPermanent},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if got := classifyFailedPod(c.pod); got.class != c.want {
				t.Errorf("class %v (%s: %s), want %v", got.class, got.reason, got.message, c.want)
			}
		})
	}
}

// A worker evicted again and again for filling its own scratch volume ends at the backoff limit:
// no attempt loop that never ends.
func TestSelfInflictedEvictionsEndAtTheBackoffLimit(t *testing.T) {
	st := started(kubetrainv1alpha1.PhaseRunning, 3)
	st.Failures = 3
	tj := testutil.MakeTrainingJob("a", "ns").Status(st).Obj()
	pod := testutil.MakeWorkerPod(tj, 0, 3).Evicted(`Usage of EmptyDir volume "scratch" exceeds the limit "1Gi". `).Obj()
	p := planJob(tj, []*corev1.Pod{pod}, testNow, testCfg)
	if p.status.Phase != kubetrainv1alpha1.PhaseFailed || p.createWorkers {
		t.Fatalf("a fourth eviction for the worker's own usage: %+v", summarize(p))
	}
	if c := apimeta.FindStatusCondition(p.status.Conditions, kubetrainv1alpha1.ConditionFailed); c == nil || !strings.Contains(c.Message, "scratch") {
		t.Errorf("the Failed condition does not say why: %+v", c)
	}
}

// A worker disrupted again and again, each time soon after its attempt started, does not restart at
// once for ever: from the second disruption in a row the next attempt waits, doubling up to the
// cap; an attempt that ran ten minutes starts a new streak.
func TestRepeatedDisruptionsBackOff(t *testing.T) {
	disrupt := func(inARow int32, ranFor time.Duration) plan {
		st := started(kubetrainv1alpha1.PhaseRunning, 4)
		st.Disruptions, st.DisruptionsInARow = 4, inARow
		at := metav1.NewTime(testNow.Add(-ranFor))
		st.AttemptStartTime = &at
		tj := testutil.MakeTrainingJob("a", "ns").Status(st).Obj()
		pod := testutil.MakeWorkerPod(tj, 0, 4).Disrupted("TerminationByKubelet").Evicted("The node was low on resource: memory. ").Obj()
		return planJob(tj, []*corev1.Pod{pod}, testNow, testCfg)
	}
	cases := []struct {
		inARow  int32
		ranFor  time.Duration
		want    time.Duration
		wantRow int32
	}{
		{0, time.Minute, 0, 1},
		{1, time.Minute, 10 * time.Second, 2},
		{2, time.Minute, 20 * time.Second, 3},
		{4, time.Minute, 80 * time.Second, 5},
		{30, time.Minute, 5 * time.Minute, 31},
		{30, 10 * time.Minute, 0, 1},
	}
	for _, c := range cases {
		p := disrupt(c.inARow, c.ranFor)
		st := p.status
		var wait time.Duration
		if st.RestartAfter != nil {
			wait = st.RestartAfter.Sub(testNow)
		}
		if wait != c.want || st.DisruptionsInARow != c.wantRow || st.Disruptions != 5 || st.Failures != 0 || p.createWorkers != (c.want == 0) {
			t.Errorf("after %d disruptions in a row, an attempt of %v disrupted: wait %v, %d in a row, %d disruptions, %d failures, create %v; want %v, %d in a row",
				c.inARow, c.ranFor, wait, st.DisruptionsInARow, st.Disruptions, st.Failures, p.createWorkers, c.want, c.wantRow)
		}
		if c.want > 0 && (st.Phase != kubetrainv1alpha1.PhaseRestarting || p.requeueAfter != c.want) {
			t.Errorf("waiting %v: phase %s, requeue after %v", c.want, st.Phase, p.requeueAfter)
		}
	}
}

// A worker whose image keeps failing to pull makes the job Stalled, with the kubelet's reason, once
// it has failed for the manager's stall time since its pod was scheduled; before that the job is
// Pending and a pass is asked for at that time. A name the kubelet cannot parse stalls at once.
func TestImagePullThatKeepsFailingStalls(t *testing.T) {
	cfg := testCfg
	cfg.ImagePullStall = 3 * time.Minute
	tj := testutil.MakeTrainingJob("a", "ns").Image("registry.example/trainer:typo").Status(started(kubetrainv1alpha1.PhasePending, 0)).Obj()
	pull := func(scheduled time.Duration, reason string) plan {
		pod := testutil.MakeWorkerPod(tj, 0, 0).Waiting(reason, `pull access denied for registry.example/trainer`).
			Scheduled(testNow.Add(-scheduled)).Obj()
		return planJob(tj, []*corev1.Pod{pod}, testNow, cfg)
	}
	stalled := func(p plan) *metav1.Condition {
		return apimeta.FindStatusCondition(p.status.Conditions, kubetrainv1alpha1.ConditionStalled)
	}
	early := pull(time.Minute, "ImagePullBackOff")
	if c := stalled(early); c.Status != metav1.ConditionFalse || early.status.Phase != kubetrainv1alpha1.PhasePending || early.requeueAfter != 2*time.Minute {
		t.Errorf("a minute of failed pulls: stalled %v, phase %s, requeue after %v; want not stalled, a pass in 2m", c.Status, early.status.Phase, early.requeueAfter)
	}
	late := pull(4*time.Minute, "ErrImagePull")
	if c := stalled(late); c.Status != metav1.ConditionTrue || c.Reason != kubetrainv1alpha1.ReasonImagePull ||
		!strings.Contains(c.Message, "pull access denied") || !strings.Contains(c.Message, "ErrImagePull") {
		t.Errorf("four minutes of failed pulls: %+v, want Stalled with the kubelet's reason", c)
	}
	// A later pass says the same: no status write, and so no further pass, for the time alone.
	tj.Status = late.status
	if later := pull(5*time.Minute, "ErrImagePull"); !equality.Semantic.DeepEqual(controllerOwned(&later.status), controllerOwned(&late.status)) {
		t.Errorf("a minute later the status changed: %+v", stalled(later))
	}
	if late.status.Phase != kubetrainv1alpha1.PhasePending || len(late.deletePods) != 0 {
		t.Errorf("a stalled pull ends nothing (the image may yet appear): %+v", summarize(late))
	}
	if c := stalled(pull(0, "InvalidImageName")); c.Status != metav1.ConditionTrue {
		t.Errorf("an invalid image name: %+v, want Stalled at once", c)
	}
}

// A worker that runs but never reports (an image that is not a trainer) fails its attempt at the
// progress deadline, counted from when every worker ran, and its pods are stopped; a report of the
// current attempt, or a custom image with no deadline of its own, keeps it running.
func TestProgressDeadline(t *testing.T) {
	cfg := testCfg
	cfg.ProgressDeadline = 5 * time.Minute
	running := func(since time.Duration) kubetrainv1alpha1.TrainingJobStatus {
		st := started(kubetrainv1alpha1.PhaseRunning, 2)
		st.Conditions = []metav1.Condition{{Type: kubetrainv1alpha1.ConditionReady, Status: metav1.ConditionTrue,
			Reason: kubetrainv1alpha1.ReasonRunning, LastTransitionTime: metav1.NewTime(testNow.Add(-since))}}
		return st
	}
	reported := func(st kubetrainv1alpha1.TrainingJobStatus, attempt int32) kubetrainv1alpha1.TrainingJobStatus {
		st.Progress = &kubetrainv1alpha1.Progress{Epochs: 10, Attempt: &attempt}
		return st
	}
	plan := func(w *testutil.TrainingJobWrapper) plan {
		tj := w.Obj()
		return planJob(tj, []*corev1.Pod{testutil.MakeWorkerPod(tj, 0, tj.Status.Attempt).Phase(corev1.PodRunning).Obj()}, testNow, cfg)
	}
	job := func() *testutil.TrainingJobWrapper { return testutil.MakeTrainingJob("a", "ns") }

	silent := plan(job().Status(running(6 * time.Minute)))
	if st := silent.status; st.Failures != 1 || st.Attempt != 3 || len(silent.deletePods) != 1 || st.RestartAfter == nil {
		t.Errorf("six minutes without a report: %+v, want a failed attempt, its pod stopped, a backoff", summarize(silent))
	}
	if c := apimeta.FindStatusCondition(silent.status.Conditions, kubetrainv1alpha1.ConditionReady); c == nil || !strings.Contains(c.Message, "did not report progress") {
		t.Errorf("the backoff does not say why: %+v", c)
	}
	if p := plan(job().Status(running(4 * time.Minute))); p.status.Phase != kubetrainv1alpha1.PhaseRunning || p.requeueAfter != time.Minute {
		t.Errorf("four minutes without a report: phase %s, requeue after %v; want Running and a pass in 1m", p.status.Phase, p.requeueAfter)
	}
	if p := plan(job().Status(reported(running(time.Hour), 2))); p.status.Phase != kubetrainv1alpha1.PhaseRunning || p.requeueAfter != 0 {
		t.Errorf("a report of this attempt: %+v", summarize(p))
	}
	if p := plan(job().Status(reported(running(6*time.Minute), 1))); p.status.Failures != 1 {
		t.Errorf("only an earlier attempt reported: %+v, want the attempt failed", summarize(p))
	}
	if p := plan(job().Image("example/custom:1").Status(running(time.Hour))); p.status.Phase != kubetrainv1alpha1.PhaseRunning {
		t.Errorf("a custom image with no deadline: %+v", summarize(p))
	}
	if p := plan(job().Image("example/custom:1").ProgressDeadlineSeconds(60).Status(running(2 * time.Minute))); p.status.Failures != 1 {
		t.Errorf("a custom image with a deadline of its own: %+v", summarize(p))
	}
	if p := plan(job().ProgressDeadlineSeconds(0).Status(running(time.Hour))); p.status.Phase != kubetrainv1alpha1.PhaseRunning {
		t.Errorf("a deadline turned off: %+v", summarize(p))
	}
	// The pass that sees every worker run starts the clock.
	first := job().Status(started(kubetrainv1alpha1.PhasePending, 2)).Obj()
	p := planJob(first, []*corev1.Pod{testutil.MakeWorkerPod(first, 0, 2).Phase(corev1.PodRunning).Obj()}, testNow, cfg)
	if p.status.Phase != kubetrainv1alpha1.PhaseRunning || p.requeueAfter != 5*time.Minute {
		t.Errorf("workers just running: phase %s, requeue after %v; want Running and a pass in 5m", p.status.Phase, p.requeueAfter)
	}
}

// A job that comes to need its author gets one Warning event as it happens, not one per pass.
func TestStallIsAnnouncedOnce(t *testing.T) {
	tj := testutil.MakeTrainingJob("a", "ns").Status(started(kubetrainv1alpha1.PhasePending, 0)).Obj()
	pods := func(tj *kubetrainv1alpha1.TrainingJob) []*corev1.Pod {
		return []*corev1.Pod{testutil.MakeWorkerPod(tj, 0, 0).Waiting("CreateContainerConfigError", `secret "s3" not found`).Obj()}
	}
	first := planJob(tj, pods(tj), testNow, testCfg)
	if got := summarize(first).Events; len(got) != 1 || got[0] != "Warning/ContainerConfigError" {
		t.Fatalf("the pass that stalls the job emits %v", got)
	}
	tj.Status = first.status
	if again := planJob(tj, pods(tj), testNow.Add(time.Minute), testCfg); len(again.events) != 0 {
		t.Errorf("a later pass of the stalled job emits %v", summarize(again).Events)
	}
}
