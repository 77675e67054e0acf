//go:build tools

// Package kwok pins kwok, which fakes nodes and pod status for the
// Kubernetes tests (no kubelet or container runtime can run on the test
// machines). scripts/kube/build.sh builds it and extracts its stage
// documents from this module.
package kwok

import _ "sigs.k8s.io/kwok/cmd/kwok"
