package server_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/cli"
	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/pgtest"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/server"
)

// TestStoreMigrate_KeepsReleaseDigests moves a server whose canary was
// approved and is mid-bake from SQLite to PostgreSQL with `shipgate store
// migrate`. The release digests are an HMAC under a server secret of the
// store: were the secret not copied, the server on PostgreSQL would make
// a new one, the approval would no longer match the release and the
// promotion would roll the canary back ("the approval ... is void"), and
// the release recorded again with the same variables would get another
// digest in the audit log. With it copied, the rollout is promoted, and
// the release recorded again is the same release with the same digest.
func TestStoreMigrate_KeepsReleaseDigests(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "shipgate.yaml")
	yaml := fmt.Sprintf(`app: shop
`+baseVars+baseRun+`environments:
  production:
    listen: 127.0.0.1:%d
    gates: {approval: true}
strategy:
  canary: {steps: [{weight: 50, bake: 10m}], scale_down_delay: 1s}
analysis: {interval: 500ms, min_requests: 1, gates: [{metric: error_rate, max: 0.5}]}
smoke: [{path: /healthz}]
`, shopBin, freePort(t))
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	logs := &syncBuffer{}
	start := func(store string) *server.ControlPlane {
		t.Helper()
		cp, err := server.Start(ctx, server.Options{Config: cfg, DataDir: data, Listen: "127.0.0.1:0", Store: store, ServerID: "s1",
			LeaseTTL: time.Second, Tick: 50 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		if err != nil {
			t.Fatalf("start on %q: %v", store, err)
		}
		return cp
	}
	waitRollout := func(c *api.Client, id int64, what string, done func(rollout.Rollout) bool) rollout.Rollout {
		t.Helper()
		var r rollout.Rollout
		waitForCond(t, what, func() bool {
			var err error
			r, err = c.GetRollout(ctx, id)
			return err == nil && done(r)
		})
		return r
	}
	releaseDigests := func(c *api.Client) []string {
		t.Helper()
		evs, err := c.Audit(ctx, audit.Filter{Subject: "shop/v1", Action: audit.ActionRelease, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range evs {
			out = append(out, e.Data["digest"])
		}
		return out
	}
	vars := map[string]string{"MERCHANT_ID": "m-7"}

	// 1. On SQLite: v0 live; v1 recorded, deployed, approved, baking at
	// 50%.
	lite := start("")
	c := api.NewClient(lite.APIURL, lite.AdminToken, nil)
	r0, err := c.Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "v0"})
	if err != nil {
		t.Fatal(err)
	}
	waitRollout(c, r0.ID, "v0 waits for approval", func(r rollout.Rollout) bool {
		return r.StepIndex < len(r.Steps) && r.Steps[r.StepIndex].Kind == rollout.StepApproval
	})
	if _, err := c.Approve(ctx, rollout.ApproveRequest{App: "shop", Actor: "user:alice"}); err != nil {
		t.Fatal(err)
	}
	if r0 = waitRollout(c, r0.ID, "v0 ends", func(r rollout.Rollout) bool { return r.Phase.Final() }); r0.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v0 ended %s: %s", r0.Phase, r0.Reason)
	}
	if _, err := c.CreateRelease(ctx, rollout.ReleaseRequest{App: "shop", Version: "v1", Commit: "c1", Vars: vars, Actor: "user:ci"}); err != nil {
		t.Fatal(err)
	}
	before := releaseDigests(c)
	if len(before) != 1 || before[0] == "" {
		t.Fatalf("release.record digests on SQLite = %q, want one", before)
	}
	r, err := c.Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "v1", Vars: vars})
	if err != nil {
		t.Fatal(err)
	}
	waitRollout(c, r.ID, "v1 waits for approval", func(r rollout.Rollout) bool {
		return r.StepIndex < len(r.Steps) && r.Steps[r.StepIndex].Kind == rollout.StepApproval
	})
	if _, err := c.Approve(ctx, rollout.ApproveRequest{App: "shop", Actor: "user:alice"}); err != nil {
		t.Fatal(err)
	}
	waitRollout(c, r.ID, "v1 bakes at 50% after its approval", func(r rollout.Rollout) bool {
		return r.Approval != nil && r.StepIndex < len(r.Steps) && r.Steps[r.StepIndex].Kind == rollout.StepWeight
	})
	if err := lite.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// 2. shipgate store migrate.
	dsn := pgtest.Shared(t).NewDatabase(t)
	var out, errOut bytes.Buffer
	if code := cli.Main(ctx, []string{"--data", data, "store", "migrate", "--from", "sqlite:" + filepath.Join(data, "shipgate.db"), "--to", dsn},
		strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("store migrate exited %d: %s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "1 server secrets") {
		t.Errorf("store migrate output does not count the server secret:\n%s", out.String())
	}

	// 3. On PostgreSQL: the approval still holds, the promotion goes on.
	pg := start(dsn)
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = pg.StopInstances(cctx)
		_ = pg.Close(cctx)
	}()
	c = api.NewClient(pg.APIURL, pg.AdminToken, nil)
	waitRollout(c, r.ID, "the server on PostgreSQL resumes the bake", func(r rollout.Rollout) bool {
		return r.Phase == rollout.PhaseRunning && r.Steps[r.StepIndex].Kind == rollout.StepWeight
	})
	if _, err := c.Promote(ctx, rollout.PromoteRequest{App: "shop", Actor: "user:alice", Reason: "bake seen"}); err != nil {
		t.Fatal(err)
	}
	got := waitRollout(c, r.ID, "v1 ends", func(r rollout.Rollout) bool { return r.Phase.Final() })
	if got.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v1 after store migrate ended %s (%s), want succeeded: the approval must still match the release", got.Phase, got.Reason)
	}
	if voids, err := c.Audit(ctx, audit.Filter{Action: audit.ActionApprovalVoid}); err != nil || len(voids) != 0 {
		t.Errorf("approval.void events after the migration: %v, %v", voids, err)
	}

	// The same release recorded again, with the same variables, is
	// accepted as the same release, with the same digest.
	if _, err := c.CreateRelease(ctx, rollout.ReleaseRequest{App: "shop", Version: "v1", Commit: "c1", Vars: vars, Actor: "user:ci"}); err != nil {
		t.Fatalf("v1 recorded again with the same variables after the migration: %v", err)
	}
	after := releaseDigests(c)
	if len(after) != 2 || after[0] != before[0] || after[1] != before[0] {
		t.Errorf("release.record digests of v1 after the migration = %q, want twice %q", after, before[0])
	}
	// A re-deploy of a release recorded before the migration, with the
	// same variables, is accepted as that release.
	relV0, err := c.GetRelease(ctx, "shop", "v0")
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "v0"})
	if err != nil {
		t.Fatalf("re-deploy of v0 after the migration: %v", err)
	}
	if got, err := c.GetRelease(ctx, "shop", "v0"); err != nil || !got.CreatedAt.Equal(relV0.CreatedAt) || got.Commit != relV0.Commit {
		t.Errorf("v0 after its re-deploy = %+v (%v), want the release recorded before the migration %+v", got, err, relV0)
	}
	if again.Version != "v0" || again.ID <= r.ID {
		t.Errorf("re-deploy of v0 = rollout %d of %s, want a new rollout of v0", again.ID, again.Version)
	}
	// And with other variables it is still refused.
	_, err = c.CreateRelease(ctx, rollout.ReleaseRequest{App: "shop", Version: "v1", Commit: "c1", Vars: map[string]string{"MERCHANT_ID": "m-8"}, Actor: "user:ci"})
	if ae := api.ErrorOf(err); err == nil || ae.Status != 409 {
		t.Errorf("v1 recorded again with other variables = %v, want a conflict", err)
	}
}
