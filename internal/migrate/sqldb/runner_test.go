package sqldb

import (
	"database/sql"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/shipgate/shipgate/internal/migrate"
)

func openRunner(t *testing.T, url string, migs []migrate.Migration) *Runner {
	t.Helper()
	r, err := Open(t.Context(), url, migs)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func status(t *testing.T, r *Runner) migrate.Status {
	t.Helper()
	st, err := r.Status(t.Context())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return st
}

func versionsOf(recs []migrate.Record) []int64 {
	vs := []int64{}
	for _, rec := range recs {
		vs = append(vs, rec.Version)
	}
	return vs
}

// rows returns the rows of query as strings, one per row, cells joined
// by "|".
func rows(t *testing.T, db *sql.DB, query string) []string {
	t.Helper()
	rs, err := db.QueryContext(t.Context(), query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rs.Close()
	cols, _ := rs.Columns()
	var out []string
	for rs.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		cells := make([]string, len(vals))
		for i, v := range vals {
			cells[i] = v.String
		}
		out = append(out, strings.Join(cells, "|"))
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func hasTable(t *testing.T, r *Runner, name string) bool {
	t.Helper()
	s, err := r.t.d.schema(t.Context(), r.db)
	if err != nil {
		t.Fatal(err)
	}
	_, ok := s.Tables[name]
	return ok
}

func TestRunner_FailureHalfway(t *testing.T) {
	databases(t, func(t *testing.T, dialect, url, _ string) {
		migs := load(t, "../testdata/failing")
		r := openRunner(t, url, migs)

		applied, err := r.Up(t.Context(), 0)
		if err == nil {
			t.Fatal("Up succeeded; migration 3 should fail")
		}
		if got, want := applied, []int64{1, 2}; !reflect.DeepEqual(got, want) {
			t.Errorf("applied = %v, want %v", got, want)
		}
		var me *MigrationError
		if !errors.As(err, &me) {
			t.Fatalf("error is a %T, want *MigrationError: %v", err, err)
		}
		for _, want := range []string{"migrate up 003_one_account_per_plan: statement 2 of 3_one_account_per_plan up (../testdata/failing/003_one_account_per_plan.up.sql:3)", "its transaction was rolled back"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}

		st := status(t, r)
		if got, want := st.Version, int64(2); got != want {
			t.Errorf("Status.Version = %d, want %d", got, want)
		}
		if got, want := st.Pending, []int64{3}; !reflect.DeepEqual(got, want) {
			t.Errorf("Status.Pending = %v, want %v", got, want)
		}
		f := st.Failure
		if f == nil {
			t.Fatal("Status.Failure = nil")
		}
		if f.Version != 3 || f.Statement != 2 || f.Line != 3 || f.Direction != migrate.DirectionUp || f.Dirty || st.Dirty {
			t.Errorf("Failure = %+v, want version 3, statement 2 at line 3, up, not dirty", *f)
		}
		if f.Error == "" || f.At.IsZero() {
			t.Errorf("Failure without error or time: %+v", *f)
		}

		// The rows are as migration 2 left them: the INSERT of migration 3
		// was rolled back with it.
		if got, want := rows(t, r.db, "SELECT id, email, plan FROM accounts ORDER BY id"), []string{"1|ada@example.com|pro", "2|grace@example.com|free"}; !reflect.DeepEqual(got, want) {
			t.Errorf("accounts = %q, want %q", got, want)
		}

		// Running up again fails the same way and applies nothing.
		again, err := r.Up(t.Context(), 0)
		if err == nil || len(again) != 0 {
			t.Errorf("second Up = %v, %v; want nothing applied and the same error", again, err)
		}

		// The rollout engine's way back: undo exactly what Up applied.
		if err := r.Down(t.Context(), applied); err != nil {
			t.Fatalf("Down: %v", err)
		}
		st = status(t, r)
		if st.Version != 0 || len(st.Applied) != 0 || st.Failure != nil {
			t.Errorf("after Down, Status = %+v; want version 0, nothing applied, no failure", st)
		}
		if hasTable(t, r, "accounts") {
			t.Error("table accounts still there after Down")
		}
		// Down is idempotent.
		if err := r.Down(t.Context(), applied); err != nil {
			t.Errorf("second Down: %v", err)
		}
	})
}

func TestRunner_DirtyNoTransaction(t *testing.T) {
	databases(t, func(t *testing.T, dialect, url, _ string) {
		r := openRunner(t, url, load(t, "../testdata/dirty"))
		applied, err := r.Up(t.Context(), 0)
		if got, want := applied, []int64{1}; !reflect.DeepEqual(got, want) {
			t.Errorf("applied = %v, want %v", got, want)
		}
		if err == nil || !strings.Contains(err.Error(), "statements 1 to 2 took effect and the database is dirty") {
			t.Fatalf("Up error = %v, want one saying the database is dirty", err)
		}
		st := status(t, r)
		if !st.Dirty || st.Failure == nil || st.Failure.Version != 2 || st.Failure.Statement != 3 || !st.Failure.Dirty {
			t.Fatalf("Status = %+v, failure %+v; want dirty at version 2, statement 3", st, st.Failure)
		}
		if st.Version != 1 {
			t.Errorf("Status.Version = %d, want 1: a dirty migration is not recorded", st.Version)
		}
		// Statements 1 and 2 took effect.
		if got, want := rows(t, r.db, "SELECT id, kind FROM events_archive"), []string{"1|deploy"}; !reflect.DeepEqual(got, want) {
			t.Errorf("events_archive = %q, want %q", got, want)
		}

		if _, err := r.Up(t.Context(), 0); !errors.Is(err, migrate.ErrDirty) {
			t.Errorf("Up on a dirty database = %v, want ErrDirty", err)
		}
		if err := r.Down(t.Context(), []int64{1}); !errors.Is(err, migrate.ErrDirty) {
			t.Errorf("Down on a dirty database = %v, want ErrDirty", err)
		}

		// The way out: undo by hand, then resolve.
		if _, err := r.db.ExecContext(t.Context(), "DROP TABLE events_archive"); err != nil {
			t.Fatal(err)
		}
		if err := r.Resolve(t.Context(), 2, false); err != nil {
			t.Fatalf("Resolve: %v", err)
		}
		st = status(t, r)
		if st.Dirty || st.Failure != nil || st.Version != 1 || !reflect.DeepEqual(st.Pending, []int64{2}) {
			t.Errorf("after Resolve, Status = %+v; want clean at version 1 with 2 pending", st)
		}
		if err := r.Down(t.Context(), []int64{1}); err != nil {
			t.Errorf("Down after Resolve: %v", err)
		}
	})
}

func TestRunner_UpToAndDownOrder(t *testing.T) {
	databases(t, func(t *testing.T, dialect, url, _ string) {
		migs := load(t, "../testdata/dataloss")
		r := openRunner(t, url, migs)

		st := status(t, r)
		if got, want := st.Pending, []int64{1, 2, 3}; !reflect.DeepEqual(got, want) {
			t.Errorf("Status of a new database: pending %v, want %v", got, want)
		}
		if hasTable(t, r, migrationsTable) {
			t.Error("Status created the state tables; it must change nothing")
		}

		applied, err := r.Up(t.Context(), 2)
		if err != nil || !reflect.DeepEqual(applied, []int64{1, 2}) {
			t.Fatalf("Up(2) = %v, %v; want [1 2]", applied, err)
		}
		st = status(t, r)
		if got, want := versionsOf(st.Applied), []int64{1, 2}; !reflect.DeepEqual(got, want) {
			t.Errorf("applied = %v, want %v", got, want)
		}
		for _, rec := range st.Applied {
			if rec.AppliedAt.IsZero() || rec.Checksum != migs[rec.Version-1].Checksum || rec.Name != migs[rec.Version-1].Name {
				t.Errorf("record %+v does not match its migration", rec)
			}
		}

		if err := r.Down(t.Context(), []int64{1}); err == nil || !strings.Contains(err.Error(), "version 2 is applied after it") {
			t.Errorf("Down([1]) under 2 = %v; want a refusal naming version 2", err)
		}
		if again, err := r.Up(t.Context(), 0); err != nil || !reflect.DeepEqual(again, []int64{3}) {
			t.Fatalf("Up(0) = %v, %v; want [3]", again, err)
		}
		if again, err := r.Up(t.Context(), 0); err != nil || len(again) != 0 {
			t.Errorf("Up again = %v, %v; want nothing", again, err)
		}
		undone, err := r.DownTo(t.Context(), 1)
		if err != nil || !reflect.DeepEqual(undone, []int64{3, 2}) {
			t.Errorf("DownTo(1) = %v, %v; want [3 2], newest first", undone, err)
		}
		if got := status(t, r).Version; got != 1 {
			t.Errorf("version after DownTo(1) = %d", got)
		}
	})
}

func TestRunner_Refusals(t *testing.T) {
	databases(t, func(t *testing.T, dialect, url, _ string) {
		migs := load(t, "../testdata/dataloss")
		// 1 and 3 applied by a build that did not have 2 yet.
		early := openRunner(t, url, []migrate.Migration{migs[0], migs[2]})
		if _, err := early.Up(t.Context(), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := openRunner(t, url, migs).Up(t.Context(), 0); !errors.Is(err, migrate.ErrOutOfOrder) {
			t.Errorf("Up with 2 pending under 3 = %v, want ErrOutOfOrder", err)
		}
		// A directory that lacks an applied version: an older release.
		old := openRunner(t, url, migs[:1])
		if _, err := old.Up(t.Context(), 0); !errors.Is(err, migrate.ErrUnknownVersion) {
			t.Errorf("Up with version 3 unknown = %v, want ErrUnknownVersion", err)
		}
		if got := status(t, old).Unknown; !reflect.DeepEqual(got, []int64{3}) {
			t.Errorf("Status.Unknown = %v, want [3]", got)
		}
	})
}

func TestRunner_ConcurrentUp(t *testing.T) {
	databases(t, func(t *testing.T, dialect, url, _ string) {
		migs := load(t, "../testdata/dataloss")
		var wg sync.WaitGroup
		results := make([][]int64, 4)
		errs := make([]error, 4)
		for i := range results {
			r := openRunner(t, url, migs)
			wg.Go(func() { results[i], errs[i] = r.Up(t.Context(), 0) })
		}
		wg.Wait()
		var all []int64
		for i := range results {
			if errs[i] != nil {
				t.Errorf("runner %d: %v", i, errs[i])
			}
			all = append(all, results[i]...)
		}
		slices.Sort(all)
		if want := []int64{1, 2, 3}; !reflect.DeepEqual(all, want) {
			t.Errorf("versions applied by 4 runners together = %v, want each of %v once", all, want)
		}
	})
}
