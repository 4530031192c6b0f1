package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gocloud.dev/gcerrors"
	"k8s.io/apimachinery/pkg/types"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/client/config"

	"github.com/kubetrain/kubetrain/internal/blob"
	"github.com/kubetrain/kubetrain/internal/checkpoint"
	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/internal/progress"
	"github.com/kubetrain/kubetrain/trainer/train"
)

// This file is the trainer's outer layer: it ties a training run to its TrainingJob, with
// checkpoints in object storage and progress in the job's status. The numeric core sees only a
// train.Reporter and the SaveState/LoadState seam.

// stateObject is the checkpoint object that holds train.State.
const stateObject = "state.gob"

// session is a run's checkpoints and status reports; every part is optional.
type session struct {
	cfg    Config
	stderr io.Writer
	job    contract.CheckpointJob

	bucket     *blob.Bucket // the checkpoint location, nil without --checkpoint-uri
	jobPrefix  string
	configHash string
	// pending holds the state after the last epoch when it was not checkpointed (every > 1), so a
	// SIGTERM can still commit it.
	pending      []byte
	pendingEpoch int
	pendingP     contract.Progress
	lastURI      string
	// resumed is the manifest of the checkpoint the run resumed from.
	resumed *contract.Manifest

	status *progress.StatusReporter // nil outside a cluster
	// writer is whether this worker reports progress and commits checkpoints: rank 0 alone. Every
	// rank of a data-parallel run resumes from rank 0's checkpoints.
	writer bool
}

// identity reads the job's identity from the environment the controller sets; a run outside a
// cluster is the local job "local/trainer".
func identity(env map[string]string) contract.CheckpointJob {
	get := func(k, def string) string {
		if v := env[k]; v != "" {
			return v
		}
		return def
	}
	rank, _ := strconv.Atoi(get(contract.EnvRank, "0"))
	attempt, _ := strconv.Atoi(get(contract.EnvAttempt, "0"))
	return contract.CheckpointJob{Namespace: get(contract.EnvJobNamespace, "local"), Name: get(contract.EnvJobName, "trainer"),
		UID: get(contract.EnvJobUID, "run"), Rank: rank, Attempt: attempt}
}

// configHash identifies what a checkpoint may be resumed into: the same model, data and
// hyperparameters (epochs and threads may differ).
func configHash(cfg Config) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s|%s|%s|%d|%g|%s|%d", cfg.Model, cfg.Dataset, cfg.DatasetFormat,
		cfg.BatchSize, cfg.LearningRate, cfg.Optimizer, cfg.Seed)))
	return hex.EncodeToString(h[:8])
}

func newSession(ctx context.Context, cfg Config, env map[string]string, stderr io.Writer) (*session, error) {
	s := &session{cfg: cfg, stderr: stderr, job: identity(env), configHash: configHash(cfg)}
	s.writer = s.job.Rank == 0
	if cfg.CheckpointURI != "" {
		b, err := blob.OpenWith(ctx, cfg.CheckpointURI, storageOptions(cfg, blob.CredentialsFrom(os.Getenv, "")))
		if err != nil {
			return nil, &ConfigError{Msg: fmt.Sprintf("--%s: %v", contract.FlagCheckpointURI, err)}
		}
		s.bucket = b
		if s.jobPrefix, err = contract.JobPrefix(s.job.Namespace, s.job.Name, s.job.UID, 0); err != nil {
			return nil, &ConfigError{Msg: err.Error()}
		}
	}
	if env[contract.EnvJobName] != "" && s.writer {
		// In a pod: the pod-bound ServiceAccount token; elsewhere $KUBECONFIG.
		if rc, err := ctrlconfig.GetConfig(); err != nil {
			s.warn("progress will not reach the TrainingJob's status: no Kubernetes API: %v", err)
		} else {
			r, err := progress.NewStatusReporter(ctx, rc, s.job.Namespace, s.job.Name, types.UID(env[contract.EnvJobUID]))
			if err != nil {
				s.warn("progress will not reach the TrainingJob's status: %v", err)
			} else {
				r.OnError = func(err error) { s.warn("%v", err) }
				r.Attempt = int32(s.job.Attempt)
				r.Started(cfg.Epochs)
				s.status = r
			}
		}
	}
	return s, nil
}

