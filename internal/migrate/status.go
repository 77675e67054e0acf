package migrate

import (
	"errors"
	"fmt"
	"time"
)

// Errors a Migrator returns, wrapped with what they are about.
var (
	// ErrDirty means a NO TRANSACTION migration failed after some of its
	// statements took effect: nothing runs until a person repairs the
	// database and records the outcome (Status.Failure says where).
	ErrDirty = errors.New("database is dirty")
	// ErrUnknownVersion means the database has a migration the directory
	// does not: it was migrated by a newer release.
	ErrUnknownVersion = errors.New("database has migrations this directory does not know")
	// ErrOutOfOrder means a pending migration is older than an applied
	// one, so applying it now would run it in another order than
	// everywhere else.
	ErrOutOfOrder = errors.New("pending migration older than an applied one")
	// ErrNotReversible means a migration to be undone has no down script.
	ErrNotReversible = errors.New("migration has no down")
)

// Direction says which script of a migration ran.
type Direction string

// Directions.
const (
	DirectionUp   Direction = "up"
	DirectionDown Direction = "down"
)

// Record is an applied migration as the database records it.
type Record struct {
	Version   int64     `json:"version"`
	Name      string    `json:"name"`
	AppliedAt time.Time `json:"applied_at"`
	// Checksum is the migration's Checksum when it was applied.
	Checksum string `json:"checksum"`
}

// Failure is the last failed run of a migration, recorded by the
// database until the migration runs successfully in that direction or a
// person resolves it.
type Failure struct {
	Version   int64     `json:"version"`
	Name      string    `json:"name"`
	Direction Direction `json:"direction"`
	// Statement is the 1-based index of the statement that failed, and
	// File and Line where it is written.
	Statement int    `json:"statement"`
	File      string `json:"file,omitempty"`
	Line      int    `json:"line,omitempty"`
	Error     string `json:"error"`
	// Dirty is set when statements before the failed one took effect and
	// stay: the migration ran outside a transaction.
	Dirty bool      `json:"dirty"`
	At    time.Time `json:"at"`
}

// Where says where the failure happened: "statement 2 of 004_users_email
// up (db/004_users_email.up.sql:7)".
func (f Failure) Where() string {
	s := fmt.Sprintf("statement %d of %d_%s %s", f.Statement, f.Version, f.Name, f.Direction)
	if f.Statement == 0 {
		s = fmt.Sprintf("the commit of %d_%s %s", f.Version, f.Name, f.Direction)
	}
	if f.File != "" {
		s += fmt.Sprintf(" (%s:%d)", f.File, f.Line)
	}
	return s
}

// Status is where a database stands against a migration directory.
type Status struct {
	// Version is the highest applied version, 0 when none is.
	Version int64 `json:"version"`
	// Applied are the recorded migrations, oldest first.
	Applied []Record `json:"applied"`
	// Pending are the versions of the directory not applied, in order.
	Pending []int64 `json:"pending"`
	// Unknown are applied versions the directory does not have.
	Unknown []int64 `json:"unknown,omitempty"`
	// Modified are applied versions whose file changed since.
	Modified []int64 `json:"modified,omitempty"`
	// Dirty is set while a failure left the database half migrated.
	Dirty bool `json:"dirty"`
	// Failure is the last failure not resolved yet, nil if none.
	Failure *Failure `json:"failure,omitempty"`
}

// VerifyOptions are the options of a verification.
type VerifyOptions struct {
	// Seed is SQL that inserts representative rows; SeedFile names it in
	// findings. Without a seed, only the schema is checked.
	Seed     []byte
	SeedFile string
	// SeedAfter is the version after which to apply the seed. When 0, the
	// seed is applied after the first migration after which it runs
	// without error: as soon as its tables and columns exist.
	SeedAfter int64
	// Setup is SQL run on each scratch database before any migration:
	// what the project's migrations expect to find there (a runner's
	// bookkeeping table, an extension, a custom SQL function). SetupFile
	// names it in findings.
	Setup     []byte
	SetupFile string
	// SQLiteForeignKeys turns SQLite's foreign key enforcement on while
	// migrations run, for a project whose runner does so. Off by
	// default; PRAGMA foreign_key_check runs after each script either way.
	SQLiteForeignKeys bool
}

// Unverified is a migration a verification could not check in full, and
// why.
type Unverified struct {
	Version   int64  `json:"version"`
	Migration string `json:"migration"`
	Reason    string `json:"reason"`
}

// Report is the outcome of a verification.
type Report struct {
	// Findings are errors (a down that does not restore the schema, a
	// migration that fails or loses seeded data) and warnings, in version
	// order.
	Findings []Finding `json:"findings"`
	// Migrations is how many migrations the directory has.
	Migrations int `json:"migrations"`
	// Verified is how many went through every check that applies to them
	// without an error: run up, down and up again with the schema
	// restored each time (and with the seed, the same over its rows).
	// NotVerified are the others, in version order, each with why;
	// Irreversible are those marked -- shipgate:irreversible, whose up
	// was checked but whose down is declared not to restore everything.
	Verified     int          `json:"verified"`
	NotVerified  []Unverified `json:"not_verified"`
	Irreversible []Unverified `json:"irreversible,omitempty"`
	// SeedAfter is the version after which the seed was applied, 0
	// without a seed. DataChecked counts the migrations whose down and
	// up were run over the seeded rows; DataNotChecked are the migrations
	// from the seed's on that could not be, with why. Migrations before
	// the seed's are not data-checked by design: the seed's tables do not
	// exist yet.
	SeedAfter      int64        `json:"seed_after,omitempty"`
	DataChecked    int          `json:"data_checked,omitempty"`
	DataNotChecked []Unverified `json:"data_not_checked,omitempty"`
}

// OK reports whether the report has no errors and every migration was
// verified.
func (r Report) OK() bool { return !HasErrors(r.Findings) && len(r.NotVerified) == 0 }
