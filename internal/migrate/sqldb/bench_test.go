package sqldb

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/migrate"
	"github.com/shipgate/shipgate/internal/pgtest"
)

// benchDatabases runs fn per dialect with a URL for Verify.
func benchDatabases(b *testing.B, fn func(b *testing.B, dialect, url string)) {
	b.Run("sqlite", func(b *testing.B) { fn(b, "sqlite", "sqlite") })
	b.Run("postgres", func(b *testing.B) { fn(b, "postgres", pgtest.Shared(b).NewDatabase(b)) })
}

func benchMigrations(b *testing.B, dialect string) []migrate.Migration {
	b.Helper()
	migs, err := migrate.LoadDir(filepath.Join("../testdata/realistic", dialect, "golang-migrate"))
	if err != nil {
		b.Fatal(err)
	}
	return migs
}

func reportPerMigration(b *testing.B, start time.Time, n int) {
	b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N*n), "ms/migration")
	b.ReportMetric(float64(n), "migrations")
}

// BenchmarkVerify measures a full verification (a scratch database, the
// schema round trip of every migration, its catalog reads) of the 30
// realistic migrations, without a seed.
func BenchmarkVerify(b *testing.B) {
	benchDatabases(b, func(b *testing.B, dialect, url string) {
		migs := benchMigrations(b, dialect)
		start := time.Now()
		for b.Loop() {
			r, err := Verify(b.Context(), url, migs, migrate.VerifyOptions{})
			if err != nil || !r.OK() {
				b.Fatalf("Verify: %v %v", err, r.Findings)
			}
		}
		reportPerMigration(b, start, len(migs))
	})
}

// BenchmarkVerifySeeded is BenchmarkVerify with the realistic seed: the
// data round trip on a second scratch database too.
func BenchmarkVerifySeeded(b *testing.B) {
	benchDatabases(b, func(b *testing.B, dialect, url string) {
		migs := benchMigrations(b, dialect)
		opts := seedOptions(b, filepath.Join("../testdata/realistic", dialect, "seed.sql"))
		start := time.Now()
		for b.Loop() {
			r, err := Verify(b.Context(), url, migs, opts)
			if err != nil || !r.OK() {
				b.Fatalf("Verify: %v %v", err, r.Findings)
			}
		}
		reportPerMigration(b, start, len(migs))
	})
}

// BenchmarkApplyUps is the baseline: a scratch database and every up
// applied once, as a deploy would, without checks.
func BenchmarkApplyUps(b *testing.B) {
	benchDatabases(b, func(b *testing.B, dialect, url string) {
		migs := benchMigrations(b, dialect)
		t, err := parseURL(url, true)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for b.Loop() {
			db, drop, err := t.scratchDB(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			for _, m := range migs {
				if err := runScript(b.Context(), db, t.d, m.Up); err != nil {
					b.Fatal(err)
				}
			}
			drop()
		}
		reportPerMigration(b, start, len(migs))
	})
}
