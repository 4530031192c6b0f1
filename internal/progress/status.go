// Package progress reports a trainer's progress into its TrainingJob's status: each epoch's metrics
// and each committed checkpoint, through the Kubernetes API. It is the trainer's outer layer; the
// numeric core only sees a Reporter.
//
// The trainer writes with server-side apply under its own field manager and owns status.progress,
// status.history and status.latestCheckpoint; the controller owns the rest, so neither overwrites
// the other.
package progress

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/contract"
)

// FieldManager is the trainer's name in managedFields.
const FieldManager = "kubetrain-trainer"

// HistoryLimit is how many epochs status.history keeps.
const HistoryLimit = 100

// writeTimeout bounds one status write: training never waits long on the API server.
const writeTimeout = 10 * time.Second

var trainingJobs = kubetrainv1alpha1.GroupVersion.WithResource("trainingjobs")

// StatusReporter writes progress into one TrainingJob's status.
type StatusReporter struct {
	jobs       dynamic.ResourceInterface
	name       string
	uid        types.UID
	history    []kubetrainv1alpha1.EpochMetrics
	checkpoint *kubetrainv1alpha1.CheckpointRef
	last       *kubetrainv1alpha1.Progress
	// Attempt is the attempt this trainer belongs to; every report carries it.
	Attempt int32
	// OnError is told about writes that failed; training goes on (the termination message carries
	// the final result when the API cannot be reached). Nil drops them.
	OnError func(error)
}

// NewStatusReporter reports into the TrainingJob namespace/name. It reads the job's history first,
// so that a resumed attempt continues it rather than starting it over. With a uid (the worker's
// job's, from its environment), every write is made on the condition that the job still has that
// UID: a worker of a deleted job, still in its grace period, cannot write into a new job of the
// same name.
func NewStatusReporter(ctx context.Context, cfg *rest.Config, namespace, name string, uid types.UID) (*StatusReporter, error) {
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	r := &StatusReporter{jobs: dc.Resource(trainingJobs).Namespace(namespace), name: name, uid: uid}
	u, err := r.jobs.Get(ctx, name, metav1.GetOptions{}, "status")
	if err != nil {
		return nil, fmt.Errorf("reading TrainingJob %s/%s: %w", namespace, name, err)
	}
	if uid != "" && u.GetUID() != uid {
		return nil, fmt.Errorf("TrainingJob %s/%s has UID %s, not this worker's job's %s: it was deleted and created again", namespace, name, u.GetUID(), uid)
	}
	var tj kubetrainv1alpha1.TrainingJob
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &tj); err != nil {
		return nil, err
	}
	r.history, r.checkpoint, r.last = tj.Status.History, tj.Status.LatestCheckpoint, tj.Status.Progress
	return r, nil
}

// Report records an epoch: it is the trainer's train.Reporter.
func (r *StatusReporter) Report(p contract.Progress) {
	t := metav1.NewTime(p.Time)
	m := kubetrainv1alpha1.EpochMetrics{
		Epoch: int32(p.Epoch), Loss: p.Loss, TrainAccuracy: p.TrainAccuracy, TestAccuracy: p.TestAccuracy,
		ImagesPerSecond: p.ImagesPerSecond, Time: &t,
	}
	// A resumed attempt repeats no epoch: drop history past the epoch it restarted from.
	for len(r.history) > 0 && r.history[len(r.history)-1].Epoch >= m.Epoch {
		r.history = r.history[:len(r.history)-1]
	}
	r.history = append(r.history, m)
	if len(r.history) > HistoryLimit {
		r.history = append(r.history[:0:0], r.history[len(r.history)-HistoryLimit:]...)
	}
	r.last = &kubetrainv1alpha1.Progress{EpochMetrics: m, Epochs: int32(p.Epochs),
		EpochText: fmt.Sprintf("%d/%d", p.Epoch, p.Epochs), Attempt: &r.Attempt}
	r.apply()
}

// Started reports that this attempt's trainer runs, before it has trained anything: the progress
// the job shows stays as it was (0 of epochs for a new job), now carrying this attempt. It tells
// the controller that the worker is a trainer that reports (spec.runPolicy.progressDeadlineSeconds).
func (r *StatusReporter) Started(epochs int) {
	if r.last == nil {
		r.last = &kubetrainv1alpha1.Progress{Epochs: int32(epochs), EpochText: fmt.Sprintf("0/%d", epochs)}
	}
	r.last.Attempt = &r.Attempt
	r.apply()
}

// Checkpointed records a committed checkpoint of bytes bytes.
func (r *StatusReporter) Checkpointed(uri string, epoch, attempt int, bytes int64, at time.Time) {
	t := metav1.NewTime(at)
	r.checkpoint = &kubetrainv1alpha1.CheckpointRef{URI: uri, Epoch: int32(epoch), Attempt: int32(attempt), Bytes: bytes, Time: &t}
	r.apply()
}

// apply writes every field the trainer owns, each time: a server-side apply that left one out would
// remove it.
func (r *StatusReporter) apply() {
	st := kubetrainv1alpha1.TrainingJobStatus{Progress: r.last, History: r.history, LatestCheckpoint: r.checkpoint}
	status, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&st)
	if err != nil {
		r.fail(err)
		return
	}
	// Drop the controller's fields that the typed status always encodes.
	for _, k := range []string{"restarts", "workers"} {
		delete(status, k)
	}
	u := &unstructured.Unstructured{Object: map[string]any{"status": status}}
	u.SetAPIVersion(kubetrainv1alpha1.GroupVersion.String())
	u.SetKind("TrainingJob")
	u.SetName(r.name)
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	for tries := 1; ; tries++ {
		err := r.applyOnce(ctx, u)
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) || tries == maxApplyTries {
			r.fail(fmt.Errorf("reporting progress of TrainingJob %s: %w", r.name, err))
			return
		}
	}
}

// maxApplyTries bounds the retries of a write that lost a race with the controller's.
const maxApplyTries = 3

// applyOnce writes u. With a UID, the job is read first and the write is made on the condition that
// the job is still the version read (its resourceVersion, which a server-side apply honours; it
// takes no UID precondition): a job of this name with another UID is a new one, and nothing of this
// worker's is written into it, even when the old job is deleted and a new one created between the
// read and the write. The trainer policy refuses such writes at admission as well.
func (r *StatusReporter) applyOnce(ctx context.Context, u *unstructured.Unstructured) error {
	if r.uid != "" {
		cur, err := r.jobs.Get(ctx, r.name, metav1.GetOptions{}, "status")
		if err != nil {
			return err
		}
		if cur.GetUID() != r.uid {
			return fmt.Errorf("it has UID %s, not this worker's job's %s: it was deleted and created again, nothing written", cur.GetUID(), r.uid)
		}
		u.SetResourceVersion(cur.GetResourceVersion())
	}
	_, err := r.jobs.ApplyStatus(ctx, r.name, u, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	return err
}

func (r *StatusReporter) fail(err error) {
	if r.OnError != nil {
		r.OnError(err)
	}
}
