// Package kubernetes runs releases as Kubernetes Deployments: one
// Deployment and one Service per release, made from a base pod template
// (an existing Deployment Shipgate adopts, or an inline template), with
// the release's image and variables. It is the Runtime of an environment
// on Kubernetes; the traffic between releases is the Gateway API router's
// business (internal/gatewayapi).
//
// The runtime keeps no state of its own: everything it needs is in the
// cluster, found by name and by its owner labels, so a restarted server
// carries on with the objects the previous one made.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/shipgate/shipgate/internal/rollout"
)

// Defaults for the zero fields of an InstanceSpec on Kubernetes: pulling
// an image takes longer than starting a local process.
const (
	defaultStartTimeout = 5 * time.Minute
	defaultStopGrace    = 30 * time.Second
	pollInterval        = 200 * time.Millisecond
	logTailLines        = 10
)

// fatalWaiting are the container waiting reasons that will not fix
// themselves within a start timeout: the start fails at once with them.
var fatalWaiting = []string{"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError", "RunContainerError"}

// Config configures a Runtime for one environment of one app.
type Config struct {
	// Namespace is where the releases' Deployments and Services live.
	Namespace string
	// Deployment names an existing Deployment whose pod template is the
	// base of every release. Shipgate reads it and never writes it.
	Deployment string
	// Template is the base pod template when there is no Deployment to
	// adopt. Exactly one of Deployment and Template is set.
	Template *corev1.PodTemplateSpec
	// Base is the prefix of the objects' names: <Base>-<version>. It
	// defaults to Deployment.
	Base string
	// ServicePort is the port the app serves HTTP on in its pods; each
	// release's Service exposes it under the same number.
	ServicePort int
	// Container names the container that gets the release's image and
	// variables; empty means the template's only container (a template
	// with several needs it).
	Container string
	// OnChange, when set, is told every change the runtime makes to the
	// cluster, in words, for the audit log.
	OnChange func(ctx context.Context, change string)
	// Logger receives what the runtime does. Nil discards it.
	Logger *slog.Logger
}

// Runtime runs releases as Deployments. It is safe for concurrent use.
type Runtime struct {
	client kubernetes.Interface
	cfg    Config
	log    *slog.Logger
}

var _ rollout.Runtime = (*Runtime)(nil)

