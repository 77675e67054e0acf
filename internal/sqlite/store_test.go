package sqlite

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/rollout"
)

// t0 is a fixed time in UTC, so that values read back compare with
// reflect.DeepEqual.
var t0 = time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)

func openStore(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "shipgate.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

// rawDB opens the database file directly, as an operator with the sqlite3
// shell would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func count(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func newRollout(app, env, version string) rollout.Rollout {
	return rollout.Rollout{
		App:         app,
		Env:         env,
		Kind:        rollout.KindDeploy,
		Version:     version,
		FromVersion: "v0",
		Phase:       rollout.PhaseRunning,
		Steps: []rollout.Step{
			{Kind: rollout.StepStart},
			{Kind: rollout.StepWeight, Weight: 5, Duration: 10 * time.Minute},
			{Kind: rollout.StepPromote},
		},
		StepIndex:     1,
		StepStartedAt: t0,
		Weight:        5,
		Seed:          "seed-" + version,
		New:           []rollout.Instance{{ID: app + "-" + env + "-" + version + "-1", App: app, Env: env, Version: version, Addr: "127.0.0.1:9001", PID: 4242}},
		Old:           []rollout.Instance{{ID: app + "-" + env + "-v0-1", App: app, Env: env, Version: "v0", Addr: "127.0.0.1:9000"}},
		Actor:         "user:alice",
		Reason:        "new checkout",
		Analysis: &rollout.Judgement{
			At:      t0.Add(time.Minute),
			Verdict: analysis.Pass,
			Results: []analysis.Result{{Gate: "error_rate <= 0.5%", Verdict: analysis.Pass, Value: 0.001, Threshold: 0.005, Detail: "1 of 1000"}},
			Canary:  rollout.Summary{Requests: 1000, Errors: 1, ErrorRate: 0.001, P50: 3 * time.Millisecond, P99: 40 * time.Millisecond},
			Stable:  rollout.Summary{Requests: 19000, Errors: 19, ErrorRate: 0.001, P50: 3 * time.Millisecond, P99: 38 * time.Millisecond},
		},
		FirstTrafficAt: t0.Add(30 * time.Second),
		CreatedAt:      t0,
		UpdatedAt:      t0.Add(time.Minute),
	}
}

func event(action, subject string) audit.Event {
	return audit.Event{
		Time:    t0,
		Actor:   "user:alice",
		Action:  action,
		Subject: subject,
		Reason:  "because",
		Outcome: "ok",
		Data:    map[string]string{"weight": "5", "gate": "error_rate"},
	}
}

func TestOpen_Pragmas(t *testing.T) {
	s, _ := openStore(t)
	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", strconv.FormatInt(busyTimeout.Milliseconds(), 10)},
	}
	for _, tt := range tests {
		t.Run(tt.pragma, func(t *testing.T) {
			var got string
			if err := s.write.QueryRowContext(t.Context(), "PRAGMA "+tt.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("PRAGMA %s = %s, want %s", tt.pragma, got, tt.want)
			}
		})
	}
}

