package contract

import "strings"

// Flag names of the trainer binary. Every flag can also be set from the environment variable that
// EnvName returns for it; a flag on the command line wins over the variable.
const (
	FlagModel          = "model"
	FlagDataset        = "dataset"
	FlagDatasetFormat  = "dataset-format"
	FlagEpochs         = "epochs"
	FlagBatchSize      = "batch-size"
	FlagLearningRate   = "learning-rate"
	FlagOptimizer      = "optimizer"
	FlagSeed           = "seed"
	FlagThreads        = "threads"
	FlagLogFormat      = "log-format"
	FlagScratchDir     = "scratch-dir"
	FlagCheckpointURI  = "checkpoint-uri"
	FlagCheckpointKeep = "checkpoint-keep"
	// FlagCheckpointEvery is the number of epochs between two checkpoints.
	FlagCheckpointEvery = "checkpoint-every-epochs"
	// FlagResumeFrom names the checkpoint a new attempt resumes from; the controller sets it.
	FlagResumeFrom = "resume-from"
	// FlagTargetTestAccuracy stops training, successfully, once the test accuracy reaches it.
	FlagTargetTestAccuracy = "target-test-accuracy"
	// FlagMaxDatasetBytes bounds what an s3:// dataset download may write into the scratch
	// directory; the controller sets it below the scratch volume's size limit.
	FlagMaxDatasetBytes = "max-dataset-bytes"
	// FlagAllowPlainHTTP accepts s3:// endpoints that are plain http://; without it they are refused.
	FlagAllowPlainHTTP = "allow-plain-http"
)

// EnvPrefix starts the name of every environment variable the trainer reads.
const EnvPrefix = "KUBETRAIN_"

// EnvName is the environment variable that sets a flag: "batch-size" -> "KUBETRAIN_BATCH_SIZE".
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// The job's identity reaches every worker through these environment variables, set by the
// controller (the namespace, name and UID through the downward API where it can).
var (
	EnvJobNamespace = EnvPrefix + "JOB_NAMESPACE"
	EnvJobName      = EnvPrefix + "JOB_NAME"
	EnvJobUID       = EnvPrefix + "JOB_UID"
	// EnvAttempt counts the job's attempts from 0; each restart of the workers is a new attempt.
	EnvAttempt = EnvPrefix + "ATTEMPT"
	// EnvRank is the worker's index, from 0 to EnvWorldSize-1.
	EnvRank      = EnvPrefix + "RANK"
	EnvWorldSize = EnvPrefix + "WORLD_SIZE"
	// EnvPodName is the worker pod's own name.
	EnvPodName = EnvPrefix + "POD_NAME"
	// EnvPodIP is the worker pod's address, where the other workers of a data-parallel run reach it.
	EnvPodIP = EnvPrefix + "POD_IP"
	// EnvRendezvous is where rank 0 of a data-parallel run listens (host:port), for the others to
	// join; set when the world size is above 1.
	EnvRendezvous = EnvPrefix + "RENDEZVOUS"
)

// RendezvousPort is the port rank 0 of a data-parallel run listens on.
const RendezvousPort = 29500

// Model presets the trainer knows.
const (
	// ModelReferenceCNN is the classic Keras CIFAR-10 CNN: Conv2D(32, 3x3, relu) -> MaxPool(2x2) ->
	// Flatten -> Dense(64, relu) -> Dense(10, softmax). Its input shape comes from the dataset.
	ModelReferenceCNN = "reference-cnn"
)

// Models lists every preset, the default first.
var Models = []string{ModelReferenceCNN}

// Dataset formats.
const (
	// FormatCIFAR10 is the CIFAR-10 binary format: records of 1 label byte and 3x32x32 pixel bytes,
	// in data_batch_1.bin .. data_batch_5.bin and test_batch.bin.
	FormatCIFAR10 = "cifar10"
	// FormatIDX is the MNIST/Fashion-MNIST IDX format, gzipped or not.
	FormatIDX = "idx"
)

// Formats lists every dataset format.
var Formats = []string{FormatCIFAR10, FormatIDX}

// SyntheticDatasetURI names the built-in synthetic dataset: CIFAR-10-shaped images whose classes are
// learnable, generated from the seed. It needs no storage and serves tests and the demo.
const SyntheticDatasetURI = "synthetic://cifar10"

// Dataset and checkpoint URI schemes.
const (
	SchemeS3        = "s3"
	SchemeFile      = "file"
	SchemeSynthetic = "synthetic"
)

// Optimizers.
const (
	OptimizerAdam = "adam"
	OptimizerSGD  = "sgd"
)

// Log formats.
const (
	LogFormatText = "text"
	LogFormatJSON = "json"
)

// Keys of the credentials Secret that a TrainingJob's checkpoint (or dataset) storage names. The
// controller only references them from the pod spec (it never reads the Secret); the trainer reads them
// from its environment, under the same names, which are the ones every S3 SDK understands.
const (
	SecretKeyAccessKeyID     = "AWS_ACCESS_KEY_ID"
	SecretKeySecretAccessKey = "AWS_SECRET_ACCESS_KEY"
	// SecretKeySessionToken is optional.
	SecretKeySessionToken = "AWS_SESSION_TOKEN"
)

// EnvDatasetCredentials prefixes the dataset Secret's keys in the worker's environment
// (KUBETRAIN_DATASET_AWS_ACCESS_KEY_ID, ...), so that a dataset and checkpoints in different
// accounts each have their own; the unprefixed ones are the checkpoints' (or, without a checkpoint
// Secret, the dataset's). The trainer reads a dataset with the prefixed ones when they are set.
const EnvDatasetCredentials = EnvPrefix + "DATASET_"

// Paths inside a worker container.
const (
	// ScratchDir is a writable emptyDir: the root filesystem is read-only.
	ScratchDir = "/scratch"
	// TerminationLogPath is where the trainer writes its final result; Kubernetes copies it into the
	// container's status.
	TerminationLogPath = "/dev/termination-log"
)
