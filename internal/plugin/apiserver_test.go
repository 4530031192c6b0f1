package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/blob"
	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/internal/s3test"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

// The API server the tests below share: started by the first that needs it, stopped by TestMain,
// so that the unit tests run alone (-run) start none.
var apiServer struct {
	once sync.Once
	env  *envtest.Environment
	// admin reads and writes directly, not through the plugin.
	admin client.Client
	err   error
}

// Timeouts of the tests against the API server.
const (
	waitTimeout  = 30 * time.Second
	waitInterval = 50 * time.Millisecond
	// realContext is the kubeconfig context of the test API server; the kubeconfig's current
	// context points nowhere, so that only --context reaches it.
	realContext = "envtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if apiServer.env != nil {
		if err := apiServer.env.Stop(); err != nil {
			os.Stderr.WriteString("stopping the test API server: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

// startAPIServer starts envtest with the CRDs once.
func startAPIServer(t *testing.T) client.Client {
	t.Helper()
	apiServer.once.Do(func() {
		if os.Getenv("KUBEBUILDER_ASSETS") == "" {
			apiServer.err = errorString("KUBEBUILDER_ASSETS is not set: run `make test`, which builds etcd and kube-apiserver " +
				"with hack/kube-binaries.sh and points KUBEBUILDER_ASSETS at them")
			return
		}
		env := &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join("..", "..", "config", "crd", "bases")}, ErrorIfCRDPathMissing: true}
		cfg, err := env.Start()
		if err != nil {
			apiServer.err = err
			return
		}
		apiServer.env = env
		s := runtime.NewScheme()
		utilruntime.Must(clientgoscheme.AddToScheme(s))
		utilruntime.Must(kubetrainv1alpha1.AddToScheme(s))
		apiServer.admin, apiServer.err = client.New(cfg, client.Options{Scheme: s})
	})
	if apiServer.err != nil {
		t.Fatalf("starting the test API server: %v", apiServer.err)
	}
	return apiServer.admin
}

type errorString string

func (e errorString) Error() string { return string(e) }

// kubeconfigFor writes a kubeconfig for a user of the test API server whose current context points
// at a port where nothing listens; realContext is the test API server, with namespace ns.
func kubeconfigFor(t *testing.T, user envtest.User, ns string) string {
	t.Helper()
	u, err := apiServer.env.AddUser(user, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := u.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kc, err := clientcmd.Load(raw)
	if err != nil {
		t.Fatal(err)
	}
	real := kc.Contexts[kc.CurrentContext].DeepCopy()
	real.Namespace = ns
	nowhere := real.DeepCopy()
	nowhere.Cluster = "nowhere"
	kc.Clusters["nowhere"] = kc.Clusters[real.Cluster].DeepCopy()
	kc.Clusters["nowhere"].Server = "https://127.0.0.1:1"
	kc.Contexts = map[string]*clientcmdapi.Context{realContext: real, "nowhere": nowhere}
	kc.CurrentContext = "nowhere"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// kubectlTrain runs the plugin as `kubectl train ARGS --kubeconfig KC`, and returns what it wrote.
func kubectlTrain(ctx context.Context, kubeconfig string, args ...string) (stdout, stderr string, err error) {
	var out, errOut syncBuffer
	cmd := NewCommand(Streams{Out: &out, ErrOut: &errOut})
	cmd.SetArgs(append(args, "--kubeconfig", kubeconfig))
	err = cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// syncBuffer is a buffer that a running command writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newNamespace gives a test a namespace of its own.
func newNamespace(t *testing.T, c client.Client) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "train-"}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), ns) })
	return ns.Name
}

// createJob creates a job as a user would, then gives it the status of st as the controller and
// trainer would report it.
func createJob(t *testing.T, c client.Client, w *testutil.TrainingJobWrapper, st kubetrainv1alpha1.TrainingJobStatus) *kubetrainv1alpha1.TrainingJob {
	t.Helper()
	ctx := context.Background()
	tj := w.Obj()
	tj.UID, tj.ResourceVersion, tj.Generation, tj.Status = "", "", 0, kubetrainv1alpha1.TrainingJobStatus{}
	if err := c.Create(ctx, tj); err != nil {
		t.Fatalf("creating %s: %v", tj.Name, err)
	}
	setStatus(t, c, tj, st)
	return tj
}

