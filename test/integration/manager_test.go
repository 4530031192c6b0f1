package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/contract"
	"github.com/kubetrain/kubetrain/internal/progress"
	"github.com/kubetrain/kubetrain/internal/testutil"
)

var _ = Describe("Manager", func() {
	httpGet := func(url string) (int, string) { return httpGetAs(url, "") }
	// httpGetAs sends token as a bearer token unless it is empty. The metrics endpoint's certificate
	// is the manager's own self-signed one.
	httpGetAs = func(url, token string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		Expect(err).NotTo(HaveOccurred())
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	It("holds the leader election Lease", func(ctx context.Context) {
		Eventually(func(g Gomega) {
			lease := &coordinationv1.Lease{}
			g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: leaderElectionNamespace,
				Name: "kubetrain-controller.kubetrain.io"}, lease)).To(Succeed())
			g.Expect(lease.Spec.HolderIdentity).NotTo(BeNil())
			g.Expect(*lease.Spec.HolderIdentity).NotTo(BeEmpty())
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	})

	It("serves health and readiness probes", func() {
		Eventually(func(g Gomega) {
			code, _ := httpGet("http://" + mgrRun.healthAddr + "/healthz")
			g.Expect(code).To(Equal(http.StatusOK))
			code, _ = httpGet("http://" + mgrRun.healthAddr + "/readyz")
			g.Expect(code).To(Equal(http.StatusOK))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	})

	It("serves Prometheus metrics of its reconciles over HTTPS, to authorized callers only", func(ctx context.Context) {
		ns := newNamespace(ctx)
		createJob(ctx, newJob("metrics", ns))
		// A ServiceAccount bound to config/rbac's metrics-reader, and one that is not.
		scraper, nosy := metricsReaderToken(ctx, ns), serviceAccountToken(ctx, ns, "nosy")
		url := "https://" + mgrRun.metricsAddr + "/metrics"
		Eventually(func(g Gomega) {
			code, body := httpGetAs(url, scraper)
			g.Expect(code).To(Equal(http.StatusOK))
			g.Expect(body).To(MatchRegexp(`controller_runtime_reconcile_total\{controller="trainingjob",result="success"\} [1-9]`))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
		code, body := httpGetAs(url, "")
		Expect(code).To(Equal(http.StatusUnauthorized), "an anonymous scrape: %s", body)
		// controller-runtime's filter answers a token the API server rejects with a 500.
		code, body = httpGetAs(url, "not-a-token")
		Expect(code).NotTo(Equal(http.StatusOK), "a scrape with a made-up token: %s", body)
		Expect(body).NotTo(ContainSubstring("controller_runtime"))
		code, body = httpGetAs(url, nosy)
		Expect(code).To(Equal(http.StatusForbidden), "a scrape by a ServiceAccount not bound to metrics-reader: %s", body)
		// And nothing but HTTPS.
		code, _ = httpGet("http://" + mgrRun.metricsAddr + "/metrics")
		Expect(code).NotTo(Equal(http.StatusOK))
	})

	It("exports each job's phase, progress, checkpoint age and restarts as kubetrain_ metrics", func(ctx context.Context) {
		ns := newNamespace(ctx)
		tj := createJob(ctx, newJob("scraped", ns).Epochs(5).Checkpoint("s3://ckpt/runs", ""))
		pod := waitPod(ctx, tj, 0)
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Disrupted("PreemptionByScheduler") })
		pod = waitPod(ctx, tj, 1)
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Phase(corev1.PodRunning) })
		expectPhase(ctx, tj, kubetrainv1alpha1.PhaseRunning)
		r, err := progress.NewStatusReporter(ctx, cfg, ns, tj.Name, "")
		Expect(err).NotTo(HaveOccurred())
		var errs []error
		r.OnError = func(err error) { errs = append(errs, err) }
		r.Report(contract.Progress{Epoch: 2, Epochs: 5, Loss: 0.375, TestAccuracy: 0.875, ImagesPerSecond: 2048, Time: time.Now()})
		r.Checkpointed("s3://ckpt/runs/"+ns+"/scraped/"+string(tj.UID)+"/rank-0/ckpt-000002-ab/manifest.json", 2, 1, 3<<20, time.Now().Add(-time.Minute))
		Expect(errs).To(BeEmpty())

		scraper := metricsReaderToken(ctx, ns)
		job := fmt.Sprintf(`{namespace="%s",trainingjob="scraped"}`, ns)
		Eventually(func(g Gomega) {
			code, body := httpGetAs("https://"+mgrRun.metricsAddr+"/metrics", scraper)
			g.Expect(code).To(Equal(http.StatusOK))
			for _, want := range []string{
				fmt.Sprintf(`kubetrain_trainingjobs{namespace="%s",phase="Running"} 1`, ns),
				"kubetrain_trainingjob_epoch" + job + " 2",
				"kubetrain_trainingjob_epochs" + job + " 5",
				"kubetrain_trainingjob_test_accuracy_ratio" + job + " 0.875",
				"kubetrain_trainingjob_loss" + job + " 0.375",
				"kubetrain_trainingjob_images_per_second" + job + " 2048",
				"kubetrain_trainingjob_checkpoint_size_bytes" + job + " 3.145728e+06",
				fmt.Sprintf(`kubetrain_trainingjob_restarts_total{namespace="%s",reason="disruption",trainingjob="scraped"} 1`, ns),
				fmt.Sprintf(`kubetrain_trainingjob_restarts_total{namespace="%s",reason="failure",trainingjob="scraped"} 0`, ns),
			} {
				g.Expect(body).To(ContainSubstring(want+"\n"), "%s", want)
			}
			g.Expect(body).To(MatchRegexp(`kubetrain_trainingjob_checkpoint_age_seconds` + regexp.QuoteMeta(job) + ` (6\d|7\d)(\.\d+)?\n`))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

		// A deleted job's series go with it.
		Expect(k8sClient.Delete(ctx, tj)).To(Succeed())
		Eventually(func(g Gomega) {
			_, body := httpGetAs("https://"+mgrRun.metricsAddr+"/metrics", scraper)
			g.Expect(body).NotTo(ContainSubstring(job))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	})
})

var httpGetAs func(url, token string) (int, string)

// serviceAccountToken creates a ServiceAccount and returns a token of it.
func serviceAccountToken(ctx context.Context, ns, name string) string {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	Expect(k8sClient.Create(ctx, sa)).To(Succeed())
	req := &authenticationv1.TokenRequest{}
	Expect(k8sClient.SubResource("token").Create(ctx, sa, req)).To(Succeed())
	return req.Status.Token
}

// metricsReaderToken is the token of a ServiceAccount bound to config/rbac's metrics-reader, as
// Prometheus would scrape with.
func metricsReaderToken(ctx context.Context, ns string) string {
	token := serviceAccountToken(ctx, ns, "scraper")
	Expect(k8sClient.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "scraper-"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "scraper", Namespace: ns}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "metrics-reader"},
	})).To(Succeed())
	return token
}

