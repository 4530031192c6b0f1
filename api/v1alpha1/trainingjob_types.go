package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TrainingJob trains a model on the cluster: one pod per worker runs the trainer image with the
// model, dataset and hyperparameters of the spec (fixed once the job has started, across
// suspensions too: its checkpoints belong to them); the controller follows the pods to the end,
// restarts them with backoff, and the trainer reports its progress and checkpoints into status.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=tj,categories=all;kubetrain
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Workers",type=string,JSONPath=`.status.workers.ready`,description="Running workers / workers of the current attempt"
// +kubebuilder:printcolumn:name="Epoch",type=string,JSONPath=`.status.progress.epochText`,description="Last completed epoch / epochs"
// +kubebuilder:printcolumn:name="Accuracy",type=number,format=float,JSONPath=`.status.progress.testAccuracy`,description="Test accuracy after the last completed epoch"
// +kubebuilder:printcolumn:name="Restarts",type=integer,JSONPath=`.status.restarts`
// +kubebuilder:printcolumn:name="Checkpoint",type=date,JSONPath=`.status.latestCheckpoint.time`,description="Age of the latest checkpoint"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 59 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be at most 59 lowercase letters, digits and '-' (no '.'): the workers' host names are <name>-w<rank>, at most 63"
// +kubebuilder:validation:XValidation:rule="!has(self.spec.workers) || self.spec.workers <= 1 || self.metadata.name.matches('^[a-z]')",message="metadata.name must start with a letter for a job of several workers: it names their Service"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.status) || !(has(oldSelf.status.startTime) || (has(oldSelf.status.attempt) && oldSelf.status.attempt > 0)) || self.spec.model == oldSelf.spec.model",message="spec.model is immutable once the job has started",fieldPath=".spec.model",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.status) || !(has(oldSelf.status.startTime) || (has(oldSelf.status.attempt) && oldSelf.status.attempt > 0)) || self.spec.dataset == oldSelf.spec.dataset",message="spec.dataset is immutable once the job has started",fieldPath=".spec.dataset",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.status) || !(has(oldSelf.status.startTime) || (has(oldSelf.status.attempt) && oldSelf.status.attempt > 0)) || self.spec.hyperparameters == oldSelf.spec.hyperparameters",message="spec.hyperparameters is immutable once the job has started",fieldPath=".spec.hyperparameters",reason=FieldValueForbidden
type TrainingJob struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec TrainingJobSpec `json:"spec"`
	// +optional
	Status TrainingJobStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// TrainingJobList is a list of TrainingJobs.
type TrainingJobList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TrainingJob `json:"items"`
}

func init() {
	SchemeBuilder.Register(&TrainingJob{}, &TrainingJobList{})
}

// TrainingJobSpec is what to train, on what, and how to run it.
// +kubebuilder:validation:XValidation:rule="has(self.managedBy) == has(oldSelf.managedBy)",message="spec.managedBy is immutable: it cannot be added or removed after creation",fieldPath=".managedBy"
type TrainingJobSpec struct {
	// Model is the network to train.
	// +kubebuilder:default={preset: reference-cnn}
	// +optional
	Model ModelSpec `json:"model,omitempty"`

	// Dataset is where the training and test data come from.
	// +required
	Dataset DatasetSpec `json:"dataset"`

	// Hyperparameters of the training run.
	// +kubebuilder:default={}
	// +optional
	Hyperparameters Hyperparameters `json:"hyperparameters,omitempty"`

	// Workers is the number of worker pods that train the model together (data parallel): each
	// takes its slice of every batch, and their gradients are summed before each update, so a run
	// on N workers takes the steps one worker would take. hyperparameters.batchSize is the global
	// batch, split between the workers, and the learning rate means what it means for one worker.
	// The workers of an attempt start and end together: when one fails, is evicted or disappears,
	// the others are stopped and the next attempt starts all of them from the last checkpoint.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	// +optional
	Workers int32 `json:"workers,omitempty"`

	// Resources each worker requests: GPUs, CPU and memory.
	// +kubebuilder:default={}
	// +optional
	Resources WorkerResources `json:"resources,omitempty"`

	// Checkpoint says where and how often the trainer saves checkpoints. Without it the trainer keeps
	// none, and a restarted worker starts from the beginning.
	// +optional
	Checkpoint *CheckpointSpec `json:"checkpoint,omitempty"`

	// RunPolicy says how failures, deadlines, suspension and clean-up are handled.
	// +kubebuilder:default={}
	// +optional
	RunPolicy RunPolicy `json:"runPolicy,omitempty"`

	// Image overrides the trainer image the operator was started with, for this job.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// Template adds scheduling, metadata, environment and volumes to the worker pods.
	// +optional
	Template *WorkerTemplate `json:"template,omitempty"`

	// ManagedBy names the controller that runs the job: unset or kubetrain.io/trainingjob-controller
	// for kubetrain's own; any other value (e.g. kueue.x-k8s.io/multikueue, which runs the job on
	// another cluster and mirrors its status here) makes kubetrain leave the job's pods and status
	// to that controller. It cannot change once set, as for a batch Job.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.managedBy is immutable"
	// +kubebuilder:validation:XValidation:rule="self == 'kubetrain.io/trainingjob-controller' || self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[-a-zA-Z0-9._]+$')",message="must be kubetrain.io/trainingjob-controller or another controller's domain-prefixed name (e.g. kueue.x-k8s.io/multikueue)"
	// +optional
	ManagedBy *string `json:"managedBy,omitempty"`
}

