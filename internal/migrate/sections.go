package migrate

import (
	"fmt"
	"regexp"
	"strings"
)

// syntax is the annotations of a one-file format with up and down
// sections: goose, sql-migrate or dbmate.
type syntax struct {
	format Format
	// tool names the tool in messages.
	tool string
	// up, down, begin and end are the annotations as written, for
	// messages; begin is "" when the format has no statement blocks.
	up, down, begin, end string
	// noTx is how the format runs a migration outside a transaction.
	noTx string
	// annotation returns the command of an annotation line, lower case
	// with single spaces ("up", "statementbegin", "no transaction"), its
	// options, and whether the line is one.
	annotation func(line string) (cmd string, opts []string, ok bool)
}

var (
	gooseSyntax = syntax{
		format: FormatGoose, tool: "goose",
		up: "-- +goose Up", down: "-- +goose Down", begin: "-- +goose StatementBegin", end: "-- +goose StatementEnd",
		noTx:       "-- +goose NO TRANSACTION",
		annotation: prefixAnnotation("+goose", true),
	}
	sqlMigrateSyntax = syntax{
		format: FormatSQLMigrate, tool: "sql-migrate",
		up: "-- +migrate Up", down: "-- +migrate Down", begin: "-- +migrate StatementBegin", end: "-- +migrate StatementEnd",
		noTx:       "-- +migrate Up notransaction (or Down notransaction)",
		annotation: prefixAnnotation("+migrate", false),
	}
	dbmateSyntax = syntax{
		format: FormatDbmate, tool: "dbmate",
		up: "-- migrate:up", down: "-- migrate:down",
		noTx:       "-- migrate:up transaction:false (or -- migrate:down transaction:false)",
		annotation: dbmateAnnotation,
	}
)

func syntaxOf(f Format) syntax {
	switch f {
	case FormatSQLMigrate:
		return sqlMigrateSyntax
	case FormatDbmate:
		return dbmateSyntax
	}
	return gooseSyntax
}

// prefixAnnotation reads "-- +goose Up" style annotations. With whole,
// the command is every word after the prefix (goose's "NO TRANSACTION");
// otherwise the first word, the others being options (sql-migrate's
// "Up notransaction").
func prefixAnnotation(prefix string, whole bool) func(string) (string, []string, bool) {
	return func(line string) (string, []string, bool) {
		s := strings.TrimSpace(line)
		if !strings.HasPrefix(s, "--") {
			return "", nil, false
		}
		s = strings.TrimSpace(strings.TrimPrefix(s, "--"))
		if !strings.HasPrefix(s, prefix) {
			return "", nil, false
		}
		words := strings.Fields(strings.ToLower(strings.TrimPrefix(s, prefix)))
		if whole || len(words) == 0 {
			return strings.Join(words, " "), nil, true
		}
		return words[0], words[1:], true
	}
}

// dbmateLine is dbmate's own pattern for its section annotations.
var dbmateLine = regexp.MustCompile(`^--\s*migrate:(up|down)(?:\s+(.*))?$`)

func dbmateAnnotation(line string) (string, []string, bool) {
	sm := dbmateLine.FindStringSubmatch(strings.TrimRight(line, " \t\r\n"))
	if sm == nil {
		return "", nil, false
	}
	return sm[1], strings.Fields(strings.ToLower(sm[2])), true
}

// detectSyntax returns the one-file format whose annotation comes first
// in data, "" if none does.
func detectSyntax(data []byte) Format {
	for _, line := range strings.Split(string(data), "\n") {
		for _, syn := range []syntax{gooseSyntax, sqlMigrateSyntax, dbmateSyntax} {
			if _, _, ok := syn.annotation(line); ok {
				return syn.format
			}
		}
	}
	return ""
}

