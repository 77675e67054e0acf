package cli

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/shipgate/shipgate/internal/audit"

	_ "modernc.org/sqlite" // the driver, to alter the database behind the store's back
)

// TestCLI_AuditVerify is item 15 of issue 10: `shipgate audit verify`
// checks the hash chain on the client, over the real API and store, and
// finds an event altered in the database.
func TestCLI_AuditVerify(t *testing.T) {
	e, srv := startTokenCLI(t)
	for _, name := range []string{"ci", "dash", "ops"} {
		e.run(t, "token", "create", name, "--role", "viewer").wantCode(t, ExitOK)
	}
	r := e.run(t, "audit", "verify")
	r.wantCode(t, ExitOK)
	if want := "audit chain ok: 3 events, seq 1 to 3"; !strings.Contains(r.stdout, want) {
		t.Fatalf("stdout does not say %q:\n%s", want, r.stdout)
	}

	db, err := sql.Open("sqlite", srv.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Someone with the database file drops the append-only trigger and
	// rewrites history.
	for _, q := range []string{`DROP TRIGGER audit_events_no_update`, `UPDATE audit_events SET reason = 'nothing to see' WHERE seq = 2`} {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	r = e.run(t, "audit", "verify", "-o", "json")
	r.wantCode(t, ExitFailure)
	var res auditVerifyResult
	decodeOne(t, r.stdout, &res)
	if res.OK || res.BadSeq != 2 || res.Events != 0 {
		t.Fatalf("verify = %+v, want broken at seq 2", res)
	}
}

// TestCLI_AuditFilters checks that an unknown --action is an error
// naming the known ones, and that --subject rollout/N is accepted.
func TestCLI_AuditFilters(t *testing.T) {
	e, _ := startTokenCLI(t)
	r := e.run(t, "audit", "--action", "bogus")
	r.wantCode(t, ExitInvalid)
	if want := `unknown action "bogus"; the actions are deploy,`; !strings.Contains(r.stderr, want) {
		t.Fatalf("stderr does not say %q:\n%s", want, r.stderr)
	}
	e.run(t, "audit", "--action", "token.create").wantCode(t, ExitOK)
}

// TestCLI_AuditShowsOutcome: an event whose outcome is not "ok" (a reload
// refused, a drill failed) says so in the text table. The table showed
// a refused SIGHUP reload exactly as a done one ("config.apply ... SIGHUP"),
// found by reloading a broken apps/ dir as a new user would; only -o json
// had the outcome.
func TestCLI_AuditShowsOutcome(t *testing.T) {
	e := newEnv(t)
	e.svc.events = []audit.Event{
		{Seq: 12, Time: t0, Actor: "signal:SIGHUP", Action: "config.apply", Subject: "config", Reason: "SIGHUP", Outcome: "refused",
			Data: map[string]string{"error": "apps/zz.yaml:2: invalid YAML"}},
		{Seq: 11, Time: t0, Actor: "signal:SIGHUP", Action: "config.apply", Subject: "config", Reason: "SIGHUP", Outcome: "ok"},
		{Seq: 10, Time: t0, Actor: "user:ci", Action: "deploy", Subject: "shop/production/v2"},
	}
	r := e.run(t, "audit")
	r.wantCode(t, ExitOK)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and 3 rows:\n%s", r.stdout)
	}
	if !strings.HasSuffix(lines[1], "SIGHUP (refused: apps/zz.yaml:2: invalid YAML)") {
		t.Fatalf("the refused reload does not say so: %q", lines[1])
	}
	if strings.Contains(lines[2], "refused") || strings.Contains(lines[2], "ok") || !strings.HasSuffix(lines[2], "SIGHUP") {
		t.Fatalf("the done reload: %q, want its reason alone", lines[2])
	}
	if strings.Contains(lines[3], "(") {
		t.Fatalf("the deploy: %q", lines[3])
	}
}
