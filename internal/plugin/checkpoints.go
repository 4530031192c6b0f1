package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/blob"
	"github.com/kubetrain/kubetrain/internal/checkpoint"
	"github.com/kubetrain/kubetrain/internal/contract"
)

func newCheckpointsCommand(o *options) *cobra.Command {
	var output dataFormat
	cmd := &cobra.Command{
		Use:   "checkpoints NAME",
		Short: "List a TrainingJob's checkpoints and verify each one",
		Long: "List the committed checkpoints of a TrainingJob in its checkpoint store, newest first, and verify\n" +
			"each against its manifest (sizes and SHA-256 of every object). The store must be reachable from\n" +
			"this machine. For s3:// the credentials come from the job's credentialsSecretName, read with your\n" +
			"own rights: kubectl train first asks the API server whether you may get that Secret, and stops\n" +
			"with a clear message if you may not. A job without a Secret uses AWS_ACCESS_KEY_ID and\n" +
			"AWS_SECRET_ACCESS_KEY from your environment. A file:// store is read where it is mounted here.",
		Example: "  kubectl train checkpoints fashion-mnist\n  kubectl train checkpoints fashion-mnist -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := output.check(); err != nil {
				return err
			}
			ctx := cmd.Context()
			c, tj, err := o.job(ctx, args[0])
			if err != nil {
				return err
			}
			infos, err := jobCheckpoints(ctx, c, tj)
			if err != nil {
				return err
			}
			if output != formatTable {
				if infos == nil {
					infos = []checkpointInfo{}
				}
				return printData(o.streams.Out, output, infos)
			}
			if len(infos) == 0 {
				fmt.Fprintf(o.streams.ErrOut, "%s has no committed checkpoint in %s.\n", jobName(tj), contract.ShowURI(tj.Spec.Checkpoint.URI))
				return nil
			}
			t, problems := checkpointsTable(infos, time.Now())
			if err := t.print(o.streams.Out); err != nil {
				return err
			}
			for _, p := range problems {
				fmt.Fprintln(o.streams.Out, p)
			}
			return nil
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

// checkpointInfo is one checkpoint as `kubectl train checkpoints` reports it.
type checkpointInfo struct {
	Epoch int    `json:"epoch"`
	URI   string `json:"uri"`
	// Size is the checkpoint's objects together as its manifest lists them; -1 when the manifest
	// cannot be read.
	Size     int64  `json:"size"`
	Verified bool   `json:"verified"`
	Problem  string `json:"problem,omitempty"`
	// Latest: status.latestCheckpoint names this one.
	Latest       bool       `json:"latest"`
	TestAccuracy *float64   `json:"testAccuracy,omitempty"`
	Created      *time.Time `json:"created,omitempty"`
}

// jobCheckpoints opens the job's checkpoint store as the user may, and inspects its checkpoints.
func jobCheckpoints(ctx context.Context, c client.Client, tj *kubetrainv1alpha1.TrainingJob) ([]checkpointInfo, error) {
	spec := tj.Spec.Checkpoint
	if spec == nil {
		return nil, fmt.Errorf("%s keeps no checkpoints: spec.checkpoint is not set", jobName(tj))
	}
	b, err := openStore(ctx, c, tj)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	prefix, err := contract.JobPrefix(tj.Namespace, tj.Name, string(tj.UID), 0)
	if err != nil {
		return nil, err
	}
	latest := ""
	if l := tj.Status.LatestCheckpoint; l != nil {
		latest, _ = contract.CheckpointKey(spec.URI, l.URI)
	}
	infos, err := inspectCheckpoints(ctx, b, prefix, latest, func(key string) string { return contract.CheckpointURI(spec.URI, key) })
	if err != nil {
		return nil, fmt.Errorf("reading the checkpoints of %s in %s (the store must be reachable from this machine): %w",
			jobName(tj), contract.ShowURI(spec.URI), err)
	}
	return infos, nil
}

// openStore opens the job's checkpoint location with the credentials the user may read.
func openStore(ctx context.Context, c client.Client, tj *kubetrainv1alpha1.TrainingJob) (*blob.Bucket, error) {
	spec := tj.Spec.Checkpoint
	loc, err := blob.Parse(spec.URI)
	if err != nil {
		return nil, err
	}
	switch loc.Scheme {
	case contract.SchemeFile:
		// A file:// location is a path inside the workers; opening it here must not create it.
		if _, err := os.Stat(loc.Path); err != nil {
			return nil, fmt.Errorf("the checkpoints of %s are in %s, a path inside its workers, which is not on this machine: %w",
				jobName(tj), contract.ShowURI(spec.URI), err)
		}
		return blob.Open(ctx, spec.URI)
	case contract.SchemeS3:
		if spec.CredentialsSecretName == "" {
			return blob.Open(ctx, spec.URI)
		}
		creds, err := readCredentials(ctx, c, tj.Namespace, string(spec.CredentialsSecretName), tj)
		if err != nil {
			return nil, err
		}
		return blob.OpenWith(ctx, spec.URI, blob.Options{Credentials: creds})
	}
	return nil, fmt.Errorf("%s: checkpoint URI %s: unknown scheme", jobName(tj), contract.ShowURI(spec.URI))
}

// readCredentials reads the store's credentials from the job's Secret, after asking the API server
// whether the user may: the plugin reads a Secret only with the user's own right to it, and says so
// plainly when they have none.
func readCredentials(ctx context.Context, c client.Client, ns, name string, tj *kubetrainv1alpha1.TrainingJob) (blob.Credentials, error) {
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "get", Resource: "secrets", Name: name},
	}}
	if err := c.Create(ctx, review); err != nil {
		return blob.Credentials{}, apiError(err, "asking whether you may get Secret "+strconv.Quote(name))
	}
	if !review.Status.Allowed {
		msg := fmt.Sprintf("you may not get Secret %q in namespace %q, which holds the checkpoint store's credentials of %s, "+
			"so kubectl train does not read the store: it reads a job's Secret only when you may", name, ns, jobName(tj))
		if r := review.Status.Reason; r != "" {
			msg += " (" + r + ")"
		}
		if l := tj.Status.LatestCheckpoint; l != nil {
			msg += fmt.Sprintf(". status.latestCheckpoint names epoch %d at %s, not verified here", l.Epoch, contract.ShowURI(l.URI))
		}
		return blob.Credentials{}, errors.New(msg)
	}
	secret := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, secret); err != nil {
		return blob.Credentials{}, apiError(err, fmt.Sprintf("Secret %q in namespace %q (credentialsSecretName of %s)", name, ns, jobName(tj)))
	}
	creds := blob.CredentialsFrom(func(k string) string { return string(secret.Data[k]) }, "")
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return blob.Credentials{}, fmt.Errorf("Secret %q in namespace %q lacks %s or %s", name, ns,
			contract.SecretKeyAccessKeyID, contract.SecretKeySecretAccessKey)
	}
	return creds, nil
}

