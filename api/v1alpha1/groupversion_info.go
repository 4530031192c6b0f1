// Package v1alpha1 holds the TrainingJob API of kubetrain.io: the types, their validation and defaults
// (as kubebuilder markers and CEL rules on the CRD), and the names of conditions and reasons.
//
// +kubebuilder:object:generate=true
// +groupName=kubetrain.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of the types in this package.
	GroupVersion = schema.GroupVersion{Group: "kubetrain.io", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
