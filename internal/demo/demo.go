// Package demo runs the self-contained story behind `shipgate demo`: a
// control plane in a temporary directory, the example shop app behind the
// builtin router under steady traffic, a healthy canary promoted and a bad
// one rolled back by itself.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/server"
)

// Options tune the demo.
type Options struct {
	// JSON, when true, prints the final summary as JSON instead of text.
	JSON bool
	// ShopCommand is the command that runs the example shop, before its
	// flags. Default: this executable's hidden `example-shop` command.
	ShopCommand []string
	// Rate is the synthetic traffic in requests per second. Default 200.
	Rate int
}

// Summary is what the demo measured.
type Summary struct {
	// Versions holds, per version, the user requests it served and failed.
	Versions map[string]VersionCount `json:"versions"`
	// HealthyRollout is the rollout of v2.
	HealthyRollout rollout.Rollout `json:"healthy_rollout"`
	// BadRollout is the rollout of v3.
	BadRollout rollout.Rollout `json:"bad_rollout"`
	// SecondsToStable is from v3's first canary request to all traffic back on v2.
	SecondsToStable float64 `json:"seconds_first_canary_traffic_to_stable"`
	// BadFailedRequests is how many user requests v3 failed.
	BadFailedRequests uint64 `json:"bad_release_failed_requests"`
	// FailedDuringHealthy is how many user requests failed while v2 rolled out.
	FailedDuringHealthy int `json:"failed_during_healthy_rollout"`
	// Audit holds the audit events written, oldest first.
	Audit []audit.Event `json:"audit"`
	// OK is true when the story went as it should.
	OK bool `json:"ok"`
	// Problems lists what did not go as it should.
	Problems []string `json:"problems,omitempty"`
}

const configTemplate = `# The demo's shipgate.yaml: the shop app, one production environment.
app: shop
vars: {PAY_FAIL_RATE: "0", LATENCY: "20ms", MERCHANT_ID: "demo-merchant"}
run:
  command: [%s, "--port", "${PORT}", "--version", "${VERSION}", "--pay-fail-rate", "${PAY_FAIL_RATE}", "--latency", "${LATENCY}"]
  env: {MERCHANT_ID: "${MERCHANT_ID}"}
  instances: 2
  health: {path: /healthz, interval: 500ms, timeout: 1s}
  stop_grace: 5s
environments:
  production:
    listen: 127.0.0.1:%d
    sticky: {header: X-User-ID}
strategy:
  canary:
    steps: [{weight: 10, bake: 10s}, {weight: 25, bake: 5s}, {weight: 50, bake: 5s}]
    scale_down_delay: 2s
analysis:
  interval: 1s
  min_requests: 50
  gates:
    - {metric: error_rate, max: 0.02}
    - {metric: latency_p99, max_ratio_to_stable: 2}
  on_inconclusive: extend
smoke: [{path: /healthz}, {path: /products, expect_status: 200}]
`

