package migrate

import (
	"fmt"
	"maps"
	"strconv"
	"strings"
)

// Check looks at migrations without a database and returns what it finds,
// in version order:
//
//   - errors: an up without a down, or with a down that has no statements
//     (only comments), unless the migration is marked
//     "-- shipgate:irreversible REASON" (then a warning: the deploy needs
//     an approval) or its up is empty too; a statement PostgreSQL refuses
//     in a transaction in a migration its tool runs in one;
//   - warnings, at file:line: statements that destroy data or can fail on
//     existing rows: DROP TABLE and DROP COLUMN in an up (and in a down,
//     when they drop what the up did not create), TRUNCATE, type changes
//     that narrow a column (VARCHAR(255) to VARCHAR(100), TEXT to
//     VARCHAR(n), BIGINT to INTEGER...), SET NOT NULL, and ADD COLUMN ...
//     NOT NULL without a DEFAULT on a table that already exists.
//
// Check follows the tables and column types that the migrations create,
// in order, so that it knows what a later ALTER narrows.
func Check(migrations []Migration) []Finding {
	var findings []Finding
	tables := map[string]map[string]string{}
	for _, m := range migrations {
		findings = append(findings, downFindings(m)...)
		findings = append(findings, transactionFindings(m)...)
		up := &checker{m: m, script: m.Up, tables: tables, up: true}
		up.run()
		findings = append(findings, up.findings...)
		if !m.Down.Missing() {
			down := &checker{m: m, script: m.Down, tables: cloneTables(tables), upCreated: up.created, upAdded: up.added}
			down.run()
			findings = append(findings, down.findings...)
		}
	}
	SortFindings(findings)
	return findings
}

// irreversibleHint is how to say a migration cannot be undone on purpose.
const irreversibleHint = "; or, if it cannot be undone on purpose, say why with -- shipgate:irreversible REASON"

// downFindings reports a missing or empty down, and a down declared
// irreversible.
func downFindings(m Migration) []Finding {
	f := Finding{Severity: SeverityError, File: m.Down.File, Line: m.Down.Line, Version: m.Version, Migration: m.ID}
	switch {
	case m.Irreversible != nil:
		f.Severity, f.File, f.Line = SeverityWarning, m.Irreversible.File, m.Irreversible.Line
		f.Message = "irreversible on purpose: " + m.Irreversible.Reason + "; a deploy of it needs an approval (or a hotfix rule that skips the migrations gate)"
	case len(m.Up.Statements) == 0 && (m.Down.Missing() || len(m.Down.Statements) == 0):
		// Nothing to undo: a placeholder, or a migration whose SQL was
		// removed.
		return nil
	case m.Down.Missing() && !m.Format.wrapsInTransaction() && m.Format != "":
		f.File, f.Line = DownFile(m), 0
		f.Message = "no down migration: add this file with statements that undo " + m.Up.File + irreversibleHint
	case m.Down.Missing():
		f.File, f.Line = m.Up.File, 0
		f.Message = "no down migration: add a " + syntaxOf(m.Format).down + " section that undoes the up section" + irreversibleHint
	case len(m.Down.Statements) == 0:
		f.Message = "down migration is empty (only comments or space): write the statements that undo the up migration" + irreversibleHint
	default:
		return nil
	}
	return []Finding{f}
}

// transactionFindings reports statements PostgreSQL refuses inside a
// transaction where the migration's own tool would run them in one, or
// send them in one query with others.
func transactionFindings(m Migration) []Finding {
	var out []Finding
	for _, s := range []Script{m.Up, m.Down} {
		for _, st := range s.Statements {
			what, refused := NoTransactionStatement(st.SQL)
			if !refused {
				continue
			}
			f := Finding{File: s.File, Line: st.Line, Version: m.Version, Migration: m.ID}
			switch {
			case m.Format.wrapsInTransaction() && !s.NoTransaction:
				f.Severity = SeverityError
				f.Message = fmt.Sprintf("PostgreSQL refuses %s inside a transaction, and %s runs this migration in one: add %s", what, syntaxOf(m.Format).tool, syntaxOf(m.Format).noTx)
			case m.Format == FormatGolangMigrate && len(s.Statements) > 1:
				f.Severity = SeverityWarning
				f.Message = fmt.Sprintf("%s in a file with other statements: golang-migrate sends a file as one query, which PostgreSQL runs as one transaction, so it fails unless the database URL has x-multi-statement=true; Shipgate runs the file statement by statement outside a transaction; put it in a migration of its own", what)
			case m.Format == FormatFlyway && len(s.Statements) > 1:
				f.Severity = SeverityWarning
				f.Message = fmt.Sprintf("%s mixed with other statements: Flyway refuses to mix statements that cannot run in a transaction with others unless mixed=true; Shipgate runs the script statement by statement outside a transaction", what)
			default:
				continue
			}
			out = append(out, f)
		}
	}
	return out
}

