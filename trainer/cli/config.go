package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/kubetrain/kubetrain/internal/blob"
	"github.com/kubetrain/kubetrain/internal/checkpoint"
	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/trainer/gemm"
	"github.com/kubetrain/kubetrain/trainer/optim"
)

// Trainer-only settings: no controller sets them, so they are not in package contract.
const (
	// FlagKernel forces the instruction set of every compute kernel (go, avx2, avx512); empty picks the fastest.
	FlagKernel = "kernel"
	// FlagMaxCheckpointBytes bounds the objects of one checkpoint together, read when resuming.
	FlagMaxCheckpointBytes = "max-checkpoint-bytes"
	// FlagFetchTimeout bounds the download of an s3:// dataset; FlagResumeTimeout the reading of
	// the checkpoint to resume from. A stalled store ends the run (retriably) instead of holding it.
	FlagFetchTimeout  = "fetch-timeout"
	FlagResumeTimeout = "resume-timeout"
	// FlagStallTimeout cuts a storage request through which nothing has moved for that long, so it
	// is retried well within those deadlines.
	FlagStallTimeout = "storage-stall-timeout"
	// EnvTerminationLog overrides contract.TerminationLogPath, for tests.
	EnvTerminationLog = contract.EnvPrefix + "TERMINATION_LOG"
)

// Config is the trainer's parsed configuration.
type Config struct {
	Model              string
	Dataset            string
	DatasetFormat      string
	Epochs             int
	BatchSize          int
	LearningRate       float64
	Optimizer          string
	Seed               uint64
	Threads            int
	LogFormat          string
	ScratchDir         string
	CheckpointURI      string
	CheckpointKeep     int
	CheckpointEvery    int
	ResumeFrom         string
	TargetAccuracy     float64
	AllowPlainHTTP     bool
	MaxDatasetBytes    int64
	MaxCheckpointBytes int64
	FetchTimeout       time.Duration
	ResumeTimeout      time.Duration
	StallTimeout       time.Duration
	Kernel             string
}

// ConfigError is a flag or environment variable the trainer cannot accept; it exits with
// contract.ExitInvalidConfig.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return e.Msg }

