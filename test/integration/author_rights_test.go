package integration

import (
	"context"
	"os"
	"path/filepath"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Users of the API server with no rights but what each spec binds to them in its namespace.
var (
	usersOnce          sync.Once
	aliceKC, bobKC     string // kubeconfig files
	aliceName, bobName = "alice", "bob"
)

func testUsers() {
	usersOnce.Do(func() {
		for name, file := range map[string]*string{aliceName: &aliceKC, bobName: &bobKC} {
			u, err := testEnv.AddUser(envtest.User{Name: name}, nil)
			Expect(err).NotTo(HaveOccurred())
			kc, err := u.KubeConfig()
			Expect(err).NotTo(HaveOccurred())
			*file = filepath.Join(os.TempDir(), "kubetrain-integration-"+name+".kubeconfig")
			Expect(os.WriteFile(*file, kc, 0o600)).To(Succeed())
		}
		// The policy takes effect a moment after it is created: wait until it refuses Alice a custom
		// image, so that no spec passes for want of a policy. A server-side dry run goes through
		// admission every time and leaves nothing behind.
		ctx := context.Background()
		probe := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "author-probe-"}}
		Expect(k8sClient.Create(ctx, probe)).To(Succeed())
		Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "alice-edit", Namespace: probe.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: aliceName}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "trainingjob-editor-role"},
		})).To(Succeed())
		f := filepath.Join(os.TempDir(), "kubetrain-integration-probe.yaml")
		Expect(os.WriteFile(f, []byte(jobYAML("probe", "  image: registry.example/anything:1\n")), 0o600)).To(Succeed())
		Eventually(func() string {
			out, _ := kubectlErr("--kubeconfig", aliceKC, "create", "--dry-run=server", "-n", probe.Name, "-f", f)
			return out
		}).WithTimeout(timeout).WithPolling(interval).Should(ContainSubstring("only a user who may create pods"))
		Expect(k8sClient.Delete(ctx, probe)).To(Succeed())
	})
}

