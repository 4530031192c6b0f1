package controllers

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/internal/testutil"
	"github.com/kubetrain/kubetrain/trainer/cli"
)

func TestWorkerPodName(t *testing.T) {
	// A job named like a prefix of another job's pod names never shares a pod name with it.
	seen := map[string]string{}
	for _, job := range []string{"a", "a-w0", "a-w0-a1", "a-w1", "a-w"} {
		for rank := int32(0); rank < 12; rank++ {
			for attempt := int32(0); attempt < 12; attempt++ {
				name := workerPodName(job, rank, attempt)
				if other, ok := seen[name]; ok {
					t.Fatalf("pod name %q is produced by job %q and by %s", name, job, other)
				}
				seen[name] = job
			}
		}
	}
	if got := workerPodName("resnet", 0, 2); got != "resnet-w0-a2" {
		t.Errorf("workerPodName = %q, want resnet-w0-a2", got)
	}
}

func TestConstructWorkerPodShape(t *testing.T) {
	tj := testutil.MakeTrainingJob("mnist", "team-a").GPUs(2).Checkpoint("s3://ckpt/runs", "s3-creds").
		Template(kubetrainv1alpha1.WorkerTemplate{
			Labels:            map[string]string{"team": "vision"},
			NodeSelector:      map[string]string{"gpu": "a100"},
			PriorityClassName: "training",
			Env:               []corev1.EnvVar{{Name: "EXTRA", Value: "1"}},
		}).Obj()
	tj.Spec.Resources.CPU = ptr.To(resource.MustParse("2"))
	tj.Spec.Resources.Memory = ptr.To(resource.MustParse("4Gi"))
	tj.Status.Attempt = 3
	pod := constructWorkerPod(tj, 0, testCfg)

	if pod.Name != "mnist-w0-a3" || pod.Namespace != "team-a" {
		t.Errorf("pod is %s/%s, want team-a/mnist-w0-a3", pod.Namespace, pod.Name)
	}
	wantLabels := map[string]string{
		"team": "vision", "kubetrain.io/job-name": "mnist", "kubetrain.io/job-uid": "uid-mnist",
		"kubetrain.io/rank": "0", "kubetrain.io/attempt": "3", "app.kubernetes.io/managed-by": "kubetrain",
	}
	if diff := cmp.Diff(wantLabels, pod.Labels); diff != "" {
		t.Errorf("labels (-want,+got):\n%s", diff)
	}
	if ref := pod.OwnerReferences; len(ref) != 1 || ref[0].UID != tj.UID || !ptr.Deref(ref[0].Controller, false) {
		t.Errorf("owner references = %+v, want one controller reference to the job", ref)
	}
	c := pod.Spec.Containers[0]
	if c.Image != "trainer:test" || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("image = %s (%s), want trainer:test (IfNotPresent)", c.Image, c.ImagePullPolicy)
	}
	wantResources := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("2"), "cpu": resource.MustParse("2"), "memory": resource.MustParse("4Gi")},
		Limits:   corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("2"), "memory": resource.MustParse("4Gi")},
	}
	if diff := cmp.Diff(wantResources, c.Resources, cmp.Comparer(func(a, b resource.Quantity) bool { return a.Cmp(b) == 0 })); diff != "" {
		t.Errorf("resources (-want,+got):\n%s", diff)
	}
	// The restricted Pod Security profile.
	psc, csc := pod.Spec.SecurityContext, c.SecurityContext
	if !*psc.RunAsNonRoot || *psc.RunAsUser != 65532 || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
		*csc.AllowPrivilegeEscalation || !*csc.ReadOnlyRootFilesystem || csc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("security contexts do not meet the restricted profile: pod %+v, container %+v", psc, csc)
	}
	if pod.Spec.RestartPolicy != corev1.RestartPolicyNever || pod.Spec.ServiceAccountName != TrainerServiceAccount {
		t.Errorf("restartPolicy %s, service account %q: want Never and %s", pod.Spec.RestartPolicy, pod.Spec.ServiceAccountName, TrainerServiceAccount)
	}
	if pod.Spec.NodeSelector["gpu"] != "a100" || pod.Spec.PriorityClassName != "training" {
		t.Errorf("template scheduling fields not applied: %+v", pod.Spec)
	}
	if tol := pod.Spec.Tolerations; len(tol) != 1 || tol[0].Key != "nvidia.com/gpu" {
		t.Errorf("tolerations = %+v, want the GPU taint tolerated", tol)
	}
	if m := c.VolumeMounts; len(m) != 1 || m[0].MountPath != contract.ScratchDir || pod.Spec.Volumes[0].EmptyDir == nil {
		t.Errorf("scratch volume missing: mounts %+v volumes %+v", m, pod.Spec.Volumes)
	} else if limit := pod.Spec.Volumes[0].EmptyDir.SizeLimit; limit == nil || limit.String() != "10Gi" {
		t.Errorf("scratch volume's size limit %v, want the default 10Gi", limit)
	}
	// Credentials only by Secret reference.
	secretRefs := map[string]bool{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			if e.ValueFrom.SecretKeyRef.Name != "s3-creds" {
				t.Errorf("env %s refers to secret %s, want s3-creds", e.Name, e.ValueFrom.SecretKeyRef.Name)
			}
			secretRefs[e.Name] = true
		}
		if strings.Contains(strings.ToLower(e.Name), "secret") && e.Value != "" {
			t.Errorf("env %s carries a literal value", e.Name)
		}
	}
	if !secretRefs["AWS_ACCESS_KEY_ID"] || !secretRefs["AWS_SECRET_ACCESS_KEY"] {
		t.Errorf("credentials not referenced from the Secret: %v", secretRefs)
	}
}