// Run runs the demo, printing progress to out. It returns nil only if the
// story went as it should.
func Run(ctx context.Context, out io.Writer, opts Options) error {
	shop := opts.ShopCommand
	if len(shop) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find own executable: %w", err)
		}
		shop = []string{exe, "example-shop"}
	}
	dir, err := os.MkdirTemp("", "shipgate-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	port, err := freePort(ctx)
	if err != nil {
		return err
	}
	quoted := make([]string, len(shop))
	for i, s := range shop {
		quoted[i] = strconv.Quote(s)
	}
	cfgPath := filepath.Join(dir, "shipgate.yaml")
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, configTemplate, strings.Join(quoted, ", "), port), 0o600); err != nil {
		return err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	p := &printer{w: out, quiet: opts.JSON, start: time.Now()}
	if opts.JSON {
		p.w = io.Discard
	}
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return err
	}
	// Only the server's log, in a directory removed at the end.
	defer func() { _ = logFile.Close() }()

	p.say("Shipgate demo: the shop app behind the builtin router, a healthy canary, then a bad one.")
	p.say("Data dir %s (removed at the end).", dir)
	cp, err := server.Start(ctx, server.Options{
		Config: cfg, DataDir: filepath.Join(dir, "data"), Listen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(logFile, nil)),
	})
	if err != nil {
		return fmt.Errorf("start control plane: %w", err)
	}
	defer func() {
		stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
		defer cancel()
		_ = cp.StopInstances(stop)
		_ = cp.Close(stop)
	}()
	routerURL := "http://" + cp.Routers["production"].Addr()
	p.say("Control plane up: API %s, production router %s.", cp.APIURL, routerURL)

	d := &story{cp: cp, p: p}
	sum := Summary{}
	if err := d.deploy(ctx, "v1", nil, rollout.PhaseSucceeded); err != nil {
		return err
	}
	load := &Load{URL: routerURL, Rate: opts.Rate}
	if load.Rate == 0 {
		// A p99 judged within 2x stable takes ~300 canary requests; at 10%
		// of 200 requests/s that is 15s, inside the first step's bake.
		load.Rate = 200
	}
	p.say("Sending %d requests/s from 2000 users (browse, cart, pay) through the router.", load.Rate)
	load.Start(ctx)
	defer load.Stop()
	if !sleep(ctx, 2*time.Second) {
		return ctx.Err()
	}

	p.say("")
	p.say("== Deploying v2, a healthy release, through the canary ==")
	failedBefore := len(load.Failures())
	r2, err := d.deployRollout(ctx, "v2", nil)
	if err != nil {
		return err
	}
	sum.HealthyRollout = r2
	sum.FailedDuringHealthy = len(load.Failures()) - failedBefore
	if r2.Phase != rollout.PhaseSucceeded {
		sum.Problems = append(sum.Problems, fmt.Sprintf("v2 ended %s: %s", r2.Phase, r2.Reason))
	}
	if sum.FailedDuringHealthy != 0 {
		sum.Problems = append(sum.Problems, fmt.Sprintf("%d user requests failed during the healthy rollout", sum.FailedDuringHealthy))
	}
	if !sleep(ctx, 2*time.Second) {
		return ctx.Err()
	}

	p.say("")
	p.say("== Deploying v3: its payment endpoint fails 40%% of the time ==")
	r3, err := d.deployRollout(ctx, "v3", map[string]string{"PAY_FAIL_RATE": "0.4"})
	if err != nil {
		return err
	}
	sum.BadRollout = r3
	if r3.Phase != rollout.PhaseRolledBack {
		sum.Problems = append(sum.Problems, fmt.Sprintf("v3 ended %s, want rolled back", r3.Phase))
	}
	if !sleep(ctx, 2*time.Second) {
		return ctx.Err()
	}
	load.Stop()
	if !r3.TrafficRestoredAt.IsZero() && !r3.FirstTrafficAt.IsZero() {
		sum.SecondsToStable = r3.TrafficRestoredAt.Sub(r3.FirstTrafficAt).Seconds()
	}
	sum.Versions = load.Counts()
	sum.BadFailedRequests = sum.Versions["v3"].Failed
	// After the rollback only v2 may answer: count v3 answers that started
	// clearly after traffic was restored (in-flight ones may still finish).
	for _, f := range load.Failures() {
		if f.Version == "v3" && f.At.After(r3.TrafficRestoredAt.Add(time.Second)) {
			sum.Problems = append(sum.Problems, "v3 still answered users a second after the rollback")
			break
		}
	}
	events, err := cp.Engine.Audit(ctx, audit.Filter{Limit: 1000})
	if err != nil {
		return err
	}
	for i := len(events) - 1; i >= 0; i-- {
		sum.Audit = append(sum.Audit, events[i])
	}
	if err := audit.Verify(sum.Audit); err != nil {
		sum.Problems = append(sum.Problems, "audit chain: "+err.Error())
	}
	sum.OK = len(sum.Problems) == 0

	if opts.JSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sum); err != nil {
			return err
		}
	} else {
		printSummary(out, sum)
	}
	if !sum.OK {
		return errors.New("the demo did not go as it should: " + strings.Join(sum.Problems, "; "))
	}
	return nil
}

// story deploys releases through the control plane and narrates them.
type story struct {
	cp *server.ControlPlane
	p  *printer
}

func (s *story) deploy(ctx context.Context, version string, vars map[string]string, want rollout.Phase) error {
	s.p.say("Deploying %s (first deploy: start, smoke checks, live at 100%%).", version)
	r, err := s.deployRollout(ctx, version, vars)
	if err != nil {
		return err
	}
	if r.Phase != want {
		return fmt.Errorf("%s ended %s: %s", version, r.Phase, r.Reason)
	}
	return nil
}