// The hostile TrainingJobs: what each adds to a valid spec, and what the refusal must name. Alice
// may edit TrainingJobs (config/rbac's editor role), get the Secret "mine", the ConfigMap "cm-mine"
// and the claim "pvc-mine", and nothing else; the namespace also holds "theirs", "cm-theirs" and
// "pvc-theirs".
var hostileJobs = []TableEntry{
	// Objects she may not read, used through the job.
	Entry("dataset credentials she may not read", "  dataset:\n    uri: s3://data/x\n    credentialsSecretName: theirs\n", "spec.dataset.credentialsSecretName=theirs"),
	Entry("checkpoint credentials she may not read", "  checkpoint:\n    uri: s3://ckpt/x\n    credentialsSecretName: theirs\n", "spec.checkpoint.credentialsSecretName=theirs"),
	Entry("a Secret that does not exist", "  dataset:\n    uri: s3://data/x\n    credentialsSecretName: ghost\n", "spec.dataset.credentialsSecretName=ghost"),
	Entry("an image pull Secret", "  template:\n    imagePullSecrets:\n    - name: theirs\n", "spec.template.imagePullSecrets=theirs"),
	Entry("env from a Secret", "  template:\n    env:\n    - name: TOKEN\n      valueFrom:\n        secretKeyRef: {name: theirs, key: token}\n", "spec.template.env[TOKEN].valueFrom.secretKeyRef=theirs"),
	Entry("a Secret volume", "  template:\n    volumes:\n    - name: creds\n      secret: {secretName: theirs}\n", "spec.template.volumes[creds].secret=theirs"),
	Entry("one Secret of two", "  dataset:\n    uri: s3://data/x\n    credentialsSecretName: mine\n  checkpoint:\n    uri: s3://ckpt/x\n    credentialsSecretName: theirs\n", "spec.checkpoint.credentialsSecretName=theirs"),
	Entry("env from a ConfigMap", "  template:\n    env:\n    - name: CONF\n      valueFrom:\n        configMapKeyRef: {name: cm-theirs, key: k}\n", "spec.template.env[CONF].valueFrom.configMapKeyRef=cm-theirs"),
	Entry("a ConfigMap volume", "  template:\n    volumes:\n    - name: conf\n      configMap: {name: cm-theirs}\n", "spec.template.volumes[conf].configMap=cm-theirs"),
	Entry("a claim she may not read", "  template:\n    volumes:\n    - name: data\n      persistentVolumeClaim: {claimName: pvc-theirs}\n", "spec.template.volumes[data].persistentVolumeClaim=pvc-theirs"),
	// What only someone who may create pods may ask for.
	Entry("a custom image", "  image: registry.example/anything:1\n", "spec.image"),
	Entry("pod labels that join another Service", "  template:\n    labels:\n      app: frontend\n", "spec.template.labels"),
	Entry("an unconfined AppArmor annotation", "  template:\n    annotations:\n      container.apparmor.security.beta.kubernetes.io/trainer: unconfined\n", "spec.template.annotations"),
	Entry("a toleration for control-plane nodes", "  template:\n    tolerations:\n    - key: node-role.kubernetes.io/control-plane\n      operator: Exists\n", "spec.template.tolerations"),
	Entry("a node-critical priority", "  template:\n    priorityClassName: system-node-critical\n", "spec.template.priorityClassName"),
	Entry("a runtime class", "  template:\n    runtimeClassName: unsandboxed\n", "spec.template.runtimeClassName"),
	Entry("a hostPath volume", "  template:\n    volumes:\n    - name: host\n      hostPath: {path: /}\n", "spec.template.volumes[host]"),
	Entry("a projected token for any audience", "  template:\n    volumes:\n    - name: token\n      projected:\n        sources:\n        - serviceAccountToken: {audience: vault, path: t}\n", "spec.template.volumes[token]"),
	Entry("a projected Secret", "  template:\n    volumes:\n    - name: proj\n      projected:\n        sources:\n        - secret: {name: theirs}\n", "spec.template.volumes[proj]"),
	Entry("a CSI volume", "  template:\n    volumes:\n    - name: csi\n      csi: {driver: secrets-store.csi.k8s.io}\n", "spec.template.volumes[csi]"),
	Entry("an NFS volume", "  template:\n    volumes:\n    - name: nfs\n      nfs: {server: 10.0.0.1, path: /exports}\n", "spec.template.volumes[nfs]"),
	Entry("an ephemeral claim", "  template:\n    volumes:\n    - name: eph\n      ephemeral:\n        volumeClaimTemplate:\n          spec:\n            accessModes: [ReadWriteOnce]\n            resources: {requests: {storage: 1Gi}}\n", "spec.template.volumes[eph]"),
	Entry("a gitRepo volume", "  template:\n    volumes:\n    - name: git\n      gitRepo: {repository: https://example.com/x.git}\n", "spec.template.volumes[git]"),
	Entry("an image volume", "  template:\n    volumes:\n    - name: img\n      image: {reference: registry.example/tools:1}\n", "spec.template.volumes[img]"),
	Entry("an iSCSI volume", "  template:\n    volumes:\n    - name: iscsi\n      iscsi: {targetPortal: 10.0.0.1:3260, iqn: iqn.2001-04.com.example:storage, lun: 0}\n", "spec.template.volumes[iscsi]"),
	// The operator's own names, refused by the CRD whoever writes them.
	Entry("storage credentials as env", "  template:\n    env:\n    - name: AWS_ACCESS_KEY_ID\n      value: x\n", "spec.template.env"),
	Entry("the metadata endpoint switched back on", "  template:\n    env:\n    - name: AWS_EC2_METADATA_DISABLED\n      value: \"false\"\n", "spec.template.env"),
	Entry("another TMPDIR", "  template:\n    env:\n    - name: TMPDIR\n      value: /\n", "spec.template.env"),
	Entry("another rank", "  template:\n    env:\n    - name: KUBETRAIN_RANK\n      value: \"3\"\n", "spec.template.env"),
	Entry("the operator's labels", "  template:\n    labels:\n      kubetrain.io/job-name: other\n", "spec.template.labels"),
	Entry("the scratch volume", "  template:\n    volumes:\n    - name: scratch\n      hostPath: {path: /}\n", "spec.template.volumes"),
	Entry("a mount over scratch", "  template:\n    volumeMounts:\n    - name: x\n      mountPath: /scratch\n", "spec.template.volumeMounts"),
	Entry("a dataset over plain HTTP", "  dataset:\n    uri: http://example.com/data\n", "spec.dataset.uri"),
}

