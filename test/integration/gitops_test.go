package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/internal/progress"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

// The health checks config/argocd and config/flux ship, run as Argo CD and Flux run them, on jobs
// the controller itself brought to each phase.
var _ = Describe("GitOps health", Ordered, func() {
	// phases holds, by name, a job as the controller left it in that state.
	phases := map[string]*unstructured.Unstructured{}

	BeforeAll(func(ctx context.Context) {
		ns := newNamespace(ctx)
		running := func(name string) (*kubetrainv1alpha1.TrainingJob, *corev1.Pod) {
			tj := createJob(ctx, newJob(name, ns).Epochs(3).BackoffLimit(1))
			pod := waitPod(ctx, tj, 0)
			setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Phase(corev1.PodRunning) })
			expectPhase(ctx, tj, kubetrainv1alpha1.PhaseRunning)
			return tj, pod
		}
		keep := func(name string, tj *kubetrainv1alpha1.TrainingJob, phase kubetrainv1alpha1.Phase) {
			got := expectPhase(ctx, tj, phase)
			u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(got)
			Expect(err).NotTo(HaveOccurred())
			phases[name] = &unstructured.Unstructured{Object: u}
		}

		pending := createJob(ctx, newJob("pending", ns))
		waitPod(ctx, pending, 0)
		keep("Pending", pending, kubetrainv1alpha1.PhasePending)

		training, _ := running("training")
		r, err := progress.NewStatusReporter(ctx, cfg, ns, training.Name, "")
		Expect(err).NotTo(HaveOccurred())
		var errs []error
		r.OnError = func(err error) { errs = append(errs, err) }
		r.Report(contract.Progress{Epoch: 1, Epochs: 3, Loss: 0.41, TestAccuracy: 0.8825, Time: time.Now()})
		Expect(errs).To(BeEmpty())
		keep("Running", training, kubetrainv1alpha1.PhaseRunning)

		retrying, pod := running("retrying")
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Exited(1, "boom") })
		keep("Restarting", retrying, kubetrainv1alpha1.PhaseRestarting)

		done, pod := running("done")
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Exited(0, `{"outcome":"Succeeded"}`) })
		keep("Succeeded", done, kubetrainv1alpha1.PhaseSucceeded)

		broken, pod := running("broken")
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) {
			p.Exited(contract.ExitInvalidData, `{"outcome":"Failed","message":"dataset: no train-images-idx3-ubyte"}`)
		})
		keep("Failed", broken, kubetrainv1alpha1.PhaseFailed)

		keep("Suspended", createJob(ctx, newJob("queued", ns).Suspend(true)), kubetrainv1alpha1.PhaseSuspended)

		stalled := createJob(ctx, newJob("stalled", ns))
		pod = waitPod(ctx, stalled, 0)
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) {
			p.Waiting("CreateContainerConfigError", `secret "kubetrain-s3" not found`)
		})
		Eventually(func(g Gomega) {
			g.Expect(condition(getJob(ctx, g, stalled), kubetrainv1alpha1.ConditionStalled).Status).To(BeEquivalentTo("True"))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		keep("Stalled", stalled, kubetrainv1alpha1.PhasePending)

		// As Argo CD and Flux may see a job before the controller does.
		fresh := phases["Pending"].DeepCopy()
		delete(fresh.Object, "status")
		phases["new"] = fresh
		// And a spec the controller has not seen yet.
		edited := phases["Running"].DeepCopy()
		edited.SetGeneration(edited.GetGeneration() + 1)
		phases["edited"] = edited
	})

	It("is what config/argocd's health check says, in Argo CD's Lua interpreter", func() {
		script := argoHealthScript()
		for name, want := range map[string]struct{ status, message string }{
			"new":        {"Progressing", "Waiting for the kubetrain controller"},
			"edited":     {"Progressing", "to see generation 2"},
			"Pending":    {"Progressing", "waiting for the workers to start"},
			"Running":    {"Progressing", "epoch 1/3, test accuracy 0.8825; attempt 0: 1 worker(s) running"},
			"Restarting": {"Progressing", "exit code 1"},
			"Succeeded":  {"Healthy", "training finished in attempt 0"},
			"Failed":     {"Degraded", "no train-images-idx3-ubyte"},
			"Suspended":  {"Suspended", "spec.runPolicy.suspend is true"},
			"Stalled":    {"Degraded", `secret "kubetrain-s3" not found`},
		} {
			status, message, err := argoHealth(script, phases[name])
			Expect(err).NotTo(HaveOccurred(), name)
			Expect(status).To(Equal(want.status), "%s: %s", name, message)
			Expect(message).To(ContainSubstring(want.message), name)
		}
	})

	It("is what config/flux's health expressions say, evaluated as Flux does; a running job is Current", func() {
		exprs := fluxHealthExprs()
		Expect(exprs.evaluate(phases["new"])).To(HavePrefix("Unknown: "), "a job with no status yet") // Flux polls again
		for name, want := range map[string]string{
			"edited":     "InProgress",
			"Pending":    "Current",
			"Running":    "Current", // a sync never waits for a run to finish
			"Restarting": "Current",
			"Succeeded":  "Current",
			"Suspended":  "Current",
			"Failed":     "Failed",
			"Stalled":    "Failed",
		} {
			Expect(exprs.evaluate(phases[name])).To(Equal(want), name)
		}
	})
})