// deployRollout deploys a version and follows its rollout to the end.
func (s *story) deployRollout(ctx context.Context, version string, vars map[string]string) (rollout.Rollout, error) {
	r, err := s.cp.Engine.Deploy(ctx, rollout.DeployRequest{App: "shop", Version: version, Vars: vars, Actor: "user:demo"})
	if err != nil {
		return r, fmt.Errorf("deploy %s: %w", version, err)
	}
	var last string
	var lastAt time.Time
	for {
		if !sleep(ctx, 250*time.Millisecond) {
			return r, ctx.Err()
		}
		r, err = s.cp.Engine.GetRollout(ctx, r.ID)
		if err != nil {
			return r, err
		}
		line := progressLine(r)
		if line != last || time.Since(lastAt) > 2*time.Second {
			s.p.say("%s", line)
			last, lastAt = line, time.Now()
		}
		if r.Phase.Final() {
			return r, nil
		}
	}
}

func progressLine(r rollout.Rollout) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-12s", r.Version, r.Phase)
	if r.StepIndex < len(r.Steps) && !r.Phase.Final() {
		step := r.Steps[r.StepIndex]
		fmt.Fprintf(&b, " step %d/%d %-10s", r.StepIndex+1, len(r.Steps), step.Kind)
	}
	fmt.Fprintf(&b, " traffic %s %d%% / %s %d%%", orDash(r.FromVersion), 100-r.Weight, r.Version, r.Weight)
	if a := r.Analysis; a != nil && r.Steps[min(r.StepIndex, len(r.Steps)-1)].Kind == rollout.StepWeight && r.Phase == rollout.PhaseRunning {
		fmt.Fprintf(&b, " | canary %5.2f%% err p99 %-6s (%d req) | stable %5.2f%% err p99 %-6s | %s",
			a.Canary.ErrorRate*100, a.Canary.P99.Round(100*time.Microsecond), a.Canary.Requests,
			a.Stable.ErrorRate*100, a.Stable.P99.Round(100*time.Microsecond), a.Verdict)
	}
	if r.Phase.Final() && r.Reason != "" {
		b.WriteString(" | " + r.Reason)
	}
	return b.String()
}

func printSummary(w io.Writer, s Summary) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "== Summary ==")
	versions := make([]string, 0, len(s.Versions))
	for v := range s.Versions {
		versions = append(versions, v)
	}
	sort.Strings(versions)
	fmt.Fprintf(w, "%-8s %8s %8s\n", "version", "served", "failed")
	for _, v := range versions {
		c := s.Versions[v]
		fmt.Fprintf(w, "%-8s %8d %8d\n", v, c.Served, c.Failed)
	}
	fmt.Fprintf(w, "v2: %s in %s, %d user requests failed during its rollout.\n",
		s.HealthyRollout.Phase, s.HealthyRollout.FinishedAt.Sub(s.HealthyRollout.CreatedAt).Round(100*time.Millisecond), s.FailedDuringHealthy)
	fmt.Fprintf(w, "v3: %s — %s\n", s.BadRollout.Phase, s.BadRollout.Reason)
	fmt.Fprintf(w, "v3: %.1fs from its first canary request to 100%% of traffic back on v2; it failed %d user requests.\n",
		s.SecondsToStable, s.BadFailedRequests)
	fmt.Fprintf(w, "Audit log (%d events, hash chain verified):\n", len(s.Audit))
	for _, e := range s.Audit {
		line := fmt.Sprintf("  #%-3d %s %-16s %-16s %-20s %s", e.Seq, e.Time.Local().Format("15:04:05.000"), e.Actor, e.Action, e.Subject, e.Reason)
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	if s.OK {
		fmt.Fprintln(w, "Demo OK.")
	} else {
		fmt.Fprintln(w, "Demo FAILED: "+strings.Join(s.Problems, "; "))
	}
}

type printer struct {
	w     io.Writer
	quiet bool
	start time.Time
}

func (p *printer) say(format string, args ...any) {
	if format == "" {
		fmt.Fprintln(p.w)
		return
	}
	fmt.Fprintf(p.w, "[%5.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func freePort(ctx context.Context) (int, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
