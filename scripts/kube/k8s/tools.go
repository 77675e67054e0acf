//go:build tools

// Package k8s pins the Kubernetes control-plane commands that
// internal/kubetest runs (scripts/kube/build.sh builds them). It is a
// separate module so that k8s.io/kubernetes never enters Shipgate's go.mod.
package k8s

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
