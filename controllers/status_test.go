package controllers

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

func TestStatusApplyConfiguration(t *testing.T) {
	tj := testutil.MakeTrainingJob("a", "ns").Obj()
	tj.ResourceVersion = "42"
	tj.Status.Progress = &kubetrainv1alpha1.Progress{Epochs: 3, EpochText: "1/3"}
	tj.Status.Phase = kubetrainv1alpha1.PhaseRunning
	st := controllerOwned(&tj.Status)
	u, err := statusApplyConfiguration(tj, &st)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := u.Object["spec"]; ok {
		t.Error("the status apply carries a spec: the controller would take ownership of spec fields")
	}
	if u.GetResourceVersion() != "42" {
		t.Errorf("resourceVersion = %q, want 42: the write must fail on a stale read", u.GetResourceVersion())
	}
	status := u.Object["status"].(map[string]any)
	if _, ok := status["progress"]; ok {
		t.Error("the controller's apply carries the trainer's progress: it would take its ownership")
	}
	want := map[string]any{"phase": "Running", "restarts": int64(0),
		"workers": map[string]any{"pending": int64(0), "running": int64(0), "succeeded": int64(0), "failed": int64(0)}}
	if diff := cmp.Diff(want, status); diff != "" {
		t.Errorf("status (-want,+got):\n%s", diff)
	}
}

func TestTerminationText(t *testing.T) {
	cases := map[string]struct{ msg, want string }{
		"trainer result with message": {`{"outcome":"InvalidData","message":"test_batch.bin: record 3: label 12, want 0-9"}`,
			"test_batch.bin: record 3: label 12, want 0-9"},
		"trainer result without message": {`{"outcome":"Succeeded"}`, "Succeeded"},
		"plain text from a custom image": {"CUDA out of memory", "CUDA out of memory"},
		"long text is cut":               {string(make([]byte, 600)), string(make([]byte, 512)) + "..."},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := terminationText(tc.msg); got != tc.want {
				t.Errorf("terminationText = %q, want %q", got, tc.want)
			}
		})
	}
}