// ManagedByController is spec.managedBy's value for kubetrain's own controller, the default.
const ManagedByController = "kubetrain.io/trainingjob-controller"

// ManagedByKubetrain says whether kubetrain's controller runs the job.
func (tj *TrainingJob) ManagedByKubetrain() bool {
	return tj.Spec.ManagedBy == nil || *tj.Spec.ManagedBy == ManagedByController
}

// ModelSpec names the network.
type ModelSpec struct {
	// Preset is a model the trainer knows by name. reference-cnn is the classic Keras CIFAR-10 CNN:
	// Conv2D(32, 3x3, relu), MaxPool(2x2), Flatten, Dense(64, relu), Dense(10, softmax).
	// +kubebuilder:validation:Enum=reference-cnn
	// +kubebuilder:default=reference-cnn
	// +optional
	Preset string `json:"preset,omitempty"`
}

// DatasetSpec says where the data is and how it is stored.
// +kubebuilder:validation:XValidation:rule="!self.uri.startsWith('synthetic://') || self.format == 'cifar10'",message="the synthetic dataset is in cifar10 format",fieldPath=".format"
// +kubebuilder:validation:XValidation:rule="!self.uri.matches('(?i)[?&]endpoint=http(:|%3a)') || (has(self.allowPlainHTTP) && self.allowPlainHTTP)",message="the endpoint is plain http://, so data and credentials would cross the network unencrypted: use https://, or set allowPlainHTTP: true",fieldPath=".uri"
type DatasetSpec struct {
	// URI of the dataset: s3://bucket/prefix, file:///path (a path inside the worker, e.g. on a mounted
	// volume), or synthetic://cifar10 for the built-in synthetic set.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]([/?].*)?|file:///.+|synthetic://cifar10)$')",message="must be s3://bucket[/prefix], file:///path or synthetic://cifar10"
	// +kubebuilder:validation:XValidation:rule="!self.split('?')[0].split('/').exists(s, s == '..')",message="must not contain '..' path segments"
	// +kubebuilder:validation:XValidation:rule="!self.matches('(?i)[?&]endpoint=[^&]*(@|%40)')",message="must not carry credentials in its endpoint: name a Secret in credentialsSecretName"
	// +required
	URI string `json:"uri"`

	// Format of the files: cifar10 (the CIFAR-10 binary batches) or idx (MNIST / Fashion-MNIST, gzipped
	// or not).
	// +kubebuilder:validation:Enum=cifar10;idx
	// +kubebuilder:default=cifar10
	// +optional
	Format string `json:"format,omitempty"`

	// CredentialsSecretName names a Secret in the job's namespace with the keys AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY (and optionally AWS_SESSION_TOKEN) for an s3:// dataset.
	// +optional
	CredentialsSecretName SecretName `json:"credentialsSecretName,omitempty"`

	// AllowPlainHTTP accepts an s3:// URI whose endpoint is plain http:// (e.g. an object store
	// inside the cluster): data and credentials then cross the network unencrypted. Off by default,
	// so such an endpoint is refused unless this says it is meant.
	// +optional
	AllowPlainHTTP bool `json:"allowPlainHTTP,omitempty"`
}

