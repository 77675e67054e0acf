package kubetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions"
)

const gatewayModule = "sigs.k8s.io/gateway-api"

// gatewayAPIDir returns the directory of the sigs.k8s.io/gateway-api
// module this test binary was built with (its CRDs match its Go types): the
// version from the binary's build info, or else from the go.mod of the
// working directory (test binaries carry no module list), downloaded into
// the module cache if need be.
func gatewayAPIDir() (string, error) {
	version := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == gatewayModule {
				version = d.Version
				if d.Replace != nil {
					version = d.Replace.Version
				}
			}
		}
	}
	if version == "" {
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", gatewayModule).Output()
		if err != nil {
			return "", fmt.Errorf("go list -m %s: %w", gatewayModule, err)
		}
		version = strings.TrimSpace(string(out))
	}
	var out, errOut bytes.Buffer
	cmd := exec.Command("go", "mod", "download", "-json", gatewayModule+"@"+version)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w: %s %s", gatewayModule, version, err, errOut.String(), out.String())
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		return "", err
	}
	if m.Error != "" || m.Dir == "" {
		return "", fmt.Errorf("go mod download %s@%s: %s", gatewayModule, version, m.Error)
	}
	return m.Dir, nil
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installGatewayAPI installs the Gateway API standard channel CRDs from the
// module's config/crd/standard, by server-side apply (client-side apply's
// last-applied annotation would exceed its size limit on these CRDs), and
// waits until they are Established. The channel's ValidatingAdmissionPolicy
// (a guard against upgrading to experimental CRDs) is not installed.
func (c *Cluster) installGatewayAPI(ctx context.Context) error {
	dir, err := gatewayAPIDir()
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(dir, "config", "crd", "standard", "*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no CRDs in %s/config/crd/standard: %w", dir, err)
	}
	var names []string
	for _, f := range files {
		objs, err := readYAML(f)
		if err != nil {
			return err
		}
		for _, obj := range objs {
			if obj.GetKind() != "CustomResourceDefinition" {
				continue
			}
			data, err := json.Marshal(obj.Object)
			if err != nil {
				return err
			}
			force := true
			if _, err := c.Dynamic.Resource(crdGVR).Patch(ctx, obj.GetName(), types.ApplyPatchType, data,
				metav1.PatchOptions{FieldManager: "kubetest", Force: &force}); err != nil {
				return fmt.Errorf("apply %s from %s: %w", obj.GetName(), f, err)
			}
			names = append(names, obj.GetName())
		}
	}
	return wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		for _, n := range names {
			u, err := c.Dynamic.Resource(crdGVR).Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			established := false
			for _, cnd := range conds {
				m, _ := cnd.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					established = true
				}
			}
			if !established {
				return false, nil
			}
		}
		// Discovery follows Established by a moment.
		_, err := c.Gateway.GatewayV1().HTTPRoutes("default").List(ctx, metav1.ListOptions{Limit: 1})
		return err == nil, nil
	})
}

func readYAML(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// createGateway creates the GatewayClass GatewayClassName and the Gateway
// GatewayNamespace/GatewayName, and waits until the stand-in controller
// has accepted both.
func (c *Cluster) createGateway(ctx context.Context) error {
	gw := c.Gateway.GatewayV1()
	gc := &gatewayv1.GatewayClass{
		ObjectMeta: metav1.ObjectMeta{Name: GatewayClassName},
		Spec: gatewayv1.GatewayClassSpec{ControllerName: GatewayControllerName,
			Description: ptr("test-only stand-in: status only, no data plane")},
	}
	if _, err := gw.GatewayClasses().Create(ctx, gc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	all := gatewayv1.NamespacesFromAll
	g := &gatewayv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: GatewayName, Namespace: GatewayNamespace},
		Spec: gatewayv1.GatewaySpec{
			GatewayClassName: GatewayClassName,
			Listeners: []gatewayv1.Listener{{
				Name: "http", Port: 80, Protocol: gatewayv1.HTTPProtocolType,
				AllowedRoutes: &gatewayv1.AllowedRoutes{Namespaces: &gatewayv1.RouteNamespaces{From: &all}},
			}},
		},
	}
	if _, err := gw.Gateways(GatewayNamespace).Create(ctx, g, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		g, err := gw.Gateways(GatewayNamespace).Get(ctx, GatewayName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return meta.IsStatusConditionTrue(g.Status.Conditions, string(gatewayv1.GatewayConditionProgrammed)), nil
	})
}

func ptr[T any](v T) *T { return &v }

// GatewayController is the test-only stand-in for a gateway controller: NO
// DATA PLANE RUNS in the tests, nothing routes a request. It only writes the
// status a conformant controller would write for GatewayClassName:
//
//   - the GatewayClass: Accepted;
//   - its Gateways: Accepted and Programmed, listeners with their attached
//     route counts;
//   - every HTTPRoute whose parentRef names one of its Gateways: a parent
//     status with Accepted (True, or False/NotAllowedByListeners when the
//     listener does not admit the route's namespace) and ResolvedRefs
//     (True; False/InvalidKind for a backend that is not a Service,
//     RefNotPermitted for another namespace's Service without a
//     ReferenceGrant, BackendNotFound for a Service that does not exist),
//     with the route's generation as observedGeneration. Parent statuses of
//     other controllers are kept.
//
// It reacts to routes, Services, ReferenceGrants and Gateways through
// informers, and re-checks everything every second.
const GatewayController = GatewayControllerName

func startGatewayController(ctx context.Context, c *Cluster, done chan struct{}) error {
	gwf := gatewayinformers.NewSharedInformerFactory(c.Gateway, 0)
	kf := informers.NewSharedInformerFactory(c.Clientset, 0)
	routes := gwf.Gateway().V1().HTTPRoutes()
	gateways := gwf.Gateway().V1().Gateways()
	classes := gwf.Gateway().V1().GatewayClasses()
	grants := gwf.Gateway().V1().ReferenceGrants()
	services := kf.Core().V1().Services()
	poke := make(chan struct{}, 1)
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { nudge(poke) },
		UpdateFunc: func(any, any) { nudge(poke) },
		DeleteFunc: func(any) { nudge(poke) },
	}
	for _, inf := range []cache.SharedIndexInformer{routes.Informer(), gateways.Informer(), classes.Informer(),
		grants.Informer(), services.Informer()} {
		if _, err := inf.AddEventHandler(h); err != nil {
			return err
		}
	}
	gwf.Start(ctx.Done())
	kf.Start(ctx.Done())
	for typ, ok := range gwf.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("informer %v did not sync", typ)
		}
	}
	for typ, ok := range kf.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("informer %v did not sync", typ)
		}
	}
	r := &gwReconciler{c: c, routes: routes.Lister(), gateways: gateways.Lister(), classes: classes.Lister(),
		grants: grants.Lister(), services: services.Lister()}
	go func() {
		defer close(done)
		defer gwf.Shutdown()
		defer kf.Shutdown()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			r.reconcile(ctx)
			select {
			case <-ctx.Done():
				return
			case <-poke:
			case <-tick.C:
			}
		}
	}()
	return nil
}

func nudge(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
