package kubetest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
)

// Names of the fixed objects every cluster has.
const (
	// GatewayClassName is the GatewayClass the stand-in controller owns.
	GatewayClassName = "kubetest"
	// GatewayControllerName is the controllerName of GatewayClassName.
	GatewayControllerName = "kubetest.shipgate.dev/gateway-controller"
	// GatewayNamespace and GatewayName name the Gateway every cluster has;
	// its one listener ("http", port 80) accepts HTTPRoutes from every
	// namespace.
	GatewayNamespace = "default"
	GatewayName      = "public"
	// FakeNodeAnnotation marks the nodes kwok manages; FakeNodeTaint is the
	// NoSchedule taint they carry. Every pod gets a toleration for it from
	// the API server's PodTolerationRestriction admission plugin (cluster
	// default tolerations), so workloads need no change to run here.
	FakeNodeAnnotation = "kwok.x-k8s.io/node"
	FakeNodeTaint      = "kwok.x-k8s.io/node"
)

// Options tune Start. The zero value is a good default.
type Options struct {
	// Nodes is the number of fake nodes (default 3).
	Nodes int
	// Logf receives progress lines (default: none).
	Logf func(format string, args ...any)
}

// Cluster is a running control plane. Its fields are read-only.
type Cluster struct {
	// Config is a cluster-admin (system:masters) client config.
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file holding Config, for
	// programs and kubectl.
	Kubeconfig string
	// Host is the API server's URL (https://127.0.0.1:port).
	Host string
	// BinDir holds the binaries (kube-apiserver, kubectl, ...).
	BinDir string
	// Dir is this cluster's working directory (certificates, data, the
	// processes' logs, named <process>.log).
	Dir string
	// Nodes are the fake nodes' names.
	Nodes []string
	// Clientset, Dynamic and Gateway are admin clients built from Config.
	Clientset kubernetes.Interface
	Dynamic   dynamic.Interface
	Gateway   gatewayclient.Interface
	// StartTime is how long Start took, from the first process to ready.
	StartTime time.Duration

	caPEM    []byte
	procs    []*proc
	cancel   context.CancelFunc
	ctrlDone chan struct{}
	stopOnce sync.Once
	logf     func(format string, args ...any)
}

// Start starts a cluster for t and stops it when t ends. Without binaries it
// fails t, or skips it under -short.
func Start(t testing.TB, opts ...Options) *Cluster {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Logf == nil {
		o.Logf = t.Logf
	}
	c, err := start(o)
	if err != nil {
		failOrSkip(t, err)
	}
	t.Cleanup(c.Stop)
	return c
}

func failOrSkip(t testing.TB, err error) {
	t.Helper()
	if testing.Short() {
		t.Skipf("kubetest: no control plane under -short: %v", err)
	}
	t.Fatalf("kubetest: %v", err)
}

var shared struct {
	sync.Mutex
	inMain  bool
	started bool
	c       *Cluster
	err     error
}

// Main runs a package's tests with one cluster shared by them, started by
// the first test that calls Shared and stopped after the last test:
//
//	func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }
func Main(m *testing.M) int {
	if !flag.Parsed() {
		flag.Parse()
	}
	shared.Lock()
	shared.inMain = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	c := shared.c
	shared.Unlock()
	if c != nil {
		c.Stop()
	}
	return code
}

// Shared returns the package's shared cluster, starting it on first use. It
// needs Main in TestMain (without it the cluster would outlive the tests).
func Shared(t testing.TB) *Cluster {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if !shared.inMain {
		t.Fatal("kubetest.Shared needs func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) } in the package")
	}
	if !shared.started {
		shared.started = true
		shared.c, shared.err = start(Options{Logf: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "kubetest: "+format+"\n", args...)
		}})
	}
	if shared.err != nil {
		failOrSkip(t, shared.err)
	}
	return shared.c
}
