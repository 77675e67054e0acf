// Package storetest is the contract every Shipgate store passes: one suite
// of the behaviours the engine, the flags service and the API rely on, run
// against each store (internal/sqlite, internal/postgres) with RunWith, as
// Litestream runs one suite against each replica client.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/store"
)

// Backend opens stores of one kind for the suite.
type Backend struct {
	// Fresh returns where a new, empty store can be opened: a file path,
	// a database URL.
	Fresh func(t *testing.T) string
	// Open opens the store at where (creating its schema the first time)
	// and closes it when t ends. now, when not nil, is the clock the
	// store uses for the times a caller leaves zero. Opening the same
	// place twice gives two handles on one store, as two servers have.
	Open func(t *testing.T, where string, now func() time.Time) store.Store
}

// RunWith runs the whole contract against b.
func RunWith(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(*testing.T, Backend)
	}{
		{"PutRelease", testPutRelease},
		{"PutRelease_NilAndEmptyVars", testPutReleaseNilAndEmptyVars},
		{"PutRelease_MergesChecks", testPutReleaseMergesChecks},
		{"Commit_RoundTrip", testCommitRoundTrip},
		{"Commit_Defaults", testCommitDefaults},
		{"Commit_Update", testCommitUpdate},
		{"Commit_Release", testCommitRelease},
		{"Commit_Atomic", testCommitAtomic},
		{"Commit_Concurrent", testCommitConcurrent},
		{"Commit_ConcurrentHandles", testCommitConcurrentHandles},
		{"ActiveRollouts", testActiveRollouts},
		{"ListRollouts", testListRollouts},
		{"EnvState_Replace", testEnvStateReplace},
		{"ListAudit", testListAudit},
		{"ListAudit_DefaultLimit", testListAuditDefaultLimit},
		{"AuditChain", testAuditChain},
		{"Reopen", testReopen},
		{"Tokens", testTokens},
		{"TokensAudited", testTokensAudited},
		{"CommitFlags", testCommitFlags},
		{"FlagUsage", testFlagUsage},
		{"Guards", testGuards},
		{"ExportImport", testExportImport},
		{"Import_RefusesNonEmpty", testImportRefusesNonEmpty},
		{"Import_Secrets", testImportSecrets},
	}
	tests = append(tests, laterTests...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, b) })
	}
}

// t0 is a fixed time in UTC, so that values read back compare with
// reflect.DeepEqual.
var t0 = time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)

func newStore(t *testing.T, b Backend) store.Store {
	t.Helper()
	return b.Open(t, b.Fresh(t), nil)
}