// SecretName is the name of a Secret in the job's namespace.
// +kubebuilder:validation:MaxLength=253
// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
type SecretName string

// Hyperparameters of a training run.
type Hyperparameters struct {
	// Epochs is the number of passes over the training set.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	// +kubebuilder:default=10
	// +optional
	Epochs int32 `json:"epochs,omitempty"`

	// BatchSize is the number of images per optimizer step, across all workers: with several, each
	// computes the gradient of its share of every batch.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65536
	// +kubebuilder:default=32
	// +optional
	BatchSize int32 `json:"batchSize,omitempty"`

	// LearningRate of the optimizer, greater than 0 and at most 10.
	// +kubebuilder:validation:XValidation:rule="self > 0.0 && self <= 10.0",message="must be greater than 0 and at most 10"
	// +kubebuilder:default=0.001
	// +optional
	LearningRate float64 `json:"learningRate,omitempty"`

	// Optimizer is adam (Keras defaults: beta1 0.9, beta2 0.999, epsilon 1e-7) or sgd.
	// +kubebuilder:validation:Enum=adam;sgd
	// +kubebuilder:default=adam
	// +optional
	Optimizer string `json:"optimizer,omitempty"`

	// Seed of the weight initialization and the data order; the same seed gives the same run.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:default=1
	// +optional
	Seed int64 `json:"seed,omitempty"`

	// TargetTestAccuracy ends training early, as Succeeded, once the test accuracy reaches it.
	// +kubebuilder:validation:XValidation:rule="self > 0.0 && self <= 1.0",message="must be greater than 0 and at most 1"
	// +optional
	TargetTestAccuracy *float64 `json:"targetTestAccuracy,omitempty"`
}

// WorkerResources is what each worker requests.
type WorkerResources struct {
	// GPUs per worker, requested and limited under GPUResourceName. The bundled trainer computes on the
	// CPU: the GPUs are reserved for the pod (and usable by a custom image).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=64
	// +optional
	GPUs int32 `json:"gpus,omitempty"`

	// GPUResourceName is the extended resource that counts GPUs on the nodes.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`
	// +kubebuilder:default="nvidia.com/gpu"
	// +optional
	GPUResourceName string `json:"gpuResourceName,omitempty"`

	// CPU request of each worker. The bundled trainer computes with this many threads, rounded up;
	// without a request it uses every CPU of the node.
	// +optional
	CPU *resource.Quantity `json:"cpu,omitempty"`

	// Memory request and limit of each worker.
	// +optional
	Memory *resource.Quantity `json:"memory,omitempty"`

	// Scratch is the size limit of each worker's scratch volume, which holds an s3:// dataset once
	// downloaded and the trainer's temporary files; the trainer downloads at most nine tenths of
	// it, and refuses a larger dataset by name instead of filling the node's disk. Default 10Gi.
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self > 0 : quantity(self).isGreaterThan(quantity('0'))",message="must be more than 0"
	// +optional
	Scratch *resource.Quantity `json:"scratch,omitempty"`
}