func TestOpen_Path(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		wantErr bool
	}{
		{"plain", "shipgate.db", false},
		{"question mark and hash", "odd?name#1.db", false},
		{"space and percent", "my state %20.db", false},
		{"memory", ":memory:", true},
		{"empty", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.file
			if path != ":memory:" && path != "" {
				path = filepath.Join(t.TempDir(), tt.file)
			}
			s, err := Open(t.Context(), path)
			if tt.wantErr {
				if err == nil {
					_ = s.Close()
					t.Fatal("Open succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer func() { _ = s.Close() }()
			if _, err := os.Stat(path); err != nil {
				t.Errorf("database not created at %q: %v", path, err)
			}
		})
	}
}

func TestStore_PutRelease(t *testing.T) {
	s, _ := openStore(t)
	ctx := t.Context()
	first := rollout.Release{App: "shop", Version: "v2", Commit: "abc123", Vars: map[string]string{"MODE": "fast"}, CreatedAt: t0}
	if err := s.PutRelease(ctx, first); err != nil {
		t.Fatalf("PutRelease: %v", err)
	}

	tests := []struct {
		name    string
		release rollout.Release
		wantErr error
	}{
		{"same again", first, nil},
		{"same with a later time", rollout.Release{App: "shop", Version: "v2", Commit: "abc123", Vars: map[string]string{"MODE": "fast"}, CreatedAt: t0.Add(time.Hour)}, nil},
		{"other commit", rollout.Release{App: "shop", Version: "v2", Commit: "def456", Vars: map[string]string{"MODE": "fast"}}, rollout.ErrConflict},
		{"other vars", rollout.Release{App: "shop", Version: "v2", Commit: "abc123", Vars: map[string]string{"MODE": "slow"}}, rollout.ErrConflict},
		{"no vars", rollout.Release{App: "shop", Version: "v2", Commit: "abc123"}, rollout.ErrConflict},
		{"same version of another app", rollout.Release{App: "api", Version: "v2", Commit: "def456"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.PutRelease(ctx, tt.release)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("PutRelease = %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "version exists") {
				t.Errorf("error %q does not say the version exists", err)
			}
		})
	}

	got, err := s.GetRelease(ctx, "shop", "v2")
	if err != nil {
		t.Fatalf("GetRelease: %v", err)
	}
	if !reflect.DeepEqual(got, first) {
		t.Errorf("GetRelease = %+v, want the first one %+v", got, first)
	}
	if _, err := s.GetRelease(ctx, "shop", "v9"); !errors.Is(err, rollout.ErrNotFound) {
		t.Errorf("GetRelease(v9) = %v, want ErrNotFound", err)
	}
}

func TestStore_PutRelease_NilAndEmptyVars(t *testing.T) {
	s, _ := openStore(t)
	ctx := t.Context()
	if err := s.PutRelease(ctx, rollout.Release{App: "shop", Version: "v1", Commit: "abc"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRelease(ctx, rollout.Release{App: "shop", Version: "v1", Commit: "abc", Vars: map[string]string{}}); err != nil {
		t.Errorf("PutRelease with empty vars after nil vars = %v, want nil", err)
	}
	got, err := s.GetRelease(ctx, "shop", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Vars != nil || got.CreatedAt.IsZero() {
		t.Errorf("GetRelease = %+v, want nil vars and CreatedAt set to now", got)
	}
}

func TestStore_Commit_RoundTrip(t *testing.T) {
	s, _ := openStore(t)
	ctx := t.Context()
	r := newRollout("shop", "production", "v2")
	env := rollout.EnvState{
		App: "shop", Env: "production", Stable: "v1", Previous: "v0",
		Instances: []rollout.Instance{{ID: "shop-production-v1-1", App: "shop", Env: "production", Version: "v1", Addr: "127.0.0.1:9000", PID: 7}},
		UpdatedAt: t0,
	}
	events := []audit.Event{event(audit.ActionDeploy, "shop/production/v2"), event(audit.ActionStep, "rollout/1")}
	events[1].Time = time.Time{} // the store fills it in
	events[1].Data = nil

	before := time.Now().UTC()
	if err := s.Commit(ctx, rollout.Change{Rollout: &r, Env: &env, Audit: events}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if r.ID == 0 {
		t.Fatal("Commit did not set the rollout's ID")
	}
	for i, e := range events {
		if got, want := e.Seq, int64(i+1); got != want {
			t.Errorf("events[%d].Seq = %d, want %d", i, got, want)
		}
		if e.Hash != e.ComputeHash() {
			t.Errorf("events[%d].Hash = %q, want ComputeHash %q", i, e.Hash, e.ComputeHash())
		}
	}
	if events[1].Time.Before(before) || events[1].Time.Location() != time.UTC {
		t.Errorf("zero event time became %v, want now in UTC", events[1].Time)
	}

	gotR, err := s.GetRollout(ctx, r.ID)
	if err != nil {
		t.Fatalf("GetRollout: %v", err)
	}
	if !reflect.DeepEqual(gotR, r) {
		t.Errorf("GetRollout =\n%+v\nwant\n%+v", gotR, r)
	}
	gotEnv, err := s.GetEnvState(ctx, "shop", "production")
	if err != nil {
		t.Fatalf("GetEnvState: %v", err)
	}
	if !reflect.DeepEqual(gotEnv, env) {
		t.Errorf("GetEnvState = %+v, want %+v", gotEnv, env)
	}
	gotEvents, err := s.AuditChain(ctx, 1)
	if err != nil {
		t.Fatalf("AuditChain: %v", err)
	}
	if !reflect.DeepEqual(gotEvents, events) {
		t.Errorf("AuditChain =\n%+v\nwant\n%+v", gotEvents, events)
	}
}

func TestStore_Commit_Defaults(t *testing.T) {
	s, _ := openStore(t)
	ctx := t.Context()
	fixed := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	s.now = func() time.Time { return fixed }

	r := rollout.Rollout{App: "shop", Env: "staging", Version: "v1", Phase: rollout.PhaseRunning}
	env := rollout.EnvState{App: "shop", Env: "staging", Stable: "v1"}
	if err := s.Commit(ctx, rollout.Change{Rollout: &r, Env: &env}); err != nil {
		t.Fatal(err)
	}
	if !r.CreatedAt.Equal(fixed) || !r.UpdatedAt.Equal(fixed) || !env.UpdatedAt.Equal(fixed) {
		t.Errorf("zero times became %v %v %v, want %v", r.CreatedAt, r.UpdatedAt, env.UpdatedAt, fixed)
	}
	got, err := s.GetRollout(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.CreatedAt.Equal(fixed) {
		t.Errorf("stored CreatedAt = %v, want %v", got.CreatedAt, fixed)
	}
}

func TestStore_Commit_Update(t *testing.T) {
	s, _ := openStore(t)
	ctx := t.Context()
	r := newRollout("shop", "production", "v2")
	if err := s.Commit(ctx, rollout.Change{Rollout: &r}); err != nil {
		t.Fatal(err)
	}
	id := r.ID

	r.Phase = rollout.PhaseSucceeded
	r.StepIndex = len(r.Steps)
	r.Weight = 100
	r.PromotedAt = t0.Add(time.Hour)
	r.FinishedAt = t0.Add(2 * time.Hour)
	if err := s.Commit(ctx, rollout.Change{Rollout: &r, Audit: []audit.Event{event(audit.ActionSucceed, "rollout/1")}}); err != nil {
		t.Fatalf("Commit update: %v", err)
	}
	if r.ID != id {
		t.Errorf("update changed the ID from %d to %d", id, r.ID)
	}
	got, err := s.GetRollout(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("GetRollout after update =\n%+v\nwant\n%+v", got, r)
	}
	if _, err := s.GetRollout(ctx, id+1); !errors.Is(err, rollout.ErrNotFound) {
		t.Errorf("GetRollout(%d) = %v, want ErrNotFound", id+1, err)
	}
	if _, err := s.GetEnvState(ctx, "shop", "staging"); !errors.Is(err, rollout.ErrNotFound) {
		t.Errorf("GetEnvState before any deploy = %v, want ErrNotFound", err)
	}
}

func TestStore_ActiveRollouts(t *testing.T) {
	s, _ := openStore(t)
	ctx := t.Context()
	phases := []rollout.Phase{
		rollout.PhaseSucceeded, rollout.PhaseRunning, rollout.PhaseRolledBack,
		rollout.PhaseRollingBack, rollout.PhaseFailed, rollout.PhaseRunning,
	}
	var want []int64
	for i, p := range phases {
		r := newRollout("shop", "env"+strconv.Itoa(i), "v1")
		r.Phase = p
		if err := s.Commit(ctx, rollout.Change{Rollout: &r}); err != nil {
			t.Fatal(err)
		}
		if !p.Final() {
			want = append(want, r.ID)
		}
	}
	// A rollout that finishes leaves the active set.
	last := want[len(want)-1]
	r, err := s.GetRollout(ctx, last)
	if err != nil {
		t.Fatal(err)
	}
	r.Phase = rollout.PhaseFailed
	if err := s.Commit(ctx, rollout.Change{Rollout: &r}); err != nil {
		t.Fatal(err)
	}
	want = want[:len(want)-1]

	active, err := s.ActiveRollouts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, r := range active {
		got = append(got, r.ID)
		if r.Phase.Final() {
			t.Errorf("active rollout %d has final phase %s", r.ID, r.Phase)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ActiveRollouts IDs = %v, want %v (oldest first)", got, want)
	}
}

func TestStore_ListRollouts(t *testing.T) {
	s, _ := openStore(t)
	ctx := t.Context()
	ids := map[string][]int64{} // app/env -> IDs, oldest first
	for i := range 60 {
		app, env := "shop", "production"
		switch i % 3 {
		case 1:
			env = "staging"
		case 2:
			app = "api"
		}
		r := newRollout(app, env, "v"+strconv.Itoa(i))
		if err := s.Commit(ctx, rollout.Change{Rollout: &r}); err != nil {
			t.Fatal(err)
		}
		ids[app+"/"+env] = append(ids[app+"/"+env], r.ID)
		ids[app+"/"] = append(ids[app+"/"], r.ID)
		ids["/"] = append(ids["/"], r.ID)
	}
	newest := func(key string, n int) []int64 {
		all := ids[key]
		var out []int64
		for i := len(all) - 1; i >= 0 && len(out) < n; i-- {
			out = append(out, all[i])
		}
		return out
	}

	tests := []struct {
		name     string
		app, env string
		limit    int
		want     []int64
	}{
		{"one env", "shop", "production", 5, newest("shop/production", 5)},
		{"all envs of an app", "shop", "", 7, newest("shop/", 7)},
		{"limit above count", "api", "", 100, newest("api/", 100)},
		{"zero limit means 50", "", "", 0, newest("/", 50)},
		{"negative limit means 50", "", "", -1, newest("/", 50)},
		{"unknown app", "nope", "", 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := s.ListRollouts(ctx, tt.app, tt.env, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, r := range rs {
				got = append(got, r.ID)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ListRollouts(%q, %q, %d) = %v, want %v", tt.app, tt.env, tt.limit, got, tt.want)
			}
		})
	}
}

func TestStore_EnvState_Replace(t *testing.T) {
	s, _ := openStore(t)
	ctx := t.Context()
	for _, stable := range []string{"v1", "v2", "v3"} {
		env := rollout.EnvState{App: "shop", Env: "production", Stable: stable, UpdatedAt: t0}
		if err := s.Commit(ctx, rollout.Change{Env: &env}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetEnvState(ctx, "shop", "production")
	if err != nil {
		t.Fatal(err)
	}
	if got.Stable != "v3" {
		t.Errorf("Stable = %q, want the last one written, v3", got.Stable)
	}
}

func TestStore_ListAudit(t *testing.T) {
	s, _ := openStore(t)
	ctx := t.Context()
	subjects := []string{
		"shop/production/v1", "shop/staging/v1", "shopping/production/v1", "Shop/production/v2",
		"a%b/1", "axb/1", "a_b/1", "rollout/1", "rollout/12", "shop/production/v2",
	}
	for i, subj := range subjects {
		action := audit.ActionDeploy
		if i%2 == 1 {
			action = audit.ActionStep
		}
		if err := s.Commit(ctx, rollout.Change{Audit: []audit.Event{event(action, subj)}}); err != nil {
			t.Fatal(err)
		}
	}
	// seq i+1 has subjects[i].
	tests := []struct {
		name   string
		filter audit.Filter
		want   []int64
	}{
		{"all, newest first", audit.Filter{}, []int64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}},
		{"subject prefix", audit.Filter{Subject: "shop/"}, []int64{10, 2, 1}},
		{"prefix is case sensitive", audit.Filter{Subject: "Shop"}, []int64{4}},
		{"percent is literal", audit.Filter{Subject: "a%"}, []int64{5}},
		{"underscore is literal", audit.Filter{Subject: "a_"}, []int64{7}},
		{"prefix, not exact", audit.Filter{Subject: "rollout/1"}, []int64{9, 8}},
		{"whole subject", audit.Filter{Subject: "shop/production/v1"}, []int64{1}},
		{"action", audit.Filter{Action: audit.ActionStep}, []int64{10, 8, 6, 4, 2}},
		{"subject and action", audit.Filter{Subject: "shop", Action: audit.ActionDeploy}, []int64{3, 1}},
		{"limit", audit.Filter{Limit: 3}, []int64{10, 9, 8}},
		{"no match", audit.Filter{Subject: "zzz"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := s.ListAudit(ctx, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, e := range events {
				got = append(got, e.Seq)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ListAudit(%+v) seqs = %v, want %v", tt.filter, got, tt.want)
			}
		})
	}
}

func TestStore_ListAudit_DefaultLimit(t *testing.T) {
	s, _ := openStore(t)
	ctx := t.Context()
	events := make([]audit.Event, 120)
	for i := range events {
		events[i] = event(audit.ActionStep, "rollout/1")
	}
	if err := s.Commit(ctx, rollout.Change{Audit: events}); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListAudit(ctx, audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 100 || got[0].Seq != 120 || got[99].Seq != 21 {
		t.Errorf("ListAudit with no limit: %d events from seq %d, want 100 from seq 120", len(got), got[0].Seq)
	}
}

func TestStore_AuditChain(t *testing.T) {
	s, _ := openStore(t)
	ctx := t.Context()
	for i := range 50 {
		r := newRollout("shop", "production", "v"+strconv.Itoa(i))
		events := []audit.Event{event(audit.ActionDeploy, "shop/production/v"+strconv.Itoa(i)), event(audit.ActionStep, "rollout/x")}
		if err := s.Commit(ctx, rollout.Change{Rollout: &r, Audit: events}); err != nil {
			t.Fatal(err)
		}
	}
	chain, err := s.AuditChain(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 100 {
		t.Fatalf("AuditChain(1) has %d events, want 100", len(chain))
	}
	if err := audit.Verify(chain); err != nil {
		t.Errorf("Verify whole chain: %v", err)
	}
	tail, err := s.AuditChain(ctx, 61)
	if err != nil {
		t.Fatal(err)
	}
	if len(tail) != 40 || tail[0].Seq != 61 {
		t.Fatalf("AuditChain(61) = %d events from seq %d, want 40 from 61", len(tail), tail[0].Seq)
	}
	if err := audit.Verify(tail); err != nil {
		t.Errorf("Verify tail: %v", err)
	}
}

// TestStore_AuditAppendOnly goes around the Store, straight to SQL, and
// expects the database itself to refuse changing the log.
func TestStore_AuditAppendOnly(t *testing.T) {
	s, path := openStore(t)
	ctx := t.Context()
	events := []audit.Event{event(audit.ActionDeploy, "shop/production/v1"), event(audit.ActionStep, "rollout/1")}
	if err := s.Commit(ctx, rollout.Change{Audit: events}); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)

	tests := []struct {
		name    string
		sql     string
		args    []any
		wantErr string
	}{
		{"update", `UPDATE audit_events SET reason = 'nothing happened' WHERE seq = 1`, nil, "append-only"},
		{"delete", `DELETE FROM audit_events WHERE seq = 2`, nil, "append-only"},
		{"delete all", `DELETE FROM audit_events`, nil, "append-only"},
		{"insert a gap", `INSERT INTO audit_events (seq, time, actor, action, subject, reason, outcome, data, prev_hash, hash)
			VALUES (5, '2024-01-01T00:00:00Z', 'a', 'b', '', '', '', '{}', ?, ?)`, []any{events[1].Hash, strings.Repeat("a", 64)}, "continue the chain"},
		{"insert a fork", `INSERT INTO audit_events (seq, time, actor, action, subject, reason, outcome, data, prev_hash, hash)
			VALUES (3, '2024-01-01T00:00:00Z', 'a', 'b', '', '', '', '{}', ?, ?)`, []any{events[0].Hash, strings.Repeat("a", 64)}, "continue the chain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.ExecContext(ctx, tt.sql, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("%s = %v, want an error containing %q", tt.name, err, tt.wantErr)
			}
		})
	}

	chain, err := s.AuditChain(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(chain, events) {
		t.Errorf("audit log changed:\n%+v\nwant\n%+v", chain, events)
	}
}

// TestStore_Commit_Atomic makes the last part of a Commit fail and expects
// neither the rollout, nor the env state, nor any event written, and the
// caller's values untouched.
func TestStore_Commit_Atomic(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name    string
		ctx     context.Context
		change  func() rollout.Change
		wantErr error
	}{
		{
			name: "second event has no action",
			ctx:  context.Background(),
			change: func() rollout.Change {
				r := newRollout("shop", "production", "v3")
				bad := event("", "rollout/2")
				return rollout.Change{Rollout: &r, Env: &rollout.EnvState{App: "shop", Env: "production", Stable: "v3"},
					Audit: []audit.Event{event(audit.ActionDeploy, "shop/production/v3"), bad}}
			},
		},
		{
			name: "cancelled context",
			ctx:  cancelled,
			change: func() rollout.Change {
				r := newRollout("shop", "production", "v3")
				return rollout.Change{Rollout: &r, Env: &rollout.EnvState{App: "shop", Env: "production", Stable: "v3"},
					Audit: []audit.Event{event(audit.ActionDeploy, "shop/production/v3")}}
			},
			wantErr: context.Canceled,
		},
		{
			name: "update of a missing rollout",
			ctx:  context.Background(),
			change: func() rollout.Change {
				r := newRollout("shop", "production", "v3")
				r.ID = 999
				return rollout.Change{Rollout: &r, Env: &rollout.EnvState{App: "shop", Env: "production", Stable: "v3"},
					Audit: []audit.Event{event(audit.ActionStep, "rollout/999")}}
			},
			wantErr: rollout.ErrNotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, path := openStore(t)
			// Something is already there, so that a half-written change
			// would show as a difference.
			r0 := newRollout("shop", "production", "v1")
			env0 := rollout.EnvState{App: "shop", Env: "production", Stable: "v1", UpdatedAt: t0}
			if err := s.Commit(t.Context(), rollout.Change{Rollout: &r0, Env: &env0, Audit: []audit.Event{event(audit.ActionDeploy, "shop/production/v1")}}); err != nil {
				t.Fatal(err)
			}

			c := tt.change()
			want := tt.change()
			err := s.Commit(tt.ctx, c)
			if err == nil {
				t.Fatal("Commit succeeded, want an error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Commit = %v, want %v", err, tt.wantErr)
			}

			if !reflect.DeepEqual(c, want) {
				t.Errorf("failed Commit changed its input:\n%+v\nwant\n%+v", c, want)
			}
			db := rawDB(t, path)
			if got := count(t, db, "rollouts"); got != 1 {
				t.Errorf("%d rollouts, want 1", got)
			}
			if got := count(t, db, "audit_events"); got != 1 {
				t.Errorf("%d audit events, want 1", got)
			}
			env, err := s.GetEnvState(t.Context(), "shop", "production")
			if err != nil || env.Stable != "v1" {
				t.Errorf("env state = %+v, %v; want stable v1 unchanged", env, err)
			}
			// The store still works, and the chain continues from seq 1.
			next := []audit.Event{event(audit.ActionStep, "rollout/1")}
			if err := s.Commit(t.Context(), rollout.Change{Audit: next}); err != nil {
				t.Fatal(err)
			}
			if next[0].Seq != 2 {
				t.Errorf("next event got seq %d, want 2", next[0].Seq)
			}
		})
	}
}

func TestStore_Commit_Concurrent(t *testing.T) {
	s, _ := openStore(t)
	ctx := t.Context()
	const workers, commits = 8, 20

	type result struct {
		id   int64
		seqs [2]int64
	}
	results := make([][]result, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range commits {
				// Every other Commit is audit only: its transaction reads
				// the end of the chain before it writes, the pattern that
				// fails with SQLITE_BUSY unless writers are serialized.
				var c rollout.Change
				r := newRollout("shop", "env"+strconv.Itoa(w), "v"+strconv.Itoa(i))
				if i%2 == 0 {
					c.Rollout = &r
				}
				events := []audit.Event{event(audit.ActionDeploy, fmt.Sprintf("w%d/%d", w, i)), event(audit.ActionStep, fmt.Sprintf("w%d/%d", w, i))}
				c.Audit = events
				if err := s.Commit(ctx, c); err != nil {
					errs[w] = err
					return
				}
				results[w] = append(results[w], result{r.ID, [2]int64{events[0].Seq, events[1].Seq}})
			}
		})
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: %v", w, err)
		}
	}

	ids := map[int64]bool{}
	for _, rs := range results {
		for _, r := range rs {
			if r.id == 0 {
				continue
			}
			if ids[r.id] {
				t.Errorf("rollout ID %d given twice", r.id)
			}
			ids[r.id] = true
			if r.seqs[1] != r.seqs[0]+1 {
				t.Errorf("one Commit's events got seqs %v, want adjacent", r.seqs)
			}
		}
	}
	chain, err := s.AuditChain(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(chain), workers*commits*2; got != want {
		t.Fatalf("%d events, want %d", got, want)
	}
	for i, e := range chain {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d, want %d", i, e.Seq, i+1)
		}
	}
	if err := audit.Verify(chain); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestStore_Reopen(t *testing.T) {
	s, path := openStore(t)
	ctx := t.Context()
	r := newRollout("shop", "production", "v2")
	env := rollout.EnvState{App: "shop", Env: "production", Stable: "v1", UpdatedAt: t0}
	events := []audit.Event{event(audit.ActionDeploy, "shop/production/v2")}
	rel := rollout.Release{App: "shop", Version: "v2", Commit: "abc", CreatedAt: t0}
	if err := s.PutRelease(ctx, rel); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, rollout.Change{Rollout: &r, Env: &env, Audit: events}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer func() { _ = s2.Close() }()
	gotRel, err := s2.GetRelease(ctx, "shop", "v2")
	if err != nil || !reflect.DeepEqual(gotRel, rel) {
		t.Errorf("release after reopen = %+v, %v; want %+v", gotRel, err, rel)
	}
	gotR, err := s2.GetRollout(ctx, r.ID)
	if err != nil || !reflect.DeepEqual(gotR, r) {
		t.Errorf("rollout after reopen = %+v, %v; want %+v", gotR, err, r)
	}
	gotEnv, err := s2.GetEnvState(ctx, "shop", "production")
	if err != nil || !reflect.DeepEqual(gotEnv, env) {
		t.Errorf("env after reopen = %+v, %v; want %+v", gotEnv, err, env)
	}
	// The chain goes on from where it was.
	more := []audit.Event{event(audit.ActionStep, "rollout/1")}
	if err := s2.Commit(ctx, rollout.Change{Audit: more}); err != nil {
		t.Fatal(err)
	}
	chain, err := s2.AuditChain(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 || audit.Verify(chain) != nil {
		t.Errorf("chain after reopen: %d events, Verify = %v; want 2 events that verify", len(chain), audit.Verify(chain))
	}
}

// crashChildEnv, when set to a database path, makes TestStore_CrashDurability
// the child: it commits in a loop, reporting each Commit that returned, until
// the parent kills it.
const crashChildEnv = "SHIPGATE_SQLITE_CRASH_CHILD"

func TestStore_CrashDurability(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "shipgate.db")
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestStore_CrashDurability$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	// Read reports until enough Commits returned, then kill the child while
	// it is in the middle of more.
	const want = 25
	type committed struct{ id, seq int64 }
	var done []committed
	sc := bufio.NewScanner(stdout)
	for len(done) < want && sc.Scan() {
		var c committed
		if _, err := fmt.Sscanf(sc.Text(), "committed %d %d", &c.id, &c.seq); err == nil {
			done = append(done, c)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(done) < want {
		t.Fatalf("child reported %d commits before it stopped, want %d", len(done), want)
	}

	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer func() { _ = s.Close() }()
	for _, c := range done {
		r, err := s.GetRollout(t.Context(), c.id)
		if err != nil {
			t.Errorf("rollout %d, reported committed, is lost: %v", c.id, err)
		} else if r.Phase != rollout.PhaseRunning {
			t.Errorf("rollout %d has phase %q", c.id, r.Phase)
		}
	}
	chain, err := s.AuditChain(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if last := done[len(done)-1].seq; int64(len(chain)) < last {
		t.Errorf("chain has %d events, want at least the %d reported", len(chain), last)
	}
	if err := audit.Verify(chain); err != nil {
		t.Errorf("Verify after kill: %v", err)
	}
}

func crashChild(path string) {
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		r := newRollout("shop", "production", "v"+strconv.Itoa(i))
		events := []audit.Event{event(audit.ActionDeploy, "shop/production/v"+strconv.Itoa(i))}
		if err := s.Commit(ctx, rollout.Change{Rollout: &r, Audit: events}); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		fmt.Printf("committed %d %d\n", r.ID, events[0].Seq)
	}
}

func TestStore_Migrations(t *testing.T) {
	t.Run("opening twice is a no-op", func(t *testing.T) {
		s, path := openStore(t)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		db := rawDB(t, path)
		before := migrationRows(t, db)
		s2, err := Open(t.Context(), path)
		if err != nil {
			t.Fatalf("second Open: %v", err)
		}
		_ = s2.Close()
		after := migrationRows(t, db)
		if len(before) != len(migrations) || !reflect.DeepEqual(before, after) {
			t.Errorf("schema_migrations %v after the first Open and %v after the second, want %d unchanged rows", before, after, len(migrations))
		}
	})

	t.Run("a new step is applied once", func(t *testing.T) {
		s, path := openStore(t)
		_ = s.Close()
		withMigrations(t, append(migrations[:len(migrations):len(migrations)], `CREATE TABLE extra (x INTEGER)`))
		for range 2 {
			s, err := Open(t.Context(), path)
			if err != nil {
				t.Fatalf("Open with a new step: %v", err)
			}
			_ = s.Close()
		}
		db := rawDB(t, path)
		if got := len(migrationRows(t, db)); got != len(migrations) {
			t.Errorf("%d versions recorded, want %d", got, len(migrations))
		}
		if got := count(t, db, "extra"); got != 0 {
			t.Errorf("extra table has %d rows", got)
		}
	})

	t.Run("a failing step changes nothing", func(t *testing.T) {
		s, path := openStore(t)
		_ = s.Close()
		withMigrations(t, append(migrations[:len(migrations):len(migrations)], `CREATE TABLE half (x INTEGER); SELECT no_such_function();`))
		if s, err := Open(t.Context(), path); err == nil {
			_ = s.Close()
			t.Fatal("Open with a bad step succeeded")
		} else if !strings.Contains(err.Error(), fmt.Sprintf("schema version %d", len(migrations))) {
			t.Errorf("error %q does not name the step", err)
		}
		db := rawDB(t, path)
		if got := len(migrationRows(t, db)); got != len(migrations)-1 {
			t.Errorf("%d versions recorded, want %d", got, len(migrations)-1)
		}
		var n int
		if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM sqlite_schema WHERE name = 'half'`).Scan(&n); err != nil || n != 0 {
			t.Errorf("table of the failed step exists (%d, %v)", n, err)
		}
	})

	t.Run("a newer schema is refused", func(t *testing.T) {
		s, path := openStore(t)
		_ = s.Close()
		db := rawDB(t, path)
		newer := len(migrations) + 3
		if _, err := db.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, applied_at) VALUES (?, 'later')`, newer); err != nil {
			t.Fatal(err)
		}
		s2, err := Open(t.Context(), path)
		if err == nil {
			_ = s2.Close()
			t.Fatal("Open of a newer schema succeeded")
		}
		if !errors.Is(err, ErrSchemaTooNew) {
			t.Errorf("Open = %v, want ErrSchemaTooNew", err)
		}
		for _, want := range []string{fmt.Sprintf("schema version %d", newer), fmt.Sprintf("up to %d", len(migrations))} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
	})
}

func migrationRows(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT version, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var v int
		var at string
		if err := rows.Scan(&v, &at); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d@%s", v, at))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// withMigrations replaces the schema steps for one test.
func withMigrations(t *testing.T, steps []string) {
	old := migrations
	migrations = steps
	t.Cleanup(func() { migrations = old })
}
