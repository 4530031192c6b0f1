// Command scale measures the operator at scale against a real API server (envtest; no kubelet):
// it creates N TrainingJobs of W workers each and reports the time until every job's worker pods
// exist, the API writes the manager makes per job (counted from the API server's audit log, so
// events count too), and the manager process's peak memory. Each mode and worker count runs
// against a fresh API server.
//
//	go run ./test/scale -n 1000 -modes default,kubeflow -workers 1,4
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/manager"
)

// modes are the manager flags each run uses.
var modes = map[string][]string{
	// The manager at its own defaults.
	"default": nil,
	// Kubeflow training-operator's client limits.
	"kubeflow": {"--kube-api-qps=20", "--kube-api-burst=30"},
}

const managerUser = "kubetrain-manager"

func main() {
	n := flag.Int("n", 1000, "TrainingJobs to create")
	modeList := flag.String("modes", "default,kubeflow", "comma-separated modes: "+strings.Join(sortedKeys(modes), ", "))
	timeout := flag.Duration("timeout", 15*time.Minute, "longest wait for all pods of a mode")
	workerList := flag.String("workers", "1,4", "comma-separated workers per job; each count is a run of every mode")
	flag.Parse()
	ctrllog.SetLogger(zap.New(zap.Level(zapcore.ErrorLevel)))
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fail(errors.New("KUBEBUILDER_ASSETS is not set: run `make scale-bench`"))
	}
	work, err := os.MkdirTemp("", "kubetrain-scale-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(work)
	managerBin := filepath.Join(work, "manager")
	build := exec.Command("go", "build", "-o", managerBin, "./cmd/manager")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fail(fmt.Errorf("building the manager: %w", err))
	}

	cpu := cpuModel()
	fmt.Printf("scale benchmark: %d TrainingJobs per mode, %d CPUs (%s)\n", *n, runtime.NumCPU(), cpu)
	var results []result
	for _, w := range strings.Split(*workerList, ",") {
		workers, err := strconv.Atoi(w)
		if err != nil || workers < 1 || workers > 64 {
			fail(fmt.Errorf("-workers: %q is not a worker count of 1 to 64", w))
		}
		for _, mode := range strings.Split(*modeList, ",") {
			args, ok := modes[mode]
			if !ok {
				fail(fmt.Errorf("unknown mode %q", mode))
			}
			r, err := runMode(mode, args, *n, int32(workers), managerBin, filepath.Join(work, fmt.Sprintf("%s-%d", mode, workers)), *timeout)
			if err != nil {
				fail(fmt.Errorf("mode %s, %d workers: %w", mode, workers, err))
			}
			results = append(results, r)
		}
	}
	fmt.Println()
	fmt.Printf("%-9s %6s %7s %14s %8s %11s %s\n", "mode", "jobs", "workers", "all pods (s)", "jobs/s", "peak MiB", "writes/job (pods, status, events, other)")
	for _, r := range results {
		fmt.Printf("%-9s %6d %7d %14.1f %8.1f %11.1f %.2f (%.2f, %.2f, %.2f, %.2f)\n", r.mode, r.jobs, r.workers, r.allPods.Seconds(),
			float64(r.jobs)/r.allPods.Seconds(), float64(r.peakRSS)/(1<<20), r.perJob(""),
			r.perJob("pods"), r.perJob("trainingjobs/status"), r.perJob("events"), r.perJob("other"))
	}
	fmt.Println("\nwrites are the manager's create/update/patch/delete requests in the API server's audit log,")
	fmt.Println("failed ones included; leader election Lease renewals are listed apart and not counted per job:")
	for _, r := range results {
		fmt.Printf("  %s, %d workers: %v; lease writes %d; failed writes %d\n", r.mode, r.workers, r.writes, r.leaseWrites, r.failedWrites)
	}
}

type result struct {
	mode         string
	jobs         int
	workers      int32
	allPods      time.Duration
	peakRSS      int64
	writes       map[string]int
	leaseWrites  int
	failedWrites int
}

func (r result) perJob(kind string) float64 {
	total := 0
	for k, v := range r.writes {
		if kind == "" || k == kind || (kind == "other" && k != "pods" && k != "trainingjobs/status" && k != "events") {
			total += v
		}
	}
	return float64(total) / float64(r.jobs)
}

