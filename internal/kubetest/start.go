package kubetest

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
)

// startTimeout bounds Start from the first process to a ready cluster
// (about 9 s on an idle 2-core machine).
const startTimeout = 3 * time.Minute

//go:embed stages.yaml
var kubetestStages []byte

// start starts a cluster, and starts it again (on other ports) when a
// process lost a port picked for it to another program in between.
func start(o Options) (*Cluster, error) {
	for attempt := 1; ; attempt++ {
		c, err := startOnce(o)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return c, err
		}
		if o.Logf != nil {
			o.Logf("a port was taken, starting again: %v", err)
		}
	}
}

func startOnce(o Options) (c *Cluster, err error) {
	if o.Nodes <= 0 {
		o.Nodes = 3
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	bin, err := findBins()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kubetest-")
	if err != nil {
		return nil, err
	}
	c = &Cluster{BinDir: bin, Dir: dir, logf: o.Logf}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w (logs in %s)", err, dir)
			c.stop(true)
		}
	}()
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()

	c.caPEM, err = writePKI(dir)
	if err != nil {
		return c, err
	}
	ports, err := freePorts(4)
	if err != nil {
		return c, err
	}
	etcdClient, etcdPeer, apiPort, kwokPort := ports[0], ports[1], ports[2], ports[3]
	c.Host = "https://127.0.0.1:" + strconv.Itoa(apiPort)

	// Static tokens: the admin (tests, kwok, the controller manager) is in
	// system:masters; the scheduler uses its own bootstrap RBAC role.
	adminToken, schedToken := randomToken(), randomToken()
	tokens := fmt.Sprintf("%s,kubetest-admin,kubetest-admin,\"system:masters\"\n%s,system:kube-scheduler,system:kube-scheduler\n",
		adminToken, schedToken)
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(tokens), 0o600); err != nil {
		return c, err
	}
	// Every pod tolerates the fake nodes' taint (PodTolerationRestriction's
	// cluster default), so workloads need no kwok-specific toleration.
	admission := `apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodTolerationRestriction
  configuration:
    apiVersion: podtolerationrestriction.admission.k8s.io/v1alpha1
    kind: Configuration
    default:
    - key: ` + FakeNodeTaint + `
      operator: Exists
      effect: NoSchedule
`
	if err := os.WriteFile(filepath.Join(dir, "admission.yaml"), []byte(admission), 0o600); err != nil {
		return c, err
	}
	adminKC, err := c.writeKubeconfig("admin.kubeconfig", adminToken)
	if err != nil {
		return c, err
	}
	schedKC, err := c.writeKubeconfig("scheduler.kubeconfig", schedToken)
	if err != nil {
		return c, err
	}
	c.Kubeconfig = adminKC

	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	if err := c.run("etcd", "--name=kubetest", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubetest="+peerURL, "--unsafe-no-fsync", "--log-level=warn"); err != nil {
		return c, err
	}
	if err := c.run("kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(apiPort),
		// No kubelet registers itself, and the kubernetes Service's
		// endpoints would point at loopback: the reconciler stays off.
		"--endpoint-reconciler-type=none",
		"--tls-cert-file="+filepath.Join(dir, "apiserver.crt"), "--tls-private-key-file="+filepath.Join(dir, "apiserver.key"),
		"--token-auth-file="+filepath.Join(dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--enable-admission-plugins=PodTolerationRestriction",
		"--admission-control-config-file="+filepath.Join(dir, "admission.yaml"),
		"--allow-privileged=true", "--profiling=false",
		"--cert-dir="+filepath.Join(dir, "apiserver-certs")); err != nil {
		return c, err
	}

	c.Config = &rest.Config{Host: c.Host, BearerToken: adminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.caPEM}, QPS: 200, Burst: 400}
	if c.Clientset, err = kubernetes.NewForConfig(c.Config); err != nil {
		return c, err
	}
	if c.Dynamic, err = dynamic.NewForConfig(c.Config); err != nil {
		return c, err
	}
	if c.Gateway, err = gatewayclient.NewForConfig(c.Config); err != nil {
		return c, err
	}
	if err := c.waitAPIServer(ctx); err != nil {
		return c, err
	}
	o.Logf("API server ready at %s after %s", c.Host, time.Since(begin).Round(time.Millisecond))

	if err := c.run("kube-controller-manager", "--kubeconfig="+adminKC,
		"--leader-elect=false", "--secure-port=0",
		"--service-account-private-key-file="+filepath.Join(dir, "sa.key"),
		"--root-ca-file="+filepath.Join(dir, "ca.crt"),
		"--use-service-account-credentials=false",
		"--cluster-name=kubetest",
		// Fake nodes get their podCIDR from Start, not from the IPAM.
		"--allocate-node-cidrs=false",
		"--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10"); err != nil {
		return c, err
	}
	if err := c.run("kube-scheduler", "--kubeconfig="+schedKC,
		"--authentication-kubeconfig="+schedKC, "--authorization-kubeconfig="+schedKC,
		"--leader-elect=false", "--secure-port=0"); err != nil {
		return c, err
	}
	stages := filepath.Join(dir, "kwok-stages.yaml")
	base, err := os.ReadFile(filepath.Join(bin, "kwok-stages.yaml"))
	if err != nil {
		return c, err
	}
	if err := os.WriteFile(stages, append(append(base, "\n---\n"...), kubetestStages...), 0o600); err != nil {
		return c, err
	}
	if err := c.run("kwok", "--kubeconfig="+adminKC, "--config="+stages,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector="+FakeNodeAnnotation+"=fake",
		"--server-address=127.0.0.1:"+strconv.Itoa(kwokPort)); err != nil {
		return c, err
	}
	if err := c.createNodes(ctx, o.Nodes); err != nil {
		return c, err
	}
	if err := c.waitReady(ctx); err != nil {
		return c, err
	}
	o.Logf("controller manager, scheduler and kwok (%d fake nodes) ready after %s", o.Nodes, time.Since(begin).Round(time.Millisecond))

	if err := c.installGatewayAPI(ctx); err != nil {
		return c, fmt.Errorf("gateway API: %w", err)
	}
	ctrlCtx, ctrlCancel := context.WithCancel(context.Background())
	c.cancel = ctrlCancel
	c.ctrlDone = make(chan struct{})
	if err := startGatewayController(ctrlCtx, c, c.ctrlDone); err != nil {
		return c, fmt.Errorf("gateway controller: %w", err)
	}
	if err := c.createGateway(ctx); err != nil {
		return c, fmt.Errorf("gateway: %w", err)
	}
	c.StartTime = time.Since(begin)
	o.Logf("cluster ready in %s (pods simulated by kwok; routes' status set by a stand-in controller, no data plane)",
		c.StartTime.Round(time.Millisecond))
	return c, nil
}