func cloneTables(t map[string]map[string]string) map[string]map[string]string {
	c := make(map[string]map[string]string, len(t))
	for name, cols := range t {
		c[name] = maps.Clone(cols)
	}
	return c
}

// checker reads the statements of one script and follows the schema they
// build in tables: table name to column name to normalised type, "" for
// an unknown type.
type checker struct {
	m      Migration
	script Script
	tables map[string]map[string]string
	// up is set for an up script.
	up bool
	// created and added are the tables and "table.column"s the script
	// creates, so that dropping them in the same script, or in the down
	// of the same migration, is not called destructive.
	created map[string]bool
	added   map[string]bool
	// upCreated and upAdded are the up script's created and added, for a
	// down script.
	upCreated, upAdded map[string]bool
	// dropped holds the columns of tables dropped by this script, until
	// the end of the script: a table rebuilt under the same name (SQLite's
	// way to change a column) is compared with what it replaced.
	dropped  map[string]droppedTable
	findings []Finding
}

type droppedTable struct {
	cols map[string]string
	line int
}

func (c *checker) warn(line int, format string, args ...any) {
	c.findings = append(c.findings, Finding{Severity: SeverityWarning, File: c.script.File, Line: line, Version: c.m.Version, Migration: c.m.ID, Message: fmt.Sprintf(format, args...)})
}

func (c *checker) run() {
	c.created, c.added, c.dropped = map[string]bool{}, map[string]bool{}, map[string]droppedTable{}
	for _, st := range c.script.Statements {
		toks, err := lex(st.SQL, st.Line)
		if err != nil {
			// Parsing already accepted the script; a block statement that
			// does not lex is left to the database to judge.
			continue
		}
		for _, stmt := range splitTokens(toks) {
			c.statement(st.SQL, stmt)
		}
	}
	for name, d := range c.dropped {
		c.warn(d.line, "drops table %s and every row in it; %s", name, c.lostWhere())
	}
}

// lostWhere says what a destructive statement means for this script.
func (c *checker) lostWhere() string {
	if c.up {
		return "the down migration can recreate the table or column but not its data"
	}
	return "a rollback would lose the data in it"
}

// ownedTable reports whether dropping table name loses nothing the
// migration did not bring: the script created it, or it is a down
// dropping what its up created.
func (c *checker) ownedTable(name string) bool {
	return c.created[name] || c.upCreated[name]
}

func (c *checker) ownedColumn(table, col string) bool {
	key := table + "." + col
	return c.ownedTable(table) || c.added[key] || c.upAdded[key]
}