// CheckpointSpec says where and how often checkpoints are written.
// +kubebuilder:validation:XValidation:rule="!self.uri.matches('(?i)[?&]endpoint=http(:|%3a)') || (has(self.allowPlainHTTP) && self.allowPlainHTTP)",message="the endpoint is plain http://, so checkpoints and credentials would cross the network unencrypted: use https://, or set allowPlainHTTP: true",fieldPath=".uri"
// +kubebuilder:validation:XValidation:rule="!has(self.resumeFrom) || !self.resumeFrom.matches('(?i)[?&]endpoint=http(:|%3a)') || (has(self.allowPlainHTTP) && self.allowPlainHTTP)",message="the endpoint is plain http://, so checkpoints and credentials would cross the network unencrypted: use https://, or set allowPlainHTTP: true",fieldPath=".resumeFrom"
type CheckpointSpec struct {
	// URI under which the job's checkpoints are written: s3://bucket/prefix or file:///path. Each job
	// writes below a key derived from its namespace, name and UID.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]([/?].*)?|file:///.+)$')",message="must be s3://bucket[/prefix] or file:///path"
	// +kubebuilder:validation:XValidation:rule="!self.split('?')[0].split('/').exists(s, s == '..')",message="must not contain '..' path segments"
	// +kubebuilder:validation:XValidation:rule="!self.matches('(?i)[?&]endpoint=[^&]*(@|%40)')",message="must not carry credentials in its endpoint: name a Secret in credentialsSecretName"
	// +required
	URI string `json:"uri"`

	// CredentialsSecretName names a Secret in the job's namespace with the keys AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY (and optionally AWS_SESSION_TOKEN) for s3:// storage.
	// +optional
	CredentialsSecretName SecretName `json:"credentialsSecretName,omitempty"`

	// EveryEpochs is the number of epochs between two checkpoints.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:default=1
	// +optional
	EveryEpochs int32 `json:"everyEpochs,omitempty"`

	// Keep is how many of the newest checkpoints are kept (the best one by test accuracy is kept too).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=3
	// +optional
	Keep int32 `json:"keep,omitempty"`

	// ResumeFrom names an existing checkpoint to start from: a warm start, or continuing the run of a
	// deleted job.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]([/?].*)?|file:///.+)$')",message="must be s3://bucket/key or file:///path"
	// +kubebuilder:validation:XValidation:rule="!self.matches('(?i)[?&]endpoint=[^&]*(@|%40)')",message="must not carry credentials in its endpoint: name a Secret in credentialsSecretName"
	// +optional
	ResumeFrom string `json:"resumeFrom,omitempty"`

	// AllowPlainHTTP accepts an s3:// URI whose endpoint is plain http:// (e.g. an object store
	// inside the cluster): data and credentials then cross the network unencrypted. Off by default,
	// so such an endpoint is refused unless this says it is meant.
	// +optional
	AllowPlainHTTP bool `json:"allowPlainHTTP,omitempty"`
}

// RunPolicy says how failures, deadlines, suspension and clean-up are handled.
type RunPolicy struct {
	// BackoffLimit is the number of failed attempts after which the job fails. Disruptions (eviction,
	// preemption, a deleted pod, a node going away) do not count.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=3
	// +optional
	BackoffLimit *int32 `json:"backoffLimit,omitempty"`

	// ActiveDeadlineSeconds bounds the time the job may run, counted from its start (and from its
	// resumption after a suspension); past it the workers are stopped and the job fails. At most
	// 2147483647 (68 years).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=2147483647
	// +optional
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`

	// TTLSecondsAfterFinished deletes the job (and its pods) this long after it succeeded or failed;
	// with ttlAction DeletePods, only its pods.
	// +kubebuilder:validation:Minimum=0
	// +optional
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`

	// TTLAction is what ttlSecondsAfterFinished deletes: DeleteJob (the default), the job with its
	// pods; or DeletePods, only the pods, keeping the job and its status. Use DeletePods for jobs
	// kept in Git: a GitOps tool re-creates a job that was deleted, which would train it again.
	// +kubebuilder:validation:Enum=DeleteJob;DeletePods
	// +optional
	TTLAction TTLAction `json:"ttlAction,omitempty"`

	// Suspend stops the job's pods; setting it back to false starts a new attempt, which resumes from
	// the latest checkpoint.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// ProgressDeadlineSeconds bounds the time from when every worker of an attempt runs to the
	// trainer's first report of that attempt into status.progress; past it the attempt fails with
	// reason NoProgress (counted against backoffLimit), so that a worker that never trains (an image
	// that is not a trainer) does not hold its node for ever. The bundled trainer reports as soon as
	// it starts. Unset: the manager's --progress-deadline (5 minutes) for the bundled trainer, and
	// none for a custom spec.image, which may never report. 0 turns the deadline off.
	// +kubebuilder:validation:Minimum=0
	// +optional
	ProgressDeadlineSeconds *int32 `json:"progressDeadlineSeconds,omitempty"`
}