// NewFlagSet returns the trainer's flag set, bound to cfg and holding the defaults. Usage names each
// flag's environment variable.
func NewFlagSet(cfg *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("trainer", flag.ContinueOnError)
	env := func(name, usage string) string { return fmt.Sprintf("%s (env %s)", usage, contract.EnvName(name)) }
	fs.StringVar(&cfg.Model, contract.FlagModel, contract.ModelReferenceCNN, env(contract.FlagModel, "model preset: "+strings.Join(contract.Models, ", ")))
	fs.StringVar(&cfg.Dataset, contract.FlagDataset, contract.SyntheticDatasetURI, env(contract.FlagDataset,
		"dataset URI: file:///dir or s3://bucket/prefix (a directory of dataset files; s3 is fetched into the scratch directory first) or "+contract.SyntheticDatasetURI+" (built in, generated from the seed)"))
	fs.StringVar(&cfg.DatasetFormat, contract.FlagDatasetFormat, contract.FormatCIFAR10, env(contract.FlagDatasetFormat,
		"format of a file:// dataset: cifar10 (data_batch_1..5.bin, test_batch.bin) or idx (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each optionally .gz)"))
	fs.IntVar(&cfg.Epochs, contract.FlagEpochs, 1, env(contract.FlagEpochs, "passes over the training data"))
	fs.IntVar(&cfg.BatchSize, contract.FlagBatchSize, 32, env(contract.FlagBatchSize, "examples per training step"))
	fs.Float64Var(&cfg.LearningRate, contract.FlagLearningRate, optim.DefaultLearningRate, env(contract.FlagLearningRate, "learning rate"))
	fs.StringVar(&cfg.Optimizer, contract.FlagOptimizer, contract.OptimizerAdam, env(contract.FlagOptimizer,
		"optimizer: adam (beta1 0.9, beta2 0.999, epsilon 1e-7, as Keras) or sgd"))
	fs.Uint64Var(&cfg.Seed, contract.FlagSeed, 1, env(contract.FlagSeed, "seed of the initial weights, the data order and the synthetic dataset"))
	fs.IntVar(&cfg.Threads, contract.FlagThreads, 0, env(contract.FlagThreads,
		"compute threads; 0 uses every CPU the process may use. Results are bit-identical for the same seed and threads"))
	fs.StringVar(&cfg.LogFormat, contract.FlagLogFormat, contract.LogFormatText, env(contract.FlagLogFormat,
		"log format: text, or json (one contract.Progress object per epoch, then the result)"))
	fs.StringVar(&cfg.ScratchDir, contract.FlagScratchDir, contract.ScratchDir, env(contract.FlagScratchDir, "writable scratch directory"))
	fs.StringVar(&cfg.CheckpointURI, contract.FlagCheckpointURI, "", env(contract.FlagCheckpointURI, "where checkpoints go: s3://bucket/prefix[?endpoint=URL&region=R&use_path_style=true] or file:///dir; credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"))
	fs.IntVar(&cfg.CheckpointKeep, contract.FlagCheckpointKeep, 3, env(contract.FlagCheckpointKeep, "newest checkpoints to keep (the best by test accuracy is kept too)"))
	fs.IntVar(&cfg.CheckpointEvery, contract.FlagCheckpointEvery, 1, env(contract.FlagCheckpointEvery, "epochs between checkpoints (the last epoch is always checkpointed)"))
	fs.StringVar(&cfg.ResumeFrom, contract.FlagResumeFrom, "", env(contract.FlagResumeFrom, "URI of the checkpoint manifest to resume from; a corrupt one is reported and the newest older valid one is used. Without it the newest checkpoint of this job, if any, is resumed"))
	fs.Float64Var(&cfg.TargetAccuracy, contract.FlagTargetTestAccuracy, 0, env(contract.FlagTargetTestAccuracy,
		"stop, successfully, once the test accuracy reaches this (0 to 1; 0 trains every epoch)"))
	fs.Int64Var(&cfg.MaxDatasetBytes, contract.FlagMaxDatasetBytes, 8<<30, env(contract.FlagMaxDatasetBytes,
		"the most bytes an s3:// dataset may take in the scratch directory"))
	fs.Int64Var(&cfg.MaxCheckpointBytes, FlagMaxCheckpointBytes, checkpoint.DefaultMaxBytes, env(FlagMaxCheckpointBytes,
		"the most bytes the objects of one checkpoint may take together; a larger one is skipped as corrupt"))
	fs.DurationVar(&cfg.FetchTimeout, FlagFetchTimeout, time.Hour, env(FlagFetchTimeout, "deadline for downloading an s3:// dataset"))
	fs.DurationVar(&cfg.ResumeTimeout, FlagResumeTimeout, 10*time.Minute, env(FlagResumeTimeout, "deadline for reading the checkpoint to resume from"))
	fs.DurationVar(&cfg.StallTimeout, FlagStallTimeout, blob.DefaultStallTimeout, env(FlagStallTimeout,
		"cut and retry an object-store request (a dataset or checkpoint read or write) through which no byte has moved for this long"))
	fs.BoolVar(&cfg.AllowPlainHTTP, contract.FlagAllowPlainHTTP, false, env(contract.FlagAllowPlainHTTP,
		"accept s3:// endpoints that are plain http://, whose data and credentials cross the network unencrypted"))
	fs.StringVar(&cfg.Kernel, FlagKernel, "", env(FlagKernel, "instruction set of the compute kernels (matrix products, elementwise loops, Adam): "+strings.Join(gemm.Available(), ", ")+"; empty picks the fastest ("+gemm.Best()+")"))
	fs.Usage = func() { usage(fs) }
	return fs
}

func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintf(w, `Usage: trainer [flags]

Trains a model on the CPU and prints one line per epoch, then a summary. Every flag can also be set
by the environment variable named with it; a flag on the command line wins.

Flags:
`)
	fs.PrintDefaults()
	fmt.Fprintf(w, `
Exit codes:
  %d    training finished
  %d   invalid configuration (a flag or variable); retrying cannot help
  %d   invalid data (missing, truncated, oversized or mislabelled files); retrying cannot help
  %d   a failure another attempt may not meet
  %d  stopped cleanly after SIGTERM, at a step boundary

The result is also written as JSON to %s when that file exists (Kubernetes' termination log).
`, contract.ExitSucceeded, contract.ExitInvalidConfig, contract.ExitInvalidData, contract.ExitRetriable, contract.ExitTerminated, contract.TerminationLogPath)
}

// errHelp is returned by Parse when -h or --help was asked for.
var errHelp = flag.ErrHelp

// Parse reads the trainer's configuration from command-line arguments (without the program name)
// and environment variables (by name, e.g. "KUBETRAIN_EPOCHS"; nil for none): each flag takes the
// value of its variable unless the flag is given. It returns a *ConfigError naming the flag or
// variable when a value is invalid, and flag.ErrHelp for -h/--help (the usage is then written to
// help, which may be nil to discard it).
func Parse(args []string, env map[string]string) (Config, error) {
	return parse(args, env, io.Discard)
}

