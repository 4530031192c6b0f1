package controllers

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
)

// TrainerServiceAccount is the identity of every worker in a namespace.
//
// Why one per namespace and not one per job: a per-job ServiceAccount, Role (resourceNames: [job])
// and RoleBinding would cost three more API writes for every job, doubling a job's cost (one pod,
// one status write, one event). Instead each namespace gets this ServiceAccount, a Role that allows
// reading and writing TrainingJob status and nothing else, and a RoleBinding, once; the
// ValidatingAdmissionPolicy in config/rbac/trainer_policy.yaml then admits a worker's write only
// for the job its pod belongs to, reading the pod's name from the worker's pod-bound token.
const TrainerServiceAccount = "kubetrain-trainer"

// trainerIdentity is what a namespace needs for its workers to report progress.
func trainerIdentity(namespace string) []client.Object {
	meta := metav1.ObjectMeta{Name: TrainerServiceAccount, Namespace: namespace,
		Labels: map[string]string{kubetrainv1alpha1.LabelManagedBy: kubetrainv1alpha1.ManagedByValue}}
	return []client.Object{
		&corev1.ServiceAccount{ObjectMeta: meta},
		&rbacv1.Role{ObjectMeta: meta, Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{kubetrainv1alpha1.GroupVersion.Group},
			Resources: []string{"trainingjobs/status"},
			Verbs:     []string{"get", "patch"},
		}}},
		&rbacv1.RoleBinding{ObjectMeta: meta,
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: TrainerServiceAccount},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: TrainerServiceAccount, Namespace: namespace}},
		},
	}
}

// trainerIdentities remembers the namespaces whose trainer identity exists, so that it is created
// once per namespace and manager run, not read or written for every job.
type trainerIdentities struct {
	// mu is held while an identity is created, so that concurrent passes for jobs of one new
	// namespace create it once; it is only slow the first time a namespace is seen.
	mu   sync.Mutex
	done map[string]bool
}

// ensure creates a namespace's trainer identity unless this manager already did.
func (t *trainerIdentities) ensure(ctx context.Context, c client.Client, namespace string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done[namespace] {
		return nil
	}
	for _, obj := range trainerIdentity(namespace) {
		// Written once and never read back: no read-your-writes cache (and so no informer, and no
		// need to list these kinds cluster-wide) for them.
		if err := c.Create(ctx, obj, client.DisableReadYourWritesConsistency); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating the trainer's %T in %s: %w", obj, namespace, err)
		}
	}
	if t.done == nil {
		t.done = map[string]bool{}
	}
	t.done[namespace] = true
	return nil
}

// forget makes the next ensure create the identity again (e.g. after a user deleted it).
func (t *trainerIdentities) forget(namespace string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.done, namespace)
}
