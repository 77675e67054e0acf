package migrate

import (
	"fmt"
	"strings"
)

// Statement is one SQL statement of a migration script, as it is sent to
// the database.
type Statement struct {
	// SQL is the text of the statement without its terminating semicolon.
	SQL string
	// Line is the 1-based line of the statement's first token in its file.
	Line int
}

// tokenKind classifies what the lexer found.
type tokenKind int

const (
	tokWord   tokenKind = iota // a keyword or unquoted identifier
	tokQuoted                  // a quoted identifier: "x", `x` or [x]
	tokString                  // a string constant, including dollar-quoted ones
	tokNumber
	tokPunct // any other character: ( ) , . = ...
	tokSemi  // the ; that ends a statement
)

// token is one lexical token of SQL. Comments and white space are not
// tokens.
type token struct {
	kind tokenKind
	text string
	// start and end are byte offsets into the lexed text.
	start, end int
	// line is 1-based, counted from the start of the file.
	line int
}

// word returns the token's text in upper case if it is a word, and "" if
// it is not, so that keyword tests read plainly.
func (t token) word() string {
	if t.kind != tokWord {
		return ""
	}
	return strings.ToUpper(t.text)
}

// ident returns the name the token stands for if it is an identifier,
// quoted or not, in the case the database would fold it to for
// comparison: unquoted names in lower case, quoted ones as written.
func (t token) ident() string {
	switch t.kind {
	case tokWord:
		return strings.ToLower(t.text)
	case tokQuoted:
		return unquoteIdent(t.text)
	}
	return ""
}

// SyntaxError is a lexical error in a SQL script: a quote, a dollar
// quote or a comment that is never closed.
type SyntaxError struct {
	Line    int
	Message string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Message) }

// lex splits src into tokens. firstLine is the line number of src's first
// byte in its file. It understands what PostgreSQL and SQLite do with
// quotes: 'strings' with doubled quotes inside, E'strings' with backslash escapes,
// "identifiers", `identifiers` and [identifiers] (SQLite), $tag$dollar
// quotes$tag$, -- line comments and nested /* block comments */.
func lex(src string, firstLine int) ([]token, error) {
	var toks []token
	line := firstLine
	i := 0
	// advance moves i to j, counting the newlines it passes.
	advance := func(j int) {
		line += strings.Count(src[i:j], "\n")
		i = j
	}
	for i < len(src) {
		c := src[i]
		switch {
		case c == '\n' || c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			advance(i + 1)
		case c == '-' && strings.HasPrefix(src[i:], "--"):
			j := strings.IndexByte(src[i:], '\n')
			if j < 0 {
				j = len(src) - i
			}
			advance(i + j)
		case c == '/' && strings.HasPrefix(src[i:], "/*"):
			j, ok := blockCommentEnd(src, i)
			if !ok {
				return nil, &SyntaxError{Line: line, Message: "block comment /* is never closed"}
			}
			advance(j)
		case c == '\'':
			j, ok := quoteEnd(src, i, '\'', false)
			if !ok {
				return nil, &SyntaxError{Line: line, Message: "string ' is never closed"}
			}
			toks = append(toks, token{kind: tokString, text: src[i:j], start: i, end: j, line: line})
			advance(j)
		case (c == 'E' || c == 'e') && i+1 < len(src) && src[i+1] == '\'' && !afterIdentChar(src, i):
			j, ok := quoteEnd(src, i+1, '\'', true)
			if !ok {
				return nil, &SyntaxError{Line: line, Message: "string E' is never closed"}
			}
			toks = append(toks, token{kind: tokString, text: src[i:j], start: i, end: j, line: line})
			advance(j)
		case c == '"' || c == '`':
			j, ok := quoteEnd(src, i, c, false)
			if !ok {
				return nil, &SyntaxError{Line: line, Message: fmt.Sprintf("quoted identifier %c is never closed", c)}
			}
			toks = append(toks, token{kind: tokQuoted, text: src[i:j], start: i, end: j, line: line})
			advance(j)
		case c == '[' && sqliteBracket(toks):
			j := strings.IndexByte(src[i:], ']')
			if j < 0 {
				return nil, &SyntaxError{Line: line, Message: "quoted identifier [ is never closed"}
			}
			toks = append(toks, token{kind: tokQuoted, text: src[i : i+j+1], start: i, end: i + j + 1, line: line})
			advance(i + j + 1)
		case c == '$' && !afterIdentChar(src, i):
			tag, ok := dollarTag(src, i)
			if !ok {
				// A parameter such as $1, or a lone dollar.
				toks = append(toks, token{kind: tokPunct, text: "$", start: i, end: i + 1, line: line})
				advance(i + 1)
				continue
			}
			k := strings.Index(src[i+len(tag):], tag)
			if k < 0 {
				return nil, &SyntaxError{Line: line, Message: fmt.Sprintf("dollar quote %s is never closed", tag)}
			}
			j := i + len(tag) + k + len(tag)
			toks = append(toks, token{kind: tokString, text: src[i:j], start: i, end: j, line: line})
			advance(j)
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentChar(src[j]) {
				j++
			}
			toks = append(toks, token{kind: tokWord, text: src[i:j], start: i, end: j, line: line})
			advance(j)
		case c >= '0' && c <= '9':
			j := i + 1
			for j < len(src) && (isIdentChar(src[j]) || src[j] == '.') {
				j++
			}
			toks = append(toks, token{kind: tokNumber, text: src[i:j], start: i, end: j, line: line})
			advance(j)
		case c == ';':
			toks = append(toks, token{kind: tokSemi, text: ";", start: i, end: i + 1, line: line})
			advance(i + 1)
		default:
			toks = append(toks, token{kind: tokPunct, text: src[i : i+1], start: i, end: i + 1, line: line})
			advance(i + 1)
		}
	}
	return toks, nil
}

