// Package kubetest runs a real Kubernetes control plane for tests: etcd,
// kube-apiserver (RBAC, a self-signed serving certificate, static tokens),
// kube-controller-manager and kube-scheduler, all built from the Go module
// proxy by scripts/kube/build.sh.
//
// Two things in it are NOT real, and tests that use it must say so:
//
//   - Pods are simulated. No kubelet or container runtime can run on the
//     test machines: kwok (sigs.k8s.io/kwok) fakes the nodes and moves each
//     scheduled pod to Running/Ready without starting a container. Pod IPs
//     are allocated from each fake node's podCIDR but nothing listens on
//     them. Images under UnpullableRegistry are faked as ImagePullBackOff
//     and under CrashingRegistry as CrashLoopBackOff; SetPodStatus sets any
//     other state.
//   - No gateway data plane runs. The Gateway API standard CRDs are
//     installed from the sigs.k8s.io/gateway-api module, and a test-only
//     stand-in controller (GatewayController) sets the GatewayClass,
//     Gateway and HTTPRoute status conditions (Accepted, ResolvedRefs) the
//     way a gateway controller would. No request is ever routed by it.
//
// A package's tests share one cluster: call Main from TestMain and Shared
// from each test. Start starts a cluster of a test's own.
//
// The binaries come from $SHIPGATE_KUBE_BIN, or else from running
// scripts/kube/build.sh (seconds when cached, ~12 minutes cold). When
// neither works the tests FAIL, unless go test runs with -short, where they
// skip.
package kubetest