func (c *checker) statement(sql string, toks []token) {
	cur := &cursor{toks: toks}
	switch {
	case cur.accept("CREATE"):
		cur.accept("TEMP")
		cur.accept("TEMPORARY")
		cur.accept("UNLOGGED")
		if !cur.accept("TABLE") {
			return
		}
		cur.accept("IF", "NOT", "EXISTS")
		name := cur.name()
		if name == "" {
			return
		}
		cols := map[string]string{}
		if cur.punct("(") {
			for _, item := range splitList(cur.rest()) {
				col, typ, ok := columnDef(sql, item)
				if ok {
					cols[col] = typ
				}
			}
		}
		c.tables[name] = cols
		c.created[name] = true
	case cur.accept("DROP", "TABLE"):
		cur.accept("IF", "EXISTS")
		for {
			line := cur.line()
			name := cur.name()
			if name == "" {
				return
			}
			if !c.ownedTable(name) {
				c.dropped[name] = droppedTable{cols: c.tables[name], line: line}
			}
			delete(c.tables, name)
			if !cur.punct(",") {
				return
			}
		}
	case cur.accept("TRUNCATE"):
		cur.accept("TABLE")
		line := cur.line()
		if name := cur.name(); name != "" && !c.ownedTable(name) {
			c.warn(line, "truncates table %s: every row in it is lost", name)
		}
	case cur.accept("DO"):
		c.doBlock(cur.rest())
	case cur.accept("DELETE"):
		cur.accept("FROM")
		cur.accept("ONLY")
		line := cur.line()
		if name := cur.name(); name != "" && !c.up && !c.ownedTable(name) && !bookkeeping(name) {
			c.warn(line, "down deletes rows from table %s: the rows are gone after a rollback, and an up again does not bring them back unless it inserts them", name)
		}
	case cur.accept("UPDATE"):
		cur.accept("ONLY")
		line := cur.line()
		if name := cur.name(); name != "" && !c.up && !c.ownedTable(name) && !bookkeeping(name) {
			c.warn(line, "down updates rows of table %s: check that the values are what the old code expects, and that an up again restores them", name)
		}
	case cur.accept("ALTER", "TABLE"):
		cur.accept("IF", "EXISTS")
		cur.accept("ONLY")
		table := cur.name()
		if table == "" {
			return
		}
		for _, action := range splitList(cur.rest()) {
			table = c.alter(sql, table, action)
		}
	}
}

// bookkeeping reports whether a table is the database's own (SQLite's
// sqlite_sequence, reset by downs that recreate AUTOINCREMENT tables),
// whose rows are no application data.
func bookkeeping(table string) bool { return strings.HasPrefix(table, "sqlite_") }

// doBlock follows the statements inside the body of a PostgreSQL DO
// block (a dollar-quoted or quoted string), so that a column added there
// is known: the CREATE TABLE, ALTER TABLE, DROP TABLE and TRUNCATE
// statements of the body, wherever they start in a PL/pgSQL statement
// (after THEN, BEGIN, ...). Statements built as strings for EXECUTE stay
// unknown.
func (c *checker) doBlock(toks []token) {
	for _, t := range toks {
		if t.kind != tokString {
			continue
		}
		body, offset := stringBody(t.text)
		if body == "" {
			continue
		}
		line := t.line + strings.Count(t.text[:offset], "\n")
		inner, err := lex(body, line)
		if err != nil {
			return
		}
		for _, group := range splitTokens(inner) {
			for i, w := range group {
				next := ""
				if i+1 < len(group) {
					next = group[i+1].word()
				}
				word := w.word()
				if (word == "CREATE" || word == "ALTER" || word == "DROP") && next == "TABLE" || word == "TRUNCATE" {
					c.statement(body, group[i:])
					break
				}
			}
		}
		return
	}
}

// stringBody returns the text inside a string token ('x' or $tag$x$tag$)
// and the offset of that text in the token.
func stringBody(s string) (string, int) {
	if strings.HasPrefix(s, "$") {
		end := strings.Index(s[1:], "$")
		if end < 0 {
			return "", 0
		}
		tag := s[:end+2]
		if len(s) < 2*len(tag) {
			return "", 0
		}
		return s[len(tag) : len(s)-len(tag)], len(tag)
	}
	if len(s) >= 2 && s[0] == '\'' {
		return strings.ReplaceAll(s[1:len(s)-1], "''", "'"), 1
	}
	return "", 0
}

