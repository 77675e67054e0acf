package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/demo"
	"github.com/shipgate/shipgate/internal/pgtest"
	"github.com/shipgate/shipgate/internal/retire"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/sqlite"
	"github.com/shipgate/shipgate/internal/store"
	"github.com/shipgate/shipgate/internal/storetest"
)

// TestE2E_StoreMigrateToPostgres moves a single-server installation onto
// PostgreSQL as a user would: a real `shipgate server` on its SQLite file
// deploys two versions under load and records a token, a flag and an
// incident through the API; the tables of later features (DORA changes,
// the notification outbox, test runs, route usage, retirements) get rows
// too. The server stops, `shipgate store migrate` copies the file into a
// new PostgreSQL database, and a server on PostgreSQL, with the same data
// dir, shows the same history through the API, its audit chain verified
// from the API, and deploys the next version with the instances it
// adopted. The database password, given in a file to the migration and in
// $SHIPGATE_STORE to the server, is in no command line and no log.
func TestE2E_StoreMigrateToPostgres(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	routerPort := freePort(t)
	s := &serverProc{t: t, cfg: filepath.Join(dir, "shipgate.yaml"), data: filepath.Join(dir, "data"),
		api: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), logPath: filepath.Join(dir, "server.log")}
	yaml := fmt.Sprintf(`app: shop
`+baseVars+baseRun+`environments:
  production:
    listen: 127.0.0.1:%d
    sticky: {header: X-User-ID}
strategy:
  canary: {steps: [{weight: 50, bake: 3s}], scale_down_delay: 1s}
`+baseAnalysis, shopBin, routerPort)

	// 1. A history on SQLite, made by a real server.
	client := s.launch(yaml)
	r, err := client.Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	s.waitRollout(client, r.ID, func(r rollout.Rollout) bool { return r.Phase == rollout.PhaseSucceeded })
	load := &demo.Load{URL: fmt.Sprintf("http://127.0.0.1:%d", routerPort), Rate: 100}
	load.Start(ctx)
	defer load.Stop()
	r, err = client.Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	if r = s.waitRollout(client, r.ID, func(r rollout.Rollout) bool { return r.Phase.Final() }); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v2 on SQLite ended %s: %s", r.Phase, r.Reason)
	}
	ci, err := client.CreateToken(ctx, api.TokenRequest{Name: "ci", Role: auth.RoleDeployer})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateFlag(ctx, api.CreateFlagRequest{Key: "new-checkout", Owner: "ana", Reason: "dark launch"}); err != nil {
		t.Fatal(err)
	}
	in, err := client.OpenIncident(ctx, api.IncidentRequest{App: "shop", Env: "production", DeployID: r.ID, Title: "slow checkout"})
	if err != nil {
		t.Fatal(err)
	}
	before := auditVerify(t, s)
	// The server flushes its route counters when it stops.
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	if err := s.cmd.Wait(); err != nil {
		t.Fatalf("the SQLite server did not stop cleanly: %v", err)
	}
	dbPath := filepath.Join(s.data, "shipgate.db")
	lite, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	storetest.GenerateLater(t, lite, "shop", "v2")
	want, err := lite.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := lite.Close(); err != nil {
		t.Fatal(err)
	}
	if u := routeTotal(want); u == 0 {
		t.Fatalf("no route usage recorded by the SQLite server: %+v", want.RouteUsage)
	}

	// 2. shipgate store migrate, as a process, the password in a file.
	secret := "pw-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	dsn := pgtest.Shared(t).NewDatabase(t)
	pwFile := filepath.Join(dir, "pgpass")
	if err := os.WriteFile(pwFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	migrate := exec.Command(shipgateBin, "-o", "json", "--data", s.data, "store", "migrate", "--from", "sqlite:"+dbPath, "--to", dsn, "--to-password-file", pwFile)
	began := time.Now()
	out, err := migrate.CombinedOutput()
	t.Logf("store migrate of %d rollouts and %d audit events: %s", len(want.Rollouts), len(want.Audit), time.Since(began).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("store migrate: %v\n%s", err, out)
	}
	if strings.Contains(string(out)+strings.Join(migrate.Args, " "), secret) {
		t.Errorf("store migrate shows the password: %s", out)
	}
	var copied struct {
		store.Counts
		ChainVerified bool `json:"chain_verified"`
	}
	if err := json.Unmarshal(out, &copied); err != nil {
		t.Fatalf("store migrate output %q: %v", out, err)
	}
	if copied.Counts != want.Counts() || !copied.ChainVerified {
		t.Fatalf("store migrate copied %+v (chain verified %v), want %+v", copied.Counts, copied.ChainVerified, want.Counts())
	}

	// 3. A server on PostgreSQL, the whole URL with its password in
	// $SHIPGATE_STORE, the same data dir: it adopts the running instances.
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), secret)
	s.env = []string{"SHIPGATE_STORE=" + u.String()}
	for _, f := range []string{dbPath, dbPath + "-wal", dbPath + "-shm"} { // nothing may read the old file
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	began = time.Now()
	s.start()
	t.Logf("server on PostgreSQL serving after %s", time.Since(began).Round(time.Millisecond))
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", s.cmd.Process.Pid)); err != nil || strings.Contains(string(cmdline), secret) {
		t.Errorf("the server's command line holds the password (%v): %q", err, cmdline)
	}

	// The same history, through the API.
	history, err := client.History(ctx, "shop", "production", 100)
	if err != nil {
		t.Fatal(err)
	}
	if got, wantIDs := rolloutIDs(history), reversedIDs(want.Rollouts); !slices.Equal(got, wantIDs) {
		t.Errorf("history on PostgreSQL = rollouts %v, want %v", got, wantIDs)
	}
	st, err := client.Status(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if env := findEnv(st, "production"); env == nil || env.State == nil || env.State.Stable != "v2" {
		t.Errorf("status on PostgreSQL = %+v, want v2 stable in production", st)
	}
	after := auditVerify(t, s)
	if after.Events < before.Events {
		t.Errorf("shipgate audit verify: %d events on PostgreSQL, %d on SQLite", after.Events, before.Events)
	}
	chain := apiChain(t, client)
	if err := audit.Verify(chain); err != nil {
		t.Errorf("the chain read through the API does not verify: %v", err)
	}
	if len(chain) < len(want.Audit) || !reflect.DeepEqual(hashes(chain[:len(want.Audit)]), hashes(want.Audit)) {
		t.Errorf("the chain on PostgreSQL does not begin with the %d events of SQLite (it has %d)", len(want.Audit), len(chain))
	}
	if _, err := api.NewClient(s.api, ci.Secret, nil).Status(ctx, "shop"); err != nil {
		t.Errorf("the ci token made on SQLite, on PostgreSQL: %v", err)
	}
	if fl, err := client.ListFlags(ctx); err != nil || len(fl) != 1 || fl[0].Key != "new-checkout" {
		t.Errorf("flags on PostgreSQL = %+v, %v", fl, err)
	}
	incidents, err := client.ListIncidents(ctx, "shop", "production")
	if err != nil || len(incidents) != 3 || incidents[0].ID != in.ID || incidents[0].Title != "slow checkout" {
		t.Errorf("incidents on PostgreSQL = %+v, %v; want the one opened on SQLite and two more", incidents, err)
	}
	if ns, err := client.Notifications(ctx, "", 100); err != nil || len(ns) != len(want.Outbox) {
		t.Errorf("notifications on PostgreSQL = %d, %v; want %d", len(ns), err, len(want.Outbox))
	}
	if flaky, err := client.FlakyTests(ctx, "shop"); err != nil || len(flaky) == 0 {
		t.Errorf("flaky tests on PostgreSQL = %+v, %v; want cart.add from the copied runs", flaky, err)
	}
	if rt, err := client.GetRetirement(ctx, want.Retirements[0].ID); err != nil || rt.Stage != retire.StageWatch {
		t.Errorf("retirement on PostgreSQL = %+v, %v", rt, err)
	}

	// The engine goes on on PostgreSQL: the next deploy, under load, takes
	// the next rollout ID and fails no request.
	r, err = client.Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "v3"})
	if err != nil {
		t.Fatal(err)
	}
	if got, wantID := r.ID, want.Rollouts[len(want.Rollouts)-1].ID+1; got != wantID {
		t.Errorf("first rollout on PostgreSQL has ID %d, want %d", got, wantID)
	}
	if r = s.waitRollout(client, r.ID, func(r rollout.Rollout) bool { return r.Phase.Final() }); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v3 on PostgreSQL ended %s: %s", r.Phase, r.Reason)
	}
	load.Stop()
	if fails := load.Failures(); len(fails) != 0 {
		t.Errorf("%d requests failed across the move to PostgreSQL, first %+v", len(fails), fails[0])
	}
	if err := audit.Verify(apiChain(t, client)); err != nil {
		t.Errorf("the chain after a rollout on PostgreSQL: %v", err)
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
	logs, err := os.ReadFile(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(logs), secret) {
		t.Errorf("the server's log holds the password")
	}
	if !strings.Contains(string(logs), "postgres://") || !strings.Contains(string(logs), ":xxxxx@") {
		t.Errorf("the server's log does not name its store, password redacted")
	}
}