func (s *session) warn(format string, a ...any) {
	fmt.Fprintf(s.stderr, "trainer: warning: "+format+"\n", a...)
}

// resume loads the checkpoint to start from: --resume-from if it verifies, else the newest
// checkpoint of this job that does. A corrupt checkpoint is reported and skipped. It returns the
// URI resumed from, or "" for a fresh start.
func (s *session) resume(ctx context.Context, t *train.Trainer) (string, error) {
	from := s.cfg.ResumeFrom
	if s.bucket == nil && from == "" {
		return "", nil
	}
	var m *contract.Manifest
	var objects []checkpoint.Object
	var key string
	var err error
	skipped := func(err error) { s.warn("%v; trying an older checkpoint", err) }
	if ownKey, ok := s.keyOf(from); s.bucket != nil && (from == "" || ok) {
		m, objects, key, err = checkpoint.Latest(ctx, s.bucket, s.jobPrefix, ownKey, s.cfg.MaxCheckpointBytes, skipped)
		if err != nil {
			return "", fmt.Errorf("checkpoints at %s: %w", contract.ShowURI(s.cfg.CheckpointURI), err)
		}
	} else if m, objects, key, err = s.readForeign(ctx, from); err != nil {
		return "", err
	}
	if m == nil {
		if from != "" {
			return "", &dataError{fmt.Sprintf("--%s %s: no valid checkpoint to resume from", contract.FlagResumeFrom, contract.ShowURI(from))}
		}
		return "", nil
	}
	if m.ConfigHash != s.configHash {
		return "", &ConfigError{Msg: fmt.Sprintf("checkpoint %s was written with another model, dataset or hyperparameters (config %s, this run %s)",
			key, m.ConfigHash, s.configHash)}
	}
	for _, o := range objects {
		if o.Name == stateObject {
			if err := t.LoadState(bytes.NewReader(o.Data)); err != nil {
				return "", &dataError{fmt.Sprintf("checkpoint %s: %v", key, err)}
			}
			s.resumed, s.lastURI = m, s.uriOf(key)
			return s.lastURI, nil
		}
	}
	return "", &dataError{fmt.Sprintf("checkpoint %s has no %s", key, stateObject)}
}

// resumedProgress is the progress a run resumed after its last epoch reports: the metrics its
// checkpoint recorded (a worker killed after its final checkpoint has nothing left to train).
func (s *session) resumedProgress(epochs int) *contract.Progress {
	if s.resumed == nil {
		return nil
	}
	m := s.resumed
	return &contract.Progress{Epoch: m.Epoch, Epochs: epochs, Loss: m.Loss, TrainAccuracy: m.TrainAccuracy,
		TestAccuracy: m.TestAccuracy, Time: m.Created}
}

// readForeign reads a checkpoint outside this job's location (a warm start from another run).
func (s *session) readForeign(ctx context.Context, uri string) (*contract.Manifest, []checkpoint.Object, string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, nil, "", &ConfigError{Msg: fmt.Sprintf("--%s: %v", contract.FlagResumeFrom, err)}
	}
	dir, name := path.Split(u.Path)
	u.Path = dir
	b, err := blob.OpenWith(ctx, u.String(), storageOptions(s.cfg, blob.CredentialsFrom(os.Getenv, "")))
	if err != nil {
		return nil, nil, "", &ConfigError{Msg: fmt.Sprintf("--%s: %v", contract.FlagResumeFrom, err)}
	}
	defer b.Close()
	m, objects, err := checkpoint.Read(ctx, b, name, s.cfg.MaxCheckpointBytes)
	var corrupt *checkpoint.CorruptError
	switch {
	case errors.As(err, &corrupt):
		return nil, nil, "", &dataError{fmt.Sprintf("--%s: %v", contract.FlagResumeFrom, err)}
	case err != nil:
		return nil, nil, "", fmt.Errorf("--%s %s: %w", contract.FlagResumeFrom, contract.ShowURI(uri), err)
	}
	return &m, objects, uri, nil
}

