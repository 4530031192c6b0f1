package controllers

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

const (
	ckptURI  = "s3://ckpt/runs/ns/a/uid-a/rank-0/ckpt-000004-ab12/manifest.json"
	finalURI = "s3://ckpt/runs/ns/a/uid-a/rank-0/ckpt-000009-ff/manifest.json"
)

func eventReasons(p plan) []string {
	var out []string
	for _, e := range p.events {
		out = append(out, e.reason)
	}
	return out
}

func TestRetriedAttemptResumesFromTheLatestCheckpoint(t *testing.T) {
	st := started(kubetrainv1alpha1.PhaseRunning, 0)
	st.LatestCheckpoint = &kubetrainv1alpha1.CheckpointRef{URI: ckptURI, Epoch: 4}
	tj := testutil.MakeTrainingJob("a", "ns").Checkpoint("s3://ckpt/runs", "creds").Status(st).Obj()
	pod := testutil.MakeWorkerPod(tj, 0, 0).Disrupted("PreemptionByScheduler").Obj()

	p := planJob(tj, []*corev1.Pod{pod}, testNow, testCfg)
	if !p.createWorkers || p.status.Attempt != 1 {
		t.Fatalf("no new attempt: %+v", summarize(p))
	}
	rf := p.status.ResumedFrom
	if rf == nil || rf.URI != ckptURI || rf.Epoch != 4 || rf.Attempt != 1 {
		t.Errorf("resumedFrom = %+v, want epoch 4 of %s for attempt 1", rf, ckptURI)
	}
	if !strings.Contains(strings.Join(eventReasons(p), ","), kubetrainv1alpha1.ReasonResuming) {
		t.Errorf("events %v, want %s", eventReasons(p), kubetrainv1alpha1.ReasonResuming)
	}
	planned := tj.DeepCopy()
	planned.Status = p.status
	args := strings.Join(constructWorkerPod(planned, 0, testCfg).Spec.Containers[0].Args, " ")
	if !strings.Contains(args, "--resume-from="+ckptURI) {
		t.Errorf("the new worker is not told to resume: %s", args)
	}
}

func TestFirstAttemptWarmStartsFromTheSpec(t *testing.T) {
	tj := testutil.MakeTrainingJob("a", "ns").Checkpoint("s3://ckpt/runs", "creds").Obj()
	tj.Spec.Checkpoint.ResumeFrom = "s3://ckpt/old/manifest.json"
	p := planJob(tj, nil, testNow, testCfg)
	if rf := p.status.ResumedFrom; rf == nil || rf.URI != "s3://ckpt/old/manifest.json" {
		t.Errorf("resumedFrom = %+v, want the spec's checkpoint", rf)
	}
}

func TestNewCheckpointIsShownOnce(t *testing.T) {
	st := started(kubetrainv1alpha1.PhaseRunning, 0)
	st.LatestCheckpoint = &kubetrainv1alpha1.CheckpointRef{URI: ckptURI, Epoch: 4}
	tj := testutil.MakeTrainingJob("a", "ns").Checkpoint("s3://ckpt/runs", "creds").Status(st).Obj()
	pods := []*corev1.Pod{testutil.MakeWorkerPod(tj, 0, 0).Phase(corev1.PodRunning).Obj()}

	p := planJob(tj, pods, testNow, testCfg)
	c := apimeta.FindStatusCondition(p.status.Conditions, kubetrainv1alpha1.ConditionCheckpointed)
	if c == nil || c.Status != "True" || !strings.Contains(c.Message, "epoch 4: "+ckptURI) {
		t.Fatalf("Checkpointed condition = %+v", c)
	}
	if got := eventReasons(p); len(got) != 1 || got[0] != kubetrainv1alpha1.ReasonCheckpointed {
		t.Errorf("events %v, want one %s", got, kubetrainv1alpha1.ReasonCheckpointed)
	}
	tj.Status = p.status
	if again := planJob(tj, pods, testNow, testCfg); len(again.events) != 0 {
		t.Errorf("the same checkpoint was announced again: %v", eventReasons(again))
	}
}

func TestSucceededJobNamesItsModel(t *testing.T) {
	cases := map[string]struct {
		latest      *kubetrainv1alpha1.CheckpointRef
		termination string
		want        string
	}{
		"from the trainer's result": {nil, `{"outcome":"Succeeded","checkpoint":"` + finalURI + `"}`, finalURI},
		"from status":               {&kubetrainv1alpha1.CheckpointRef{URI: ckptURI}, "", ckptURI},
		"no checkpoints":            {nil, "", ""},
		// What the worker says is checked like status: another job's checkpoint is not this model.
		"another job's, in the result": {nil, `{"outcome":"Succeeded","checkpoint":"s3://ckpt/runs/ns/b/uid-b/rank-0/ckpt-000001-x/manifest.json"}`, ""},
		"another job's, in status":     {&kubetrainv1alpha1.CheckpointRef{URI: "s3://ckpt/runs/ns/b/uid-b/rank-0/ckpt-000001-x/manifest.json"}, "", ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			st := started(kubetrainv1alpha1.PhaseRunning, 0)
			st.LatestCheckpoint = tc.latest
			tj := testutil.MakeTrainingJob("a", "ns").Checkpoint("s3://ckpt/runs", "creds").Status(st).Obj()
			pod := testutil.MakeWorkerPod(tj, 0, 0).Exited(0, tc.termination).Obj()
			p := planJob(tj, []*corev1.Pod{pod}, testNow, testCfg)
			if p.status.Phase != kubetrainv1alpha1.PhaseSucceeded || p.status.ModelURI != tc.want {
				t.Errorf("phase %s, modelURI %q; want Succeeded and %q", p.status.Phase, p.status.ModelURI, tc.want)
			}
		})
	}
}