// alter follows one action of ALTER TABLE table and returns the table's
// name after it (a RENAME TO changes it).
func (c *checker) alter(sql, table string, toks []token) string {
	cur := &cursor{toks: toks}
	line := cur.line()
	cols := c.tables[table]
	switch {
	case cur.accept("ADD"):
		if constraintWord(cur.peek().word()) {
			return table
		}
		cur.accept("COLUMN")
		cur.accept("IF", "NOT", "EXISTS")
		def := cur.rest()
		col, typ, ok := columnDef(sql, def)
		if !ok {
			return table
		}
		if cols != nil {
			cols[col] = typ
		}
		c.added[table+"."+col] = true
		rest := upperWords(def)
		if strings.Contains(rest, " NOT NULL ") && !strings.Contains(rest, " DEFAULT ") && !strings.Contains(rest, " GENERATED ") && !c.created[table] {
			c.warn(line, "adds column %s.%s NOT NULL without a DEFAULT: fails if the table has rows; add a DEFAULT, or add it nullable, backfill, then SET NOT NULL", table, col)
		}
	case cur.accept("DROP"):
		if w := cur.peek().word(); w == "CONSTRAINT" || w == "PRIMARY" {
			return table
		}
		cur.accept("COLUMN")
		cur.accept("IF", "EXISTS")
		col := cur.name()
		if col == "" {
			return table
		}
		if !c.ownedColumn(table, col) {
			c.warn(line, "drops column %s.%s and the data in it; %s", table, col, c.lostWhere())
		}
		delete(cols, col)
	case cur.accept("ALTER"):
		cur.accept("COLUMN")
		col := cur.name()
		switch {
		case cur.accept("TYPE") || cur.accept("SET", "DATA", "TYPE"):
			typ := typeText(sql, cur.rest())
			old, known := cols[col]
			if known && old != "" {
				if why := narrows(old, typ); why != "" {
					c.warn(line, "changes column %s.%s from %s to %s: %s", table, col, old, typ, why)
				}
			} else if _, limited := typeLength(typ); limited {
				c.warn(line, "changes column %s.%s to %s (its type before is not known here): values longer than that fail or are cut", table, col, typ)
			}
			if cols != nil {
				cols[col] = typ
			}
		case cur.accept("SET", "NOT", "NULL"):
			c.warn(line, "sets %s.%s NOT NULL: fails if any row has NULL in it; backfill first", table, col)
		}
	case cur.accept("RENAME", "TO"):
		to := cur.name()
		if to == "" {
			return table
		}
		c.rename(table, to, line)
		return to
	case cur.accept("RENAME"):
		if cur.peek().word() == "CONSTRAINT" {
			return table
		}
		cur.accept("COLUMN")
		from := cur.name()
		if !cur.accept("TO") {
			return table
		}
		to := cur.name()
		if cols != nil && from != "" && to != "" {
			cols[to] = cols[from]
			delete(cols, from)
		}
	}
	return table
}

// rename follows ALTER TABLE from RENAME TO to. When to is a table this
// script dropped, the table was rebuilt: compare the new columns with the
// old ones instead of calling the drop destructive.
func (c *checker) rename(from, to string, line int) {
	cols := c.tables[from]
	delete(c.tables, from)
	c.tables[to] = cols
	old, ok := c.dropped[to]
	if !ok {
		if c.created[from] {
			c.created[to] = true
		}
		return
	}
	delete(c.dropped, to)
	if old.cols == nil || cols == nil {
		c.warn(old.line, "drops table %s and replaces it with %s: check that every column and row is copied", to, from)
		return
	}
	for col, typ := range old.cols {
		newTyp, ok := cols[col]
		switch {
		case !ok:
			c.warn(old.line, "rebuilds table %s without column %s: the data in it is lost", to, col)
		case typ != "" && newTyp != "":
			if why := narrows(typ, newTyp); why != "" {
				c.warn(line, "rebuilds table %s with column %s as %s instead of %s: %s", to, col, newTyp, typ, why)
			}
		}
	}
}

// columnDef reads "name type constraints..." and returns the name and the
// normalised type ("" when the column has none, as SQLite allows).
func columnDef(sql string, toks []token) (name, typ string, ok bool) {
	if len(toks) == 0 {
		return "", "", false
	}
	if w := toks[0].word(); constraintWord(w) || w == "LIKE" {
		return "", "", false
	}
	name = toks[0].ident()
	if name == "" {
		return "", "", false
	}
	return name, typeText(sql, toks[1:]), true
}

// constraintWord reports whether w starts a table constraint.
func constraintWord(w string) bool {
	switch w {
	case "CONSTRAINT", "PRIMARY", "UNIQUE", "FOREIGN", "CHECK", "EXCLUDE":
		return true
	}
	return false
}

