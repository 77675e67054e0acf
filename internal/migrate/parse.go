package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Format is the layout of a migration, after the tool that made it common.
type Format string

const (
	// FormatGolangMigrate is golang-migrate's: a pair of files
	// NNN_name.up.sql and NNN_name.down.sql.
	FormatGolangMigrate Format = "golang-migrate"
	// FormatStem is a pair of files whose whole stem is the version, as
	// maragudk/migrate names them: NNN.up.sql and NNN.down.sql, or
	// V0001.Name.up.sql, ordered by name when the stems are not numbers.
	FormatStem Format = "stem"
	// FormatGoose is goose's: one file NNN_name.sql with "-- +goose Up"
	// and "-- +goose Down" sections.
	FormatGoose Format = "goose"
	// FormatDbmate is dbmate's: one file NNN_name.sql (any name after the
	// digits) with "-- migrate:up" and "-- migrate:down" sections.
	FormatDbmate Format = "dbmate"
	// FormatSQLMigrate is sql-migrate's: one file NNN_name.sql (any name
	// after the digits) with "-- +migrate Up" and "-- +migrate Down"
	// sections.
	FormatSQLMigrate Format = "sql-migrate"
	// FormatFlyway is Flyway's: V1__name.sql, undone by U1__name.sql.
	FormatFlyway Format = "flyway"
)

// Formats are the formats Shipgate reads, in the order detection tries
// them.
var Formats = []Format{FormatFlyway, FormatGolangMigrate, FormatStem, FormatGoose, FormatSQLMigrate, FormatDbmate}

// ParseFormat returns the Format named s, "" for "" or "auto".
func ParseFormat(s string) (Format, error) {
	if s == "" || s == "auto" {
		return "", nil
	}
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	names := make([]string, len(Formats))
	for i, f := range Formats {
		names[i] = string(f)
	}
	return "", fmt.Errorf("unknown migration format %q: want auto, %s", s, strings.Join(names, ", "))
}

// wrapsInTransaction reports whether the format's own tool runs a
// migration in a transaction unless told not to. golang-migrate and
// Flyway do not decide per file: golang-migrate sends a file as one
// query (PostgreSQL runs a multi-statement query as one implicit
// transaction; its SQLite driver wraps it in one), and Flyway runs a
// script outside a transaction when it holds a statement PostgreSQL
// refuses in one.
func (f Format) wrapsInTransaction() bool {
	return f == FormatGoose || f == FormatDbmate || f == FormatSQLMigrate
}

// Migration is one versioned schema change and the change that undoes it.
type Migration struct {
	// Version orders migrations; golang-migrate's timestamps are versions
	// too.
	Version int64
	// Name is the file name without the version and extension: "add_email".
	Name string
	// ID is the file name without extension(s), as people refer to the
	// migration: "003_add_email".
	ID     string
	Format Format
	// Up and Down are the scripts. A Down whose File is empty does not
	// exist; one without statements is empty. Either makes the migration
	// irreversible.
	Up, Down Script
	// OrderedByName is set when the versions are whole file stems that
	// are not numbers (V0001.Name, or 0001_create_users as
	// maragudk/migrate reads it): Version is then the migration's place in
	// the stems' lexical order, which is how those tools order them. Such
	// migrations can be checked and verified; the runner, which records
	// numeric versions, refuses to apply them.
	OrderedByName bool
	// Irreversible is set by "-- shipgate:irreversible REASON" in one of
	// the migration's files: the down is missing or does not restore
	// everything on purpose, and a deploy of it needs an approval.
	Irreversible *Marker
	// Checksum is the hex SHA-256 of the file that holds the up script,
	// recorded when the migration is applied so that an edit after the
	// fact can be noticed.
	Checksum string
}

// Marker is a "-- shipgate:" comment of a migration file.
type Marker struct {
	// Reason is the text after the marker's name.
	Reason string
	File   string
	Line   int
}

// String returns the migration's ID.
func (m Migration) String() string { return m.ID }

// Reversible reports whether the migration has a down with statements.
func (m Migration) Reversible() bool { return !m.Down.Missing() && len(m.Down.Statements) > 0 }