// argoHealthScript is the Lua of config/argocd/argocd-cm.yaml.
func argoHealthScript() string {
	var cm corev1.ConfigMap
	b, err := os.ReadFile(filepath.Join(repoRoot, "config", "argocd", "argocd-cm.yaml"))
	Expect(err).NotTo(HaveOccurred())
	Expect(yaml.Unmarshal(b, &cm)).To(Succeed())
	script, ok := cm.Data["resource.customizations.health.kubetrain.io_TrainingJob"]
	Expect(ok).To(BeTrue(), "argocd-cm.yaml has no health check for kubetrain.io/TrainingJob")
	return script
}

// argoHealth runs a health script as Argo CD does: the object as the global obj (maps and lists
// as tables), the table it returns read for status and message.
func argoHealth(script string, obj *unstructured.Unstructured) (status, message string, err error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		l.Push(l.NewFunction(lib.open))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.SetGlobal("obj", luaValue(l, obj.Object))
	if err := l.DoString(script); err != nil {
		return "", "", err
	}
	hs, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("the script returned %s, not a table", l.Get(-1).Type())
	}
	return lua.LVAsString(hs.RawGetString("status")), lua.LVAsString(hs.RawGetString("message")), nil
}

func luaValue(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := l.NewTable()
		for k, e := range v {
			t.RawSetString(k, luaValue(l, e))
		}
		return t
	case []any:
		t := l.NewTable()
		for _, e := range v {
			t.Append(luaValue(l, e))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case nil:
		return lua.LNil
	default:
		panic(fmt.Sprintf("no Lua value for %T", v))
	}
}

// fluxExprs are the TrainingJob entry of config/flux's healthCheckExprs, parsed as Flux parses
// them (not type-checked: the object's top-level fields are the variables).
type fluxExprs struct{ inProgress, failed, current cel.Program }

func fluxHealthExprs() fluxExprs {
	var ks struct {
		Spec struct {
			HealthCheckExprs []struct {
				APIVersion, Kind            string
				InProgress, Failed, Current string
			} `json:"healthCheckExprs"`
		} `json:"spec"`
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, "config", "flux", "kustomization.trainingjobs.yaml"))
	Expect(err).NotTo(HaveOccurred())
	Expect(yaml.Unmarshal(b, &ks)).To(Succeed())
	env, err := cel.NewEnv(cel.HomogeneousAggregateLiterals(), cel.EagerlyValidateDeclarations(true), cel.DefaultUTCTimeZone(true),
		cel.CrossTypeNumericComparisons(true), cel.OptionalTypes(), ext.Strings(), ext.Sets(), ext.Encoders())
	Expect(err).NotTo(HaveOccurred())
	program := func(expr string) cel.Program {
		ast, issues := env.Parse(expr)
		Expect(issues.Err()).NotTo(HaveOccurred(), expr)
		p, err := env.Program(ast)
		Expect(err).NotTo(HaveOccurred(), expr)
		return p
	}
	for _, hc := range ks.Spec.HealthCheckExprs {
		if hc.APIVersion == kubetrainv1alpha1.GroupVersion.String() && hc.Kind == "TrainingJob" {
			return fluxExprs{program(hc.InProgress), program(hc.Failed), program(hc.Current)}
		}
	}
	Fail("config/flux has no health check for TrainingJob")
	return fluxExprs{}
}