// typeText returns the normalised type at the start of toks: the tokens
// up to the first column constraint or clause, lower case, single spaces,
// no space before a parenthesis.
func typeText(sql string, toks []token) string {
	end := 0
	depth := 0
loop:
	for ; end < len(toks); end++ {
		t := toks[end]
		switch {
		case t.text == "(":
			depth++
		case t.text == ")":
			depth--
		case depth > 0:
		case t.kind == tokPunct && t.text != "[" && t.text != "]":
			break loop
		case t.kind == tokWord:
			switch t.word() {
			case "NOT", "NULL", "DEFAULT", "PRIMARY", "REFERENCES", "UNIQUE", "CHECK", "CONSTRAINT",
				"COLLATE", "GENERATED", "USING", "AUTOINCREMENT", "AS":
				break loop
			}
		}
	}
	if end == 0 {
		return ""
	}
	return NormaliseType(sql[toks[0].start:toks[end-1].end])
}

// NormaliseType puts a type as written into one spelling: lower case,
// single spaces, "varchar(255)" and "numeric(10,2)" without spaces, so
// that types read from different catalogs compare.
func NormaliseType(s string) string {
	s = strings.ToLower(strings.Join(strings.Fields(s), " "))
	s = strings.ReplaceAll(s, " (", "(")
	s = strings.ReplaceAll(s, "( ", "(")
	s = strings.ReplaceAll(s, " )", ")")
	s = strings.ReplaceAll(s, ", ", ",")
	return s
}

// typeFamily returns the family of a normalised type and its size
// parameters: ("varchar", [255]), ("int", [4]), ("numeric", [10, 2]).
// The int family's parameter is the byte width.
func typeFamily(typ string) (string, []int) {
	base, args := typ, ""
	if i := strings.IndexByte(typ, '('); i >= 0 && strings.HasSuffix(typ, ")") {
		base, args = strings.TrimSpace(typ[:i]), typ[i+1:len(typ)-1]
	}
	var params []int
	for _, a := range strings.Split(args, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(a)); err == nil {
			params = append(params, n)
		}
	}
	switch base {
	case "varchar", "character varying", "nvarchar", "varying character", "native character", "nchar varying":
		return "varchar", params
	case "char", "character", "bpchar", "nchar":
		if len(params) == 0 {
			params = []int{1}
		}
		return "varchar", params
	case "text", "clob", "string", "citext":
		return "text", nil
	case "tinyint", "int1":
		return "int", []int{1}
	case "smallint", "int2", "smallserial", "serial2":
		return "int", []int{2}
	case "int", "integer", "int4", "mediumint", "serial", "serial4":
		return "int", []int{4}
	case "bigint", "int8", "bigserial", "serial8":
		return "int", []int{8}
	case "numeric", "decimal":
		return "numeric", params
	case "real", "float4":
		return "float", []int{4}
	case "double precision", "float8", "double", "float":
		return "float", []int{8}
	}
	return base, params
}

// typeLength returns the length limit of a character type.
func typeLength(typ string) (int, bool) {
	fam, params := typeFamily(typ)
	if fam == "varchar" && len(params) > 0 {
		return params[0], true
	}
	return 0, false
}

// narrows says how changing a column from oldType to newType can lose or
// refuse existing values, or "" when it cannot.
func narrows(oldType, newType string) string {
	if oldType == newType {
		return ""
	}
	of, op := typeFamily(oldType)
	nf, np := typeFamily(newType)
	switch {
	case of == "text" && nf == "varchar" && len(np) > 0:
		return fmt.Sprintf("values longer than %d characters fail or are cut", np[0])
	case of == "varchar" && nf == "varchar" && len(np) > 0 && (len(op) == 0 || np[0] < op[0]):
		return fmt.Sprintf("values longer than %d characters fail or are cut", np[0])
	case of == "varchar" && (nf == "varchar" || nf == "text"):
		return ""
	case of == "int" && nf == "int" && np[0] < op[0]:
		return fmt.Sprintf("values beyond a %d-byte integer fail", np[0])
	case of == "int" && (nf == "int" || nf == "numeric" && len(np) == 0 || nf == "float" && np[0] == 8 && op[0] <= 4):
		return ""
	case of == "numeric" && nf == "numeric":
		if len(np) > 0 && (len(op) == 0 || np[0] < op[0] || scale(np) < scale(op)) {
			return "values with more digits fail or are rounded"
		}
		return ""
	case of == "float" && nf == "float" && np[0] < op[0]:
		return "values lose precision"
	case of == "float" && nf == "float":
		return ""
	case of == nf && len(op) == 0 && len(np) == 0:
		return ""
	case of == nf && len(op) > 0 && len(np) > 0 && np[0] >= op[0]:
		return ""
	}
	return "existing values may not convert"
}

