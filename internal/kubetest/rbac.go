package kubetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// Grant is a set of RBAC rules given to a ServiceAccount in one namespace
// (a Role and RoleBinding there), or cluster-wide when Namespace is empty (a
// ClusterRole and ClusterRoleBinding).
type Grant struct {
	Namespace string
	Rules     []rbacv1.PolicyRule
}

// ServiceAccountConfig creates the ServiceAccount namespace/name, gives it
// exactly the grants (nothing else: no cluster-admin), and returns a client
// config that authenticates as it with a token from the TokenRequest API,
// valid for an hour. The config's requests are authorized by the API
// server's RBAC like any workload's.
func (c *Cluster) ServiceAccountConfig(t testing.TB, namespace, name string, grants ...Grant) *rest.Config {
	t.Helper()
	cfg, err := c.serviceAccountConfig(namespace, name, grants)
	if err != nil {
		t.Fatalf("kubetest: ServiceAccount %s/%s: %v", namespace, name, err)
	}
	return cfg
}

func (c *Cluster) serviceAccountConfig(namespace, name string, grants []Grant) (*rest.Config, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs := c.Clientset
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
	if _, err := cs.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: namespace}}
	for i, g := range grants {
		roleName := fmt.Sprintf("kubetest-%s-%s-%d", namespace, name, i)
		if g.Namespace == "" {
			role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: roleName}, Rules: g.Rules}
			if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
				return nil, fmt.Errorf("ClusterRole %s: %w", roleName, err)
			}
			rb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: roleName}, Subjects: subject,
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: roleName}}
			if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, rb, metav1.CreateOptions{}); err != nil {
				return nil, fmt.Errorf("ClusterRoleBinding %s: %w", roleName, err)
			}
			continue
		}
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: roleName, Namespace: g.Namespace}, Rules: g.Rules}
		if _, err := cs.RbacV1().Roles(g.Namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("role %s/%s: %w", g.Namespace, roleName, err)
		}
		rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: roleName, Namespace: g.Namespace}, Subjects: subject,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: roleName}}
		if _, err := cs.RbacV1().RoleBindings(g.Namespace).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("RoleBinding %s/%s: %w", g.Namespace, roleName, err)
		}
	}
	expiry := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("token request: %w", err)
	}
	return &rest.Config{Host: c.Host, BearerToken: tr.Status.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.caPEM}, QPS: 100, Burst: 200}, nil
}
