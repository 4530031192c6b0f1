package generated

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// managerRoleGolden is the manager's ClusterRole as last reviewed. config/rbac/role.yaml is
// generated from markers, so a marker can widen the manager's rights without anyone noticing; this
// copy makes every change to them a change to a file a reviewer reads.
const managerRoleGolden = "test/generated/testdata/manager-role.golden.yaml"

func TestManagerRoleIsTheReviewedOne(t *testing.T) {
	root := repoRoot(t)
	got := roles(t, filepath.Join(root, "config/rbac/role.yaml"))
	want := roles(t, filepath.Join(root, managerRoleGolden))
	if len(got) != 1 || len(want) != 1 {
		t.Fatalf("role.yaml holds %d roles and the golden file %d, want one each", len(got), len(want))
	}
	if diff := cmp.Diff(want[0].Rules, got[0].Rules); diff != "" {
		t.Errorf("the manager's ClusterRole changed (-reviewed,+generated):\n%s\nReview the change; if it is meant, copy config/rbac/role.yaml to %s.", diff, managerRoleGolden)
	}
}

// TestNoWildcards checks every Role and ClusterRole that config/rbac ships: no "*" for API groups,
// resources, verbs or URLs, so no role grows with the cluster's APIs.
func TestNoWildcards(t *testing.T) {
	root := repoRoot(t)
	files, err := filepath.Glob(filepath.Join(root, "config/rbac/*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		for _, r := range roles(t, f) {
			checked++
			for i, rule := range r.Rules {
				for _, list := range [][]string{rule.APIGroups, rule.Resources, rule.Verbs, rule.NonResourceURLs} {
					if slices.ContainsFunc(list, func(s string) bool { return strings.Contains(s, "*") }) {
						t.Errorf("%s: %s rule %d has a wildcard: %+v", filepath.Base(f), r.Name, i, rule)
					}
				}
			}
		}
	}
	if checked < 4 {
		t.Errorf("checked %d roles in config/rbac, want the manager's, leader election, editor, viewer and metrics reader", checked)
	}
}

// roles reads the Roles and ClusterRoles of a multi-document YAML file, as ClusterRoles.
func roles(t *testing.T, path string) []rbacv1.ClusterRole {
	t.Helper()
	var out []rbacv1.ClusterRole
	for _, doc := range bytes.Split(readFile(t, path), []byte("\n---")) {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if meta.Kind != "Role" && meta.Kind != "ClusterRole" {
			continue
		}
		var r rbacv1.ClusterRole
		if err := yaml.Unmarshal(doc, &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, r)
	}
	return out
}