func runMode(mode string, managerArgs []string, n int, workers int32, managerBin, dir string, timeout time.Duration) (result, error) {
	res := result{mode: mode, jobs: n, workers: workers}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	auditLog := filepath.Join(dir, "audit.log")
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o644); err != nil {
		return res, err
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{"config/crd/bases"}, ErrorIfCRDPathMissing: true}
	env.ControlPlane.GetAPIServer().Configure().
		Append("audit-policy-file", policy).
		Append("audit-log-path", auditLog).
		Append("audit-log-mode", "batch")
	cfg, err := env.Start()
	if err != nil {
		return res, fmt.Errorf("starting envtest: %w", err)
	}
	defer env.Stop()

	// The manager runs as a process of its own under a user of its own, so that its memory and its
	// requests are its alone.
	user, err := env.AddUser(envtest.User{Name: managerUser, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return res, err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return res, err
	}
	kubeconfig := filepath.Join(dir, "manager.kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		return res, err
	}

	ctx := context.Background()
	c, err := benchClient(cfg)
	if err != nil {
		return res, err
	}
	ns := "scale"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return res, err
	}

	args := append([]string{"--leader-election-namespace=" + ns, "--metrics-bind-address=" + freeAddr(),
		"--health-probe-bind-address=" + freeAddr(), "--zap-log-level=error"}, managerArgs...)
	mgr := exec.Command(managerBin, args...)
	mgr.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	mgr.Stderr = os.Stderr
	if err := mgr.Start(); err != nil {
		return res, err
	}
	defer func() { _ = mgr.Process.Kill(); _ = mgr.Wait() }()
	stopPeak := watchPeakRSS(mgr.Process.Pid, &res.peakRSS)
	defer stopPeak()

	fmt.Printf("\n[%s] manager %v: creating %d TrainingJobs of %d worker(s)\n", mode, managerArgs, n, workers)
	start := time.Now()
	if err := createJobs(ctx, c, ns, n, workers); err != nil {
		return res, err
	}
	fmt.Printf("[%s] created %d jobs in %.1f s\n", mode, n, time.Since(start).Seconds())
	pods := n * int(workers)
	if err := waitFor(ctx, timeout, func() (int, error) { return countPods(ctx, c, ns) }, pods, mode+" pods"); err != nil {
		return res, err
	}
	res.allPods = time.Since(start)
	fmt.Printf("[%s] all %d pods exist after %.1f s\n", mode, pods, res.allPods.Seconds())
	if err := waitFor(ctx, timeout, func() (int, error) { return countPending(ctx, c, ns) }, n, mode+" statuses"); err != nil {
		return res, err
	}
	// Events are sent asynchronously: wait for the audit log to stop growing.
	res.writes, res.leaseWrites, res.failedWrites, err = settledWrites(auditLog)
	stopPeak()
	return res, err
}

func benchClient(cfg *rest.Config) (client.Client, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = -1, 0 // the benchmark itself is not rate limited
	return client.New(cfg, client.Options{Scheme: manager.Scheme()})
}

// createJobs creates n jobs from a few goroutines, as a GitOps tool applying a folder would.
func createJobs(ctx context.Context, c client.Client, ns string, n int, jobWorkers int32) error {
	const workers = 8
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func(w int) {
			for i := w; i < n; i += workers {
				tj := &kubetrainv1alpha1.TrainingJob{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("job-%04d", i), Namespace: ns},
					Spec: kubetrainv1alpha1.TrainingJobSpec{
						Dataset:   kubetrainv1alpha1.DatasetSpec{URI: "synthetic://cifar10"},
						Workers:   jobWorkers,
						Resources: kubetrainv1alpha1.WorkerResources{GPUs: 1},
					},
				}
				if err := c.Create(ctx, tj); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}(w)
	}
	var first error
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func countPods(ctx context.Context, c client.Client, ns string) (int, error) {
	var list metav1.PartialObjectMetadataList
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	err := c.List(ctx, &list, client.InNamespace(ns))
	return len(list.Items), err
}

func countPending(ctx context.Context, c client.Client, ns string) (int, error) {
	var list kubetrainv1alpha1.TrainingJobList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return 0, err
	}
	done := 0
	for _, tj := range list.Items {
		if tj.Status.Phase == kubetrainv1alpha1.PhasePending {
			done++
		}
	}
	return done, nil
}

func waitFor(ctx context.Context, timeout time.Duration, count func() (int, error), want int, what string) error {
	deadline := time.Now().Add(timeout)
	for {
		got, err := count()
		if err != nil {
			return err
		}
		if got >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s: %d of %d", what, got, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// auditPolicy logs the manager's writes, and nothing else.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
- level: Metadata
  users: ["` + managerUser + `"]
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: None
`

type auditEvent struct {
	Verb string `json:"verb"`
	User struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// settledWrites waits until the manager's writes other than Lease renewals stop growing, then
// returns them by resource.
func settledWrites(path string) (map[string]int, int, int, error) {
	last := -1
	for stable := 0; stable < 3; {
		time.Sleep(time.Second)
		writes, _, _, err := countWrites(path)
		if err != nil {
			return nil, 0, 0, err
		}
		total := 0
		for _, v := range writes {
			total += v
		}
		if total == last {
			stable++
		} else {
			stable, last = 0, total
		}
	}
	return countWrites(path)
}

// countWrites counts the manager's writes in the audit log by resource; Lease writes and failed
// writes are also returned apart.
func countWrites(path string) (map[string]int, int, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, 0, err
	}
	defer f.Close()
	writes := map[string]int{}
	leases, failed := 0, 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e auditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue // a line being written
		}
		if e.User.Username != managerUser {
			continue
		}
		if e.ResponseStatus.Code >= 400 {
			failed++
		}
		res := e.ObjectRef.Resource
		if e.ObjectRef.Subresource != "" {
			res += "/" + e.ObjectRef.Subresource
		}
		if res == "leases" {
			leases++
			continue
		}
		writes[res]++
	}
	return writes, leases, failed, sc.Err()
}

// watchPeakRSS samples the process's peak resident set (VmHWM) until stopped.
func watchPeakRSS(pid int, peak *int64) (stop func()) {
	done := make(chan struct{})
	stopped := false
	go func() {
		for {
			if v := vmHWM(pid); v > *peak {
				*peak = v
			}
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return func() {
		if !stopped {
			stopped = true
			if v := vmHWM(pid); v > *peak {
				*peak = v
			}
			close(done)
		}
	}
}

func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			return strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
		}
	}
	return "unknown CPU"
}

func sortedKeys(m map[string][]string) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "scale:", err)
	os.Exit(1)
}
