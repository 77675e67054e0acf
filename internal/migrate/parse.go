package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
	// FormatGoose is goose's: one file NNN_name.sql with "-- +goose Up"
	// and "-- +goose Down" sections.
	FormatGoose Format = "goose"
)

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
	// NoTransaction is set by goose's "-- +goose NO TRANSACTION": the
	// statements run one by one outside a transaction, as CREATE INDEX
	// CONCURRENTLY needs. A failure halfway leaves the database dirty.
	NoTransaction bool
	// Checksum is the hex SHA-256 of the file that holds the up script,
	// recorded when the migration is applied so that an edit after the
	// fact can be noticed.
	Checksum string
}

// String returns the migration's ID.
func (m Migration) String() string { return m.ID }

// Script is the up or down half of a migration.
type Script struct {
	// File is the path of the file holding the script, "" when there is
	// none. Line is the line where the script starts in it: 1 for a file
	// of its own, the line of the "-- +goose Down" annotation in goose.
	File string
	Line int
	// Statements are what runs, in order.
	Statements []Statement
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
	gooseName         = regexp.MustCompile(`^([0-9]+)_(.*)\.sql$`)
)

// LoadDir reads the migrations in dir, in golang-migrate or goose format
// (or both, one format per version). Files whose names do not start with
// a version and end in .sql are ignored, as both tools ignore them. The
// error, if any, is an *Error with every problem at file:line.
func LoadDir(dir string) ([]Migration, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var files []File
	for _, e := range entries {
		if e.IsDir() || !gooseName.MatchString(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(p) //nolint:gosec // a file of the directory the user named
		if err != nil {
			return nil, fmt.Errorf("read migrations: %w", err)
		}
		files = append(files, File{Path: p, Data: data})
	}
	return ParseFiles(files)
}

// ParseFiles parses the files of a migration directory and returns the
// migrations in version order. The error, if any, is an *Error with every
// problem found, each at file:line.
func ParseFiles(files []File) ([]Migration, error) {
	var problems []Finding
	byVersion := map[int64]*Migration{}
	// downs holds golang-migrate down files until their up is known.
	type down struct {
		file File
		name string
	}
	downs := map[int64]down{}
	problem := func(file string, line int, version int64, id, format string, args ...any) {
		problems = append(problems, Finding{Severity: SeverityError, File: file, Line: line, Version: version, Migration: id, Message: fmt.Sprintf(format, args...)})
	}
	add := func(m *Migration, file string) {
		if prev, ok := byVersion[m.Version]; ok {
			problem(file, 0, m.Version, m.ID, "version %d is also used by %s; each version must be unique", m.Version, prev.Up.File)
			return
		}
		byVersion[m.Version] = m
	}

	for _, f := range files {
		base := path.Base(filepath.ToSlash(f.Path))
		if sm := golangMigrateName.FindStringSubmatch(base); sm != nil {
			v, err := strconv.ParseInt(sm[1], 10, 64)
			if err != nil {
				problem(f.Path, 0, 0, "", "version %s is not a 64-bit integer", sm[1])
				continue
			}
			if sm[3] == "down" {
				if prev, ok := downs[v]; ok {
					problem(f.Path, 0, v, "", "version %d has two down files: this one and %s", v, prev.file.Path)
					continue
				}
				downs[v] = down{file: f, name: sm[2]}
				continue
			}
			stmts, err := Split(string(f.Data), 1)
			m := &Migration{Version: v, Name: sm[2], ID: strings.TrimSuffix(base, ".up.sql"), Format: FormatGolangMigrate,
				Up: Script{File: f.Path, Line: 1, Statements: stmts}, Checksum: checksum(f.Data)}
			if err != nil {
				problem(f.Path, syntaxLine(err), v, m.ID, "%s", syntaxMessage(err))
				continue
			}
			add(m, f.Path)
			continue
		}
		sm := gooseName.FindStringSubmatch(base)
		if sm == nil {
			continue
		}
		v, err := strconv.ParseInt(sm[1], 10, 64)
		if err != nil {
			problem(f.Path, 0, 0, "", "version %s is not a 64-bit integer", sm[1])
			continue
		}
		m, errs := parseGoose(f)
		m.Version, m.Name, m.ID = v, sm[2], strings.TrimSuffix(base, ".sql")
		if len(errs) > 0 {
			for _, e := range errs {
				problem(f.Path, e.Line, v, m.ID, "%s", e.Message)
			}
			continue
		}
		add(m, f.Path)
	}

	for v, d := range downs {
		m, ok := byVersion[v]
		switch {
		case !ok:
			if !slices.ContainsFunc(problems, func(p Finding) bool { return p.Version == v }) {
				problem(d.file.Path, 0, v, "", "down migration without an up migration (add %s)", strings.TrimSuffix(path.Base(filepath.ToSlash(d.file.Path)), ".down.sql")+".up.sql")
			}
			continue
		case m.Format == FormatGoose:
			problem(d.file.Path, 0, v, m.ID, "version %d is a goose file (%s) and also has this down file; use one format per version", v, m.Up.File)
			continue
		case d.name != m.Name:
			problem(d.file.Path, 0, v, m.ID, "down file name %q does not match its up file %s", d.name, m.Up.File)
			continue
		}
		stmts, err := Split(string(d.file.Data), 1)
		if err != nil {
			problem(d.file.Path, syntaxLine(err), v, m.ID, "%s", syntaxMessage(err))
			continue
		}
		m.Down = Script{File: d.file.Path, Line: 1, Statements: stmts}
	}

	if len(problems) > 0 {
		SortFindings(problems)
		return nil, &Error{Findings: problems}
	}
	migrations := make([]Migration, 0, len(byVersion))
	for _, m := range byVersion {
		migrations = append(migrations, *m)
	}
	slices.SortFunc(migrations, func(a, b Migration) int { return cmpInt64(a.Version, b.Version) })
	return migrations, nil
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

// gooseAnnotation returns the annotation of a goose line such as
// "-- +goose StatementBegin", in lower case with single spaces, and
// whether the line is one.
func gooseAnnotation(line string) (string, bool) {
	s := strings.TrimSpace(line)
	if !strings.HasPrefix(s, "--") {
		return "", false
	}
	s = strings.TrimSpace(strings.TrimPrefix(s, "--"))
	if !strings.HasPrefix(s, "+goose") {
		return "", false
	}
	return strings.ToLower(strings.Join(strings.Fields(strings.TrimPrefix(s, "+goose")), " ")), true
}

// parseGoose parses a goose SQL file. It returns every problem found as a
// SyntaxError with its line.
func parseGoose(f File) (*Migration, []*SyntaxError) {
	m := &Migration{Format: FormatGoose, Checksum: checksum(f.Data)}
	var errs []*SyntaxError
	fail := func(line int, format string, args ...any) {
		errs = append(errs, &SyntaxError{Line: line, Message: fmt.Sprintf(format, args...)})
	}

	const (
		beforeUp = iota
		inUp
		inDown
	)
	section := beforeUp
	// chunk collects the lines of plain SQL since the last annotation;
	// chunkLine is the line of its first byte.
	var chunk strings.Builder
	chunkLine := 1
	// block collects the lines between StatementBegin and StatementEnd.
	var block strings.Builder
	blockLine := 0 // line of the StatementBegin, 0 outside a block

	current := func() *Script {
		if section == inDown {
			return &m.Down
		}
		return &m.Up
	}
	flush := func(next int) {
		text := chunk.String()
		chunk.Reset()
		defer func() { chunkLine = next }()
		stmts, err := Split(text, chunkLine)
		if err != nil {
			fail(syntaxLine(err), "%s", syntaxMessage(err))
			return
		}
		if len(stmts) == 0 {
			return
		}
		if section == beforeUp {
			fail(stmts[0].Line, "statement before the -- +goose Up annotation")
			return
		}
		s := current()
		s.Statements = append(s.Statements, stmts...)
	}

	lines := strings.SplitAfter(string(f.Data), "\n")
	for i, line := range lines {
		n := i + 1
		ann, ok := gooseAnnotation(line)
		if !ok {
			if blockLine > 0 {
				block.WriteString(line)
			} else {
				chunk.WriteString(line)
			}
			continue
		}
		if blockLine > 0 && ann != "statementend" {
			fail(n, "-- +goose %s inside the StatementBegin block of line %d; close it with -- +goose StatementEnd first", annotationName(ann), blockLine)
			continue
		}
		switch ann {
		case "up":
			flush(n + 1)
			if section != beforeUp {
				fail(n, "second -- +goose Up annotation; a file has one Up section, then one Down section")
				continue
			}
			section = inUp
			m.Up = Script{File: f.Path, Line: n}
		case "down":
			flush(n + 1)
			switch section {
			case beforeUp:
				fail(n, "-- +goose Down before -- +goose Up; the Up section comes first")
				continue
			case inDown:
				fail(n, "second -- +goose Down annotation")
				continue
			}
			section = inDown
			m.Down = Script{File: f.Path, Line: n}
		case "statementbegin":
			flush(n + 1)
			if section == beforeUp {
				fail(n, "-- +goose StatementBegin before -- +goose Up")
			}
			blockLine = n
		case "statementend":
			if blockLine == 0 {
				fail(n, "-- +goose StatementEnd without a StatementBegin")
				continue
			}
			if st, err := blockStatement(block.String(), blockLine+1); err != nil {
				fail(syntaxLine(err), "%s (in the StatementBegin block of line %d)", syntaxMessage(err), blockLine)
			} else if st != nil && section != beforeUp {
				s := current()
				s.Statements = append(s.Statements, *st)
			}
			block.Reset()
			blockLine = 0
			chunkLine = n + 1
		case "no transaction":
			m.NoTransaction = true
			flush(n + 1)
		case "envsub on", "envsub off":
			// Accepted so that goose files read unchanged; Shipgate runs
			// the SQL as written, without substituting variables.
			flush(n + 1)
		default:
			fail(n, "unknown goose annotation %q; want Up, Down, StatementBegin, StatementEnd or NO TRANSACTION", strings.TrimSpace(line))
			flush(n + 1)
		}
	}
	if blockLine > 0 {
		fail(blockLine, "-- +goose StatementBegin is never closed by -- +goose StatementEnd")
	} else {
		flush(len(lines) + 1)
	}
	if section == beforeUp && len(errs) == 0 {
		fail(1, "no -- +goose Up annotation; a goose migration starts its up section with it")
	}
	return m, errs
}

// annotationName returns an annotation as goose spells it, for messages.
func annotationName(ann string) string {
	switch ann {
	case "up":
		return "Up"
	case "down":
		return "Down"
	case "statementbegin":
		return "StatementBegin"
	case "no transaction":
		return "NO TRANSACTION"
	}
	return ann
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