// TTLAction is what spec.runPolicy.ttlSecondsAfterFinished deletes.
type TTLAction string

const (
	TTLDeleteJob  TTLAction = "DeleteJob"
	TTLDeletePods TTLAction = "DeletePods"
)

// WorkerTemplate is what a user may add to the worker pods.
type WorkerTemplate struct {
	// Labels added to the worker pods. Keys under kubetrain.io/ are reserved.
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('kubetrain.io/'))",message="label keys under kubetrain.io/ are reserved"
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations added to the worker pods.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`
	// +kubebuilder:validation:MaxLength=253
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`
	// +kubebuilder:validation:MaxLength=253
	// +optional
	RuntimeClassName *string `json:"runtimeClassName,omitempty"`
	// +optional
	// +listType=atomic
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
	// Env adds variables to the trainer container. The operator's own are reserved: names starting
	// with KUBETRAIN_ (who the worker is) or AWS_ (storage credentials come only from
	// credentialsSecretName, never from a metadata endpoint), and TMPDIR.
	// +kubebuilder:validation:XValidation:rule="self.all(e, !e.name.startsWith('KUBETRAIN_') && !e.name.startsWith('AWS_') && e.name != 'TMPDIR')",message="environment variables starting with KUBETRAIN_ or AWS_, and TMPDIR, are reserved: the operator sets them"
	// +optional
	// +listType=atomic
	Env []corev1.EnvVar `json:"env,omitempty"`
	// Volumes added to the worker pods. The name scratch is reserved.
	// +kubebuilder:validation:XValidation:rule="self.all(v, v.name != 'scratch')",message="the volume name scratch is reserved"
	// +optional
	// +listType=atomic
	Volumes []corev1.Volume `json:"volumes,omitempty"`
	// VolumeMounts of those volumes in the trainer container. A file:// dataset or checkpoint URI is a
	// path inside the worker, e.g. on a mounted PersistentVolumeClaim.
	// +kubebuilder:validation:XValidation:rule="self.all(m, m.mountPath != '/scratch')",message="the mount path /scratch is reserved"
	// +optional
	// +listType=atomic
	VolumeMounts []corev1.VolumeMount `json:"volumeMounts,omitempty"`
}

// Phase is the stage of a job's life.
// +kubebuilder:validation:Enum=Pending;Running;Restarting;Suspended;Succeeded;Failed
type Phase string

const (
	// PhasePending: the workers of the current attempt exist but do not all run yet.
	PhasePending Phase = "Pending"
	// PhaseRunning: every worker runs.
	PhaseRunning Phase = "Running"
	// PhaseRestarting: an attempt ended and the next waits for its backoff to pass.
	PhaseRestarting Phase = "Restarting"
	// PhaseSuspended: spec.runPolicy.suspend is set and the workers are gone.
	PhaseSuspended Phase = "Suspended"
	// PhaseSucceeded: the workers finished training. Terminal.
	PhaseSucceeded Phase = "Succeeded"
	// PhaseFailed: the job cannot succeed. Terminal.
	PhaseFailed Phase = "Failed"
)

