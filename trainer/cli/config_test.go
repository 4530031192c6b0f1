package cli

import (
	"errors"
	"flag"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubetrain/kubetrain/internal/contract"
)

func defaults() Config {
	return Config{
		Model: contract.ModelReferenceCNN, Dataset: contract.SyntheticDatasetURI, DatasetFormat: contract.FormatCIFAR10,
		Epochs: 1, BatchSize: 32, LearningRate: 1e-3, Optimizer: contract.OptimizerAdam, Seed: 1,
		Threads: runtime.GOMAXPROCS(0), LogFormat: contract.LogFormatText, ScratchDir: contract.ScratchDir,
		CheckpointKeep: 3, CheckpointEvery: 1,
		MaxDatasetBytes: 8 << 30, MaxCheckpointBytes: 1 << 30, FetchTimeout: time.Hour, ResumeTimeout: 10 * time.Minute, StallTimeout: time.Minute,
	}
}

func TestParse(t *testing.T) {
	cases := map[string]struct {
		args    []string
		env     map[string]string
		want    func(c *Config)
		wantErr string // a ConfigError containing this
	}{
		"defaults": {},
		"flags": {
			args: []string{"--epochs=3", "--batch-size", "64", "--dataset", "file:///data", "--dataset-format=idx", "--threads=2",
				"--learning-rate=0.01", "--optimizer=sgd", "--seed=9", "--log-format=json", "--resume-from=s3://b/ck/3"},
			want: func(c *Config) {
				c.Epochs, c.BatchSize, c.Dataset, c.DatasetFormat, c.Threads = 3, 64, "file:///data", contract.FormatIDX, 2
				c.LearningRate, c.Optimizer, c.Seed, c.LogFormat, c.ResumeFrom = 0.01, contract.OptimizerSGD, 9, contract.LogFormatJSON, "s3://b/ck/3"
			},
		},
		"environment": {
			env:  map[string]string{"KUBETRAIN_EPOCHS": "5", "KUBETRAIN_BATCH_SIZE": "16", "KUBETRAIN_LOG_FORMAT": "json", "UNRELATED": "x"},
			want: func(c *Config) { c.Epochs, c.BatchSize, c.LogFormat = 5, 16, contract.LogFormatJSON },
		},
		"flag wins over environment": {
			args: []string{"--epochs=2"},
			env:  map[string]string{"KUBETRAIN_EPOCHS": "5"},
			want: func(c *Config) { c.Epochs = 2 },
		},
		"bad environment value":   {env: map[string]string{"KUBETRAIN_BATCH_SIZE": "many"}, wantErr: `KUBETRAIN_BATCH_SIZE="many"`},
		"bad flag value":          {args: []string{"--epochs=x"}, wantErr: "-epochs"},
		"unknown flag":            {args: []string{"--gpus=1"}, wantErr: "gpus"},
		"positional argument":     {args: []string{"train"}, wantErr: `unexpected argument "train"`},
		"zero epochs":             {args: []string{"--epochs=0"}, wantErr: "--epochs (KUBETRAIN_EPOCHS): 0, want at least 1"},
		"unknown model":           {env: map[string]string{"KUBETRAIN_MODEL": "resnet"}, wantErr: `--model (KUBETRAIN_MODEL): unknown model "resnet"`},
		"unknown format":          {args: []string{"--dataset-format=png"}, wantErr: "--dataset-format"},
		"negative learning rate":  {args: []string{"--learning-rate=-1"}, wantErr: "--learning-rate"},
		"unknown optimizer":       {args: []string{"--optimizer=rmsprop"}, wantErr: "--optimizer"},
		"too many threads":        {args: []string{"--threads=5000"}, wantErr: "--threads"},
		"unknown log format":      {args: []string{"--log-format=xml"}, wantErr: "--log-format"},
		"unknown kernel":          {args: []string{"--kernel=neon"}, wantErr: "--kernel"},
		"zero dataset limit":      {args: []string{"--max-dataset-bytes=0"}, wantErr: "--max-dataset-bytes"},
		"zero checkpoint limit":   {args: []string{"--max-checkpoint-bytes=0"}, wantErr: "--max-checkpoint-bytes"},
		"zero fetch timeout":      {args: []string{"--fetch-timeout=0s"}, wantErr: "--fetch-timeout"},
		"negative resume timeout": {args: []string{"--resume-timeout=-1s"}, wantErr: "--resume-timeout"},
		"zero stall timeout":      {args: []string{"--storage-stall-timeout=0s"}, wantErr: "--storage-stall-timeout"},
		"plain http dataset":      {args: []string{"--dataset=s3://d/x?endpoint=http://minio:9000"}, wantErr: "--dataset (KUBETRAIN_DATASET): endpoint http://minio:9000 is plain http://"},
		"plain http checkpoints":  {args: []string{"--checkpoint-uri=s3://c/x?endpoint=HTTP://minio"}, wantErr: "--checkpoint-uri"},
		"plain http resume":       {args: []string{"--resume-from=s3://c/x/m.json?endpoint=http%3A%2F%2Fminio"}, wantErr: "--resume-from"},
		"plain http allowed": {
			args: []string{"--dataset=s3://d/x?endpoint=http://minio:9000", "--allow-plain-http"},
			want: func(c *Config) { c.Dataset, c.AllowPlainHTTP = "s3://d/x?endpoint=http://minio:9000", true },
		},
		"https endpoint": {
			args: []string{"--checkpoint-uri=s3://c/x?endpoint=https://minio"},
			want: func(c *Config) { c.CheckpointURI = "s3://c/x?endpoint=https://minio" },
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := Parse(tc.args, tc.env)
			if tc.wantErr != "" {
				var ce *ConfigError
				if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want a ConfigError containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := defaults()
			if tc.want != nil {
				tc.want(&want)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("config (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestParseHelp(t *testing.T) {
	var help strings.Builder
	_, err := parse([]string{"--help"}, nil, &help)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("error %v, want flag.ErrHelp", err)
	}
	// Every flag, with its environment variable, and every exit code are documented.
	fs := NewFlagSet(&Config{})
	fs.VisitAll(func(f *flag.Flag) {
		for _, s := range []string{"-" + f.Name, contract.EnvName(f.Name)} {
			if !strings.Contains(help.String(), s) {
				t.Errorf("--help does not mention %s", s)
			}
		}
	})
	for _, s := range []string{"64", "65", "75", "143", contract.TerminationLogPath} {
		if !strings.Contains(help.String(), s) {
			t.Errorf("--help does not mention %s", s)
		}
	}
}