func TestConstructWorkerPodImageOverride(t *testing.T) {
	tj := testutil.MakeTrainingJob("a", "ns").Image("registry.example/custom:1").Obj()
	if got := constructWorkerPod(tj, 0, testCfg).Spec.Containers[0].Image; got != "registry.example/custom:1" {
		t.Errorf("image = %s, want the job's own", got)
	}
}

// The controller and the trainer meet in the pod spec: the trainer's own flag set must read
// back exactly what the controller meant.
func TestWorkerPodParsesWithTrainerFlags(t *testing.T) {
	tj := testutil.MakeTrainingJob("fmnist", "ns").Dataset("file:///data/fashion-mnist", "idx").Epochs(3).
		Checkpoint("s3://ckpt/runs?endpoint=http://minio:9000", "creds").AllowPlainHTTP().Obj()
	tj.Spec.Hyperparameters.LearningRate = 0.0005
	tj.Spec.Hyperparameters.BatchSize = 64
	tj.Spec.Hyperparameters.Seed = 42
	tj.Spec.Hyperparameters.Optimizer = "sgd"
	tj.Spec.Checkpoint.EveryEpochs = 2
	tj.Spec.Checkpoint.Keep = 5
	tj.Spec.Resources.CPU = ptr.To(resource.MustParse("1500m"))
	tj.Spec.Resources.Scratch = ptr.To(resource.MustParse("2Gi"))
	tj.Status.LatestCheckpoint = &kubetrainv1alpha1.CheckpointRef{URI: "s3://ckpt/runs/ns/fmnist/uid-fmnist/rank-0/ckpt-000002-ab12/manifest.json?endpoint=http://minio:9000"}

	c := constructWorkerPod(tj, 0, testCfg).Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
		}
	}
	got, err := cli.Parse(c.Args, env)
	if err != nil {
		t.Fatalf("the trainer rejects the worker's arguments %q: %v", c.Args, err)
	}
	want := cli.Config{
		Model: "reference-cnn", Dataset: "file:///data/fashion-mnist", DatasetFormat: "idx", Epochs: 3, BatchSize: 64,
		LearningRate: 0.0005, Optimizer: "sgd", Seed: 42, Threads: 2, LogFormat: "json", ScratchDir: "/scratch",
		CheckpointURI: "s3://ckpt/runs?endpoint=http://minio:9000", CheckpointKeep: 5, CheckpointEvery: 2,
		ResumeFrom:      "s3://ckpt/runs/ns/fmnist/uid-fmnist/rank-0/ckpt-000002-ab12/manifest.json?endpoint=http://minio:9000",
		AllowPlainHTTP:  true,
		MaxDatasetBytes: 2 << 30 / 10 * 9, // nine tenths of the 2Gi scratch volume
	}
	// The trainer's own defaults for what the controller does not set.
	defaults, err := cli.Parse(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want.MaxCheckpointBytes, want.FetchTimeout, want.ResumeTimeout = defaults.MaxCheckpointBytes, defaults.FetchTimeout, defaults.ResumeTimeout
	want.StallTimeout = defaults.StallTimeout
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("trainer config (-want,+got):\n%s", diff)
	}
	// Without the job's opt-in the trainer is not told to accept plain http:// endpoints.
	tj.Spec.Checkpoint.AllowPlainHTTP, tj.Spec.Dataset.AllowPlainHTTP = false, false
	for _, a := range constructWorkerPod(tj, 0, testCfg).Spec.Containers[0].Args {
		if strings.Contains(a, contract.FlagAllowPlainHTTP) {
			t.Errorf("argument %q without the job's allowPlainHTTP", a)
		}
	}
	for _, name := range []string{contract.EnvJobNamespace, contract.EnvJobName, contract.EnvJobUID, contract.EnvAttempt, contract.EnvRank} {
		if env[name] == "" {
			t.Errorf("job identity variable %s is not set", name)
		}
	}
}