func (c *Cluster) run(name string, args ...string) error {
	p, err := startProc(c.Dir, name, filepath.Join(c.BinDir, name), args...)
	if err != nil {
		return err
	}
	c.procs = append(c.procs, p)
	return nil
}

// alive returns an error naming the first control-plane process that died.
func (c *Cluster) alive() error {
	for _, p := range c.procs {
		if err := p.exited(); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) writeKubeconfig(name, token string) (string, error) {
	path := filepath.Join(c.Dir, name)
	return path, clientcmd.WriteToFile(*kubeconfig(c.Host, c.caPEM, token), path)
}

func kubeconfig(host string, ca []byte, token string) *clientcmdapi.Config {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: host, CertificateAuthorityData: ca}
	kc.AuthInfos["kubetest"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: "kubetest", Namespace: "default"}
	kc.CurrentContext = "kubetest"
	return kc
}

// WriteKubeconfig writes a kubeconfig file for cfg (a config from Config or
// ServiceAccountConfig: bearer token and the cluster's CA) into the
// cluster's directory and returns its path.
func (c *Cluster) WriteKubeconfig(name string, cfg *rest.Config) (string, error) {
	if cfg.BearerToken == "" {
		return "", errors.New("WriteKubeconfig: the config has no bearer token")
	}
	path := filepath.Join(c.Dir, name+".kubeconfig")
	return path, clientcmd.WriteToFile(*kubeconfig(cfg.Host, c.caPEM, cfg.BearerToken), path)
}

