package integration

import (
	"context"
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubetrain/kubetrain/controllers"
	"github.com/kubetrain/kubetrain/internal/manager"
)

var _ = Describe("The manager's identity", func() {
	It("can create worker pods, their Service and the trainer's identity, and nothing else", func(ctx context.Context) {
		mgr, err := client.New(managerCfg, client.Options{Scheme: manager.Scheme()})
		Expect(err).NotTo(HaveOccurred())
		ns := newNamespace(ctx)
		// A worker the manager made, as the model of a well-formed pod.
		worker := waitPod(ctx, createJob(ctx, newJob("model", ns)), 0)
		pod := func(name string, edit func(*corev1.Pod)) *corev1.Pod {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: worker.Labels,
				OwnerReferences: worker.OwnerReferences}, Spec: *worker.Spec.DeepCopy()}
			// What the API server added to the model: the token volume comes back by itself.
			p.Spec.NodeName = ""
			p.Spec.Volumes = p.Spec.Volumes[:1]
			p.Spec.Containers[0].VolumeMounts = p.Spec.Containers[0].VolumeMounts[:1]
			if edit != nil {
				edit(p)
			}
			return p
		}
		// refused expects the manager's identity to be refused obj. The policy takes effect a moment
		// after the suite creates it, so an object created before then is deleted and tried again.
		refused := func(obj client.Object, why string) {
			Eventually(func() error {
				o := obj.DeepCopyObject().(client.Object)
				err := mgr.Create(ctx, o)
				if err == nil {
					Expect(k8sClient.Delete(ctx, o)).To(Succeed())
					return fmt.Errorf("the manager's identity created %T %s", o, o.GetName())
				}
				return err
			}).WithTimeout(timeout).WithPolling(interval).Should(MatchError(ContainSubstring(why)))
		}

		Expect(mgr.Create(ctx, pod("same-shape", nil))).To(Succeed())
		refused(pod("as-default", func(p *corev1.Pod) { p.Spec.ServiceAccountName = "default" }), "only create pods that run as kubetrain-trainer")
		refused(pod("orphan", func(p *corev1.Pod) { p.OwnerReferences = nil }), "only create pods controlled by a TrainingJob")
		refused(pod("host-path", func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}})
		}), "volume types of the restricted Pod Security profile, not root")
		refused(pod("host-network", func(p *corev1.Pod) { p.Spec.HostNetwork = true }), "network, PID or IPC")
		refused(pod("root", func(p *corev1.Pod) { p.Spec.SecurityContext.RunAsNonRoot = ptr.To(false) }), "run as non-root")
		refused(pod("privileged", func(p *corev1.Pod) {
			sc := p.Spec.Containers[0].SecurityContext
			sc.Privileged, sc.AllowPrivilegeEscalation = ptr.To(true), nil // the API server refuses privileged without escalation itself
		}), "not privileged")
		refused(pod("sys-admin", func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext.Capabilities.Add = []corev1.Capability{"SYS_ADMIN"}
		}), "drop all capabilities")

		// The workers' Service: headless, the rendezvous port, controlled by a TrainingJob.
		svc := func(name string, edit func(*corev1.Service)) *corev1.Service {
			s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, OwnerReferences: worker.OwnerReferences},
				Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"a": "b"},
					Ports: []corev1.ServicePort{{Name: "rendezvous", Port: 29500}}}}
			edit(s)
			return s
		}
		Expect(mgr.Create(ctx, svc("workers", func(*corev1.Service) {}))).To(Succeed())
		refused(svc("orphan-svc", func(s *corev1.Service) { s.OwnerReferences = nil }), "only create Services controlled by a TrainingJob")
		refused(svc("cluster-ip", func(s *corev1.Service) { s.Spec.ClusterIP = "" }), "only create headless Services")
		refused(svc("balancer", func(s *corev1.Service) { s.Spec.ClusterIP, s.Spec.Type = "", corev1.ServiceTypeLoadBalancer }), "only create headless Services")
		refused(svc("other-port", func(s *corev1.Service) { s.Spec.Ports[0].Port = 443 }), "rendezvous port 29500")
		refused(svc("external", func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"203.0.113.7"} }), "no external address")

		other := newNamespace(ctx)
		refused(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder", Namespace: other}}, "kubetrain-trainer, not builder")
		refused(&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: controllers.TrainerServiceAccount, Namespace: other}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create"}}}}, "only allow get and patch of TrainingJob status")
		// The trainer's Role exists, so that the API server's own check on binding it passes and the
		// policy is what refuses the binding to another ServiceAccount.
		Expect(k8sClient.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: controllers.TrainerServiceAccount, Namespace: other},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{"kubetrain.io"}, Resources: []string{"trainingjobs/status"}, Verbs: []string{"get", "patch"}}}})).To(Succeed())
		refused(&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: controllers.TrainerServiceAccount, Namespace: other},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: controllers.TrainerServiceAccount},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "default", Namespace: other}}}, "to the kubetrain-trainer ServiceAccount")
	})
})