func scale(params []int) int {
	if len(params) > 1 {
		return params[1]
	}
	return 0
}

// cursor reads tokens of one statement.
type cursor struct {
	toks []token
	i    int
}

func (c *cursor) peek() token {
	if c.i < len(c.toks) {
		return c.toks[c.i]
	}
	return token{kind: tokPunct}
}

// line returns the line of the next token, or of the last one.
func (c *cursor) line() int {
	if c.i < len(c.toks) {
		return c.toks[c.i].line
	}
	if len(c.toks) > 0 {
		return c.toks[len(c.toks)-1].line
	}
	return 0
}

// accept consumes the words if the next tokens are exactly them.
func (c *cursor) accept(words ...string) bool {
	for k, w := range words {
		if c.i+k >= len(c.toks) || c.toks[c.i+k].word() != w {
			return false
		}
	}
	c.i += len(words)
	return true
}

// punct consumes the punctuation p if it comes next.
func (c *cursor) punct(p string) bool {
	if t := c.peek(); t.kind == tokPunct && t.text == p && c.i < len(c.toks) {
		c.i++
		return true
	}
	return false
}

// name consumes a possibly qualified name (schema.table) and returns its
// last part, "" if no name comes next.
func (c *cursor) name() string {
	var n string
	for {
		t := c.peek()
		id := t.ident()
		if id == "" || c.i >= len(c.toks) {
			return n
		}
		n = id
		c.i++
		if !c.punct(".") {
			return n
		}
	}
}

// rest returns the tokens not read yet, without a closing parenthesis
// that matches one read before.
func (c *cursor) rest() []token {
	r := c.toks[c.i:]
	c.i = len(c.toks)
	return r
}

// splitList splits tokens at the commas outside parentheses, stopping at
// a closing parenthesis that matches none of them.
func splitList(toks []token) [][]token {
	var items [][]token
	depth, start := 0, 0
	for i, t := range toks {
		if t.kind != tokPunct {
			continue
		}
		switch t.text {
		case "(":
			depth++
		case ")":
			if depth == 0 {
				if i > start {
					items = append(items, toks[start:i])
				}
				return items
			}
			depth--
		case ",":
			if depth == 0 {
				items = append(items, toks[start:i])
				start = i + 1
			}
		}
	}
	if start < len(toks) {
		items = append(items, toks[start:])
	}
	return items
}

// upperWords returns the words of toks in upper case, space-separated,
// with a space at each end so that " NOT NULL " can be searched for.
func upperWords(toks []token) string {
	var b strings.Builder
	b.WriteByte(' ')
	for _, t := range toks {
		if w := t.word(); w != "" {
			b.WriteString(w + " ")
		}
	}
	return b.String()
}

// TableChecks returns the expressions of the CHECK constraints, of the
// table and of its columns, in a CREATE TABLE statement, with single
// spaces: SQLite keeps them only in the statement's text.
func TableChecks(createTable string) []string {
	toks, err := lex(createTable, 1)
	if err != nil {
		return nil
	}
	var checks []string
	for i := 0; i < len(toks); i++ {
		if toks[i].word() != "CHECK" || i+1 >= len(toks) || toks[i+1].text != "(" {
			continue
		}
		depth := 0
		for j := i + 1; j < len(toks); j++ {
			switch toks[j].text {
			case "(":
				depth++
			case ")":
				depth--
			}
			if depth == 0 {
				expr := createTable[toks[i+2].start:toks[j].start]
				checks = append(checks, strings.Join(strings.Fields(expr), " "))
				i = j
				break
			}
		}
	}
	return checks
}
