package cli

import (
	"database/sql"
	"strings"
	"testing"

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