// annotated reads a one-file migration of syntax syn.
func (p *parser) annotated(f File, base, digits string, syn syntax) {
	v, ok := p.version(f, digits)
	if !ok {
		return
	}
	m, errs := parseSections(f, syn)
	m.Version, m.ID = v, strings.TrimSuffix(base, ".sql")
	m.Name = strings.TrimLeft(strings.TrimPrefix(m.ID, digits), "_-.")
	if len(errs) > 0 {
		for _, e := range errs {
			p.problem(f.Path, e.Line, v, m.ID, "%s", e.Message)
		}
		return
	}
	p.add(m, f)
}

// parseSections parses a one-file migration. It returns every problem
// found as a SyntaxError with its line.
func parseSections(f File, syn syntax) (*Migration, []*SyntaxError) {
	m := &Migration{Format: syn.format, Checksum: checksum(f.Data)}
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
	noTx := false

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
			fail(stmts[0].Line, "statement before the %s annotation", syn.up)
			return
		}
		s := current()
		s.Statements = append(s.Statements, stmts...)
	}
	// options applies the options of an Up or Down annotation.
	options := func(n int, s *Script, opts []string) {
		for _, o := range opts {
			switch {
			case syn.format == FormatSQLMigrate && o == "notransaction",
				syn.format == FormatDbmate && o == "transaction:false":
				s.NoTransaction = true
			case syn.format == FormatDbmate && o == "transaction:true":
			default:
				fail(n, "unknown %s option %q", syn.tool, o)
			}
		}
	}

	lines := strings.SplitAfter(string(f.Data), "\n")
	for i, line := range lines {
		n := i + 1
		ann, opts, ok := syn.annotation(line)
		if !ok {
			if blockLine > 0 {
				block.WriteString(line)
			} else {
				chunk.WriteString(line)
			}
			continue
		}
		if blockLine > 0 && ann != "statementend" {
			fail(n, "%s inside the StatementBegin block of line %d; close it with %s first", strings.TrimSpace(line), blockLine, syn.end)
			continue
		}
		switch {
		case ann == "up":
			flush(n + 1)
			if section != beforeUp {
				fail(n, "second %s annotation; a file has one Up section, then one Down section", syn.up)
				continue
			}
			section = inUp
			m.Up = Script{File: f.Path, Line: n}
			options(n, &m.Up, opts)
		case ann == "down":
			flush(n + 1)
			switch section {
			case beforeUp:
				fail(n, "%s before %s; the Up section comes first", syn.down, syn.up)
				continue
			case inDown:
				fail(n, "second %s annotation", syn.down)
				continue
			}
			section = inDown
			m.Down = Script{File: f.Path, Line: n}
			options(n, &m.Down, opts)
		case ann == "statementbegin" && syn.begin != "":
			flush(n + 1)
			if section == beforeUp {
				fail(n, "%s before %s", syn.begin, syn.up)
			}
			blockLine = n
		case ann == "statementend" && syn.begin != "":
			if blockLine == 0 {
				fail(n, "%s without a StatementBegin", syn.end)
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
		case syn.format == FormatGoose && ann == "no transaction":
			noTx = true
			flush(n + 1)
		case syn.format == FormatGoose && (ann == "envsub on" || ann == "envsub off"):
			// Accepted so that goose files read unchanged; Shipgate runs
			// the SQL as written, without substituting variables.
			flush(n + 1)
		case syn.format == FormatGoose:
			fail(n, "unknown goose annotation %q; want Up, Down, StatementBegin, StatementEnd or NO TRANSACTION", strings.TrimSpace(line))
			flush(n + 1)
		default:
			fail(n, "unknown %s annotation %q; want Up, Down, StatementBegin or StatementEnd", syn.tool, strings.TrimSpace(line))
			flush(n + 1)
		}
	}
	if blockLine > 0 {
		fail(blockLine, "%s is never closed by %s", syn.begin, syn.end)
	} else {
		flush(len(lines) + 1)
	}
	if section == beforeUp && len(errs) == 0 {
		fail(1, "no %s annotation; a %s migration starts its up section with it", syn.up, syn.tool)
	}
	if noTx {
		m.Up.NoTransaction, m.Down.NoTransaction = true, true
	}
	return m, errs
}