// New returns a Runtime on client.
func New(client kubernetes.Interface, cfg Config) (*Runtime, error) {
	if cfg.Namespace == "" {
		return nil, errors.New("kubernetes: namespace is required")
	}
	if (cfg.Deployment == "") == (cfg.Template == nil) {
		return nil, errors.New("kubernetes: exactly one of deployment and template is required")
	}
	if cfg.ServicePort <= 0 || cfg.ServicePort > 65535 {
		return nil, fmt.Errorf("kubernetes: service_port %d is not a port", cfg.ServicePort)
	}
	if cfg.Base == "" {
		cfg.Base = cfg.Deployment
	}
	if cfg.Base == "" {
		return nil, errors.New("kubernetes: base name is required with an inline template")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runtime{client: client, cfg: cfg, log: log}, nil
}

// Addr is the address of a release's instances as the Prober understands
// it: its Service and port, reached through the API server's proxy (pod
// IPs are not reachable from outside the cluster).
func (r *Runtime) Addr(version string) string {
	return fmt.Sprintf("svc/%s:%d", ObjectName(r.cfg.Base, version), r.cfg.ServicePort)
}

// Ensure makes exactly spec.Count pods of the release run and be
// available, creating its Deployment and Service when they do not exist.
// When they cannot become available within spec.StartTimeout, or a pod
// shows a reason that will not go away by itself (ImagePullBackOff,
// CrashLoopBackOff, ...), it undoes what it did (deletes what it created,
// or puts the replicas back) and returns an error with the reason and the
// pod's last log lines when the cluster can give them.
func (r *Runtime) Ensure(ctx context.Context, spec rollout.InstanceSpec) ([]rollout.Instance, error) {
	if spec.App == "" || spec.Env == "" || spec.Version == "" {
		return nil, errors.New("kubernetes: ensure needs the app, the environment and the version")
	}
	if spec.Count < 0 {
		return nil, fmt.Errorf("kubernetes: ensure %s: count %d is negative", spec.Version, spec.Count)
	}
	if spec.Count == 0 {
		return nil, r.Remove(ctx, rollout.ReleaseRef{App: spec.App, Env: spec.Env, Version: spec.Version})
	}
	name := ObjectName(r.cfg.Base, spec.Version)
	created, prevReplicas, err := r.ensureDeployment(ctx, name, spec)
	if err != nil {
		return nil, err
	}
	svcCreated, err := r.ensureService(ctx, name, spec)
	if err != nil {
		r.undo(ctx, name, spec, created, false, prevReplicas)
		return nil, err
	}
	insts, err := r.await(ctx, name, spec)
	if err != nil {
		r.undo(ctx, name, spec, created, svcCreated, prevReplicas)
		return nil, err
	}
	return insts, nil
}

func (r *Runtime) deployments() interface {
	Get(context.Context, string, metav1.GetOptions) (*appsv1.Deployment, error)
	Create(context.Context, *appsv1.Deployment, metav1.CreateOptions) (*appsv1.Deployment, error)
	Update(context.Context, *appsv1.Deployment, metav1.UpdateOptions) (*appsv1.Deployment, error)
	Delete(context.Context, string, metav1.DeleteOptions) error
} {
	return r.client.AppsV1().Deployments(r.cfg.Namespace)
}

// ensureDeployment creates the release's Deployment or scales the one that
// is there, and says whether it created it and how many replicas there
// were before.
func (r *Runtime) ensureDeployment(ctx context.Context, name string, spec rollout.InstanceSpec) (created bool, prev int32, err error) {
	existing, err := r.deployments().Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		d, err := r.desiredDeployment(ctx, name, spec)
		if err != nil {
			return false, 0, err
		}
		if _, err := r.deployments().Create(ctx, d, metav1.CreateOptions{}); err != nil {
			if apierrors.IsAlreadyExists(err) {
				// Another call got there first: take it as it is.
				return r.ensureDeployment(ctx, name, spec)
			}
			return false, 0, fmt.Errorf("kubernetes: create Deployment %s/%s: %w", r.cfg.Namespace, name, err)
		}
		r.changed(ctx, fmt.Sprintf("created Deployment %s/%s for %s %s (%d replicas, image %s)", r.cfg.Namespace, name, spec.App, spec.Version, spec.Count, imageOf(d, r.cfg.Container)))
		return true, 0, nil
	case err != nil:
		return false, 0, fmt.Errorf("kubernetes: get Deployment %s/%s: %w", r.cfg.Namespace, name, err)
	}
	if !owned(existing.Labels, spec.App, spec.Env, spec.Version) {
		return false, 0, fmt.Errorf("kubernetes: Deployment %s/%s exists and is not Shipgate's release %s (it lacks the labels %s): rename or delete it", r.cfg.Namespace, name, spec.Version, labels.SelectorFromSet(Selector(spec.App, spec.Env, spec.Version)))
	}
	prev = replicasOf(existing)
	if err := r.scale(ctx, name, replicas(spec.Count)); err != nil {
		return false, prev, err
	}
	return false, prev, nil
}

// scale sets an owned Deployment's replicas, retrying on conflicts.
func (r *Runtime) scale(ctx context.Context, name string, n int32) error {
	var from int32
	changed := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := r.deployments().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		from = replicasOf(d)
		if from == n {
			changed = false
			return nil
		}
		d.Spec.Replicas = &n
		_, err = r.deployments().Update(ctx, d, metav1.UpdateOptions{})
		changed = err == nil
		return err
	})
	if err != nil {
		return fmt.Errorf("kubernetes: scale Deployment %s/%s to %d: %w", r.cfg.Namespace, name, n, err)
	}
	if changed {
		r.changed(ctx, fmt.Sprintf("scaled Deployment %s/%s from %d to %d replicas", r.cfg.Namespace, name, from, n))
	}
	return nil
}

