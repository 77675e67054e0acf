package server_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/rollout"
)

// A local-process canary whose payments fail 40% of the time is judged
// from a real Prometheus (Debian's prometheus, scraping the shop's own
// /metrics every 250ms), not from the router: the environment says
// metrics: {prometheus: ...}. Its error_rate gate fails and the canary is
// rolled back, traffic first, with the gate, value and threshold audited;
// Prometheus' query log shows Shipgate's queries for the canary.
func TestE2E_CanaryJudgedFromPrometheusRolledBack(t *testing.T) {
	bin := "/usr/bin/prometheus"
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s: %v (CI=true: scripts/deps.sh test installs prometheus)", bin, err)
		}
		t.Skipf("SKIPPED: %s not found (apt-get install prometheus)", bin)
	}
	promDir := t.TempDir()
	targets := filepath.Join(promDir, "targets.json")
	writeTargets(t, targets, nil)
	promURL, queryLog := startPrometheusSD(t, bin, promDir, targets)

	yaml := fmt.Sprintf(testConfig, shopBin, freePort(t), tenPercent)
	yaml = strings.Replace(yaml, "    sticky: {header: X-User-ID}\n",
		"    sticky: {header: X-User-ID}\n    metrics:\n      prometheus: {url: "+promURL+", namespace: shop}\n", 1)
	p := startYAML(t, yaml)
	// Service discovery: the instances the runtime records, as Prometheus
	// file_sd targets, kept current while the test runs.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var last []string
		for {
			addrs := registeredAddrs(p.dataDir)
			if !slices.Equal(addrs, last) {
				writeTargets(t, targets, addrs)
				last = addrs
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })

	p.deploy(t, "v1", nil)
	load := p.load(t, 120)
	time.Sleep(2 * time.Second) // v1 scraped a few times: the stable side has data
	r := p.deploy(t, "v3", map[string]string{"PAY_FAIL_RATE": "0.4"})
	load.Stop()

	if r.Phase != rollout.PhaseRolledBack || !strings.Contains(r.Reason, "error_rate") {
		t.Fatalf("v3 ended %s (%s), want rolled back on error_rate", r.Phase, r.Reason)
	}
	if r.Analysis == nil || r.Analysis.Canary.Requests == 0 || r.Analysis.Canary.Errors == 0 {
		t.Fatalf("last judgement %+v, want canary requests and errors measured", r.Analysis)
	}
	ev, ok := hasAction(auditActions(t, p, "shop/production/v3"), audit.ActionRollbackAuto)
	if !ok || !strings.HasPrefix(ev.Data["gate"], "error_rate") || ev.Data["value"] == "" || ev.Data["threshold"] != "0.02" {
		t.Fatalf("rollback event %+v (found %v), want gate error_rate, its value and threshold 0.02", ev.Data, ok)
	}
	b, err := os.ReadFile(queryLog)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`http_requests_total{namespace=\"shop\",version=\"v3\",code=~\"5..\"}`, `version=\"v1\"`} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("Prometheus' query log has no query with %s: Shipgate did not judge from Prometheus\n%.2000s", want, b)
		}
	}
	p.onlyVersion(t, "v1", 20)
}

// registeredAddrs returns the addresses of the instances the process
// runtime has recorded under dataDir, sorted.
func registeredAddrs(dataDir string) []string {
	files, _ := filepath.Glob(filepath.Join(dataDir, "instances", "*.json"))
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var rec struct {
			Instance rollout.Instance `json:"instance"`
		}
		if json.Unmarshal(b, &rec) == nil && rec.Instance.Addr != "" {
			out = append(out, rec.Instance.Addr)
		}
	}
	slices.Sort(out)
	return out
}

// writeTargets writes a file_sd targets file atomically.
func writeTargets(t *testing.T, path string, addrs []string) {
	group := []map[string]any{{"targets": append([]string{}, addrs...), "labels": map[string]string{"namespace": "shop"}}}
	b, _ := json.Marshal(group)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Error(err)
		return
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Error(err)
	}
}

// startPrometheusSD runs Prometheus scraping the targets of a file_sd
// file every 250ms, logging every query, and returns its URL and the
// query log's path once it is ready.
func startPrometheusSD(t *testing.T, bin, dir, targets string) (string, string) {
	t.Helper()
	queryLog := filepath.Join(dir, "queries.log")
	cfg := fmt.Sprintf(`global:
  scrape_interval: 250ms
  scrape_timeout: 200ms
  query_log_file: %q
scrape_configs:
  - job_name: shop
    file_sd_configs:
      - files: [%q]
        refresh_interval: 1s
`, queryLog, targets)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	logs := &syncBuffer{}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("prometheus output:\n%s", logs.String())
		}
	})
	url := "http://" + addr
	client := &http.Client{Timeout: time.Second}
	deadline := time.After(30 * time.Second)
	for {
		if resp, err := client.Get(url + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, queryLog
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("prometheus exited: %v\n%s", err, logs.String())
		case <-deadline:
			t.Fatalf("prometheus not ready after 30s\n%s", logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
