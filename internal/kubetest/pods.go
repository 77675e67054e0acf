package kubetest

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// Reserved registries (the .invalid TLD never resolves) whose images kwok
// fakes as failing, through kubetest's own stages (stages.yaml): a pod with
// a container image under UnpullableRegistry stays Pending with that
// container waiting in ImagePullBackOff; under CrashingRegistry it is
// Running, not Ready, its container waiting in CrashLoopBackOff with 5
// restarts. Every other image becomes Running and Ready.
const (
	UnpullableRegistry = "unpullable.kubetest.invalid"
	CrashingRegistry   = "crashloop.kubetest.invalid"
)

// SetPodStatus changes a pod's status as a kubelet would, for states the
// registries above do not cover (a pod turning unready, a restart count...).
// kwok only acts on Pending pods that are not Ready, so a change to a
// Running pod stays; a pod set back to Pending and not Ready is made Ready
// again by kwok.
func (c *Cluster) SetPodStatus(ctx context.Context, namespace, name string, mutate func(*corev1.PodStatus)) (*corev1.Pod, error) {
	var out *corev1.Pod
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod, err := c.Clientset.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		mutate(&pod.Status)
		out, err = c.Clientset.CoreV1().Pods(namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("set status of pod %s/%s: %w", namespace, name, err)
	}
	return out, nil
}

// SetPodReady sets a pod's Ready and ContainersReady conditions (and its
// containers' ready flags) to ready, as a failing or recovering readiness
// probe would.
func (c *Cluster) SetPodReady(ctx context.Context, namespace, name string, ready bool) (*corev1.Pod, error) {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	now := metav1.Now()
	return c.SetPodStatus(ctx, namespace, name, func(s *corev1.PodStatus) {
		for _, typ := range []corev1.PodConditionType{corev1.PodReady, corev1.ContainersReady} {
			found := false
			for i := range s.Conditions {
				if s.Conditions[i].Type == typ {
					found = true
					if s.Conditions[i].Status != status {
						s.Conditions[i].Status, s.Conditions[i].LastTransitionTime = status, now
					}
				}
			}
			if !found {
				s.Conditions = append(s.Conditions, corev1.PodCondition{Type: typ, Status: status, LastTransitionTime: now})
			}
		}
		for i := range s.ContainerStatuses {
			s.ContainerStatuses[i].Ready = ready
		}
	})
}

var nsSeq atomic.Int64

// Namespace creates a namespace for t, named after the test, and deletes it
// when t ends (the controller manager then deletes what is in it).
func (c *Cluster) Namespace(t testing.TB) string {
	t.Helper()
	base := strings.ToLower(t.Name())
	base = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, base)
	if len(base) > 40 {
		base = base[:40]
	}
	name := fmt.Sprintf("%s-%d", strings.Trim(base, "-"), nsSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("kubetest: create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Clientset.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Logf("kubetest: delete namespace %s: %v", name, err)
		}
	})
	// Pods cannot be created before the namespace's default ServiceAccount
	// exists (the ServiceAccount admission plugin).
	for {
		if _, err := c.Clientset.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{}); err == nil {
			return name
		}
		select {
		case <-ctx.Done():
			t.Fatalf("kubetest: namespace %s has no default ServiceAccount after 30s", name)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