func parse(args []string, env map[string]string, help io.Writer) (Config, error) {
	var cfg Config
	fs := NewFlagSet(&cfg)
	fs.SetOutput(help)
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := env[contract.EnvName(f.Name)]
		if !ok || err != nil {
			return
		}
		if e := f.Value.Set(v); e != nil {
			err = &ConfigError{Msg: fmt.Sprintf("environment variable %s=%q: %v", contract.EnvName(f.Name), v, e)}
		}
	})
	if err != nil {
		return cfg, err
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, &ConfigError{Msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return cfg, &ConfigError{Msg: fmt.Sprintf("unexpected argument %q: the trainer takes flags only", fs.Arg(0))}
	}
	if cfg.Threads == 0 {
		cfg.Threads = runtime.GOMAXPROCS(0)
	}
	return cfg, validate(cfg)
}

func validate(cfg Config) error {
	bad := func(flag, format string, args ...any) error {
		return &ConfigError{Msg: fmt.Sprintf("--%s (%s): %s", flag, contract.EnvName(flag), fmt.Sprintf(format, args...))}
	}
	switch {
	case !slices.Contains(contract.Models, cfg.Model):
		return bad(contract.FlagModel, "unknown model %q, want one of %v", cfg.Model, contract.Models)
	case !slices.Contains(contract.Formats, cfg.DatasetFormat):
		return bad(contract.FlagDatasetFormat, "unknown format %q, want one of %v", cfg.DatasetFormat, contract.Formats)
	case cfg.Epochs < 1:
		return bad(contract.FlagEpochs, "%d, want at least 1", cfg.Epochs)
	case cfg.BatchSize < 1 || cfg.BatchSize > 65536:
		return bad(contract.FlagBatchSize, "%d, want 1 to 65536", cfg.BatchSize)
	case !(cfg.LearningRate > 0) || cfg.LearningRate > 10:
		return bad(contract.FlagLearningRate, "%v, want more than 0 and at most 10", cfg.LearningRate)
	case cfg.Optimizer != contract.OptimizerAdam && cfg.Optimizer != contract.OptimizerSGD:
		return bad(contract.FlagOptimizer, "unknown optimizer %q, want %s or %s", cfg.Optimizer, contract.OptimizerAdam, contract.OptimizerSGD)
	case cfg.TargetAccuracy < 0 || cfg.TargetAccuracy > 1 || math.IsNaN(cfg.TargetAccuracy):
		return bad(contract.FlagTargetTestAccuracy, "%v, want 0 (none) to 1", cfg.TargetAccuracy)
	case cfg.Threads < 1 || cfg.Threads > 1024:
		return bad(contract.FlagThreads, "%d, want 0 (every CPU) to 1024", cfg.Threads)
	case cfg.LogFormat != contract.LogFormatText && cfg.LogFormat != contract.LogFormatJSON:
		return bad(contract.FlagLogFormat, "unknown format %q, want %s or %s", cfg.LogFormat, contract.LogFormatText, contract.LogFormatJSON)
	case cfg.CheckpointKeep < 1:
		return bad(contract.FlagCheckpointKeep, "%d, want at least 1", cfg.CheckpointKeep)
	case cfg.CheckpointEvery < 1:
		return bad(contract.FlagCheckpointEvery, "%d, want at least 1", cfg.CheckpointEvery)
	case cfg.MaxDatasetBytes < 1:
		return bad(contract.FlagMaxDatasetBytes, "%d, want at least 1", cfg.MaxDatasetBytes)
	case cfg.MaxCheckpointBytes < 1:
		return bad(FlagMaxCheckpointBytes, "%d, want at least 1", cfg.MaxCheckpointBytes)
	case cfg.FetchTimeout <= 0:
		return bad(FlagFetchTimeout, "%v, want more than 0", cfg.FetchTimeout)
	case cfg.ResumeTimeout <= 0:
		return bad(FlagResumeTimeout, "%v, want more than 0", cfg.ResumeTimeout)
	case cfg.StallTimeout <= 0:
		return bad(FlagStallTimeout, "%v, want more than 0", cfg.StallTimeout)
	case cfg.Kernel != "" && !slices.Contains(gemm.Available(), cfg.Kernel):
		return bad(FlagKernel, "kernel %q is not available on this CPU, want one of %v", cfg.Kernel, gemm.Available())
	}
	for _, u := range []struct{ flag, uri string }{
		{contract.FlagDataset, cfg.Dataset}, {contract.FlagCheckpointURI, cfg.CheckpointURI}, {contract.FlagResumeFrom, cfg.ResumeFrom},
	} {
		if loc, err := blob.Parse(u.uri); err == nil && loc.PlainHTTP() && !cfg.AllowPlainHTTP {
			return bad(u.flag, "endpoint %s is plain http://, so data and credentials would cross the network unencrypted: use https://, or pass --%s",
				loc.Endpoint, contract.FlagAllowPlainHTTP)
		}
	}
	return nil
}
