// Package kueuetest runs a real Kueue manager, as a separate process, against an envtest API
// server, for the suites that test TrainingJob as a Kueue workload. `make test` builds Kueue at
// the version go.mod pins (hack/kube-binaries.sh kueue) and names its folder in KUEUE_ASSETS:
// bin/kueue, Kueue's CRDs in crd/ and its webhook configurations in webhook/.
//
// A suite installs Kueue's CRDs and webhooks with the environment and starts Kueue after it:
//
//	assets := kueuetest.Assets(GinkgoT())
//	kueuetest.Install(testEnv, assets)
//	cfg, err := testEnv.Start()
//	kq := kueuetest.Start(GinkgoT(), testEnv, assets)
//	...
//	kq.Stop() // before testEnv.Stop()
package kueuetest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	componentconfig "k8s.io/component-base/config/v1alpha1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	configapi "sigs.k8s.io/kueue/apis/config/v1beta2"
	kueue "sigs.k8s.io/kueue/apis/kueue/v1beta2"
	"sigs.k8s.io/yaml"

	"github.com/kubetrain/kubetrain/internal/testutil"
)

// EnvAssets names the folder hack/kube-binaries.sh kueue prints.
const EnvAssets = "KUEUE_ASSETS"

// EnvMetricsCertDir is read by the Kueue that hack/kube-binaries.sh builds: where it finds the
// metrics server's certificate. Stock Kueue reads it from /etc/kueue/metrics/certs whenever its
// internal certificate management is off, and exits if it is not there.
const EnvMetricsCertDir = "KUEUE_METRICS_CERT_DIR"

// TrainingJobFramework is how Kueue's configuration names TrainingJob among the external
// frameworks (Kind.version.group).
const TrainingJobFramework = "TrainingJob.v1alpha1.kubetrain.io"

const (
	// startTimeout bounds Kueue's start: the process, its caches and its webhook server. Generous,
	// as the suites share two cores with a compiler.
	startTimeout = 2 * time.Minute
	pollInterval = 100 * time.Millisecond
	// logTail is how much of Kueue's log a failed start prints.
	logTail = 8 << 10
)

// T is what this package needs of a test: a *testing.T, or Ginkgo's GinkgoT().
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	TempDir() string
	Cleanup(func())
}

// Assets is the folder hack/kube-binaries.sh kueue built, from KUEUE_ASSETS.
func Assets(t T) string {
	t.Helper()
	dir := os.Getenv(EnvAssets)
	if dir == "" {
		t.Fatalf("%s is not set: run `make test`, which builds Kueue with hack/kube-binaries.sh kueue "+
			"and points %s at it", EnvAssets, EnvAssets)
	}
	for _, p := range []string{binary(dir), crdDir(dir), webhookDir(dir)} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s=%s is not a folder hack/kube-binaries.sh kueue built: %v", EnvAssets, dir, err)
		}
	}
	return dir
}

func binary(assets string) string     { return filepath.Join(assets, "bin", "kueue") }
func crdDir(assets string) string     { return filepath.Join(assets, "crd") }
func webhookDir(assets string) string { return filepath.Join(assets, "webhook") }

// Install adds Kueue's CRDs and its mutating and validating webhooks to env; call it before
// env.Start. envtest then generates a serving certificate and points each webhook, which Kueue's
// manifests address as a Service in its namespace, at https://LocalServingHost:LocalServingPort
// with that certificate's CA, which is where Start has Kueue serve them.
func Install(env *envtest.Environment, assets string) {
	env.CRDDirectoryPaths = append(env.CRDDirectoryPaths, crdDir(assets))
	env.WebhookInstallOptions.Paths = append(env.WebhookInstallOptions.Paths, webhookDir(assets))
}

// Kueue is a running Kueue manager.
type Kueue struct {
	// LogPath is the file Kueue writes its log to.
	LogPath string
	// ConfigPath is the Configuration it runs with.
	ConfigPath string

	cmd      *exec.Cmd
	exited   chan struct{} // closed when the process has been waited for
	waitErr  error
	stopOnce sync.Once
}

// Start runs Kueue against env, which must have been started with Install's CRDs and webhooks,
// and returns once Kueue's webhooks answer the API server. edits change the configuration
// (see Configuration) before Kueue reads it. Kueue is stopped when the test ends, or earlier by Stop.
func Start(t T, env *envtest.Environment, assets string, edits ...func(*configapi.Configuration)) *Kueue {
	t.Helper()
	dir := t.TempDir()
	wh := env.WebhookInstallOptions
	if wh.LocalServingPort == 0 || wh.LocalServingCertDir == "" {
		t.Fatalf("kueuetest.Start: the environment serves no webhooks: call kueuetest.Install before testEnv.Start")
	}

	// An administrator: Kueue's own RBAC (config/components/rbac) is not what these suites test.
	admin, err := env.AddUser(envtest.User{Name: "kueue-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("kueuetest: adding Kueue's user to the API server: %v", err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		t.Fatalf("kueuetest: Kueue's kubeconfig: %v", err)
	}
	kubeconfigPath := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		t.Fatalf("kueuetest: writing Kueue's kubeconfig: %v", err)
	}

	healthAddr := testutil.FreeAddr(t)
	cfg := Configuration(wh, healthAddr)
	for _, edit := range edits {
		edit(cfg)
	}
	k := &Kueue{LogPath: filepath.Join(dir, "kueue.log"), ConfigPath: filepath.Join(dir, "config.yaml"), exited: make(chan struct{})}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatalf("kueuetest: encoding Kueue's configuration: %v", err)
	}
	if err := os.WriteFile(k.ConfigPath, b, 0o600); err != nil {
		t.Fatalf("kueuetest: writing Kueue's configuration: %v", err)
	}

	logFile, err := os.Create(k.LogPath)
	if err != nil {
		t.Fatalf("kueuetest: creating Kueue's log: %v", err)
	}
	k.cmd = exec.Command(binary(assets), "--config", k.ConfigPath, "--kubeconfig", kubeconfigPath, "--zap-log-level=2")
	// Kueue reads a metrics certificate when it starts, even with its metrics server off (see
	// hack/kube-binaries.sh); envtest's serving certificate will do.
	k.cmd.Env = append(os.Environ(), EnvMetricsCertDir+"="+wh.LocalServingCertDir)
	k.cmd.Stdout, k.cmd.Stderr = logFile, logFile
	if err := k.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("kueuetest: starting %s: %v", binary(assets), err)
	}
	go func() {
		k.waitErr = k.cmd.Wait()
		logFile.Close()
		close(k.exited)
	}()
	t.Cleanup(k.Stop)

	if err := k.waitReady(env, healthAddr); err != nil {
		k.Stop()
		t.Fatalf("kueuetest: Kueue did not start: %v\n--- the end of %s:\n%s", err, k.LogPath, k.logTail())
	}
	return k
}