// blockCommentEnd returns the offset just past the block comment that
// starts at i. Block comments nest, as in PostgreSQL.
func blockCommentEnd(src string, i int) (int, bool) {
	depth := 0
	for j := i; j+1 < len(src); {
		switch {
		case src[j] == '/' && src[j+1] == '*':
			depth++
			j += 2
		case src[j] == '*' && src[j+1] == '/':
			depth--
			j += 2
			if depth == 0 {
				return j, true
			}
		default:
			j++
		}
	}
	return 0, false
}

// quoteEnd returns the offset just past the quoted text that starts with
// the quote q at i. A doubled quote stands for itself; with backslash, a
// backslash escapes the next byte.
func quoteEnd(src string, i int, q byte, backslash bool) (int, bool) {
	for j := i + 1; j < len(src); j++ {
		switch src[j] {
		case '\\':
			if backslash {
				j++
			}
		case q:
			if j+1 < len(src) && src[j+1] == q {
				j++
				continue
			}
			return j + 1, true
		}
	}
	return 0, false
}

// dollarTag returns the dollar-quote opening tag at i ("$$" or "$body$").
func dollarTag(src string, i int) (string, bool) {
	j := i + 1
	if j < len(src) && src[j] == '$' {
		return "$$", true
	}
	if j >= len(src) || !isIdentStart(src[j]) {
		return "", false
	}
	for j < len(src) && isIdentChar(src[j]) && src[j] != '$' {
		j++
	}
	if j < len(src) && src[j] == '$' {
		return src[i : j+1], true
	}
	return "", false
}