var _ = Describe("A TrainingJob's author", func() {
	var ns string

	// bind grants user a ClusterRole or a Role of the namespace.
	bind := func(ctx context.Context, user, kind, role string) {
		Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{GenerateName: user + "-", Namespace: ns},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: role},
		})).To(Succeed())
	}
	// applyAs applies a job as the user of kubeconfig kc.
	applyAs := func(kc, doc string) (string, error) {
		f := filepath.Join(GinkgoT().TempDir(), "job.yaml")
		Expect(os.WriteFile(f, []byte(doc), 0o600)).To(Succeed())
		return kubectlErr("--kubeconfig", kc, "apply", "-n", ns, "-f", f)
	}

	BeforeEach(func(ctx context.Context) {
		testUsers()
		ns = newNamespace(ctx)
		for _, obj := range []client.Object{
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "mine", Namespace: ns}},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "theirs", Namespace: ns}},
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-mine", Namespace: ns}},
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-theirs", Namespace: ns}},
			&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "pvc-mine", Namespace: ns}, Spec: claimSpec()},
			&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "pvc-theirs", Namespace: ns}, Spec: claimSpec()},
			&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "reads-mine", Namespace: ns}, Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"mine"}, Verbs: []string{"get"}},
				{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"cm-mine"}, Verbs: []string{"get"}},
				{APIGroups: []string{""}, Resources: []string{"persistentvolumeclaims"}, ResourceNames: []string{"pvc-mine"}, Verbs: []string{"get"}},
			}},
			&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "creates-pods", Namespace: ns}, Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create"}},
			}},
		} {
			Expect(k8sClient.Create(ctx, obj)).To(Succeed())
		}
		for _, user := range []string{aliceName, bobName} {
			bind(ctx, user, "ClusterRole", "trainingjob-editor-role")
			bind(ctx, user, "Role", "reads-mine")
		}
		bind(ctx, bobName, "Role", "creates-pods")
	})

	DescribeTable("cannot have the operator do what she could not do herself",
		func(specExtra, field string) {
			out, err := applyAs(aliceKC, jobYAML("hostile", specExtra))
			Expect(err).To(HaveOccurred(), "accepted:\n%s", specExtra)
			Expect(out).To(ContainSubstring(field), "the refusal does not name %s", field)
		},
		hostileJobs,
	)

	It("counts at least 30 hostile jobs", func() {
		Expect(len(hostileJobs)).To(BeNumerically(">=", 30))
	})

	DescribeTable("may use what she may read, and what harms nobody",
		func(specExtra string) {
			out, err := applyAs(aliceKC, jobYAML("harmless", specExtra))
			Expect(err).NotTo(HaveOccurred(), out)
		},
		Entry("her own Secrets", "  dataset:\n    uri: s3://data/x\n    credentialsSecretName: mine\n  template:\n    imagePullSecrets:\n    - name: mine\n    env:\n    - name: TOKEN\n      valueFrom:\n        secretKeyRef: {name: mine, key: token}\n"),
		Entry("her own ConfigMap and claim", "  template:\n    volumes:\n    - name: conf\n      configMap: {name: cm-mine}\n    - name: data\n      persistentVolumeClaim: {claimName: pvc-mine}\n    volumeMounts:\n    - name: data\n      mountPath: /data\n"),
		Entry("scratch space and the downward API", "  template:\n    volumes:\n    - name: tmp\n      emptyDir: {sizeLimit: 1Gi}\n    - name: info\n      downwardAPI:\n        items:\n        - path: labels\n          fieldRef: {fieldPath: metadata.labels}\n"),
		Entry("plain env and node placement", "  template:\n    env:\n    - name: LOG_LEVEL\n      value: debug\n    - name: NODE\n      valueFrom:\n        fieldRef: {fieldPath: spec.nodeName}\n    nodeSelector:\n      gpu: a100\n"),
	)

	It("may ask for pod-level settings when she may create pods herself", func() {
		out, err := applyAs(bobKC, jobYAML("custom", "  image: registry.example/mine:1\n  template:\n    labels:\n      team: vision\n    tolerations:\n    - key: dedicated\n      operator: Exists\n    volumes:\n    - name: host\n      hostPath: {path: /data}\n"))
		Expect(err).NotTo(HaveOccurred(), out)
		// Creating pods gives no Secret she may not read.
		out, err = applyAs(bobKC, jobYAML("theirs", "  dataset:\n    uri: s3://data/x\n    credentialsSecretName: theirs\n"))
		Expect(err).To(HaveOccurred())
		Expect(out).To(ContainSubstring("spec.dataset.credentialsSecretName=theirs"))
	})

	It("may edit a job someone else wrote as long as the edit adds nothing she may not use", func() {
		admin := jobYAML("shared", "  dataset:\n    uri: s3://data/x\n    credentialsSecretName: theirs\n  template:\n    labels:\n      team: vision\n")
		_, err := applyAs(kubeconfig, admin)
		Expect(err).NotTo(HaveOccurred())
		// Suspending it adds nothing.
		out, err := applyAs(aliceKC, admin+"  runPolicy:\n    suspend: true\n")
		Expect(err).NotTo(HaveOccurred(), out)
		// Another Secret, or other labels, she may not add.
		out, err = applyAs(aliceKC, jobYAML("shared", "  dataset:\n    uri: s3://data/x\n    credentialsSecretName: theirs\n  checkpoint:\n    uri: s3://ckpt/x\n    credentialsSecretName: theirs\n  template:\n    labels:\n      team: vision\n"))
		Expect(err).To(HaveOccurred())
		Expect(out).To(ContainSubstring("spec.checkpoint.credentialsSecretName=theirs"))
		out, err = applyAs(aliceKC, jobYAML("shared", "  dataset:\n    uri: s3://data/x\n    credentialsSecretName: theirs\n  template:\n    labels:\n      app: frontend\n"))
		Expect(err).To(HaveOccurred())
		Expect(out).To(ContainSubstring("spec.template.labels"))
	})
})

func claimSpec() corev1.PersistentVolumeClaimSpec {
	return corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
	}
}