// Script is the up or down half of a migration.
type Script struct {
	// File is the path of the file holding the script, "" when there is
	// none. Line is the line where the script starts in it: 1 for a file
	// of its own, the line of the "-- +goose Down" annotation in goose.
	File string
	Line int
	// Statements are what runs, in order.
	Statements []Statement
	// NoTransaction runs the statements one by one outside a
	// transaction, as CREATE INDEX CONCURRENTLY needs: set by goose's
	// "-- +goose NO TRANSACTION", sql-migrate's "notransaction", dbmate's
	// "transaction:false", "-- shipgate:no-transaction", and, in the
	// formats whose tools do not wrap files in transactions themselves
	// (golang-migrate, stem, Flyway), by a statement PostgreSQL refuses
	// in a transaction or a script that manages its own (BEGIN ...
	// COMMIT). A failure halfway leaves the database dirty.
	NoTransaction bool
}

// Missing reports whether the script does not exist.
func (s Script) Missing() bool { return s.File == "" }

// File is a file of a migration directory.
type File struct {
	// Path is how the file is named in findings; its base name says what
	// it holds.
	Path string
	Data []byte
}

var (
	golangMigrateName = regexp.MustCompile(`^([0-9]+)_(.*)\.(up|down)\.sql$`)
	stemName          = regexp.MustCompile(`^(.+)\.(up|down)\.sql$`)
	digitsOnly        = regexp.MustCompile(`^[0-9]+$`)
	gooseName         = regexp.MustCompile(`^([0-9]+)_(.*)\.sql$`)
	// dbmate and sql-migrate take the leading digits of any .sql file.
	numberedName     = regexp.MustCompile(`^([0-9]+)(.*)\.sql$`)
	flywayName       = regexp.MustCompile(`^([VU])([0-9]+(?:[._][0-9]+)*)__(.*)\.sql$`)
	flywayRepeatable = regexp.MustCompile(`^R__.*\.sql$`)
	gooseGoName      = regexp.MustCompile(`^[0-9]+_.*\.go$`)
)

// LoadOptions say how to read a migration directory.
type LoadOptions struct {
	// Format reads every file in that format; "" recognises each file's
	// format by its name and content.
	Format Format
	// Ignore lists file names (or path.Match patterns of base names) of
	// .sql files that are not migrations: a seed, a setup script.
	Ignore []string
}

// LoadDir reads the migrations in dir, recognising each file's format.
// See Load.
func LoadDir(dir string) ([]Migration, error) { return Load(dir, LoadOptions{}) }

// Load reads the migrations in dir. Every .sql file must be a migration
// in a format Shipgate reads, or be ignored: a file it cannot read as
// one is an error that names it, never skipped, so that a directory is
// never passed for what was not looked at. The error, if any, is an
// *Error with every problem at file:line.
func Load(dir string, opts LoadOptions) ([]Migration, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var files []File
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || ignored(name, opts.Ignore) || !strings.HasSuffix(name, ".sql") && !gooseGoName.MatchString(name) {
			continue
		}
		p := filepath.Join(dir, name)
		var data []byte
		if strings.HasSuffix(name, ".sql") {
			data, err = os.ReadFile(p) //nolint:gosec // a file of the directory the user named
			if err != nil {
				return nil, fmt.Errorf("read migrations: %w", err)
			}
		}
		files = append(files, File{Path: p, Data: data})
	}
	if len(files) == 0 {
		return nil, &Error{Findings: []Finding{{Severity: SeverityError, File: dir, Message: "no .sql migration files in this directory"}}}
	}
	return Parse(files, opts.Format)
}

// ignored reports whether the file name matches one of patterns: a base
// name, a path whose base is the name, or a path.Match pattern.
func ignored(name string, patterns []string) bool {
	for _, p := range patterns {
		if filepath.Base(p) == name {
			return true
		}
		if ok, err := path.Match(p, name); err == nil && ok {
			return true
		}
	}
	return false
}

// ParseFiles parses the files of a migration directory, recognising each
// file's format, and returns the migrations in version order. See Parse.
func ParseFiles(files []File) ([]Migration, error) { return Parse(files, "") }

// half is one file of a two-file migration (golang-migrate, stem,
// Flyway V and U).
type half struct {
	file    File
	version int64
	name    string
	id      string
	format  Format
}