// kstatusOf is what kstatus (sigs.k8s.io/cli-utils), which Flux reads, says of a copy of a job.
func kstatusOf(g Gomega, got *kubetrainv1alpha1.TrainingJob) status.Status {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(kubetrainv1alpha1.GroupVersion.WithKind("TrainingJob"))
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(got)
	g.Expect(err).NotTo(HaveOccurred())
	u.Object = obj
	res, err := status.Compute(u)
	g.Expect(err).NotTo(HaveOccurred())
	return res.Status
}

var _ = Describe("Health for GitOps tools (kstatus)", func() {
	// kstatus computes what kstatus says of the job as it is now.
	kstatus := func(ctx context.Context, g Gomega, tj *kubetrainv1alpha1.TrainingJob) status.Status {
		return kstatusOf(g, getJob(ctx, g, tj))
	}

	It("is Current while training runs, InProgress during a backoff, and Failed on a terminal failure", func(ctx context.Context) {
		ns := newNamespace(ctx)
		tj := createJob(ctx, newJob("gitops", ns).BackoffLimit(1))
		pod := waitPod(ctx, tj, 0)
		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Phase(corev1.PodRunning) })
		expectPhase(ctx, tj, kubetrainv1alpha1.PhaseRunning)
		Eventually(func(g Gomega) {
			g.Expect(kstatus(ctx, g, tj)).To(Equal(status.CurrentStatus))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

		setPodStatus(ctx, pod, func(p *testutil.PodWrapper) { p.Exited(1, "") })
		Eventually(func(g Gomega) {
			got := getJob(ctx, g, tj)
			g.Expect(got.Status.Phase).To(Equal(kubetrainv1alpha1.PhaseRestarting))
			g.Expect(kstatusOf(g, got)).To(Equal(status.InProgressStatus))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())

		pod1 := waitPod(ctx, tj, 1)
		setPodStatus(ctx, pod1, func(p *testutil.PodWrapper) { p.Exited(1, "") })
		expectPhase(ctx, tj, kubetrainv1alpha1.PhaseFailed)
		Eventually(func(g Gomega) {
			g.Expect(kstatus(ctx, g, tj)).To(Equal(status.FailedStatus))
		}).WithTimeout(timeout).WithPolling(interval).Should(Succeed())
	})
})