func setStatus(t *testing.T, c client.Client, tj *kubetrainv1alpha1.TrainingJob, st kubetrainv1alpha1.TrainingJobStatus) {
	t.Helper()
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(tj), tj); err != nil {
		t.Fatal(err)
	}
	tj.Status = st
	if err := c.Status().Update(context.Background(), tj); err != nil {
		t.Fatalf("setting the status of %s: %v", tj.Name, err)
	}
}

// TestCommandsAgainstAPIServer runs list, history, suspend and resume, watch and the errors a user
// meets, against a real API server with jobs whose status the test sets.
func TestCommandsAgainstAPIServer(t *testing.T) {
	c := startAPIServer(t)
	ctx := context.Background()
	ns := newNamespace(t, c)
	kc := kubeconfigFor(t, envtest.User{Name: "admin", Groups: []string{"system:masters"}}, "default")
	a := createJob(t, c, testutil.MakeTrainingJob("a", ns), runningJob("a", ns, 3).Status)
	createJob(t, c, testutil.MakeTrainingJob("b", ns).Epochs(5), kubetrainv1alpha1.TrainingJobStatus{Phase: kubetrainv1alpha1.PhasePending})
	run := func(t *testing.T, args ...string) (string, string) {
		t.Helper()
		out, errOut, err := kubectlTrain(ctx, kc, append(args, "--context", realContext)...)
		if err != nil {
			t.Fatalf("kubectl train %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
		}
		return out, errOut
	}

	t.Run("list", func(t *testing.T) {
		out, _ := run(t, "list", "-n", ns)
		want := [][]string{
			{"NAME", "PHASE", "EPOCH", "TEST", "ACCURACY", "LOSS", "WORKERS", "AGE"},
			{"a", "Running", "3/10", "0.8723", "0.3301", "1/1"},
			{"b", "Pending", "0/5", "-", "-", "-"},
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != len(want) {
			t.Fatalf("list printed %d lines, want %d:\n%s", len(lines), len(want), out)
		}
		for i, w := range want {
			got := strings.Fields(lines[i])
			if i > 0 {
				got = got[:len(got)-1] // the age
			}
			if diff := cmp.Diff(w, got); diff != "" {
				t.Errorf("line %d (-want,+got):\n%s", i, diff)
			}
		}
	})

	t.Run("list -o json", func(t *testing.T) {
		out, _ := run(t, "list", "--namespace", ns, "-o", "json")
		var list kubetrainv1alpha1.TrainingJobList
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("list -o json is not a TrainingJobList: %v\n%s", err, out)
		}
		if list.Kind != "TrainingJobList" || len(list.Items) != 2 || list.Items[0].Name != "a" || list.Items[0].Status.Progress.Epoch != 3 ||
			list.Items[0].ManagedFields != nil {
			t.Errorf("list -o json: kind %q, %d items; want a TrainingJobList of a (epoch 3) and b:\n%s", list.Kind, len(list.Items), out)
		}
	})

	t.Run("the namespace of the context", func(t *testing.T) {
		other := kubeconfigFor(t, envtest.User{Name: "admin", Groups: []string{"system:masters"}}, ns)
		out, _, err := kubectlTrain(ctx, other, "list", "--context", realContext)
		if err != nil || !strings.Contains(out, "3/10") {
			t.Errorf("list without -n in a context of namespace %s: %v\n%s", ns, err, out)
		}
	})

	t.Run("history", func(t *testing.T) {
		out, _ := run(t, "history", "a", "-n", ns)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "EPOCH") ||
			!cmp.Equal(strings.Fields(lines[3]), []string{"3", "0.3301", "0.8806", "0.8723", "1502", "40s"}) {
			t.Errorf("history a: want a header and epochs 1 to 3, the last with its metrics:\n%s", out)
		}
		out, _ = run(t, "history", "a", "-n", ns, "-o", "yaml")
		var h []kubetrainv1alpha1.EpochMetrics
		if err := yaml.Unmarshal([]byte(out), &h); err != nil {
			t.Fatalf("history -o yaml: %v\n%s", err, out)
		}
		if diff := cmp.Diff(goldenHistory()[:3], h); diff != "" {
			t.Errorf("history -o yaml (-want,+got):\n%s", diff)
		}
	})

	t.Run("plot", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "a.svg")
		out, _ := run(t, "plot", "a", "-n", ns, "-o", file)
		b, err := os.ReadFile(file)
		if err != nil || !bytes.Contains(b, []byte("<svg")) || !strings.Contains(out, "● loss") || !strings.HasSuffix(out, "wrote "+file+"\n") {
			t.Errorf("plot -o %s: %v; printed:\n%s", file, err, out)
		}
	})

	t.Run("suspend and resume", func(t *testing.T) {
		suspended := func() bool {
			got := &kubetrainv1alpha1.TrainingJob{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(a), got); err != nil {
				t.Fatal(err)
			}
			return got.Spec.RunPolicy.Suspend
		}
		out, _ := run(t, "suspend", "a", "-n", ns)
		if !suspended() || out != `trainingjob "a" in namespace "`+ns+`" suspended`+"\n" {
			t.Errorf("after suspend: spec.runPolicy.suspend = %v, printed %q", suspended(), out)
		}
		if out, _ := run(t, "suspend", "a", "-n", ns); !strings.Contains(out, "is already suspended") {
			t.Errorf("a second suspend printed %q, want that it is already suspended", out)
		}
		out, _ = run(t, "resume", "a", "-n", ns)
		if suspended() || !strings.HasSuffix(out, " resumed\n") {
			t.Errorf("after resume: spec.runPolicy.suspend = %v, printed %q", suspended(), out)
		}
		got := &kubetrainv1alpha1.TrainingJob{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(a), got); err != nil {
			t.Fatal(err)
		}
		managers := []string{}
		for _, f := range got.ManagedFields {
			managers = append(managers, f.Manager)
		}
		if !strings.Contains(strings.Join(managers, ","), FieldManager) {
			t.Errorf("managedFields name %v, want %s among them", managers, FieldManager)
		}
	})

	t.Run("a finished job is neither suspended nor resumed", func(t *testing.T) {
		done := runningJob("done", ns, 10).Status
		done.Phase = kubetrainv1alpha1.PhaseSucceeded
		createJob(t, c, testutil.MakeTrainingJob("done", ns), done)
		_, _, err := kubectlTrain(ctx, kc, "suspend", "done", "-n", ns, "--context", realContext)
		if err == nil || err.Error() != `trainingjob "done" in namespace "`+ns+`" has Succeeded: it cannot be suspended` {
			t.Errorf("suspend of a succeeded job: %v", err)
		}
	})

	t.Run("errors name the job and the namespace", func(t *testing.T) {
		for _, cmd := range []string{"history", "watch", "plot", "checkpoints", "suspend", "resume"} {
			_, _, err := kubectlTrain(ctx, kc, cmd, "nope", "-n", ns, "--context", realContext)
			if want := `trainingjob "nope" in namespace "` + ns + `" not found`; err == nil || err.Error() != want {
				t.Errorf("%s nope: error %v, want %q", cmd, err, want)
			}
		}
	})

	t.Run("--context chooses the cluster", func(t *testing.T) {
		// The kubeconfig's current context points where nothing listens.
		_, _, err := kubectlTrain(ctx, kc, "list", "-n", ns)
		if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Errorf("list in the current context: %v, want a failure to reach 127.0.0.1:1", err)
		}
	})

	t.Run("watch follows the job to the end", func(t *testing.T) {
		w := createJob(t, c, testutil.MakeTrainingJob("w", ns), runningJob("w", ns, 3).Status)
		wctx, cancel := context.WithTimeout(ctx, waitTimeout)
		defer cancel()
		var out syncBuffer
		done := make(chan error, 1)
		go func() {
			cmd := NewCommand(Streams{Out: &out, ErrOut: &out})
			cmd.SetArgs([]string{"watch", "w", "-n", ns, "--kubeconfig", kc, "--context", realContext})
			done <- cmd.ExecuteContext(wctx)
		}()
		g := NewWithT(t)
		g.Eventually(out.String).WithTimeout(waitTimeout).WithPolling(waitInterval).Should(ContainSubstring("3/10 epochs"))
		for _, n := range []int{5, 10} {
			st := runningJob("w", ns, n).Status
			if n == 10 {
				st.Phase = kubetrainv1alpha1.PhaseSucceeded
				st.Conditions = []metav1.Condition{{Type: kubetrainv1alpha1.ConditionSucceeded, Status: metav1.ConditionTrue,
					Reason: kubetrainv1alpha1.ReasonSucceeded, Message: "trained 10 epochs", LastTransitionTime: metav1.Now()}}
			}
			setStatus(t, c, w, st)
		}
		var err error
		g.Eventually(done).WithTimeout(waitTimeout).Should(Receive(&err))
		if err != nil {
			t.Fatalf("watch ended with %v:\n%s", err, out.String())
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		var epochs []string
		for _, l := range lines {
			if strings.HasPrefix(l, "epoch") {
				epochs = append(epochs, strings.Fields(l)[1])
			}
		}
		if want := []string{"4/10", "5/10", "6/10", "7/10", "8/10", "9/10", "10/10"}; !cmp.Equal(want, epochs) ||
			lines[len(lines)-1] != "Succeeded: trained 10 epochs" {
			t.Errorf("watch printed epochs %v, want %v, then the success:\n%s", epochs, want, out.String())
		}
	})
}