// Parse parses the files of a migration directory, all in format, or
// each in the format its name and content say when format is "". It
// returns the migrations in version order. The error, if any, is an
// *Error with every problem found, each at file:line: a .sql file that is
// not a migration in a known format is one.
func Parse(files []File, format Format) ([]Migration, error) {
	p := &parser{byVersion: map[int64]*Migration{}, downs: map[int64]half{}}
	for _, f := range files {
		p.file(f, format)
	}
	p.resolveStems()
	for _, v := range slices.Sorted(maps.Keys(p.downs)) {
		p.pairDown(p.downs[v])
	}
	for _, m := range p.byVersion {
		p.settle(m)
	}
	if len(p.problems) > 0 {
		SortFindings(p.problems)
		return nil, &Error{Findings: p.problems}
	}
	migrations := make([]Migration, 0, len(p.byVersion))
	for _, m := range p.byVersion {
		migrations = append(migrations, *m)
	}
	slices.SortFunc(migrations, func(a, b Migration) int { return cmpInt64(a.Version, b.Version) })
	return migrations, nil
}

// stemFile is a file of the stem format, until every file is known.
type stemFile struct {
	file File
	stem string
	down bool
}

type parser struct {
	stems     []stemFile
	problems  []Finding
	byVersion map[int64]*Migration
	// downs holds the down halves until every up is known.
	downs map[int64]half
	// data holds the files of each migration, for its markers.
	data map[int64][]File
}

func (p *parser) problem(file string, line int, version int64, id, format string, args ...any) {
	p.problems = append(p.problems, Finding{Severity: SeverityError, File: file, Line: line, Version: version, Migration: id, Message: fmt.Sprintf(format, args...)})
}

func (p *parser) add(m *Migration, files ...File) {
	if prev, ok := p.byVersion[m.Version]; ok {
		hint := ""
		if prev.Format == FormatGolangMigrate && m.Format == FormatGolangMigrate {
			hint = " (if the whole file stem is the version, as maragudk/migrate reads it, give --format stem)"
		}
		p.problem(files[0].Path, 0, m.Version, m.ID, "version %d is also used by %s; each version must be unique%s", m.Version, prev.Up.File, hint)
		return
	}
	p.byVersion[m.Version] = m
	if p.data == nil {
		p.data = map[int64][]File{}
	}
	p.data[m.Version] = append(p.data[m.Version], files...)
}

// version reads the digits of a version.
func (p *parser) version(f File, digits string) (int64, bool) {
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		p.problem(f.Path, 0, 0, "", "version %s is not a 64-bit integer", digits)
		return 0, false
	}
	if v == 0 {
		p.problem(f.Path, 0, 0, "", "version 0: versions start at 1 (0 means no migration applied)")
		return 0, false
	}
	return v, true
}

// unrecognised reports a file that is not a migration Shipgate can read.
func (p *parser) unrecognised(f File, why string) {
	p.problem(f.Path, 0, 0, "", "not read as a migration: %s; rename it, give --format, or list it in --ignore if it is not a migration", why)
}

// file reads one file.
func (p *parser) file(f File, format Format) {
	base := path.Base(filepath.ToSlash(f.Path))
	if gooseGoName.MatchString(base) {
		p.problem(f.Path, 0, 0, "", "a goose Go migration: Shipgate runs SQL migrations only and cannot verify this one; write it in SQL")
		return
	}
	try := Formats
	if format != "" {
		try = []Format{format}
	}
	for _, fm := range try {
		switch fm {
		case FormatFlyway:
			if flywayRepeatable.MatchString(base) {
				p.problem(f.Path, 0, 0, "", "a Flyway repeatable migration (R__): it has no version and no undo, so Shipgate cannot verify it; make it a versioned V migration with a U undo")
				return
			}
			if sm := flywayName.FindStringSubmatch(base); sm != nil {
				p.flyway(f, base, sm)
				return
			}
		case FormatGolangMigrate:
			if sm := golangMigrateName.FindStringSubmatch(base); sm != nil {
				p.pairHalf(f, sm[1], sm[2], strings.TrimSuffix(strings.TrimSuffix(base, ".sql"), "."+sm[3]), sm[3] == "down", FormatGolangMigrate)
				return
			}
		case FormatStem:
			if sm := stemName.FindStringSubmatch(base); sm != nil {
				p.stems = append(p.stems, stemFile{file: f, stem: sm[1], down: sm[2] == "down"})
				return
			}
		default:
			syn := syntaxOf(fm)
			re := numberedName
			if fm == FormatGoose {
				re = gooseName
			}
			sm := re.FindStringSubmatch(base)
			if sm == nil {
				continue
			}
			if format == "" && detectSyntax(f.Data) != fm {
				continue
			}
			p.annotated(f, base, sm[1], syn)
			return
		}
	}
	switch {
	case format != "":
		p.unrecognised(f, fmt.Sprintf("not a %s file name (want %s)", format, formatExample(format)))
	case numberedName.MatchString(base):
		if detectSyntax(f.Data) == FormatGoose {
			p.unrecognised(f, "goose annotations, but goose needs NNN_name.sql with an underscore after the version")
			return
		}
		p.unrecognised(f, "a numbered .sql file without -- +goose Up, -- +migrate Up or -- migrate:up sections, and not NNN_name.up.sql or NNN_name.down.sql")
	case detectSyntax(f.Data) != "":
		p.unrecognised(f, fmt.Sprintf("%s annotations, but no version number at the start of the name; Shipgate orders such files by that number: rename it NNN_%s", detectSyntax(f.Data), base))
	default:
		p.unrecognised(f, "the name matches no migration format ("+strings.Join(formatExamples(), ", ")+")")
	}
}