func (c *Cluster) waitAPIServer(ctx context.Context) error {
	rt, err := rest.TransportFor(c.Config)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: rt, Timeout: 5 * time.Second}
	var last string
	err = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if err := c.alive(); err != nil {
			return false, err
		}
		resp, err := hc.Get(c.Host + "/readyz")
		if err != nil {
			last = err.Error()
			return false, nil
		}
		defer resp.Body.Close()
		last = resp.Status
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("API server not ready (last: %s): %w", last, err)
	}
	return nil
}

// createNodes creates the fake nodes kwok manages: each with kwok's
// annotation, a NoSchedule taint, and a podCIDR of its own (kwok allocates
// pod IPs from it; without it pods on different nodes share IPs).
func (c *Cluster) createNodes(ctx context.Context, n int) error {
	for i := range n {
		name := fmt.Sprintf("kwok-node-%d", i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Annotations: map[string]string{FakeNodeAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
				Labels: map[string]string{"type": "kwok", "kubernetes.io/hostname": name,
					"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
					"topology.kubernetes.io/zone": fmt.Sprintf("zone-%c", 'a'+rune(i%3))},
			},
			Spec: corev1.NodeSpec{
				PodCIDR:  fmt.Sprintf("10.244.%d.0/24", i),
				PodCIDRs: []string{fmt.Sprintf("10.244.%d.0/24", i)},
				Taints:   []corev1.Taint{{Key: FakeNodeTaint, Value: "fake", Effect: corev1.TaintEffectNoSchedule}},
			},
		}
		if _, err := c.Clientset.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", name, err)
		}
		c.Nodes = append(c.Nodes, name)
	}
	return nil
}

// waitReady waits until kwok has made every node Ready and the controller
// manager has created the default ServiceAccount (pods cannot be created in
// a namespace before it exists).
func (c *Cluster) waitReady(ctx context.Context) error {
	var last string
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if err := c.alive(); err != nil {
			return false, err
		}
		nodes, err := c.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		var notReady []string
		for _, n := range nodes.Items {
			if !nodeReady(&n) {
				notReady = append(notReady, n.Name)
			}
		}
		if len(notReady) > 0 {
			last = "nodes not Ready (kwok): " + strings.Join(notReady, ", ")
			return false, nil
		}
		if _, err := c.Clientset.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
			last = "no default ServiceAccount yet (controller manager): " + err.Error()
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("cluster not ready (last: %s): %w", last, err)
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Stop stops the stand-in gateway controller and kills every process of the
// cluster (process groups), then removes its directory unless
// SHIPGATE_KUBE_KEEP is set. It is safe to call more than once.
func (c *Cluster) Stop() { c.stop(os.Getenv("SHIPGATE_KUBE_KEEP") != "") }

func (c *Cluster) stop(keep bool) {
	c.stopOnce.Do(func() {
		if c.cancel != nil {
			c.cancel()
			<-c.ctrlDone
		}
		// Reverse order: kwok and the controllers before the API server,
		// the API server before etcd.
		for i := len(c.procs) - 1; i >= 0; i-- {
			c.procs[i].stop(5 * time.Second)
		}
		if !keep {
			_ = os.RemoveAll(c.Dir)
		} else if c.logf != nil {
			c.logf("kept %s", c.Dir)
		}
	})
}
