package testutil

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// ManagerServiceAccount is the manager's ServiceAccount in config/default (namePrefix kubetrain-),
// the name config/rbac/manager_policy.yaml recognises.
const ManagerServiceAccount = "kubetrain-controller-manager"

// ManagerIdentity creates the manager's ServiceAccount in namespace, binds it to the ClusterRole
// of config/rbac/role.yaml (and, with leaderElection, to the leader election Role, in namespace),
// and returns a client configuration of cfg's server with a token of it: a manager started with it
// has exactly the rights config/rbac grants, so a missing permission fails a test as it would fail
// in a cluster. c is an administrator's client.
func ManagerIdentity(ctx context.Context, c client.Client, cfg *rest.Config, repoRoot, namespace string, leaderElection bool) (*rest.Config, error) {
	role := &rbacv1.ClusterRole{}
	if err := loadYAML(filepath.Join(repoRoot, "config", "rbac", "role.yaml"), role); err != nil {
		return nil, err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: ManagerServiceAccount, Namespace: namespace}}
	subjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: sa.Namespace}}
	objs := []client.Object{sa, role, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name}, Subjects: subjects,
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name}}}
	if leaderElection {
		leader := &rbacv1.Role{}
		if err := loadYAML(filepath.Join(repoRoot, "config", "rbac", "leader_election_role.yaml"), leader); err != nil {
			return nil, err
		}
		leader.Namespace = namespace
		objs = append(objs, leader, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: leader.Name, Namespace: namespace},
			Subjects: subjects, RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: leader.Name}})
	}
	for _, obj := range objs {
		if err := c.Create(ctx, obj); err != nil {
			return nil, fmt.Errorf("creating %T %s: %w", obj, obj.GetName(), err)
		}
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](24 * 3600)}}
	if err := c.SubResource("token").Create(ctx, sa, req); err != nil {
		return nil, fmt.Errorf("requesting a token of %s/%s: %w", sa.Namespace, sa.Name, err)
	}
	return &rest.Config{Host: cfg.Host, TLSClientConfig: rest.TLSClientConfig{CAData: cfg.CAData}, BearerToken: req.Status.Token}, nil
}

func loadYAML(path string, obj any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(b, obj); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
