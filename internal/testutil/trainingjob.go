// Package testutil builds TrainingJobs and pods for tests:
// testutil.MakeTrainingJob("a", ns).Epochs(2).GPUs(1).Obj().
package testutil

import (
	"context"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
)

// TrainingJobWrapper builds a TrainingJob with the CRD's defaults filled in, as the API server
// would.
type TrainingJobWrapper struct{ kubetrainv1alpha1.TrainingJob }

// MakeTrainingJob starts a job on the synthetic dataset with the CRD's defaults.
func MakeTrainingJob(name, namespace string) *TrainingJobWrapper {
	return &TrainingJobWrapper{kubetrainv1alpha1.TrainingJob{
		TypeMeta: metav1.TypeMeta{APIVersion: kubetrainv1alpha1.GroupVersion.String(), Kind: "TrainingJob"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, UID: types.UID("uid-" + name),
			Generation: 1, ResourceVersion: "1"},
		Spec: kubetrainv1alpha1.TrainingJobSpec{
			Model:   kubetrainv1alpha1.ModelSpec{Preset: "reference-cnn"},
			Dataset: kubetrainv1alpha1.DatasetSpec{URI: "synthetic://cifar10", Format: "cifar10"},
			Hyperparameters: kubetrainv1alpha1.Hyperparameters{
				Epochs: 10, BatchSize: 32, LearningRate: 0.001, Optimizer: "adam", Seed: 1,
			},
			Workers:   1,
			Resources: kubetrainv1alpha1.WorkerResources{GPUResourceName: "nvidia.com/gpu"},
			RunPolicy: kubetrainv1alpha1.RunPolicy{BackoffLimit: ptr.To[int32](3)},
		},
	}}
}

// Obj returns the job.
func (w *TrainingJobWrapper) Obj() *kubetrainv1alpha1.TrainingJob { return &w.TrainingJob }

func (w *TrainingJobWrapper) Epochs(n int32) *TrainingJobWrapper {
	w.Spec.Hyperparameters.Epochs = n
	return w
}

func (w *TrainingJobWrapper) Workers(n int32) *TrainingJobWrapper {
	w.Spec.Workers = n
	return w
}

func (w *TrainingJobWrapper) GPUs(n int32) *TrainingJobWrapper {
	w.Spec.Resources.GPUs = n
	return w
}

func (w *TrainingJobWrapper) BackoffLimit(n int32) *TrainingJobWrapper {
	w.Spec.RunPolicy.BackoffLimit = &n
	return w
}

func (w *TrainingJobWrapper) Suspend(s bool) *TrainingJobWrapper {
	w.Spec.RunPolicy.Suspend = s
	return w
}

func (w *TrainingJobWrapper) ActiveDeadlineSeconds(s int64) *TrainingJobWrapper {
	w.Spec.RunPolicy.ActiveDeadlineSeconds = &s
	return w
}

func (w *TrainingJobWrapper) ProgressDeadlineSeconds(s int32) *TrainingJobWrapper {
	w.Spec.RunPolicy.ProgressDeadlineSeconds = &s
	return w
}

func (w *TrainingJobWrapper) TTLSecondsAfterFinished(s int32) *TrainingJobWrapper {
	w.Spec.RunPolicy.TTLSecondsAfterFinished = &s
	return w
}

func (w *TrainingJobWrapper) Dataset(uri, format string) *TrainingJobWrapper {
	w.Spec.Dataset.URI, w.Spec.Dataset.Format = uri, format
	return w
}

// Checkpoint sets checkpoint storage with the CRD's defaults and a credentials Secret.
func (w *TrainingJobWrapper) Checkpoint(uri, secret string) *TrainingJobWrapper {
	w.Spec.Checkpoint = &kubetrainv1alpha1.CheckpointSpec{URI: uri, EveryEpochs: 1, Keep: 3,
		CredentialsSecretName: kubetrainv1alpha1.SecretName(secret)}
	return w
}

// AllowPlainHTTP opts the dataset and checkpoint storage into plain http:// endpoints (the test S3
// server's).
func (w *TrainingJobWrapper) AllowPlainHTTP() *TrainingJobWrapper {
	w.Spec.Dataset.AllowPlainHTTP = true
	if w.Spec.Checkpoint != nil {
		w.Spec.Checkpoint.AllowPlainHTTP = true
	}
	return w
}

