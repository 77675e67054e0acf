package config

import (
	"regexp"
)

// Kubernetes runs an environment's releases on a Kubernetes cluster: a
// Deployment and a Service per release, traffic through a Gateway API
// HTTPRoute. See docs/kubernetes.md.
type Kubernetes struct {
	// Namespace is where the releases' Deployments, Services and the
	// HTTPRoute live. Required.
	Namespace string `yaml:"namespace" json:"namespace"`
	// Kubeconfig is the path of a kubeconfig file, relative to the
	// directory of shipgate.yaml. Default: $KUBECONFIG, then the
	// in-cluster service account, then ~/.kube/config.
	Kubeconfig string `yaml:"kubeconfig,omitempty" json:"kubeconfig,omitempty"`
	// Deployment names an existing Deployment in the namespace whose pod
	// template is the base of every release: each release's Deployment
	// is that template with the release's image and variables. Shipgate
	// reads it and never changes it. Set deployment or template.
	Deployment string `yaml:"deployment,omitempty" json:"deployment,omitempty"`
	// Template is the path of a YAML file, relative to the directory of
	// shipgate.yaml, holding the base pod template (a PodTemplateSpec,
	// a PodTemplate, or a Deployment whose spec.template is taken), when
	// there is no Deployment to adopt. Set deployment or template.
	Template string `yaml:"template,omitempty" json:"template,omitempty"`
	// Name is the prefix of the names of the objects Shipgate creates:
	// <name>-<version>. Default: deployment, else the app's name.
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// Container names the container of the pod template that gets the
	// release's image and variables. Required when the pod template has
	// more than one container; default: its only one.
	Container string `yaml:"container,omitempty" json:"container,omitempty"`
	// Image is the container image of a release, with ${VERSION} and
	// release variables substituted, like registry.example/shop:${VERSION}.
	// A release deployed with --image runs that image instead. Without
	// image, every deploy must give --image.
	Image string `yaml:"image,omitempty" json:"image,omitempty"`
	// ServicePort is the port the app serves HTTP on in its pods; each
	// release's Service exposes it under the same number. Required.
	ServicePort int `yaml:"service_port" json:"service_port"`
	// Route is the HTTPRoute that sends this environment's traffic to
	// the releases. Required.
	Route KubernetesRoute `yaml:"route" json:"route"`
}

// KubernetesRoute names the HTTPRoute of an environment on Kubernetes.
type KubernetesRoute struct {
	// Name is the HTTPRoute's name, in the environment's namespace. If it
	// does not exist Shipgate creates it and owns it; if it does, Shipgate
	// edits only its own rules (named shipgate-<env>-...) and leaves the
	// others alone. Required.
	Name string `yaml:"name" json:"name"`
	// Gateway is the Gateway a route Shipgate creates attaches to.
	// Required.
	Gateway string `yaml:"gateway" json:"gateway"`
	// Namespace is the Gateway's namespace. Default: the environment's
	// namespace.
	Namespace string `yaml:"namespace,omitempty" json:"namespace,omitempty"`
	// PathPrefix is the path Shipgate's rules match. Default "/".
	PathPrefix string `yaml:"path_prefix,omitempty" json:"path_prefix,omitempty"`
	// PreviewHeader is the header that sends a request to the release
	// being rolled out, before it gets any users' traffic (blue-green's
	// green before the switch): a request with this header set to "true"
	// matches Shipgate's preview rule. Default X-Shipgate-Preview.
	PreviewHeader string `yaml:"preview_header,omitempty" json:"preview_header,omitempty"`
}

// DefaultPreviewHeader is the header of a Kubernetes environment's
// preview rule when route.preview_header is not set.
const DefaultPreviewHeader = "X-Shipgate-Preview"

// httpHeaderName is an HTTP header name as the Gateway API accepts it.
var httpHeaderName = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$`)

// dnsLabel is a Kubernetes namespace or Service name (RFC 1123 label).
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// dnsSubdomain is a Kubernetes object name (RFC 1123 subdomain).
var dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

func (d *decoder) validateKubernetes(path string, k *Kubernetes) {
	name := func(field, v string, re *regexp.Regexp, maxLen int, what string) {
		if v != "" && (len(v) > maxLen || !re.MatchString(v)) {
			d.problemf(path+"."+field, "must be a Kubernetes %s: lowercase letters, digits and dashes, at most %d characters, got %q", what, maxLen, v)
		}
	}
	if k.Namespace == "" {
		d.problemf(path+".namespace", "required: the namespace the releases run in, like shop")
	}
	name("namespace", k.Namespace, dnsLabel, 63, "namespace name")
	switch {
	case k.Deployment == "" && k.Template == "":
		d.problemf(path, "set deployment (an existing Deployment whose pod template is the base) or template (a file with the pod template)")
	case k.Deployment != "" && k.Template != "":
		d.problemf(path+".template", "set deployment or template, not both")
	}
	name("deployment", k.Deployment, dnsSubdomain, 253, "Deployment name")
	// <name>-<version> must still be a Service name: keep room for the version.
	name("name", k.Name, dnsLabel, 40, "name prefix")
	if k.Name == "" && len(k.Deployment) > 40 {
		d.problemf(path+".deployment", "is longer than 40 characters: set name to a shorter prefix for the objects Shipgate creates")
	}
	name("container", k.Container, dnsLabel, 63, "container name")
	d.checkReferences(path+".image", k.Image)
	if k.ServicePort < 1 || k.ServicePort > 65535 {
		d.problemf(path+".service_port", "required: the port the app serves HTTP on in its pods, 1 to 65535, got %d", k.ServicePort)
	}
	if k.Route.Name == "" {
		d.problemf(path+".route.name", "required: the HTTPRoute that sends this environment's traffic, like shop")
	}
	name("route.name", k.Route.Name, dnsSubdomain, 253, "HTTPRoute name")
	if k.Route.Gateway == "" {
		d.problemf(path+".route.gateway", "required: the Gateway the HTTPRoute attaches to")
	}
	name("route.gateway", k.Route.Gateway, dnsSubdomain, 253, "Gateway name")
	name("route.namespace", k.Route.Namespace, dnsLabel, 63, "namespace name")
	if p := k.Route.PathPrefix; p != "" && (p[0] != '/' || len(p) > 1024) {
		d.problemf(path+".route.path_prefix", "must start with /, got %q", p)
	}
	if h := k.Route.PreviewHeader; h != "" && (len(h) > 256 || !httpHeaderName.MatchString(h)) {
		d.problemf(path+".route.preview_header", "must be an HTTP header name (letters, digits, '-', at most 256 characters), like X-Shipgate-Preview, got %q", h)
	}
}
