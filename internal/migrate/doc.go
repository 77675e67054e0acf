// Package migrate makes sure that a release's schema migrations can be
// undone, so that rolling the code back never leaves a database the old
// code cannot use.
//
// This package is the logic, with no database in it: it reads migration
// directories as golang-migrate, goose, sql-migrate, dbmate and Flyway
// write them (Load, LoadDir, Parse), refusing files it cannot read,
// splits SQL into statements (Split), checks migrations statically
// (Check), and compares schemas and data fingerprints (DiffSchemas,
// DiffData, LengthViolations). The package sqldb beside it runs migrations
// against PostgreSQL and SQLite: its Runner applies and reverts them with
// a recorded state, and verifies them on a scratch database.
//
// # For the rollout engine
//
// A rollout that carries migrations does, in order:
//
//  1. before the deploy starts: Verify, and refuse to deploy if the
//     report has errors (Report.OK). This is the migration gate:
//     migrations are reversible or the deploy does not start. Migrations
//     marked "-- shipgate:irreversible REASON" (Migration.Irreversible,
//     Report.Irreversible) are not errors: the deploy waits for an
//     approval instead;
//  2. before the canary gets traffic: Up(ctx, 0), and keep the returned
//     versions in the rollout's durable state, even when Up fails (the
//     versions applied before the failure are returned with the error);
//  3. on rollback, after traffic is back on the stable release: Down(ctx,
//     versions) with exactly those versions;
//  4. to report: Status.
//
// Up and Down are idempotent: Up applies only what is pending, Down skips
// versions that are not applied, so a crashed engine can call them again.
// The engine declares its own port; Migrator below is that port as this
// package sees it, and sqldb.Runner satisfies it.
package migrate

import "context"

// Migrator is what a rollout engine needs from the migrations of one
// release against one database.
type Migrator interface {
	// Verify runs every migration up, down and up again on a scratch
	// database (and, with a seed, down and up over seeded rows) and
	// reports each one whose down does not restore the schema or the data.
	Verify(ctx context.Context, opts VerifyOptions) (Report, error)
	// Up applies the pending migrations up to target (0 for all), in
	// order, one transaction each, and returns the versions it applied:
	// on error, the ones applied before the failure.
	Up(ctx context.Context, target int64) (applied []int64, err error)
	// Down runs the down scripts of exactly these versions, newest first,
	// and forgets them. Versions that are not applied are skipped.
	Down(ctx context.Context, versions []int64) error
	// Status returns the applied and pending migrations and the last
	// failure, with the statement it stopped at.
	Status(ctx context.Context) (Status, error)
}