// uriOf is the URI of a key in the checkpoint location (what status and --resume-from carry).
func (s *session) uriOf(key string) string { return contract.CheckpointURI(s.cfg.CheckpointURI, key) }

// keyOf is the key of a URI in the checkpoint location; ok is false for a URI elsewhere.
func (s *session) keyOf(uri string) (string, bool) {
	if s.bucket == nil {
		return "", false
	}
	return contract.CheckpointKey(s.cfg.CheckpointURI, uri)
}

// epochDone checkpoints after an epoch when it is due (every --checkpoint-every-epochs, after the
// last, and when last says the run stops here), and otherwise keeps the state for a SIGTERM.
func (s *session) epochDone(ctx context.Context, t *train.Trainer, p contract.Progress, last bool) error {
	if !s.writer {
		return nil
	}
	if s.status != nil {
		s.status.Report(p)
	}
	if s.bucket == nil {
		return nil
	}
	var buf bytes.Buffer
	if err := t.SaveState(&buf); err != nil {
		return err
	}
	if p.Epoch%max(s.cfg.CheckpointEvery, 1) != 0 && p.Epoch != p.Epochs && !last {
		s.pending, s.pendingEpoch, s.pendingP = buf.Bytes(), p.Epoch, p
		return nil
	}
	// A SIGTERM during the upload lets it finish: stopping cleanly includes the checkpoint
	// under way, within the pod's grace period.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	return s.commit(ctx, buf.Bytes(), p)
}

// commitTimeout bounds one checkpoint upload.
const commitTimeout = 2 * time.Minute

// stopped commits the state of the last epoch that was not checkpointed, when a SIGTERM stopped
// the run, within the grace period the pod has left.
func (s *session) stopped() {
	if !s.writer || s.bucket == nil || s.pending == nil {
		return
	}
	// Kubernetes' default grace period is 30 s; the controller gives workers more.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.commit(ctx, s.pending, s.pendingP); err != nil {
		s.warn("could not checkpoint epoch %d on termination: %v", s.pendingEpoch, err)
	}
}

func (s *session) commit(ctx context.Context, state []byte, p contract.Progress) error {
	m := contract.Manifest{Job: s.job, Epoch: p.Epoch, ConfigHash: s.configHash, Created: p.Time,
		Loss: p.Loss, TrainAccuracy: p.TrainAccuracy, TestAccuracy: p.TestAccuracy}
	start := time.Now()
	key, err := checkpoint.Commit(ctx, s.bucket, s.jobPrefix, m, []checkpoint.Object{{Name: stateObject, Data: state}})
	if err != nil {
		return fmt.Errorf("checkpoints at %s: %w", contract.ShowURI(s.cfg.CheckpointURI), err)
	}
	fmt.Fprintf(s.stderr, "trainer: checkpoint of epoch %d committed in %.0f ms (%.1f MiB): %s\n",
		p.Epoch, float64(time.Since(start).Microseconds())/1000, float64(len(state))/(1<<20), contract.ShowURI(s.uriOf(key)))
	s.pending = nil
	s.lastURI = s.uriOf(key)
	if s.status != nil {
		s.status.Checkpointed(s.lastURI, p.Epoch, s.job.Attempt, int64(len(state)), p.Time)
	}
	if err := checkpoint.Prune(ctx, s.bucket, s.jobPrefix, max(s.cfg.CheckpointKeep, 1), key); err != nil {
		s.warn("pruning old checkpoints: %v", err)
	}
	return nil
}

func (s *session) close() {
	if s.bucket != nil {
		s.bucket.Close()
	}
}