// sqliteBracket reports whether a [ after toks opens a SQLite [quoted
// identifier] rather than a PostgreSQL array subscript or type (int[]),
// which always follow a value or a name.
func sqliteBracket(toks []token) bool {
	if len(toks) == 0 {
		return true
	}
	switch last := toks[len(toks)-1]; last.kind {
	case tokWord:
		switch last.word() {
		case "TABLE", "INTO", "FROM", "ON", "UPDATE", "JOIN", "INDEX", "EXISTS", "COLUMN", "REFERENCES", "KEY", "BY", "AS", "SET", "TO", "SELECT", "WHERE", "AND", "OR", "ADD", "VIEW", "TRIGGER":
			return true
		}
		return false
	case tokPunct:
		return last.text == "(" || last.text == ","
	case tokSemi:
		return true
	}
	return false
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isIdentChar(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' || c == '$' }

// afterIdentChar reports whether the byte before i continues an
// identifier, so that the $ of a$b or the E of abcE'x' starts nothing.
func afterIdentChar(src string, i int) bool { return i > 0 && isIdentChar(src[i-1]) }

// unquoteIdent returns the name inside a quoted identifier.
func unquoteIdent(s string) string {
	if len(s) < 2 {
		return s
	}
	switch s[0] {
	case '"':
		return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	case '`':
		return strings.ReplaceAll(s[1:len(s)-1], "``", "`")
	case '[':
		return s[1 : len(s)-1]
	}
	return s
}

// Split splits a SQL script into statements at the semicolons that end
// them, leaving alone the ones inside strings, quoted identifiers, dollar
// quotes, comments, and the BEGIN ... END body of a CREATE TRIGGER (or of
// any CREATE statement with a BEGIN ATOMIC body). firstLine is the line
// number of the script's first byte in its file, so that statements carry
// their line in the file. A script with only comments and space has no
// statements.
func Split(script string, firstLine int) ([]Statement, error) {
	toks, err := lex(script, firstLine)
	if err != nil {
		return nil, err
	}
	var stmts []Statement
	for _, group := range splitTokens(toks) {
		first, last := group[0], group[len(group)-1]
		stmts = append(stmts, Statement{SQL: script[first.start:last.end], Line: first.line})
	}
	return stmts, nil
}

// splitTokens groups tokens into statements, dropping the semicolons and
// empty statements.
func splitTokens(toks []token) [][]token {
	var groups [][]token
	start := 0
	// depth counts the BEGIN (and CASE) blocks open in a CREATE statement.
	depth := 0
	isCreate := false
	for i, t := range toks {
		if i == start {
			isCreate = t.word() == "CREATE"
			depth = 0
		}
		switch w := t.word(); {
		case t.kind == tokSemi && depth == 0:
			if i > start {
				groups = append(groups, toks[start:i])
			}
			start = i + 1
		case !isCreate:
		case w == "BEGIN":
			depth++
		case w == "CASE" && depth > 0:
			depth++
		case w == "END" && depth > 0:
			depth--
		}
	}
	if start < len(toks) {
		groups = append(groups, toks[start:])
	}
	return groups
}

// NormaliseSQL puts an SQL fragment as SQLite keeps it (an index's
// columns and predicate, a default, a check) into one spelling, so that
// two fragments that mean the same compare equal: words in lower case,
// quoted identifiers unquoted, single spaces between tokens and none
// inside parentheses or before commas, and redundant outer parentheses
// removed. String constants are kept as written. A fragment that does not
// lex is returned with its white space collapsed.
func NormaliseSQL(s string) string {
	toks, err := lex(s, 1)
	if err != nil {
		return strings.Join(strings.Fields(s), " ")
	}
	for len(toks) >= 2 && toks[0].text == "(" && toks[len(toks)-1].text == ")" && closes(toks) {
		toks = toks[1 : len(toks)-1]
	}
	var b strings.Builder
	for i, t := range toks {
		text := t.text
		switch t.kind {
		case tokWord:
			text = strings.ToLower(text)
		case tokQuoted:
			text = unquoteIdent(text)
		}
		if i > 0 {
			prev := toks[i-1].text
			if prev != "(" && prev != "." && text != ")" && text != "," && text != "." && (text != "(" || toks[i-1].kind == tokPunct) {
				b.WriteByte(' ')
			}
		}
		b.WriteString(text)
	}
	return b.String()
}

// closes reports whether the opening parenthesis toks[0] is closed by the
// last token, not before it.
func closes(toks []token) bool {
	depth := 0
	for i, t := range toks {
		switch t.text {
		case "(":
			depth++
		case ")":
			depth--
			if depth == 0 && i < len(toks)-1 {
				return false
			}
		}
	}
	return true
}