// inspectCheckpoints lists the committed checkpoints below prefix, newest first, and verifies each;
// a checkpoint that does not verify is reported with why, and only a failure to read the store is
// an error. uri gives a key's URI; latest is the key status.latestCheckpoint names.
func inspectCheckpoints(ctx context.Context, b *blob.Bucket, prefix, latest string, uri func(string) string) ([]checkpointInfo, error) {
	entries, err := checkpoint.List(ctx, b, prefix)
	if err != nil {
		return nil, err
	}
	var infos []checkpointInfo
	for _, e := range entries {
		info := checkpointInfo{Epoch: e.Epoch, URI: uri(e.Key), Size: -1, Latest: e.Key == latest}
		m, _, err := checkpoint.Read(ctx, b, e.Key, checkpoint.DefaultMaxBytes)
		var corrupt *checkpoint.CorruptError
		switch {
		case errors.As(err, &corrupt):
			info.Problem = corrupt.Reason
		case err != nil:
			return nil, err
		default:
			info.Verified = true
		}
		if m.Version != 0 {
			info.Size = 0
			for _, o := range m.Objects {
				info.Size += o.Size
			}
			acc, created := m.TestAccuracy, m.Created
			info.TestAccuracy, info.Created = &acc, &created
		}
		infos = append(infos, info)
	}
	return infos, nil
}

// checkpointsTable is `kubectl train checkpoints`: a row per checkpoint, and below the table why
// each one that does not verify does not.
func checkpointsTable(infos []checkpointInfo, now time.Time) (table, []string) {
	t := table{header: []string{"EPOCH", "SIZE", "VERIFIED", "TEST ACCURACY", "AGE", "LATEST", "CHECKPOINT"}}
	var problems []string
	for _, c := range infos {
		size, verified, acc, created, latest := none, "yes", none, none, ""
		if c.Size >= 0 {
			size = byteSize(c.Size)
		}
		if !c.Verified {
			verified = "no"
			problems = append(problems, fmt.Sprintf("epoch %d (%s) does not verify: %s", c.Epoch, checkpointDir(c.URI), c.Problem))
		}
		if c.TestAccuracy != nil {
			acc = fmt.Sprintf("%.4f", *c.TestAccuracy)
		}
		if c.Created != nil {
			created = age(*c.Created, now)
		}
		if c.Latest {
			latest = "*"
		}
		t.rows = append(t.rows, []string{strconv.Itoa(c.Epoch), size, verified, acc, created, latest, checkpointDir(c.URI)})
	}
	return t, problems
}

// checkpointDir is the name of a checkpoint's directory, from its manifest's URI: what tells two
// checkpoints of one job apart.
func checkpointDir(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return uri
	}
	return path.Base(path.Dir(u.Path))
}
