package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/shipgate/shipgate/internal/process"
	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
)

// DownReport says what Down stopped.
type DownReport struct {
	// Env is the environment brought down, or "" for all of them.
	Env string `json:"env,omitempty"`
	// Instances are the instances stopped.
	Instances []rollout.Instance `json:"instances"`
	// Routers are the environments whose router process was stopped.
	Routers []string `json:"routers"`
}

// Down stops, gracefully, the app instances and the router processes
// that a server on dataDir left running, for the environment env or for
// every environment when env is "". It refuses while a server runs on
// dataDir: the server would start its routers again. dataDir may be a
// --plane-dir that several servers share: Down then refuses, naming them,
// while a live server uses it (its lock file there, lockPlaneDir), unless
// force. The store is not touched: a server started later starts what it
// needs again.
func Down(ctx context.Context, dataDir, env string, force bool, out io.Writer) (DownReport, error) {
	rep := DownReport{Env: env, Instances: []rollout.Instance{}, Routers: []string{}}
	if _, err := os.Stat(dataDir); err != nil {
		return rep, fmt.Errorf("data dir: %w", err)
	}
	lock, err := lockDataDir(dataDir)
	if err != nil {
		return rep, fmt.Errorf("a server runs on %s; stop it first (it supervises its routers and would start them again): %w", dataDir, err)
	}
	defer func() { _ = lock.release() }()
	live, err := livePlaneUsers(dataDir)
	if err != nil {
		return rep, err
	}
	if len(live) > 0 && !force {
		return rep, fmt.Errorf("%s is the plane dir of a live server (%s); stop it first (its leader supervises these routers and would start them again), or use --force", dataDir, strings.Join(live, "; "))
	}

	rt := process.New(process.Config{DataDir: dataDir})
	defer rt.Close()
	insts, err := rt.List(ctx)
	if err != nil {
		return rep, err
	}
	var stop []rollout.Instance
	for _, inst := range insts {
		if env == "" || inst.Env == env {
			stop = append(stop, inst)
		}
	}
	// Routers first: no user request goes to an instance being stopped.
	socks, err := filepath.Glob(filepath.Join(dataDir, "router-*.sock"))
	if err != nil {
		return rep, err
	}
	// The routers of an environment name that several apps share live
	// in a directory per app (routerDir).
	perApp, err := filepath.Glob(filepath.Join(dataDir, "apps", "*", "router-*.sock"))
	if err != nil {
		return rep, err
	}
	socks = append(socks, perApp...)
	sort.Strings(socks)
	var errs []error
	for _, sock := range socks {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(sock), "router-"), ".sock")
		if env != "" && name != env {
			continue
		}
		c, err := proxy.Dial(ctx, sock)
		if err != nil {
			continue // a socket left by a dead router
		}
		if err := c.StopProcess(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop the router of %s: %w", name, err))
			continue
		}
		rep.Routers = append(rep.Routers, name)
		// A router in <data>/apps/<app> is that app's: say whose, or
		// several apps' routers read as one environment's, stopped again.
		whose := name
		if dir := filepath.Dir(sock); filepath.Dir(dir) == filepath.Join(dataDir, "apps") {
			whose = filepath.Base(dir) + " " + name
		}
		fmt.Fprintf(out, "stopped the router of %s (pid %d)\n", whose, c.PID())
	}
	if err := rt.Stop(ctx, stop); err != nil {
		errs = append(errs, fmt.Errorf("stop instances: %w", err))
	}
	for _, inst := range stop {
		rep.Instances = append(rep.Instances, inst)
		fmt.Fprintf(out, "stopped instance %s (%s %s, pid %d)\n", inst.ID, inst.Env, inst.Version, inst.PID)
	}
	return rep, errors.Join(errs...)
}