func (w *TrainingJobWrapper) Template(t kubetrainv1alpha1.WorkerTemplate) *TrainingJobWrapper {
	w.Spec.Template = &t
	return w
}

func (w *TrainingJobWrapper) Image(image string) *TrainingJobWrapper {
	w.Spec.Image = image
	return w
}

// Status replaces the status.
func (w *TrainingJobWrapper) Status(st kubetrainv1alpha1.TrainingJobStatus) *TrainingJobWrapper {
	w.TrainingJob.Status = st
	return w
}

// PodWrapper builds a worker pod as the controller would name and label it.
type PodWrapper struct{ corev1.Pod }

// MakeWorkerPod is worker rank of attempt of job, in phase Pending.
func MakeWorkerPod(job *kubetrainv1alpha1.TrainingJob, rank, attempt int32) *PodWrapper {
	name := job.Name + "-w" + strconv.Itoa(int(rank)) + "-a" + strconv.Itoa(int(attempt))
	return &PodWrapper{corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: job.Namespace, UID: types.UID("uid-" + name),
			Labels: map[string]string{
				kubetrainv1alpha1.LabelJobName: job.Name,
				kubetrainv1alpha1.LabelJobUID:  string(job.UID),
				kubetrainv1alpha1.LabelRank:    strconv.Itoa(int(rank)),
				kubetrainv1alpha1.LabelAttempt: strconv.Itoa(int(attempt)),
			}},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}}
}

func (w *PodWrapper) Obj() *corev1.Pod { return &w.Pod }

func (w *PodWrapper) Phase(p corev1.PodPhase) *PodWrapper {
	w.Status.Phase = p
	return w
}

// Exited marks the pod Failed (or Succeeded for 0) with the trainer's exit code and message.
func (w *PodWrapper) Exited(code int32, message string) *PodWrapper {
	w.Status.Phase = corev1.PodFailed
	if code == 0 {
		w.Status.Phase = corev1.PodSucceeded
	}
	w.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name:  "trainer",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Message: message}},
	}}
	return w
}

// Disrupted marks the pod Failed with the DisruptionTarget condition, as eviction and preemption do.
func (w *PodWrapper) Disrupted(reason string) *PodWrapper {
	w.Status.Phase = corev1.PodFailed
	w.Status.Conditions = append(w.Status.Conditions, corev1.PodCondition{
		Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: reason, Message: "disrupted by " + reason,
	})
	return w
}

// Evicted marks the pod Failed as the kubelet's eviction manager does: reason Evicted and its
// message, and no condition (what it does for a pod over its own limits).
func (w *PodWrapper) Evicted(message string) *PodWrapper {
	w.Status.Phase = corev1.PodFailed
	w.Status.Reason, w.Status.Message = "Evicted", message
	return w
}

// Unschedulable marks the pod Pending with the scheduler's message.
func (w *PodWrapper) Unschedulable(message string) *PodWrapper {
	w.Status.Phase = corev1.PodPending
	w.Status.Conditions = append(w.Status.Conditions, corev1.PodCondition{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: message,
	})
	return w
}

// Waiting marks the trainer container waiting for reason, as the kubelet reports it.
func (w *PodWrapper) Waiting(reason, message string) *PodWrapper {
	w.Status.Phase = corev1.PodPending
	w.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: "trainer", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}},
	}}
	return w
}

// Scheduled marks the pod bound to a node at a time, as the scheduler does.
func (w *PodWrapper) Scheduled(at time.Time) *PodWrapper {
	w.Status.Conditions = append(w.Status.Conditions, corev1.PodCondition{
		Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(at),
	})
	return w
}

// Deleting marks the pod as being deleted.
func (w *PodWrapper) Deleting(at time.Time) *PodWrapper {
	t := metav1.NewTime(at)
	w.DeletionTimestamp = &t
	return w
}

// SetPodStatus plays the kubelet: it changes a pod's status as mutate says, retrying on conflict,
// and leaves the pod as the server then has it.
func SetPodStatus(ctx context.Context, c client.Client, pod *corev1.Pod, mutate func(*PodWrapper)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
			return err
		}
		w := &PodWrapper{Pod: *pod}
		mutate(w)
		*pod = w.Pod
		return c.Status().Update(ctx, pod)
	})
}