// desiredDeployment is the release's Deployment: the base pod template
// with the release's image, variables and labels.
func (r *Runtime) desiredDeployment(ctx context.Context, name string, spec rollout.InstanceSpec) (*appsv1.Deployment, error) {
	tmpl, err := r.baseTemplate(ctx)
	if err != nil {
		return nil, err
	}
	sel := Selector(spec.App, spec.Env, spec.Version)
	if tmpl.Labels == nil {
		tmpl.Labels = map[string]string{}
	}
	for k, v := range sel {
		tmpl.Labels[k] = v
	}
	if tmpl.Annotations == nil {
		tmpl.Annotations = map[string]string{}
	}
	for k, v := range annotations(spec.App, spec.Env, spec.Version) {
		tmpl.Annotations[k] = v
	}
	c, err := r.container(&tmpl.Spec)
	if err != nil {
		return nil, err
	}
	if spec.Image != "" {
		c.Image = spec.Image
	}
	if c.Image == "" {
		return nil, fmt.Errorf("kubernetes: release %s has no image and the base template's container %q has none either", spec.Version, c.Name)
	}
	c.Env = mergeEnv(c.Env, spec.Environ, r.cfg.ServicePort)
	n := replicas(spec.Count)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   r.cfg.Namespace,
			Labels:      sel,
			Annotations: annotations(spec.App, spec.Env, spec.Version),
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: Selector(spec.App, spec.Env, spec.Version)},
			Template: *tmpl,
		},
	}, nil
}

// baseTemplate reads the adopted Deployment's pod template, or copies the
// inline one.
func (r *Runtime) baseTemplate(ctx context.Context) (*corev1.PodTemplateSpec, error) {
	if r.cfg.Template != nil {
		return r.cfg.Template.DeepCopy(), nil
	}
	d, err := r.deployments().Get(ctx, r.cfg.Deployment, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("kubernetes: the Deployment %s/%s to adopt (kubernetes.deployment) does not exist", r.cfg.Namespace, r.cfg.Deployment)
		}
		return nil, fmt.Errorf("kubernetes: read the Deployment to adopt %s/%s: %w", r.cfg.Namespace, r.cfg.Deployment, err)
	}
	t := d.Spec.Template.DeepCopy()
	// The base's own pod-template-hash must not leak into a release.
	delete(t.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	return t, nil
}

// ErrContainer is wrapped by the errors that say the release's image
// cannot be set on a container of the base pod template
// (kubernetes.container).
var ErrContainer = errors.New("no container for the release's image")

// CheckAdopted reads the Deployment the runtime adopts and checks the
// release's image can be set on a container of its pod template, as
// CheckContainer does for an inline one: the server calls it when it
// builds the environment, so that a wrong kubernetes.container (or a
// Deployment that is not there) is an error at its start, not at the
// first deploy. Errors about the container wrap ErrContainer.
func (r *Runtime) CheckAdopted(ctx context.Context) error {
	if r.cfg.Deployment == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t, err := r.baseTemplate(ctx)
	if err != nil {
		return err
	}
	if _, err := r.container(&t.Spec); err != nil {
		return fmt.Errorf("the Deployment %s/%s to adopt: %w", r.cfg.Namespace, r.cfg.Deployment, err)
	}
	return nil
}

// containerError is an error about kubernetes.container; it is
// ErrContainer.
type containerError struct{ msg string }

func (e *containerError) Error() string        { return e.msg }
func (e *containerError) Is(target error) bool { return target == ErrContainer }

func (r *Runtime) container(ps *corev1.PodSpec) (*corev1.Container, error) {
	return pickContainer(ps, r.cfg.Container)
}