// verifyResult is what shipgate audit verify -o json says.
type verifyResult struct {
	OK     bool  `json:"ok"`
	Events int   `json:"events"`
	Last   int64 `json:"last_seq"`
}

// auditVerify runs shipgate audit verify against the server of s, as a
// user would, and expects the chain to verify.
func auditVerify(t *testing.T, s *serverProc) verifyResult {
	t.Helper()
	out, err := exec.Command(shipgateBin, "-o", "json", "--data", s.data, "--server", s.api, "audit", "verify").Output()
	var v verifyResult
	if jerr := json.Unmarshal(out, &v); err != nil || jerr != nil || !v.OK || v.Events == 0 {
		t.Fatalf("shipgate audit verify: %v, %q", err, out)
	}
	return v
}

func routeTotal(s *store.Snapshot) uint64 {
	var n uint64
	for _, d := range s.RouteUsage {
		n += d.Count
	}
	return n
}

func rolloutIDs(rs []rollout.Rollout) []int64 {
	var ids []int64
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	return ids
}

// reversedIDs are the IDs of rs, newest first, as History lists them.
func reversedIDs(rs []rollout.Rollout) []int64 {
	ids := rolloutIDs(rs)
	slices.Reverse(ids)
	return ids
}

func findEnv(st rollout.AppStatus, name string) *rollout.EnvStatus {
	for i := range st.Envs {
		if st.Envs[i].Env == name {
			return &st.Envs[i]
		}
	}
	return nil
}

// apiChain reads the whole audit chain through the API, page by page.
func apiChain(t *testing.T, c *api.Client) []audit.Event {
	t.Helper()
	var chain []audit.Event
	for {
		page, err := c.AuditChain(context.Background(), int64(len(chain)+1), 1000)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, page...)
		if len(page) < 1000 {
			return chain
		}
	}
}

func hashes(events []audit.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Hash
	}
	return out
}
