package server_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/pgtest"
	"github.com/shipgate/shipgate/internal/rollout"
)

// The releases' migrations live in testdata/migrations/<version>: v2 adds
// two reversible migrations, v3's second migration fails at its second
// statement, v4's down of 003 is only a comment.
func TestE2E_MigrationsRevertedByRollbackAndStoppedWhenOneFails(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			var url, driver, dsn string
			switch dialect {
			case "sqlite":
				path := filepath.Join(t.TempDir(), "shop.db")
				url, driver, dsn = "sqlite:"+path, "sqlite", path
			case "postgres":
				url = pgtest.Shared(t).NewDatabase(t)
				driver, dsn = "pgx", url
			}
			dir, err := filepath.Abs("testdata/migrations")
			if err != nil {
				t.Fatal(err)
			}
			p := startYAML(t, fmt.Sprintf(`app: shop
`+baseVars+baseRun+`migrations:
  dir: %s/${VERSION}
  database: %s
environments:
  production:
    listen: 127.0.0.1:%d
    sticky: {header: X-User-ID}
strategy:
  canary: {steps: [{weight: 20, bake: 20s}], scale_down_delay: 1s}
`+baseAnalysis, shopBin, dir, url, freePort(t)))
			db, err := sql.Open(driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			version := func() int64 {
				t.Helper()
				var v int64
				if err := db.QueryRow(`SELECT COALESCE(MAX(version), 0) FROM shipgate_schema_migrations`).Scan(&v); err != nil {
					t.Fatal(err)
				}
				return v
			}
			hasColumn := func(table, column string) bool {
				rows, err := db.Query("SELECT * FROM " + table + " WHERE 1 = 0")
				if err != nil {
					return false
				}
				defer rows.Close()
				cols, _ := rows.Columns()
				for _, c := range cols {
					if c == column {
						return true
					}
				}
				return false
			}

			if r := p.deploy(t, "v1", nil); r.Phase != rollout.PhaseSucceeded {
				t.Fatalf("v1: %s %s", r.Phase, r.Reason)
			}
			if got := version(); got != 2 {
				t.Fatalf("after v1 the database is at version %d, want 2", got)
			}
			if _, err := db.Exec(`INSERT INTO orders (id, total_cents) VALUES (1, 1250)`); err != nil {
				t.Fatal(err)
			}

			// A bad canary with migrations: traffic back, downs run, all by itself.
			load := p.load(t, 150)
			time.Sleep(time.Second)
			r := p.deploy(t, "v2", map[string]string{"PAY_FAIL_RATE": "0.4"})
			if r.Phase != rollout.PhaseRolledBack {
				t.Fatalf("v2 ended %s (%s), want rolled back", r.Phase, r.Reason)
			}
			if got := version(); got != 2 {
				t.Fatalf("after the rollback the database is at version %d, want 2", got)
			}
			if hasColumn("orders", "coupon_code") || hasColumn("coupons", "code") {
				t.Fatal("v2's schema changes are still there after the rollback")
			}
			p.onlyVersion(t, "v1", 10)
			events := auditActions(t, p, "shop/production/v2")
			up, okUp := hasAction(events, audit.ActionMigrateUp)
			down, okDown := hasAction(events, audit.ActionMigrateDown)
			if !okUp || !okDown || up.Data["versions"] != "3,4" || down.Data["versions"] != "4,3" {
				t.Fatalf("audit: up %v (%v), down %v (%v); want up 3,4 and down 4,3", okUp, up.Data, okDown, down.Data)
			}
			load.Stop()

			// A migration that fails halfway: the rollout stops, the state
			// says where, the data is as the last good migration left it.
			r = p.deploy(t, "v3", nil)
			if r.Phase != rollout.PhaseFailed || !r.MigrationFailed {
				t.Fatalf("v3 ended %s (%s), want failed at its migration", r.Phase, r.Reason)
			}
			if !strings.Contains(r.MigrationStatus, "statement 2 of 4_add_region up") {
				t.Fatalf("migration status %q does not say where it stopped", r.MigrationStatus)
			}
			if got := version(); got != 3 {
				t.Fatalf("after the failure the database is at version %d, want 3 (the last good one)", got)
			}
			if hasColumn("orders", "region") {
				t.Fatal("the failed migration's first statement stayed: it must roll back with its transaction")
			}
			var total int
			if err := db.QueryRow(`SELECT total_cents FROM orders WHERE id = 1`).Scan(&total); err != nil || total != 1250 {
				t.Fatalf("order 1: %d, %v; want its data untouched", total, err)
			}
			if !r.FirstTrafficAt.IsZero() {
				t.Fatal("v3 got user traffic although its migration failed")
			}
			p.onlyVersion(t, "v1", 5)

			// A release whose down does nothing is refused before anything starts.
			_, err = p.Engine.Deploy(context.Background(), rollout.DeployRequest{App: "shop", Version: "v4", Actor: "user:test"})
			var ge *rollout.GateError
			if !errors.As(err, &ge) || ge.Gate != "migrations" || !strings.Contains(err.Error(), "003") {
				t.Fatalf("v4: %v, want the migrations gate naming 003", err)
			}
		})
	}
}