// CheckContainer returns an error when the release's image could not be
// set on a container of t: none named name, or, with name empty, more than
// one to choose from. The server checks an inline template with it when it
// builds the environment, before any deploy.
func CheckContainer(t *corev1.PodTemplateSpec, name string) error {
	_, err := pickContainer(&t.Spec, name)
	return err
}

// pickContainer is the container that gets the release's image and
// variables: the one named, or the only one.
func pickContainer(ps *corev1.PodSpec, name string) (*corev1.Container, error) {
	if len(ps.Containers) == 0 {
		return nil, &containerError{"kubernetes: the base pod template has no container"}
	}
	names := make([]string, len(ps.Containers))
	for i, c := range ps.Containers {
		names[i] = c.Name
	}
	if name == "" {
		if len(ps.Containers) > 1 {
			// A sidecar given the release's image would run the app twice
			// and the app not at all: never guess.
			return nil, &containerError{fmt.Sprintf("kubernetes: the base pod template has %d containers (%s): set kubernetes.container to the one that runs the release's image", len(ps.Containers), strings.Join(names, ", "))}
		}
		return &ps.Containers[0], nil
	}
	for i := range ps.Containers {
		if ps.Containers[i].Name == name {
			return &ps.Containers[i], nil
		}
	}
	return nil, &containerError{fmt.Sprintf("kubernetes: the base pod template has no container %q (kubernetes.container); it has %s", name, strings.Join(names, ", "))}
}

func imageOf(d *appsv1.Deployment, container string) string {
	for _, c := range d.Spec.Template.Spec.Containers {
		if container == "" || c.Name == container {
			return c.Image
		}
	}
	return ""
}

// mergeEnv sets the release's variables (and PORT, as the local runtime
// does) over the template's, in a stable order.
func mergeEnv(base []corev1.EnvVar, vars map[string]string, port int) []corev1.EnvVar {
	set := map[string]string{"PORT": fmt.Sprint(port)}
	for k, v := range vars {
		set[k] = strings.ReplaceAll(v, "${PORT}", fmt.Sprint(port))
	}
	out := make([]corev1.EnvVar, 0, len(base)+len(set))
	for _, e := range base {
		if _, ok := set[e.Name]; !ok {
			out = append(out, e)
		}
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		out = append(out, corev1.EnvVar{Name: k, Value: set[k]})
	}
	return out
}

// ensureService creates the release's Service when it is missing.
func (r *Runtime) ensureService(ctx context.Context, name string, spec rollout.InstanceSpec) (bool, error) {
	svcs := r.client.CoreV1().Services(r.cfg.Namespace)
	existing, err := svcs.Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		if !owned(existing.Labels, spec.App, spec.Env, spec.Version) {
			return false, fmt.Errorf("kubernetes: Service %s/%s exists and is not Shipgate's release %s: rename or delete it", r.cfg.Namespace, name, spec.Version)
		}
		return false, nil
	}
	if !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("kubernetes: get Service %s/%s: %w", r.cfg.Namespace, name, err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   r.cfg.Namespace,
			Labels:      Selector(spec.App, spec.Env, spec.Version),
			Annotations: annotations(spec.App, spec.Env, spec.Version),
		},
		Spec: corev1.ServiceSpec{
			Selector: Selector(spec.App, spec.Env, spec.Version),
			Ports: []corev1.ServicePort{{
				Name:       "http",
				Port:       port(r.cfg.ServicePort),
				TargetPort: intstr.FromInt32(port(r.cfg.ServicePort)),
				Protocol:   corev1.ProtocolTCP,
			}},
		},
	}
	if _, err := svcs.Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return r.ensureService(ctx, name, spec)
		}
		return false, fmt.Errorf("kubernetes: create Service %s/%s: %w", r.cfg.Namespace, name, err)
	}
	r.changed(ctx, fmt.Sprintf("created Service %s/%s for %s %s (port %d)", r.cfg.Namespace, name, spec.App, spec.Version, r.cfg.ServicePort))
	return true, nil
}

