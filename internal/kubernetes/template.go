package kubernetes

import (
	"errors"
	"fmt"
	"os"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// LoadTemplate reads a base pod template from a YAML file: a
// PodTemplateSpec, a PodTemplate or a Deployment (whose spec.template is
// taken).
func LoadTemplate(path string) (*corev1.PodTemplateSpec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: read the pod template: %w", err)
	}
	var head struct {
		Kind string `json:"kind"`
	}
	if err := yaml.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("kubernetes: %s: %w", path, err)
	}
	var t *corev1.PodTemplateSpec
	switch head.Kind {
	case "Deployment":
		var d appsv1.Deployment
		if err := yaml.UnmarshalStrict(data, &d); err != nil {
			return nil, fmt.Errorf("kubernetes: %s: %w", path, err)
		}
		t = &d.Spec.Template
	case "PodTemplate":
		var pt corev1.PodTemplate
		if err := yaml.UnmarshalStrict(data, &pt); err != nil {
			return nil, fmt.Errorf("kubernetes: %s: %w", path, err)
		}
		t = &pt.Template
	case "":
		t = &corev1.PodTemplateSpec{}
		if err := yaml.UnmarshalStrict(data, t); err != nil {
			return nil, fmt.Errorf("kubernetes: %s: %w", path, err)
		}
	default:
		return nil, fmt.Errorf("kubernetes: %s: kind %s is not a Deployment, a PodTemplate or a bare pod template", path, head.Kind)
	}
	if len(t.Spec.Containers) == 0 {
		return nil, errors.New("kubernetes: " + path + ": the pod template has no containers (spec.containers)")
	}
	return t, nil
}
