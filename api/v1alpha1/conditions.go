package v1alpha1

// Condition types. Ready, Reconciling and Stalled follow kstatus
// (sigs.k8s.io/cli-utils/pkg/kstatus), which Flux and other GitOps tools read: a job is Current once
// the controller has acted on its latest generation (training may still be running), InProgress
// while Reconciling is True, and Failed while Stalled is True.
const (
	// ConditionReady is True while the workers run and once the job succeeded.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the controller replaces the workers of an attempt.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the job cannot make progress without a change from the user:
	// it failed, or its pods cannot start (e.g. a missing Secret).
	ConditionStalled = "Stalled"
	// ConditionSuspended is True while spec.runPolicy.suspend, or a Kueue queue, holds the workers.
	ConditionSuspended = "Suspended"
	// ConditionSucceeded is True once the workers finished training.
	ConditionSucceeded = "Succeeded"
	// ConditionFailed is True once the job failed.
	ConditionFailed = "Failed"
	// ConditionCheckpointed is True once the trainer committed a checkpoint; its message names the
	// latest one.
	ConditionCheckpointed = "Checkpointed"
)

// Condition reasons.
const (
	ReasonPodsCreated     = "PodsCreated"
	ReasonPodsPending     = "PodsPending"
	ReasonUnschedulable   = "Unschedulable"
	ReasonContainerConfig = "ContainerConfigError"
	ReasonImagePull       = "ImagePullError"
	ReasonRunning         = "Running"
	ReasonRestarting      = "Restarting"
	ReasonBackoff         = "Backoff"
	ReasonSuspended       = "Suspended"
	// ReasonQueued: the job waits in a Kueue queue, or Kueue evicted it; the message says why.
	ReasonQueued            = "Queued"
	ReasonResumed           = "Resumed"
	ReasonSucceeded         = "Succeeded"
	ReasonTargetReached     = "TargetAccuracyReached"
	ReasonBackoffLimit      = "BackoffLimitExceeded"
	ReasonDeadlineExceeded  = "DeadlineExceeded"
	ReasonPermanentFailure  = "PermanentFailure"
	ReasonWorkerFailed      = "WorkerFailed"
	ReasonWorkerDisrupted   = "WorkerDisrupted"
	ReasonNoProgress        = "NoProgress"
	ReasonAsExpected        = "AsExpected"
	ReasonTTLExpired        = "TTLExpired"
	ReasonPodCreationFailed = "PodCreationFailed"
	ReasonCheckpointed      = "CheckpointCommitted"
	ReasonResuming          = "ResumingFromCheckpoint"
	// ReasonCheckpointOutsideJob: status.latestCheckpoint lies outside the job's own prefix and is
	// ignored.
	ReasonCheckpointOutsideJob = "CheckpointOutsideJob"
)

// Labels and annotations the controller sets on worker pods.
const (
	LabelJobName   = "kubetrain.io/job-name"
	LabelJobUID    = "kubetrain.io/job-uid"
	LabelRank      = "kubetrain.io/rank"
	LabelAttempt   = "kubetrain.io/attempt"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy on every pod of the operator; its cache only
	// watches pods that carry it.
	ManagedByValue = "kubetrain"
)