// await waits until the Deployment has exactly spec.Count available pods
// of its current template, or fails with the reason the pods give.
func (r *Runtime) await(ctx context.Context, name string, spec rollout.InstanceSpec) ([]rollout.Instance, error) {
	timeout := spec.StartTimeout
	if timeout <= 0 {
		timeout = defaultStartTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	want := replicas(spec.Count)
	var last string // the latest reason pods were not available
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		d, err := r.deployments().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("kubernetes: Deployment %s/%s was deleted while it started", r.cfg.Namespace, name)
		}
		// Other errors (the API server busy, the client's rate limit at
		// the deadline) are retried until the start timeout.
		if err == nil {
			pods, perr := r.pods(ctx, spec.App, spec.Env, spec.Version)
			if perr == nil {
				if why, pod, fatal := podTrouble(pods); why != "" {
					last = why
					if fatal {
						return nil, r.startError(ctx, name, spec, why, pod)
					}
				}
				if available(d, want) {
					// The pods are listed after the Deployment: wait for
					// the list to catch up with its status.
					if insts := r.instances(spec, pods); len(insts) == int(want) {
						return insts, nil
					}
				}
				if why := progressTrouble(d); why != "" {
					return nil, r.startError(ctx, name, spec, why, "")
				}
			}
		}
		select {
		case <-ctx.Done():
			why := last
			if why == "" {
				why = fmt.Sprintf("%d of %d pods available", availableOf(d), want)
				if err != nil {
					why += fmt.Sprintf(" (last read: %v)", err)
				}
			}
			return nil, r.startError(context.WithoutCancel(ctx), name, spec, fmt.Sprintf("not available within %s: %s", timeout, why), "")
		case <-tick.C:
		}
	}
}

func available(d *appsv1.Deployment, want int32) bool {
	s := d.Status
	return s.ObservedGeneration >= d.Generation &&
		s.UpdatedReplicas == want && s.AvailableReplicas == want && s.Replicas == want
}

func availableOf(d *appsv1.Deployment) int32 {
	if d == nil {
		return 0
	}
	return d.Status.AvailableReplicas
}

func progressTrouble(d *appsv1.Deployment) string {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return "ProgressDeadlineExceeded: " + c.Message
		}
		if c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue {
			return c.Reason + ": " + c.Message
		}
	}
	return ""
}

// podTrouble returns why a pod is not running, the pod, and whether that
// reason is one that will not fix itself.
func podTrouble(pods []corev1.Pod) (why, pod string, fatal bool) {
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, cs := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
			if w := cs.State.Waiting; w != nil && slices.Contains(fatalWaiting, w.Reason) {
				return fmt.Sprintf("pod %s: container %s: %s: %s", p.Name, cs.Name, w.Reason, w.Message), p.Name, true
			}
			if t := cs.State.Terminated; t != nil && t.ExitCode != 0 && p.Spec.RestartPolicy == corev1.RestartPolicyNever {
				return fmt.Sprintf("pod %s: container %s exited with code %d (%s)", p.Name, cs.Name, t.ExitCode, t.Reason), p.Name, true
			}
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				why, pod = fmt.Sprintf("pod %s: Unschedulable: %s", p.Name, c.Message), p.Name
			}
		}
	}
	return why, pod, false
}

// startError says why a start failed, with the pod's last log lines or
// why there are none.
func (r *Runtime) startError(ctx context.Context, name string, spec rollout.InstanceSpec, why, pod string) error {
	msg := fmt.Sprintf("kubernetes: %s %s (Deployment %s/%s) did not start: %s", spec.App, spec.Version, r.cfg.Namespace, name, why)
	if pod != "" {
		msg += "\n" + r.logTail(ctx, pod)
	}
	return errors.New(msg)
}