// NewRollout is a running canary rollout of version with two steps, for
// store tests of either kind.
func NewRollout(app, env, version string) rollout.Rollout {
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

// Event is an audit event by a test actor, for store tests of either kind.
func Event(action, subject string) audit.Event {
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

func testPutRelease(t *testing.T, b Backend) {
	s := newStore(t, b)
	ctx := t.Context()
	first := rollout.Release{App: "shop", Version: "v2", Commit: "abc123", Vars: map[string]string{"MODE": "fast"}, Image: "registry.example/shop:v2", CreatedAt: t0}
	if err := s.PutRelease(ctx, first); err != nil {
		t.Fatalf("PutRelease: %v", err)
	}

	tests := []struct {
		name    string
		release rollout.Release
		wantErr error
	}{
		{"same again", first, nil},
		{"same with a later time", rollout.Release{App: "shop", Version: "v2", Commit: "abc123", Vars: map[string]string{"MODE": "fast"}, Image: first.Image, CreatedAt: t0.Add(time.Hour)}, nil},
		{"other commit", rollout.Release{App: "shop", Version: "v2", Commit: "def456", Vars: map[string]string{"MODE": "fast"}, Image: first.Image}, rollout.ErrConflict},
		{"other vars", rollout.Release{App: "shop", Version: "v2", Commit: "abc123", Vars: map[string]string{"MODE": "slow"}, Image: first.Image}, rollout.ErrConflict},
		{"no vars", rollout.Release{App: "shop", Version: "v2", Commit: "abc123", Image: first.Image}, rollout.ErrConflict},
		{"other image", rollout.Release{App: "shop", Version: "v2", Commit: "abc123", Vars: map[string]string{"MODE": "fast"}, Image: "registry.example/shop:v3"}, rollout.ErrConflict},
		{"no image", rollout.Release{App: "shop", Version: "v2", Commit: "abc123", Vars: map[string]string{"MODE": "fast"}}, rollout.ErrConflict},
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

func testPutReleaseNilAndEmptyVars(t *testing.T, b Backend) {
	s := newStore(t, b)
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

func testCommitRoundTrip(t *testing.T, b Backend) {
	s := newStore(t, b)
	ctx := t.Context()
	r := NewRollout("shop", "production", "v2")
	env := rollout.EnvState{
		App: "shop", Env: "production", Stable: "v1", Previous: "v0",
		Instances: []rollout.Instance{{ID: "shop-production-v1-1", App: "shop", Env: "production", Version: "v1", Addr: "127.0.0.1:9000", PID: 7}},
		UpdatedAt: t0,
	}
	events := []audit.Event{Event(audit.ActionDeploy, "shop/production/v2"), Event(audit.ActionStep, "rollout/1")}
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

func testCommitDefaults(t *testing.T, b Backend) {
	fixed := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	s := b.Open(t, b.Fresh(t), func() time.Time { return fixed })
	ctx := t.Context()

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

func testCommitUpdate(t *testing.T, b Backend) {
	s := newStore(t, b)
	ctx := t.Context()
	r := NewRollout("shop", "production", "v2")
	if err := s.Commit(ctx, rollout.Change{Rollout: &r}); err != nil {
		t.Fatal(err)
	}
	id := r.ID

	r.Phase = rollout.PhaseSucceeded
	r.StepIndex = len(r.Steps)
	r.Weight = 100
	r.PromotedAt = t0.Add(time.Hour)
	r.FinishedAt = t0.Add(2 * time.Hour)
	if err := s.Commit(ctx, rollout.Change{Rollout: &r, Audit: []audit.Event{Event(audit.ActionSucceed, "rollout/1")}}); err != nil {
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

func testActiveRollouts(t *testing.T, b Backend) {
	s := newStore(t, b)
	ctx := t.Context()
	phases := []rollout.Phase{
		rollout.PhaseSucceeded, rollout.PhaseRunning, rollout.PhaseRolledBack,
		rollout.PhaseRollingBack, rollout.PhaseFailed, rollout.PhaseRunning,
	}
	var want []int64
	for i, p := range phases {
		r := NewRollout("shop", "env"+strconv.Itoa(i), "v1")
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

func testListRollouts(t *testing.T, b Backend) {
	s := newStore(t, b)
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
		r := NewRollout(app, env, "v"+strconv.Itoa(i))
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

func testEnvStateReplace(t *testing.T, b Backend) {
	s := newStore(t, b)
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

func testListAudit(t *testing.T, b Backend) {
	s := newStore(t, b)
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
		if err := s.Commit(ctx, rollout.Change{Audit: []audit.Event{Event(action, subj)}}); err != nil {
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

func testListAuditDefaultLimit(t *testing.T, b Backend) {
	s := newStore(t, b)
	ctx := t.Context()
	events := make([]audit.Event, 120)
	for i := range events {
		events[i] = Event(audit.ActionStep, "rollout/1")
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

func testAuditChain(t *testing.T, b Backend) {
	s := newStore(t, b)
	ctx := t.Context()
	for i := range 50 {
		r := NewRollout("shop", "production", "v"+strconv.Itoa(i))
		events := []audit.Event{Event(audit.ActionDeploy, "shop/production/v"+strconv.Itoa(i)), Event(audit.ActionStep, "rollout/x")}
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

// TestStore_Commit_Atomic makes the last part of a Commit fail and expects
// neither the rollout, nor the env state, nor any event written, and the
// caller's values untouched.
func testCommitAtomic(t *testing.T, b Backend) {
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
				r := NewRollout("shop", "production", "v3")
				bad := Event("", "rollout/2")
				return rollout.Change{Rollout: &r, Env: &rollout.EnvState{App: "shop", Env: "production", Stable: "v3"},
					Audit: []audit.Event{Event(audit.ActionDeploy, "shop/production/v3"), bad}}
			},
		},
		{
			name: "cancelled context",
			ctx:  cancelled,
			change: func() rollout.Change {
				r := NewRollout("shop", "production", "v3")
				return rollout.Change{Rollout: &r, Env: &rollout.EnvState{App: "shop", Env: "production", Stable: "v3"},
					Audit: []audit.Event{Event(audit.ActionDeploy, "shop/production/v3")}}
			},
			wantErr: context.Canceled,
		},
		{
			name: "update of a missing rollout",
			ctx:  context.Background(),
			change: func() rollout.Change {
				r := NewRollout("shop", "production", "v3")
				r.ID = 999
				return rollout.Change{Rollout: &r, Env: &rollout.EnvState{App: "shop", Env: "production", Stable: "v3"},
					Audit: []audit.Event{Event(audit.ActionStep, "rollout/999")}}
			},
			wantErr: rollout.ErrNotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := b.Fresh(t)
			s := b.Open(t, path, nil)
			// Something is already there, so that a half-written change
			// would show as a difference.
			r0 := NewRollout("shop", "production", "v1")
			env0 := rollout.EnvState{App: "shop", Env: "production", Stable: "v1", UpdatedAt: t0}
			if err := s.Commit(t.Context(), rollout.Change{Rollout: &r0, Env: &env0, Audit: []audit.Event{Event(audit.ActionDeploy, "shop/production/v1")}}); err != nil {
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
			if got := countRollouts(t, s); got != 1 {
				t.Errorf("%d rollouts, want 1", got)
			}
			if got := countAudit(t, s); got != 1 {
				t.Errorf("%d audit events, want 1", got)
			}
			env, err := s.GetEnvState(t.Context(), "shop", "production")
			if err != nil || env.Stable != "v1" {
				t.Errorf("env state = %+v, %v; want stable v1 unchanged", env, err)
			}
			// The store still works, and the chain continues from seq 1.
			next := []audit.Event{Event(audit.ActionStep, "rollout/1")}
			if err := s.Commit(t.Context(), rollout.Change{Audit: next}); err != nil {
				t.Fatal(err)
			}
			if len(next) == 0 || next[0].Seq != 2 {
				t.Errorf("next event got seq %d, want 2", next[0].Seq)
			}
		})
	}
}

func testCommitConcurrent(t *testing.T, b Backend) {
	s := newStore(t, b)
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
				r := NewRollout("shop", "env"+strconv.Itoa(w), "v"+strconv.Itoa(i))
				if i%2 == 0 {
					c.Rollout = &r
				}
				events := []audit.Event{Event(audit.ActionDeploy, fmt.Sprintf("w%d/%d", w, i)), Event(audit.ActionStep, fmt.Sprintf("w%d/%d", w, i))}
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

func testReopen(t *testing.T, b Backend) {
	path := b.Fresh(t)
	s := b.Open(t, path, nil)
	ctx := t.Context()
	r := NewRollout("shop", "production", "v2")
	env := rollout.EnvState{App: "shop", Env: "production", Stable: "v1", UpdatedAt: t0}
	events := []audit.Event{Event(audit.ActionDeploy, "shop/production/v2")}
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

	s2 := b.Open(t, path, nil)
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
	more := []audit.Event{Event(audit.ActionStep, "rollout/1")}
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

func testTokens(t *testing.T, b Backend) {
	s := newStore(t, b)
	ctx := t.Context()
	alice := auth.Token{Name: "alice", Role: auth.RoleAdmin, CreatedAt: t0}
	ci := auth.Token{Name: "ci", Role: auth.RoleDeployer, CreatedAt: t0}
	if err := s.CreateToken(ctx, ci, auth.Hash("sgt_ci")); err != nil {
		t.Fatalf("CreateToken(ci): %v", err)
	}
	if err := s.CreateToken(ctx, alice, auth.Hash("sgt_alice")); err != nil {
		t.Fatalf("CreateToken(alice): %v", err)
	}

	t.Run("create errors", func(t *testing.T) {
		tests := []struct {
			name   string
			token  auth.Token
			hash   string
			wantIs error
		}{
			{"same name", auth.Token{Name: "alice", Role: auth.RoleViewer}, auth.Hash("other"), rollout.ErrConflict},
			{"same secret", auth.Token{Name: "bob", Role: auth.RoleViewer}, auth.Hash("sgt_ci"), rollout.ErrConflict},
			{"unknown role", auth.Token{Name: "bob", Role: "root"}, auth.Hash("bob"), rollout.ErrInvalid},
			{"no name", auth.Token{Role: auth.RoleViewer}, auth.Hash("bob"), rollout.ErrInvalid},
			{"no hash", auth.Token{Name: "bob", Role: auth.RoleViewer}, "", rollout.ErrInvalid},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := s.CreateToken(ctx, tt.token, tt.hash); !errors.Is(err, tt.wantIs) {
					t.Errorf("CreateToken = %v, want %v", err, tt.wantIs)
				}
			})
		}
	})

	t.Run("by hash", func(t *testing.T) {
		got, err := s.TokenByHash(ctx, auth.Hash("sgt_alice"))
		if err != nil || !reflect.DeepEqual(got, alice) {
			t.Errorf("TokenByHash = %+v, %v; want %+v", got, err, alice)
		}
		if _, err := s.TokenByHash(ctx, auth.Hash("wrong")); !errors.Is(err, rollout.ErrNotFound) {
			t.Errorf("TokenByHash(wrong) = %v, want ErrNotFound", err)
		}
	})

	t.Run("list", func(t *testing.T) {
		got, err := s.ListTokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := []auth.Token{alice, ci}; !reflect.DeepEqual(got, want) {
			t.Errorf("ListTokens = %+v, want %+v", got, want)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if err := s.DeleteToken(ctx, "ci"); err != nil {
			t.Fatalf("DeleteToken: %v", err)
		}
		if _, err := s.TokenByHash(ctx, auth.Hash("sgt_ci")); !errors.Is(err, rollout.ErrNotFound) {
			t.Errorf("deleted token still authenticates: %v", err)
		}
		if err := s.DeleteToken(ctx, "ci"); !errors.Is(err, rollout.ErrNotFound) {
			t.Errorf("second DeleteToken = %v, want ErrNotFound", err)
		}
		got, err := s.ListTokens(ctx)
		if err != nil || len(got) != 1 || got[0].Name != "alice" {
			t.Errorf("ListTokens after delete = %+v, %v; want only alice", got, err)
		}
		// The name is free again.
		if err := s.CreateToken(ctx, ci, auth.Hash("sgt_ci2")); err != nil {
			t.Errorf("CreateToken after delete: %v", err)
		}
	})
}

// TestStore_TokensAudited: a token change and its audit event are stored
// in one transaction, so that neither is ever stored without the other.
func testTokensAudited(t *testing.T, b Backend) {
	s := newStore(t, b)
	ctx := t.Context()
	created := func(name string) audit.Event {
		return audit.Event{Actor: "user:admin", Action: "token.create", Subject: "token/" + name}
	}
	revoked := func(tok auth.Token) audit.Event {
		return audit.Event{Actor: "user:admin", Action: "token.revoke", Subject: "token/" + tok.Name, Data: map[string]string{"role": string(tok.Role)}}
	}
	events := func(t *testing.T) []audit.Event {
		t.Helper()
		list, err := s.ListAudit(ctx, audit.Filter{Subject: "token/"})
		if err != nil {
			t.Fatal(err)
		}
		return list
	}

	ci := auth.Token{Name: "ci", Role: auth.RoleDeployer, CreatedAt: t0}
	if err := s.CreateTokenAudited(ctx, ci, auth.Hash("sgt_ci"), created("ci")); err != nil {
		t.Fatalf("CreateTokenAudited: %v", err)
	}
	if got, err := s.TokenByHash(ctx, auth.Hash("sgt_ci")); err != nil || got != ci {
		t.Fatalf("TokenByHash = %+v, %v; want %+v", got, err, ci)
	}
	if got := events(t); len(got) != 1 || got[0].Action != "token.create" || got[0].Subject != "token/ci" {
		t.Fatalf("audit after create = %+v, want one token.create of token/ci", got)
	}

	t.Run("refused create writes no event", func(t *testing.T) {
		err := s.CreateTokenAudited(ctx, auth.Token{Name: "ci", Role: auth.RoleViewer}, auth.Hash("other"), created("ci"))
		if !errors.Is(err, rollout.ErrConflict) {
			t.Fatalf("CreateTokenAudited(same name) = %v, want ErrConflict", err)
		}
		if got := len(events(t)); got != 1 {
			t.Fatalf("audit events = %d, want 1", got)
		}
	})
	t.Run("event refused, token not stored", func(t *testing.T) {
		// An event without an actor is refused by the audit log; the token
		// must not be stored without it.
		err := s.CreateTokenAudited(ctx, auth.Token{Name: "dash", Role: auth.RoleViewer}, auth.Hash("sgt_dash"), audit.Event{Action: "token.create"})
		if err == nil {
			t.Fatal("CreateTokenAudited with an invalid event = nil, want an error")
		}
		if _, err := s.TokenByHash(ctx, auth.Hash("sgt_dash")); !errors.Is(err, rollout.ErrNotFound) {
			t.Fatalf("token stored without its audit event: %v", err)
		}
		err = s.DeleteTokenAudited(ctx, "ci", func(auth.Token) audit.Event { return audit.Event{Action: "token.revoke"} })
		if err == nil {
			t.Fatal("DeleteTokenAudited with an invalid event = nil, want an error")
		}
		if _, err := s.TokenByHash(ctx, auth.Hash("sgt_ci")); err != nil {
			t.Fatalf("token deleted without its audit event: %v", err)
		}
	})
	t.Run("delete", func(t *testing.T) {
		if err := s.DeleteTokenAudited(ctx, "ci", revoked); err != nil {
			t.Fatalf("DeleteTokenAudited: %v", err)
		}
		if _, err := s.TokenByHash(ctx, auth.Hash("sgt_ci")); !errors.Is(err, rollout.ErrNotFound) {
			t.Fatalf("revoked token still authenticates: %v", err)
		}
		got := events(t)
		if len(got) != 2 || got[0].Action != "token.revoke" || got[0].Data["role"] != "deployer" {
			t.Fatalf("audit after revoke = %+v, want token.revoke with role deployer first", got)
		}
		if err := s.DeleteTokenAudited(ctx, "ci", revoked); !errors.Is(err, rollout.ErrNotFound) {
			t.Fatalf("second DeleteTokenAudited = %v, want ErrNotFound", err)
		}
		if got := len(events(t)); got != 2 {
			t.Fatalf("audit events after a refused delete = %d, want 2", got)
		}
		chain, err := s.AuditChain(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := audit.Verify(chain); err != nil {
			t.Fatalf("audit chain: %v", err)
		}
	})
}

func testFlag(key string) *flags.Flag {
	return flags.NewBooleanFlag(key, "team-a", "a test flag", time.Time{}, t0)
}

func testCommitFlags(t *testing.T, b Backend) {
	path := b.Fresh(t)
	s := b.Open(t, path, nil)
	ctx := t.Context()
	f := testFlag("new-checkout")
	seg := flags.Segment{Name: "internal", Rule: json.RawMessage(`{"ends_with":[{"var":"email"},"@acme.com"]}`)}
	err := s.CommitFlags(ctx, flags.Change{
		Put: []*flags.Flag{f}, PutSegments: []flags.Segment{seg},
		Audit: []audit.Event{{Actor: "user:ana", Action: flags.ActionCreate, Subject: "flag/new-checkout", Reason: "ship dark"}},
	})
	if err != nil {
		t.Fatalf("CommitFlags: %v", err)
	}
	list, segs, err := s.LoadFlags(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Key != "new-checkout" || list[0].MetaString(flags.MetaOwner) != "team-a" {
		t.Fatalf("LoadFlags = %+v", list)
	}
	if len(segs) != 1 || string(segs[0].Rule) != string(seg.Rule) {
		t.Fatalf("segments = %+v", segs)
	}
	events, err := s.ListAudit(ctx, audit.Filter{Subject: "flag/"})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Reason != "ship dark" || events[0].Seq == 0 {
		t.Fatalf("audit = %+v", events)
	}

	// A change whose audit event is refused is not stored at all.
	g := testFlag("other")
	err = s.CommitFlags(ctx, flags.Change{Put: []*flags.Flag{g}, Delete: []string{"new-checkout"},
		Audit: []audit.Event{{Actor: "", Action: flags.ActionCreate}}})
	if err == nil {
		t.Fatal("CommitFlags with an event without actor succeeded")
	}
	if got, want := countFlags(t, s), 1; got != want {
		t.Fatalf("%d flags after the failed commit, want %d", got, want)
	}

	if err := s.CommitFlags(ctx, flags.Change{Delete: []string{"new-checkout"}, DeleteSegments: []string{"internal"},
		Audit: []audit.Event{{Actor: "user:ana", Action: flags.ActionDelete, Subject: "flag/new-checkout"}}}); err != nil {
		t.Fatal(err)
	}
	if got := countFlags(t, s) + countSegments(t, s); got != 0 {
		t.Fatalf("%d rows left after delete", got)
	}
}

func testFlagUsage(t *testing.T, b Backend) {
	path := b.Fresh(t)
	s := b.Open(t, path, nil)
	ctx := t.Context()
	t1 := t0.Add(time.Hour)
	if err := s.AddFlagUsage(ctx, map[string]flags.Usage{"a": {Variants: map[string]uint64{"on": 3, "off": 1}, Last: t0}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddFlagUsage(ctx, map[string]flags.Usage{"a": {Variants: map[string]uint64{"on": 2}, Last: t1}}); err != nil {
		t.Fatal(err)
	}
	// Counts survive a restart.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := b.Open(t, path, nil)
	u, err := s2.FlagUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := u["a"].Variants["on"], uint64(5); got != want {
		t.Errorf("on = %d, want %d", got, want)
	}
	if got, want := u["a"].Total(), uint64(6); got != want {
		t.Errorf("total = %d, want %d", got, want)
	}
	if !u["a"].Last.Equal(t1) {
		t.Errorf("last = %v, want %v", u["a"].Last, t1)
	}
}

func testPutReleaseMergesChecks(t *testing.T, b Backend) {
	s := newStore(t, b)
	ctx := context.Background()
	commitTime := time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)
	rel := rollout.Release{App: "shop", Version: "v1", Commit: "abc", CommitTime: commitTime,
		Checks: map[string]rollout.CheckState{"unit": rollout.CheckPassed, "e2e": rollout.CheckPending}}
	if err := s.PutRelease(ctx, rel); err != nil {
		t.Fatal(err)
	}
	// CI reports e2e later, and a new check.
	if err := s.PutRelease(ctx, rollout.Release{App: "shop", Version: "v1", Commit: "abc",
		Checks: map[string]rollout.CheckState{"e2e": rollout.CheckFailed, "lint": rollout.CheckPassed}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetRelease(ctx, "shop", "v1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]rollout.CheckState{"unit": "passed", "e2e": "failed", "lint": "passed"}
	if len(got.Checks) != len(want) {
		t.Fatalf("checks = %v, want %v", got.Checks, want)
	}
	for k, v := range want {
		if got.Checks[k] != v {
			t.Fatalf("checks = %v, want %v", got.Checks, want)
		}
	}
	if !got.CommitTime.Equal(commitTime) {
		t.Fatalf("commit time = %s, want %s", got.CommitTime, commitTime)
	}
	// Another commit under the same version is still refused.
	err = s.PutRelease(ctx, rollout.Release{App: "shop", Version: "v1", Commit: "def"})
	if !errors.Is(err, rollout.ErrConflict) {
		t.Fatalf("other commit: %v, want conflict", err)
	}
}

func countRollouts(t *testing.T, s store.Store) int {
	t.Helper()
	rs, err := s.ListRollouts(t.Context(), "", "", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return len(rs)
}

func countAudit(t *testing.T, s store.Store) int {
	t.Helper()
	chain, err := s.AuditChain(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	return len(chain)
}

func countFlags(t *testing.T, s store.Store) int {
	t.Helper()
	list, _, err := s.LoadFlags(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

func countSegments(t *testing.T, s store.Store) int {
	t.Helper()
	_, segs, err := s.LoadFlags(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return len(segs)
}