// evaluate follows Flux's order: a status.observedGeneration behind metadata.generation is
// InProgress; then the first of inProgress, failed and current that holds; none is InProgress. An
// expression that cannot be evaluated yet (no status at all) makes the status Unknown, and Flux
// polls again.
func (f fluxExprs) evaluate(obj *unstructured.Unstructured) string {
	observed, ok, _ := unstructured.NestedInt64(obj.Object, "status", "observedGeneration")
	if ok && observed != obj.GetGeneration() {
		return "InProgress"
	}
	for _, e := range []struct {
		p      cel.Program
		status string
	}{{f.inProgress, "InProgress"}, {f.failed, "Failed"}, {f.current, "Current"}} {
		v, _, err := e.p.Eval(obj.Object)
		if err != nil {
			return "Unknown: " + strings.SplitN(err.Error(), "\n", 2)[0]
		}
		if v == types.True {
			return e.status
		}
	}
	return "InProgress"
}

var _ = Describe("A finished job kept in Git", func() {
	It("loses its pods to its TTL but stays, unchanged by the operator, and an unchanged re-apply writes nothing", func(ctx context.Context) {
		ns := newNamespace(ctx)
		manifest := &unstructured.Unstructured{}
		Expect(yaml.Unmarshal([]byte(`
apiVersion: kubetrain.io/v1alpha1
kind: TrainingJob
metadata:
  name: kept
spec:
  dataset:
    uri: synthetic://cifar10
  hyperparameters:
    epochs: 1
  runPolicy:
    ttlSecondsAfterFinished: 1
    ttlAction: DeletePods
`), &manifest.Object)).To(Succeed())
		manifest.SetNamespace(ns)
		// As Argo CD and Flux apply it: server-side, as their own field manager.
		apply := func() {
			Expect(k8sClient.Patch(ctx, manifest.DeepCopy(), client.Apply, client.FieldOwner("argocd-controller"))).To(Succeed())
		}
		apply()
		tj := &kubetrainv1alpha1.TrainingJob{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kept"}, tj)).To(Succeed())
		pod := waitPod(ctx, tj, 0)
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Exited(0, `{"outcome":"Succeeded"}`) })
		expectPhase(ctx, tj, kubetrainv1alpha1.PhaseSucceeded)

		Eventually(func(g Gomega) {
			g.Expect(workerPods(ctx, g, tj)).To(BeEmpty())
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed(), "the TTL did not delete the pods")
		got := expectPhase(ctx, tj, kubetrainv1alpha1.PhaseSucceeded)
		Expect(got.Generation).To(Equal(tj.Generation))

		// Only the author's tool manages the job's spec and metadata: nothing to be out of sync with.
		for _, mf := range got.ManagedFields {
			if mf.Subresource == "" {
				Expect(mf.Manager).To(Equal("argocd-controller"), "%s manages fields of the job: %s", mf.Manager, mf.FieldsV1)
			}
		}

		events := func(g Gomega) int {
			var list eventsv1.EventList
			g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
			n := 0
			for _, e := range list.Items {
				if e.Regarding.UID == got.UID {
					n++
				}
			}
			return n
		}
		before := events(Default)
		for range 5 {
			apply()
		}
		Consistently(func(g Gomega) {
			now := getJob(ctx, g, tj)
			g.Expect(now.ResourceVersion).To(Equal(got.ResourceVersion), "the job was written")
			g.Expect(workerPods(ctx, g, tj)).To(BeEmpty(), "a pod came back")
			g.Expect(events(g)).To(Equal(before), "an event was emitted")
		}).WithTimeout(consistently).WithPolling(interval).Should(Succeed())
	})
})