// logTail returns the last lines a pod logged. Best effort: a pod that
// never ran, or a cluster that cannot reach the kubelet, has none, and the
// error says so.
func (r *Runtime) logTail(ctx context.Context, pod string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n := int64(logTailLines)
	opts := &corev1.PodLogOptions{TailLines: &n}
	if r.cfg.Container != "" {
		opts.Container = r.cfg.Container
	}
	b, err := r.client.CoreV1().Pods(r.cfg.Namespace).GetLogs(pod, opts).DoRaw(ctx)
	if err != nil {
		return fmt.Sprintf("last log lines of pod %s: unavailable (%v)", pod, err)
	}
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return fmt.Sprintf("last log lines of pod %s: (empty)", pod)
	}
	return fmt.Sprintf("last log lines of pod %s:\n%s", pod, s)
}

// undo puts things back after a failed start: what Ensure created is
// deleted, what it scaled goes back to its replicas. Nothing of the
// release it tried to start is left serving.
func (r *Runtime) undo(ctx context.Context, name string, spec rollout.InstanceSpec, created, svcCreated bool, prev int32) {
	ctx = context.WithoutCancel(ctx)
	if created {
		if err := r.deleteRelease(ctx, name, spec.App, spec.Version, svcCreated); err != nil {
			r.log.Warn("undo a failed start", "name", name, "error", err.Error())
		}
		return
	}
	if err := r.scale(ctx, name, prev); err != nil {
		r.log.Warn("undo a failed start", "name", name, "error", err.Error())
	}
}

func (r *Runtime) instances(spec rollout.InstanceSpec, pods []corev1.Pod) []rollout.Instance {
	var out []rollout.Instance
	for _, p := range pods {
		if p.DeletionTimestamp != nil || !podReady(&p) {
			continue
		}
		out = append(out, rollout.Instance{ID: p.Name, App: spec.App, Env: spec.Env, Version: spec.Version, Addr: r.Addr(spec.Version)})
	}
	return out
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (r *Runtime) pods(ctx context.Context, app, env, version string) ([]corev1.Pod, error) {
	l, err := r.client.CoreV1().Pods(r.cfg.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(Selector(app, env, version)).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("kubernetes: list pods of %s %s: %w", app, version, err)
	}
	slices.SortFunc(l.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return l.Items, nil
}

// Observe returns the release's pods as the cluster sees them now. A pod
// that was rescheduled is simply another pod: the engine does not own pods.
func (r *Runtime) Observe(ctx context.Context, ref rollout.ReleaseRef) ([]rollout.ObservedInstance, error) {
	pods, err := r.pods(ctx, ref.App, ref.Env, ref.Version)
	if err != nil {
		return nil, err
	}
	out := []rollout.ObservedInstance{}
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		out = append(out, rollout.ObservedInstance{
			Instance: rollout.Instance{ID: p.Name, App: ref.App, Env: ref.Env, Version: ref.Version, Addr: r.Addr(ref.Version)},
			Status:   podStatus(&p),
		})
	}
	return out, nil
}

func podStatus(p *corev1.Pod) rollout.InstanceStatus {
	switch p.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed:
		return rollout.InstanceStatus{State: rollout.InstanceExited, Reason: strings.TrimSpace(string(p.Status.Phase) + " " + p.Status.Reason)}
	}
	if why, _, fatal := podTrouble([]corev1.Pod{*p}); why != "" {
		if fatal {
			return rollout.InstanceStatus{State: rollout.InstanceUnhealthy, Reason: why}
		}
		return rollout.InstanceStatus{State: rollout.InstanceStarting, Reason: why}
	}
	if podReady(p) {
		return rollout.InstanceStatus{State: rollout.InstanceRunning}
	}
	if p.Status.Phase == corev1.PodRunning {
		return rollout.InstanceStatus{State: rollout.InstanceUnhealthy, Reason: "not ready"}
	}
	return rollout.InstanceStatus{State: rollout.InstanceStarting, Reason: string(p.Status.Phase)}
}