// Configuration is the one Start runs Kueue with: no leader election, no metrics, health probes
// on healthAddr, the webhooks served where envtest points the API server with envtest's
// certificate, and only batch/job and TrainingJob integrated, for jobs that name a queue.
func Configuration(wh envtest.WebhookInstallOptions, healthAddr string) *configapi.Configuration {
	return &configapi.Configuration{
		TypeMeta: metav1.TypeMeta{APIVersion: configapi.GroupVersion.String(), Kind: "Configuration"},
		ControllerManager: configapi.ControllerManager{
			Webhook: configapi.ControllerWebhook{
				Host: wh.LocalServingHost, Port: ptr.To(wh.LocalServingPort), CertDir: wh.LocalServingCertDir,
			},
			LeaderElection: &componentconfig.LeaderElectionConfiguration{LeaderElect: ptr.To(false)},
			// "0" turns the metrics server off.
			Metrics: configapi.ControllerMetrics{BindAddress: "0"},
			Health:  configapi.ControllerHealth{HealthProbeBindAddress: healthAddr},
		},
		// envtest's certificates, not Kueue's own: Kueue's would name a Service in its namespace,
		// which the API server cannot reach here.
		InternalCertManagement:     &configapi.InternalCertManagement{Enable: ptr.To(false)},
		ManageJobsWithoutQueueName: false,
		Integrations: &configapi.Integrations{
			Frameworks:         []string{"batch/job"},
			ExternalFrameworks: []string{TrainingJobFramework},
		},
		FeatureGates: map[string]bool{
			// On by default, it starts the visibility API's server, which reads its certificate
			// from /visibility (internal certificate management being off) and exits without it;
			// envtest would not route the aggregated API to it anyway.
			"VisibilityOnDemand": false,
		},
	}
}

// errWebhookNotCalled is a create that Kueue's webhooks should have changed and did not: they are
// not installed (Install), and waiting longer will not install them.
var errWebhookNotCalled = errors.New("no call to Kueue's mutating webhook")

// waitReady waits for Kueue's readiness probe, which passes once its webhook server listens, and
// then for its mutating webhook to answer a dry-run create through the API server: that proves
// the path the suites depend on (URL, CA, Kueue's handlers).
func (k *Kueue) waitReady(env *envtest.Environment, healthAddr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c, err := client.New(env.Config, client.Options{Scheme: Scheme()})
	if err != nil {
		return fmt.Errorf("client of the API server: %w", err)
	}
	readyz := "http://" + healthAddr + "/readyz"
	var last error
	probe := func() error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, readyz, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", readyz, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", readyz, resp.Status)
		}
		cq := ClusterQueue("kueuetest-probe", "kueuetest-probe", nil)
		if err := c.Create(ctx, cq, client.DryRunAll); err != nil {
			return fmt.Errorf("dry-run create of ClusterQueue %s: %w", cq.Name, err)
		}
		if !slices.Contains(cq.Finalizers, kueue.ResourceInUseFinalizerName) {
			return fmt.Errorf("dry-run create of ClusterQueue %s: no finalizer %s: %w",
				cq.Name, kueue.ResourceInUseFinalizerName, errWebhookNotCalled)
		}
		return nil
	}
	for {
		if last = probe(); last == nil || errors.Is(last, errWebhookNotCalled) {
			return last
		}
		select {
		case <-k.exited:
			return fmt.Errorf("kueue exited: %v (last check: %v)", k.waitErr, last)
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %w", startTimeout, last)
		case <-time.After(pollInterval):
		}
	}
}

// Stop kills Kueue and waits for it to exit. Stop it before the API server, so that it does not
// log a page of connection errors.
func (k *Kueue) Stop() {
	k.stopOnce.Do(func() {
		if err := k.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			fmt.Fprintf(os.Stderr, "kueuetest: killing Kueue (pid %d): %v\n", k.cmd.Process.Pid, err)
		}
		<-k.exited
	})
}

// Exited reports whether Kueue has exited, which it should not do while a suite runs.
func (k *Kueue) Exited() bool {
	select {
	case <-k.exited:
		return true
	default:
		return false
	}
}

// logTail is the end of Kueue's log, for a failure message.
func (k *Kueue) logTail() string {
	b, err := os.ReadFile(k.LogPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", k.LogPath, err)
	}
	if len(b) > logTail {
		b = b[len(b)-logTail:]
		if i := strings.IndexByte(string(b), '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}
