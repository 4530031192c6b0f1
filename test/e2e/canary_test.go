//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
)

// The suite's S3 credentials are a canary: hack/test-e2e.sh makes them random for the run, every
// job of the suite uses them, and at the end they must appear nowhere but in their Secrets (and as
// Secret references): not in kubetrain's logs, events, TrainingJob status, pod arguments, commands
// or env values.

// canary holds the credential values to look for (set in BeforeSuite), and what the suite kept of
// objects deleted during the run, before they went: each job's last status and its pods' logs.
var canary struct {
	values []string
	mu     sync.Mutex
	kept   map[string]string // where -> text
}

func keep(where, text string) {
	canary.mu.Lock()
	defer canary.mu.Unlock()
	if canary.kept == nil {
		canary.kept = map[string]string{}
	}
	canary.kept[where] = text
}

// keepJob keeps a job's object and its pods' logs, before the job is deleted.
func keepJob(ctx context.Context, tj *kubetrainv1alpha1.TrainingJob) {
	got := &kubetrainv1alpha1.TrainingJob{}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(tj), got); err == nil {
		keep("TrainingJob "+tj.Namespace+"/"+tj.Name, asJSON(got))
	}
	keepLogs(jobPods(ctx, Default, tj))
}

// keepLogs keeps the logs of every container of the given pods.
func keepLogs(pods []corev1.Pod) {
	for _, p := range pods {
		for _, c := range p.Spec.Containers {
			out, err := kubectl("logs", "-n", p.Namespace, p.Name, "-c", c.Name)
			if err != nil {
				continue // a container that never started has no log
			}
			keep("log of "+p.Namespace+"/"+p.Name+"/"+c.Name, out)
		}
	}
}

// leaks names each place in text where one of the canary values appears.
func leaks(where, text string) []string {
	var found []string
	for _, v := range canary.values {
		if v != "" && strings.Contains(text, v) {
			found = append(found, where)
		}
	}
	return found
}

func asJSON(v any) string {
	b, err := json.Marshal(v)
	Expect(err).NotTo(HaveOccurred())
	return string(b)
}

var _ = AfterSuite(func(ctx SpecContext) {
	Expect(canary.values).NotTo(BeEmpty(), "no canary credentials were read")
	var found []string

	By("reading the logs of the manager and of every worker the suite ran")
	managers := &corev1.PodList{}
	Expect(k8sClient.List(ctx, managers, client.InNamespace(operatorNamespace),
		client.MatchingLabels{"control-plane": "controller-manager"})).To(Succeed())
	workers := &corev1.PodList{}
	Expect(k8sClient.List(ctx, workers, client.MatchingLabels{kubetrainv1alpha1.LabelManagedBy: kubetrainv1alpha1.ManagedByValue})).To(Succeed())
	keepLogs(append(managers.Items, workers.Items...))
	logs := 0
	for where, text := range canary.kept {
		if strings.HasPrefix(where, "log of ") {
			logs++
		}
		found = append(found, leaks(where, text)...)
	}
	Expect(logs).NotTo(BeZero())

	By("reading every event, TrainingJob and pod of the cluster")
	events := &eventsv1.EventList{}
	Expect(k8sClient.List(ctx, events)).To(Succeed())
	for _, e := range events.Items {
		found = append(found, leaks(fmt.Sprintf("event %s/%s", e.Namespace, e.Name), asJSON(e))...)
	}
	coreEvents := &corev1.EventList{}
	Expect(k8sClient.List(ctx, coreEvents)).To(Succeed())
	for _, e := range coreEvents.Items {
		found = append(found, leaks(fmt.Sprintf("event %s/%s", e.Namespace, e.Name), asJSON(e))...)
	}
	jobs := &kubetrainv1alpha1.TrainingJobList{}
	Expect(k8sClient.List(ctx, jobs)).To(Succeed())
	for _, tj := range jobs.Items {
		found = append(found, leaks("TrainingJob "+tj.Namespace+"/"+tj.Name, asJSON(tj))...)
	}
	pods := &corev1.PodList{}
	Expect(k8sClient.List(ctx, pods)).To(Succeed())
	for _, p := range pods.Items {
		for _, c := range append(p.Spec.InitContainers, p.Spec.Containers...) {
			where := fmt.Sprintf("pod %s/%s container %s", p.Namespace, p.Name, c.Name)
			found = append(found, leaks(where+" command and args", strings.Join(append(c.Command, c.Args...), " "))...)
			for _, e := range c.Env {
				found = append(found, leaks(where+" env "+e.Name, e.Value)...)
			}
		}
	}
	By("scraping the manager's metrics as a reader bound to kubetrain-metrics-reader")
	metrics := scrapeMetrics(ctx)
	Expect(metrics).To(ContainSubstring("controller_runtime_reconcile_total"))
	found = append(found, leaks("the manager's metrics", metrics)...)

	GinkgoWriter.Printf("canary: looked through %d logs, %d events, %d TrainingJobs and %d pods\n",
		logs, len(events.Items)+len(coreEvents.Items), len(canary.kept)-logs+len(jobs.Items), len(pods.Items))
	Expect(found).To(BeEmpty(), "the S3 credentials appear outside their Secrets")
})

// scrapeMetrics reads the manager's metrics endpoint through kubectl port-forward, with the token
// of a ServiceAccount bound to the shipped metrics-reader role.
func scrapeMetrics(ctx context.Context) string {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "metrics-scraper"}}
	Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, sa))).To(Succeed())
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-metrics-scraper-" + ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "kubetrain-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa.Name}},
	}
	Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, binding))).To(Succeed())
	DeferCleanup(func(ctx SpecContext) { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, binding))).To(Succeed()) })
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}
	Expect(k8sClient.SubResource("token").Create(ctx, sa, tr)).To(Succeed())

	cmd := exec.CommandContext(ctx, kubectlBin, "port-forward", "-n", operatorNamespace,
		"svc/kubetrain-controller-manager-metrics", ":8443")
	stdout, err := cmd.StdoutPipe()
	Expect(err).NotTo(HaveOccurred())
	Expect(cmd.Start()).To(Succeed())
	DeferCleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n') // "Forwarding from 127.0.0.1:PORT -> 8443"
	Expect(err).NotTo(HaveOccurred())
	m := regexp.MustCompile(`127\.0\.0\.1:(\d+)`).FindStringSubmatch(line)
	Expect(m).NotTo(BeNil(), "kubectl port-forward said %q", line)

	// The endpoint's certificate is self-signed: what is checked here is what it serves, not who.
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	var body string
	Eventually(func(g Gomega) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://127.0.0.1:"+m[1]+"/metrics", nil)
		g.Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Authorization", "Bearer "+tr.Status.Token)
		resp, err := hc.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK), "%s", b)
		body = string(b)
	}).WithTimeout(time.Minute).WithPolling(time.Second).Should(Succeed())
	return body
}