// Remove scales the release's Deployment to zero, waits for its pods to go
// (bounded by the grace period), then deletes the Deployment and its
// Service. A release that is gone is not an error; objects that are not
// Shipgate's are never touched.
func (r *Runtime) Remove(ctx context.Context, ref rollout.ReleaseRef) error {
	name := ObjectName(r.cfg.Base, ref.Version)
	d, err := r.deployments().Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return r.deleteService(ctx, name, ref.App, ref.Version)
	case err != nil:
		return fmt.Errorf("kubernetes: get Deployment %s/%s: %w", r.cfg.Namespace, name, err)
	}
	if !owned(d.Labels, ref.App, ref.Env, ref.Version) {
		return fmt.Errorf("kubernetes: Deployment %s/%s is not Shipgate's release %s: left alone", r.cfg.Namespace, name, ref.Version)
	}
	if err := r.scale(ctx, name, 0); err != nil {
		return err
	}
	r.awaitGone(ctx, ref, defaultStopGrace)
	return r.deleteRelease(ctx, name, ref.App, ref.Version, true)
}

// awaitGone waits until the release has no pods, at most grace.
func (r *Runtime) awaitGone(ctx context.Context, ref rollout.ReleaseRef, grace time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	for {
		pods, err := r.pods(ctx, ref.App, ref.Env, ref.Version)
		if err == nil && len(pods) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pollInterval):
		}
	}
}

func (r *Runtime) deleteRelease(ctx context.Context, name, app, version string, svc bool) error {
	prop := metav1.DeletePropagationBackground
	err := r.deployments().Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &prop})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kubernetes: delete Deployment %s/%s: %w", r.cfg.Namespace, name, err)
	}
	if err == nil {
		r.changed(ctx, fmt.Sprintf("deleted Deployment %s/%s of %s %s", r.cfg.Namespace, name, app, version))
	}
	if svc {
		return r.deleteService(ctx, name, app, version)
	}
	return nil
}

func (r *Runtime) deleteService(ctx context.Context, name, app, version string) error {
	svcs := r.client.CoreV1().Services(r.cfg.Namespace)
	s, err := svcs.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("kubernetes: get Service %s/%s: %w", r.cfg.Namespace, name, err)
	}
	if s.Labels[LabelManagedBy] != ManagedBy {
		return nil
	}
	if err := svcs.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kubernetes: delete Service %s/%s: %w", r.cfg.Namespace, name, err)
	}
	r.changed(ctx, fmt.Sprintf("deleted Service %s/%s of %s %s", r.cfg.Namespace, name, app, version))
	return nil
}

// Releases returns the versions that have a Shipgate Deployment in the
// namespace for app and env: what a restarted server finds there.
func (r *Runtime) Releases(ctx context.Context, app, env string) ([]string, error) {
	sel := labels.SelectorFromSet(map[string]string{LabelManagedBy: ManagedBy, LabelApp: labelValue(app), LabelEnv: labelValue(env)})
	l, err := r.client.AppsV1().Deployments(r.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("kubernetes: list Shipgate's Deployments of %s %s: %w", app, env, err)
	}
	var out []string
	for _, d := range l.Items {
		out = append(out, d.Annotations[AnnotationVersion])
	}
	slices.Sort(out)
	return out, nil
}

func (r *Runtime) changed(ctx context.Context, what string) {
	r.log.Info("kubernetes change", "change", what)
	if r.cfg.OnChange != nil {
		r.cfg.OnChange(ctx, what)
	}
}

func replicasOf(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// replicas is an instance count as the API's int32, clamped.
func replicas(n int) int32 {
	switch {
	case n < 0:
		return 0
	case n > math.MaxInt32:
		return math.MaxInt32
	}
	return int32(n)
}

// port is a port the config checked (1 to 65535) as the API's int32.
func port(p int) int32 {
	if p < 0 || p > 65535 {
		return 0
	}
	return int32(p)
}
