package kueuetest

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	kueue "sigs.k8s.io/kueue/apis/kueue/v1beta2"
)

// Scheme has the built-in types and Kueue's v1beta2 API, for a client of Kueue's objects.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(kueue.AddToScheme(s))
	return s
}

// ResourceFlavor is a flavor whose workloads' pods are steered to nodes with nodeLabels.
func ResourceFlavor(name string, nodeLabels map[string]string) *kueue.ResourceFlavor {
	rf := &kueue.ResourceFlavor{}
	rf.Name = name
	rf.Spec.NodeLabels = nodeLabels
	return rf
}

// ClusterQueue is a queue open to every namespace, with one flavor that has a nominal quota of
// each resource in quota (for example cpu, memory and nvidia.com/gpu).
func ClusterQueue(name, flavor string, quota corev1.ResourceList) *kueue.ClusterQueue {
	cq := &kueue.ClusterQueue{}
	cq.Name = name
	// Kueue wants a flavor's quotas in the order of the group's covered resources.
	names := make([]corev1.ResourceName, 0, len(quota))
	for r := range quota {
		names = append(names, r)
	}
	slices.Sort(names)
	fq := kueue.FlavorQuotas{Name: kueue.ResourceFlavorReference(flavor)}
	group := kueue.ResourceGroup{}
	for _, r := range names {
		group.CoveredResources = append(group.CoveredResources, r)
		fq.Resources = append(fq.Resources, kueue.ResourceQuota{Name: r, NominalQuota: quota[r]})
	}
	if len(names) > 0 {
		group.Flavors = []kueue.FlavorQuotas{fq}
		cq.Spec.ResourceGroups = []kueue.ResourceGroup{group}
	}
	// An empty selector admits workloads from every namespace; Kueue's default, none, from none.
	cq.Spec.NamespaceSelector = &metav1.LabelSelector{}
	return cq
}

// LocalQueue is the queue a namespace's jobs name (kueue.x-k8s.io/queue-name), feeding clusterQueue.
func LocalQueue(name, namespace, clusterQueue string) *kueue.LocalQueue {
	lq := &kueue.LocalQueue{}
	lq.Name, lq.Namespace = name, namespace
	lq.Spec.ClusterQueue = kueue.ClusterQueueReference(clusterQueue)
	return lq
}

// Quota is a ResourceList from name, quantity pairs: Quota("cpu", "10", "nvidia.com/gpu", "1").
func Quota(pairs ...string) corev1.ResourceList {
	if len(pairs)%2 != 0 {
		panic("kueuetest: Quota takes name, quantity pairs")
	}
	l := corev1.ResourceList{}
	for i := 0; i < len(pairs); i += 2 {
		l[corev1.ResourceName(pairs[i])] = resource.MustParse(pairs[i+1])
	}
	return l
}