func TestTargetAccuracyReachedIsTheSuccessReason(t *testing.T) {
	tj := testutil.MakeTrainingJob("a", "ns").Status(started(kubetrainv1alpha1.PhaseRunning, 0)).Obj()
	target := 0.9
	tj.Spec.Hyperparameters.TargetTestAccuracy = &target
	pod := testutil.MakeWorkerPod(tj, 0, 0).Exited(0,
		`{"outcome":"Succeeded","stopReason":"TargetAccuracyReached","last":{"epoch":4,"epochs":10,"test_accuracy":0.91}}`).Obj()
	p := planJob(tj, []*corev1.Pod{pod}, testNow, testCfg)
	c := apimeta.FindStatusCondition(p.status.Conditions, kubetrainv1alpha1.ConditionSucceeded)
	if p.status.Phase != kubetrainv1alpha1.PhaseSucceeded || c == nil || c.Reason != kubetrainv1alpha1.ReasonTargetReached ||
		!strings.Contains(c.Message, "after epoch 4 of 10") {
		t.Errorf("phase %s, Succeeded condition %+v; want reason %s", p.status.Phase, c, kubetrainv1alpha1.ReasonTargetReached)
	}
	if args := strings.Join(constructWorkerPod(tj, 0, testCfg).Spec.Containers[0].Args, " "); !strings.Contains(args, "--target-test-accuracy=0.9") {
		t.Errorf("the target is not passed to the trainer: %s", args)
	}
}

// TestCheckpointOutsideTheJobIsIgnored: status.latestCheckpoint is written with the worker's token,
// so the operator resumes only from a checkpoint under the job's own prefix; anything else is
// shown as ignored, and the next attempt starts as if there were none (or from spec.resumeFrom).
func TestCheckpointOutsideTheJobIsIgnored(t *testing.T) {
	for name, uri := range map[string]string{
		"another job":        "s3://ckpt/runs/ns/b/uid-b/rank-0/ckpt-000004-ab12/manifest.json",
		"a re-created job":   "s3://ckpt/runs/ns/a/uid-old/rank-0/ckpt-000004-ab12/manifest.json",
		"another bucket":     "s3://other/runs/ns/a/uid-a/rank-0/ckpt-000004-ab12/manifest.json",
		"another endpoint":   "s3://ckpt/runs/ns/a/uid-a/rank-0/ckpt-000004-ab12/manifest.json?endpoint=http://evil:9000",
		"climbing out":       "s3://ckpt/runs/ns/a/uid-a/rank-0/../../../b/uid-b/rank-0/ckpt-000004-ab12/manifest.json",
		"another scheme":     "file:///ckpt/runs/ns/a/uid-a/rank-0/ckpt-000004-ab12/manifest.json",
		"outside the prefix": "s3://ckpt/ns/a/uid-a/rank-0/ckpt-000004-ab12/manifest.json",
	} {
		t.Run(name, func(t *testing.T) {
			st := started(kubetrainv1alpha1.PhaseRunning, 0)
			st.LatestCheckpoint = &kubetrainv1alpha1.CheckpointRef{URI: uri, Epoch: 4}
			tj := testutil.MakeTrainingJob("a", "ns").Checkpoint("s3://ckpt/runs", "creds").Status(st).Obj()
			tj.Spec.Checkpoint.ResumeFrom = "s3://ckpt/warm/manifest.json"
			pod := testutil.MakeWorkerPod(tj, 0, 0).Disrupted("PreemptionByScheduler").Obj()
			p := planJob(tj, []*corev1.Pod{pod}, testNow, testCfg)
			if !p.createWorkers {
				t.Fatalf("no new attempt: %+v", summarize(p))
			}
			if rf := p.status.ResumedFrom; rf == nil || rf.URI != "s3://ckpt/warm/manifest.json" {
				t.Errorf("resumedFrom = %+v, want the spec's warm start, not %s", rf, uri)
			}
			planned := tj.DeepCopy()
			planned.Status = p.status
			if args := strings.Join(constructWorkerPod(planned, 0, testCfg).Spec.Containers[0].Args, " "); strings.Contains(args, uri) {
				t.Errorf("the new worker is told to resume from %s: %s", uri, args)
			}
			c := apimeta.FindStatusCondition(p.status.Conditions, kubetrainv1alpha1.ConditionCheckpointed)
			if c == nil || c.Reason != kubetrainv1alpha1.ReasonCheckpointOutsideJob || !strings.Contains(c.Message, contract.ShowURI(uri)) {
				t.Errorf("Checkpointed condition = %+v, want %s naming the URI", c, kubetrainv1alpha1.ReasonCheckpointOutsideJob)
			}
		})
	}
}