// dataError is bad data that retrying cannot fix (a corrupt checkpoint with nothing to fall back
// to): contract.ExitInvalidData.
type dataError struct{ msg string }

func (e *dataError) Error() string { return e.msg }

// datasetFiles are the files a dataset directory must hold, by format; an idx file may be gzipped.
var datasetFiles = map[string][]string{
	contract.FormatCIFAR10: {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"},
	contract.FormatIDX:     {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"},
}

// fetchDataset copies an s3:// dataset into the scratch directory and returns its file:// URI;
// the loader then verifies every file before training starts. Other URIs are returned as they are.
// The download streams to disk, at most --max-dataset-bytes in all, within --fetch-timeout.
func fetchDataset(ctx context.Context, cfg Config, env map[string]string) (string, error) {
	if !strings.HasPrefix(cfg.Dataset, contract.SchemeS3+"://") {
		return cfg.Dataset, nil
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.FetchTimeout)
	defer cancel()
	b, err := blob.OpenWith(ctx, cfg.Dataset, storageOptions(cfg, datasetCredentials(env)))
	if err != nil {
		return "", &ConfigError{Msg: fmt.Sprintf("--%s: %v", contract.FlagDataset, err)}
	}
	defer b.Close()
	dir := filepath.Join(cfg.ScratchDir, "dataset")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	left := cfg.MaxDatasetBytes
	for _, name := range datasetFiles[cfg.DatasetFormat] {
		candidates := []string{name}
		if cfg.DatasetFormat == contract.FormatIDX {
			candidates = []string{name + ".gz", name}
		}
		found := false
		for _, key := range candidates {
			n, err := copyObject(ctx, b, key, filepath.Join(dir, key), left)
			var large *blob.TooLargeError
			switch {
			case gcerrors.Code(err) == gcerrors.NotFound:
				continue
			case errors.As(err, &large):
				return "", &ConfigError{Msg: fmt.Sprintf("dataset %s: %v: the dataset may take at most --%s=%d bytes in all (the worker's scratch space, spec.resources.scratch)",
					contract.ShowURI(cfg.Dataset), err, contract.FlagMaxDatasetBytes, cfg.MaxDatasetBytes)}
			case errors.Is(ctx.Err(), context.DeadlineExceeded):
				return "", fmt.Errorf("dataset %s: the download did not finish within --%s=%v (reading %s)", contract.ShowURI(cfg.Dataset), FlagFetchTimeout, cfg.FetchTimeout, key)
			case err != nil:
				return "", fmt.Errorf("dataset %s: reading %s: %w", contract.ShowURI(cfg.Dataset), key, err)
			}
			left -= n
			found = true
			break
		}
		if !found {
			return "", &dataError{fmt.Sprintf("dataset %s: %s is missing (want the %s files %s)", contract.ShowURI(cfg.Dataset),
				strings.Join(candidates, " or "), cfg.DatasetFormat, strings.Join(datasetFiles[cfg.DatasetFormat], ", "))}
		}
	}
	return "file://" + dir, nil
}

// datasetCredentials are the dataset's own credentials when the environment has them (its Secret is
// not the checkpoints'), else the process's.
func datasetCredentials(env map[string]string) blob.Credentials {
	if c := blob.CredentialsFrom(func(k string) string { return env[k] }, contract.EnvDatasetCredentials); c.AccessKeyID != "" {
		return c
	}
	return blob.CredentialsFrom(os.Getenv, "")
}

// storageOptions are how the trainer reaches a store with the given credentials.
func storageOptions(cfg Config, creds blob.Credentials) blob.Options {
	return blob.Options{Credentials: creds, StallTimeout: cfg.StallTimeout}
}

// copyObject copies the object key, of at most limit bytes, into the file path.
func copyObject(ctx context.Context, b *blob.Bucket, key, path string, limit int64) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	n, err := blob.CopyAtMost(ctx, f, b, key, limit)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return n, err
}