func formatExample(f Format) string {
	switch f {
	case FormatGolangMigrate:
		return "NNN_name.up.sql and NNN_name.down.sql"
	case FormatStem:
		return "VERSION.up.sql and VERSION.down.sql, the whole stem being the version"
	case FormatGoose:
		return "NNN_name.sql with -- +goose Up"
	case FormatDbmate:
		return "NNNname.sql with -- migrate:up"
	case FormatSQLMigrate:
		return "NNNname.sql with -- +migrate Up"
	case FormatFlyway:
		return "V1__name.sql and U1__name.sql"
	}
	return string(f)
}

func formatExamples() []string {
	out := make([]string, len(Formats))
	for i, f := range Formats {
		out[i] = string(f) + ": " + formatExample(f)
	}
	return out
}

// resolveStems gives the stem-format files their versions: the stems
// themselves when they are all numbers, else their places in the stems'
// lexical order, which is how the tools that name migrations so order
// them.
func (p *parser) resolveStems() {
	numeric := true
	for _, s := range p.stems {
		numeric = numeric && digitsOnly.MatchString(s.stem)
	}
	if numeric {
		for _, s := range p.stems {
			p.pairHalf(s.file, s.stem, "", s.stem, s.down, FormatStem)
		}
		return
	}
	if len(p.byVersion) > 0 || len(p.downs) > 0 {
		for _, s := range p.stems {
			p.problem(s.file.Path, 0, 0, "", "a migration whose version is its whole file stem %q, ordered by name, in a folder of numbered migrations; give --format for the folder's format, or --ignore the others", s.stem)
		}
		return
	}
	var stems []string
	for _, s := range p.stems {
		if !slices.Contains(stems, s.stem) {
			stems = append(stems, s.stem)
		}
	}
	slices.Sort(stems)
	for _, s := range p.stems {
		p.pairHalfVersion(s.file, int64(slices.Index(stems, s.stem)+1), s.stem, s.stem, s.down, FormatStem)
	}
	for _, m := range p.byVersion {
		m.OrderedByName = true
	}
}

// pairHalf reads the up or down file of a two-file migration.
func (p *parser) pairHalf(f File, digits, name, id string, down bool, format Format) {
	v, ok := p.version(f, digits)
	if !ok {
		return
	}
	p.pairHalfVersion(f, v, name, id, down, format)
}

func (p *parser) pairHalfVersion(f File, v int64, name, id string, down bool, format Format) {
	h := half{file: f, version: v, name: name, id: id, format: format}
	if down {
		if prev, ok := p.downs[v]; ok {
			p.problem(f.Path, 0, v, "", "version %d has two down files: this one and %s", v, prev.file.Path)
			return
		}
		p.downs[v] = h
		return
	}
	stmts, err := Split(string(f.Data), 1)
	m := &Migration{Version: v, Name: name, ID: id, Format: format,
		Up: Script{File: f.Path, Line: 1, Statements: stmts}, Checksum: checksum(f.Data)}
	if err != nil {
		p.problem(f.Path, syntaxLine(err), v, m.ID, "%s", syntaxMessage(err))
		return
	}
	p.add(m, f)
}

// flyway reads a Flyway V (up) or U (undo) file.
func (p *parser) flyway(f File, base string, sm []string) {
	digits := sm[2]
	if strings.ContainsAny(digits, "._") {
		p.problem(f.Path, 0, 0, "", "Flyway version %s has several parts; Shipgate orders migrations by whole-number versions (V1__, V2__ ...)", digits)
		return
	}
	id := strings.TrimSuffix(base, ".sql")
	p.pairHalf(f, digits, sm[3], "V"+strings.TrimPrefix(id, sm[1]), sm[1] == "U", FormatFlyway)
}