// TrainingJobStatus is what the controller and the trainer report. The controller owns every field
// but progress, history and latestCheckpoint, which the trainer writes; each writes with server-side
// apply under its own field manager, so neither overwrites the other.
type TrainingJobStatus struct {
	// ObservedGeneration is the generation of the spec the controller last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// +optional
	Phase Phase `json:"phase,omitempty"`

	// Conditions: Ready, Reconciling and Stalled (read by GitOps tools through kstatus), and Suspended,
	// Succeeded and Failed.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// StartTime is when the workers of the job were first created (reset on resumption after a
	// suspension: the active deadline counts from it).
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// CompletionTime is when the job succeeded or failed.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// Attempt is the index of the current attempt, from 0. Each new set of worker pods is an attempt.
	// +optional
	Attempt int32 `json:"attempt,omitempty"`
	// AttemptStartTime is when the current attempt's pods were created; unset while the attempt waits
	// for its backoff to pass or for a suspension to end.
	// +optional
	AttemptStartTime *metav1.Time `json:"attemptStartTime,omitempty"`
	// RestartAfter is when a restarting job's next attempt may start (the backoff).
	// +optional
	RestartAfter *metav1.Time `json:"restartAfter,omitempty"`

	// Restarts counts the attempts started after a failure or a disruption.
	// +optional
	Restarts int32 `json:"restarts"`
	// Failures counts the attempts that failed; the job fails when it exceeds the backoff limit.
	// +optional
	Failures int32 `json:"failures,omitempty"`
	// Disruptions counts the attempts that ended by eviction, preemption or a deleted pod; they do not
	// count against the backoff limit.
	// +optional
	Disruptions int32 `json:"disruptions,omitempty"`
	// DisruptionsInARow counts the disruptions since an attempt last ran ten minutes before it was
	// disrupted. The first restarts the job at once; each further one waits as a failure's backoff
	// would (doubling up to the manager's --backoff-max), so a worker disrupted again and again
	// does not loop.
	// +optional
	DisruptionsInARow int32 `json:"disruptionsInARow,omitempty"`

	// Workers counts the current attempt's worker pods by state.
	// +optional
	Workers WorkerCounts `json:"workers,omitempty"`

	// Progress is the trainer's latest report.
	// +optional
	Progress *Progress `json:"progress,omitempty"`
	// History holds the metrics of the most recent epochs (at most 100), oldest first.
	// +kubebuilder:validation:MaxItems=100
	// +listType=atomic
	// +optional
	History []EpochMetrics `json:"history,omitempty"`
	// LatestCheckpoint is the newest committed checkpoint.
	// +optional
	LatestCheckpoint *CheckpointRef `json:"latestCheckpoint,omitempty"`
	// ResumedFrom is the checkpoint the current attempt was told to resume from, if any.
	// +optional
	ResumedFrom *CheckpointRef `json:"resumedFrom,omitempty"`
	// ModelURI is where the trained model is once the job succeeded: its final checkpoint.
	// +optional
	ModelURI string `json:"modelURI,omitempty"`
}

// WorkerCounts counts worker pods by state.
type WorkerCounts struct {
	Pending   int32 `json:"pending"`
	Running   int32 `json:"running"`
	Succeeded int32 `json:"succeeded"`
	Failed    int32 `json:"failed"`
	// Ready is "running/workers", for kubectl get.
	// +optional
	Ready string `json:"ready,omitempty"`
}

// EpochMetrics are the metrics of one epoch.
type EpochMetrics struct {
	Epoch int32 `json:"epoch"`
	// +optional
	Loss float64 `json:"loss,omitempty"`
	// +optional
	TrainAccuracy float64 `json:"trainAccuracy,omitempty"`
	// +optional
	TestAccuracy float64 `json:"testAccuracy,omitempty"`
	// +optional
	ImagesPerSecond float64 `json:"imagesPerSecond,omitempty"`
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
}

// Progress is the trainer's latest report: the last completed epoch's metrics.
type Progress struct {
	EpochMetrics `json:",inline"`
	// Epochs is the total number of epochs.
	Epochs int32 `json:"epochs"`
	// EpochText is "epoch/epochs", for kubectl get.
	// +optional
	EpochText string `json:"epochText,omitempty"`
	// Attempt is the attempt whose trainer made this report. The bundled trainer reports once as it
	// starts (epoch 0, or the epoch it resumes after) and after every epoch.
	// +optional
	Attempt *int32 `json:"attempt,omitempty"`
}

// CheckpointRef points at a committed checkpoint.
type CheckpointRef struct {
	// URI of the checkpoint's manifest.
	URI string `json:"uri"`
	// Epoch the checkpoint was taken after.
	// +optional
	Epoch int32 `json:"epoch,omitempty"`
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
	// Attempt that wrote the checkpoint (for resumedFrom: the attempt that resumed from it).
	// +optional
	Attempt int32 `json:"attempt,omitempty"`
	// Bytes is the size of the checkpoint's objects (what the manifest lists).
	// +optional
	Bytes int64 `json:"bytes,omitempty"`
}