// A worker computes with as many threads as the CPUs it requests, rounded up, so that it does not
// crowd out its neighbours on the node.
func TestTrainerThreadsFollowTheCPURequest(t *testing.T) {
	for _, tc := range []struct {
		cpu  string
		want string
	}{
		{"", ""}, {"100m", "1"}, {"1", "1"}, {"1001m", "2"}, {"4", "4"},
	} {
		tj := testutil.MakeTrainingJob("fmnist", "ns").Obj()
		if tc.cpu != "" {
			tj.Spec.Resources.CPU = ptr.To(resource.MustParse(tc.cpu))
		}
		got := ""
		for _, a := range constructWorkerPod(tj, 0, testCfg).Spec.Containers[0].Args {
			if v, ok := strings.CutPrefix(a, "--"+contract.FlagThreads+"="); ok {
				got = v
			}
		}
		if got != tc.want {
			t.Errorf("cpu %q: --%s=%q, want %q", tc.cpu, contract.FlagThreads, got, tc.want)
		}
	}
}

// TestOperatorEnvComesLast checks that the user's variables cannot replace the operator's even if
// admission were bypassed: where a name repeats in a container, the last one wins.
func TestOperatorEnvComesLast(t *testing.T) {
	tj := testutil.MakeTrainingJob("a", "ns").Checkpoint("s3://ckpt/runs", "creds").
		Template(kubetrainv1alpha1.WorkerTemplate{Env: []corev1.EnvVar{
			{Name: "TMPDIR", Value: "/"}, {Name: "AWS_EC2_METADATA_DISABLED", Value: "false"},
			{Name: "AWS_ACCESS_KEY_ID", Value: "stolen"}, {Name: contract.EnvJobName, Value: "other"}, {Name: "EXTRA", Value: "1"},
		}}).Obj()
	last := map[string]corev1.EnvVar{}
	for _, e := range constructWorkerPod(tj, 0, testCfg).Spec.Containers[0].Env {
		last[e.Name] = e
	}
	if last["TMPDIR"].Value != contract.ScratchDir || last["AWS_EC2_METADATA_DISABLED"].Value != "true" ||
		last[contract.EnvJobName].Value != "a" || last["AWS_ACCESS_KEY_ID"].ValueFrom == nil || last["EXTRA"].Value != "1" {
		t.Errorf("the user's variables override the operator's, or are lost: %+v", last)
	}
}

// A dataset and checkpoints in different accounts each reach the worker with their own Secret.
func TestDatasetAndCheckpointCredentials(t *testing.T) {
	refs := func(tj *kubetrainv1alpha1.TrainingJob) map[string]string {
		got := map[string]string{}
		for _, e := range constructWorkerPod(tj, 0, testCfg).Spec.Containers[0].Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				got[e.Name] = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
			}
		}
		return got
	}
	tj := testutil.MakeTrainingJob("a", "ns").Checkpoint("s3://ckpt/runs", "ckpt-creds").Obj()
	tj.Spec.Dataset.CredentialsSecretName = "data-creds"
	want := map[string]string{
		"AWS_ACCESS_KEY_ID": "ckpt-creds/AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "ckpt-creds/AWS_SECRET_ACCESS_KEY",
		"AWS_SESSION_TOKEN":                   "ckpt-creds/AWS_SESSION_TOKEN",
		"KUBETRAIN_DATASET_AWS_ACCESS_KEY_ID": "data-creds/AWS_ACCESS_KEY_ID", "KUBETRAIN_DATASET_AWS_SECRET_ACCESS_KEY": "data-creds/AWS_SECRET_ACCESS_KEY",
		"KUBETRAIN_DATASET_AWS_SESSION_TOKEN": "data-creds/AWS_SESSION_TOKEN",
	}
	if diff := cmp.Diff(want, refs(tj)); diff != "" {
		t.Errorf("two Secrets (-want,+got):\n%s", diff)
	}
	// With the dataset's Secret alone, it serves the checkpoints too, as before.
	tj.Spec.Checkpoint.CredentialsSecretName = ""
	for k, v := range want {
		want[k] = strings.Replace(v, "ckpt-creds", "data-creds", 1)
	}
	if diff := cmp.Diff(want, refs(tj)); diff != "" {
		t.Errorf("the dataset's Secret alone (-want,+got):\n%s", diff)
	}
}