// TestCheckpointsReadsTheSecretOnlyWhenTheUserMay lists a job's checkpoints in a real S3 store with
// the credentials of its Secret, as a user who may get that Secret, and is refused, saying why,
// as one who may read the job but not the Secret.
func TestCheckpointsReadsTheSecretOnlyWhenTheUserMay(t *testing.T) {
	c := startAPIServer(t)
	ctx := context.Background()
	ns := newNamespace(t, c)
	srv := s3test.Start(t, "ckpt")
	// The plugin must take the credentials from the Secret, not from this process's environment.
	t.Setenv(contract.SecretKeyAccessKeyID, "")
	t.Setenv(contract.SecretKeySecretAccessKey, "")
	uri := srv.URI("ckpt", "runs")
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3-creds", Namespace: ns}, StringData: map[string]string{
		contract.SecretKeyAccessKeyID: srv.AccessKey, contract.SecretKeySecretAccessKey: srv.SecretKey}}
	if err := c.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	tj := createJob(t, c, testutil.MakeTrainingJob("c", ns).Checkpoint(uri, secret.Name).AllowPlainHTTP(), runningJob("c", ns, 3).Status)
	b, err := blob.OpenWith(ctx, uri, blob.Options{Credentials: blob.Credentials{AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	prefix, err := contract.JobPrefix(ns, tj.Name, string(tj.UID), 0)
	if err != nil {
		t.Fatal(err)
	}
	commitCheckpoints(t, ctx, b, prefix)

	// Two users who may read TrainingJobs in the namespace; only the reader may get the Secret.
	rules := map[string][]rbacv1.PolicyRule{
		"viewer": {{APIGroups: []string{kubetrainv1alpha1.GroupVersion.Group}, Resources: []string{"trainingjobs"}, Verbs: []string{"get", "list", "watch"}}},
	}
	rules["reader"] = append(rules["viewer"], rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"},
		ResourceNames: []string{secret.Name}, Verbs: []string{"get"}})
	kubeconfigs := map[string]string{}
	for user, r := range rules {
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: ns}, Rules: r}
		binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: ns},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: user}},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user}}
		for _, obj := range []client.Object{role, binding} {
			if err := c.Create(ctx, obj); err != nil {
				t.Fatal(err)
			}
		}
		kubeconfigs[user] = kubeconfigFor(t, envtest.User{Name: user}, ns)
	}

	t.Run("a user who may get the Secret", func(t *testing.T) {
		out, errOut, err := kubectlTrain(ctx, kubeconfigs["reader"], "checkpoints", "c", "--context", realContext)
		if err != nil {
			t.Fatalf("checkpoints: %v\n%s", err, errOut)
		}
		var verified []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:4] {
			f := strings.Fields(l)
			verified = append(verified, f[0]+":"+f[1]+":"+f[2])
		}
		if want := []string{"3:1.5Ki:yes", "2:1.5Ki:no", "1:1.5Ki:yes"}; !cmp.Equal(want, verified) || !strings.Contains(out, "epoch 2 (ckpt-000002-") {
			t.Errorf("checkpoints printed epochs:size:verified %v, want %v, and why epoch 2 does not verify:\n%s", verified, want, out)
		}
	})

	t.Run("a user who may not", func(t *testing.T) {
		out, _, err := kubectlTrain(ctx, kubeconfigs["viewer"], "checkpoints", "c", "--context", realContext)
		want := `you may not get Secret "s3-creds" in namespace "` + ns + `", which holds the checkpoint store's credentials of trainingjob "c"`
		if err == nil || !strings.HasPrefix(err.Error(), want) || out != "" {
			t.Errorf("checkpoints as a user without the Secret: error %v, printed %q; want an error starting %q", err, out, want)
		}
		// The same user reads the job itself.
		if _, _, err := kubectlTrain(ctx, kubeconfigs["viewer"], "history", "c", "--context", realContext); err != nil {
			t.Errorf("history as the viewer: %v", err)
		}
	})
}