// pairDown attaches a down file to its up.
func (p *parser) pairDown(d half) {
	v := d.version
	m, ok := p.byVersion[v]
	switch {
	case !ok:
		if !slices.ContainsFunc(p.problems, func(f Finding) bool { return f.Version == v }) {
			p.problem(d.file.Path, 0, v, "", "down migration without an up migration (add %s)", upFileFor(d))
		}
		return
	case m.Format != d.format:
		p.problem(d.file.Path, 0, v, m.ID, "version %d is a %s migration (%s) and also has this %s down file; use one format per version", v, m.Format, m.Up.File, d.format)
		return
	}
	stmts, err := Split(string(d.file.Data), 1)
	if err != nil {
		p.problem(d.file.Path, syntaxLine(err), v, m.ID, "%s", syntaxMessage(err))
		return
	}
	m.Down = Script{File: d.file.Path, Line: 1, Statements: stmts}
	p.data[v] = append(p.data[v], d.file)
}

func upFileFor(d half) string {
	base := path.Base(filepath.ToSlash(d.file.Path))
	switch d.format {
	case FormatFlyway:
		return "V" + strings.TrimPrefix(base, "U")
	default:
		return strings.TrimSuffix(base, ".down.sql") + ".up.sql"
	}
}

// DownFile returns the path where the down file of a two-file migration
// belongs, for a message saying to add it; "" for one-file formats.
func DownFile(m Migration) string {
	switch m.Format {
	case FormatGolangMigrate, FormatStem:
		return strings.TrimSuffix(m.Up.File, ".up.sql") + ".down.sql"
	case FormatFlyway:
		dir, base := filepath.Split(m.Up.File)
		return dir + "U" + strings.TrimPrefix(base, "V")
	}
	return ""
}

// markerLine matches a "-- shipgate:NAME text" comment line.
var markerLine = regexp.MustCompile(`^\s*--\s*shipgate:([A-Za-z-]+)\s*(.*?)\s*$`)

// settle reads the markers of m's files and decides which scripts run
// outside a transaction.
func (p *parser) settle(m *Migration) {
	noTx := false
	for _, f := range p.data[m.Version] {
		for i, line := range strings.Split(string(f.Data), "\n") {
			sm := markerLine.FindStringSubmatch(line)
			if sm == nil {
				continue
			}
			switch strings.ToLower(sm[1]) {
			case "irreversible":
				if sm[2] == "" {
					p.problem(f.Path, i+1, m.Version, m.ID, "-- shipgate:irreversible needs a reason after it: why this migration cannot be undone, for the person approving the deploy")
					continue
				}
				if m.Irreversible == nil {
					m.Irreversible = &Marker{Reason: sm[2], File: f.Path, Line: i + 1}
				}
			case "no-transaction":
				noTx = true
			default:
				p.problem(f.Path, i+1, m.Version, m.ID, "unknown marker -- shipgate:%s; want -- shipgate:irreversible REASON or -- shipgate:no-transaction", sm[1])
			}
		}
	}
	for _, s := range []*Script{&m.Up, &m.Down} {
		if noTx {
			s.NoTransaction = true
		}
		if m.Format.wrapsInTransaction() {
			continue
		}
		for _, st := range s.Statements {
			if _, refused := NoTransactionStatement(st.SQL); refused || TransactionControl(st.SQL) {
				s.NoTransaction = true
			}
		}
	}
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func checksum(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func syntaxLine(err error) int {
	if se, ok := err.(*SyntaxError); ok { //nolint:errorlint // Split returns it unwrapped
		return se.Line
	}
	return 0
}

func syntaxMessage(err error) string {
	if se, ok := err.(*SyntaxError); ok { //nolint:errorlint // Split returns it unwrapped
		return se.Message
	}
	return err.Error()
}

// blockStatement returns the statement of a StatementBegin block: its
// text, sent to the database as one statement, without a final
// semicolon; nil for a block with only comments. firstLine is the line of
// the block's first byte.
func blockStatement(text string, firstLine int) (*Statement, error) {
	toks, err := lex(text, firstLine)
	if err != nil {
		return nil, err
	}
	if len(toks) > 0 && toks[len(toks)-1].kind == tokSemi {
		toks = toks[:len(toks)-1]
	}
	if len(toks) == 0 {
		return nil, nil
	}
	return &Statement{SQL: text[toks[0].start:toks[len(toks)-1].end], Line: toks[0].line}, nil
}
