package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// Data is a fingerprint of the rows of every table, by table name: enough
// to tell whether a down followed by an up gave the rows back, without
// keeping the rows.
type Data map[string]TableData

// TableData is the fingerprint of one table's rows.
type TableData struct {
	Rows int64
	// Columns holds, per column, a hash of the sorted values of the
	// column, so that a column whose values were lost or changed is named
	// whatever the order of the rows.
	Columns map[string]ColumnData
}

// ColumnData is the fingerprint of one column's values.
type ColumnData struct {
	// Hash is the hex SHA-256 of the sorted values.
	Hash string
	// NonNull counts the values that are not NULL.
	NonNull int64
	// MaxLength is the length in characters of the longest text value.
	MaxLength int
}

// TableFingerprint builds the TableData of one table from its rows.
type TableFingerprint struct {
	columns []string
	values  [][]string
	nonNull []int64
	maxLen  []int
	rows    int64
}

// NewTableFingerprint returns a builder for rows with the given columns.
func NewTableFingerprint(columns []string) *TableFingerprint {
	return &TableFingerprint{
		columns: columns,
		values:  make([][]string, len(columns)),
		nonNull: make([]int64, len(columns)),
		maxLen:  make([]int, len(columns)),
	}
}

// Add adds a row, one value per column, as database/sql scans them into
// an any: nil, int64, float64, bool, []byte, string or time.Time.
func (f *TableFingerprint) Add(row []any) {
	f.rows++
	for i, v := range row[:len(f.columns)] {
		s, n := encodeValue(v)
		f.values[i] = append(f.values[i], s)
		if v != nil {
			f.nonNull[i]++
		}
		f.maxLen[i] = max(f.maxLen[i], n)
	}
}

// encodeValue returns a value as text that tells NULL from every string,
// and its length in characters if it is text.
func encodeValue(v any) (string, int) {
	switch v := v.(type) {
	case nil:
		return "\x00NULL", 0
	case string:
		return "s" + v, utf8.RuneCountInString(v)
	case []byte:
		return "s" + string(v), utf8.RuneCount(v)
	case interface{ Format(string) string }:
		// time.Time, without the monotonic reading.
		return "t" + v.Format("2006-01-02T15:04:05.999999999Z07:00"), 0
	}
	return "v" + fmt.Sprint(v), 0
}

// Finish returns the fingerprint.
func (f *TableFingerprint) Finish() TableData {
	td := TableData{Rows: f.rows, Columns: make(map[string]ColumnData, len(f.columns))}
	for i, c := range f.columns {
		vals := slices.Clone(f.values[i])
		slices.Sort(vals)
		h := sha256.New()
		for _, v := range vals {
			// A length prefix keeps "ab","c" apart from "a","bc".
			fmt.Fprintf(h, "%d:%s", len(v), v)
		}
		td.Columns[c] = ColumnData{Hash: hex.EncodeToString(h.Sum(nil)), NonNull: f.nonNull[i], MaxLength: f.maxLen[i]}
	}
	return td
}

// DiffData returns how the rows in got differ from those in want, over
// the tables and columns both have: a schema difference is reported by
// DiffSchemas, not twice.
func DiffData(want, got Data) []Difference {
	var diffs []Difference
	for _, name := range unionKeys(want, got) {
		w, inWant := want[name]
		g, inGot := got[name]
		if !inWant || !inGot {
			continue
		}
		subject := "table " + name
		if w.Rows != g.Rows {
			diffs = append(diffs, Difference{Subject: subject, Change: "rows lost or added", Detail: fmt.Sprintf("now %d rows, was %d", g.Rows, w.Rows)})
			continue
		}
		for _, col := range unionKeys(w.Columns, g.Columns) {
			wc, inW := w.Columns[col]
			gc, inG := g.Columns[col]
			if !inW || !inG || wc.Hash == gc.Hash {
				continue
			}
			detail := "same number of rows, other values"
			if gc.NonNull < wc.NonNull {
				detail = fmt.Sprintf("%d of %d values are now NULL or default", wc.NonNull-gc.NonNull, wc.NonNull)
			}
			diffs = append(diffs, Difference{Subject: subject + ": column " + col, Change: "values lost or changed", Detail: detail})
		}
	}
	return diffs
}

// LengthViolations returns the text columns of s whose declared length
// (varchar(100), char(8)) is shorter than the longest value d says they
// hold. SQLite stores such values anyway, where PostgreSQL refuses them,
// so this is how a narrowing shows on SQLite.
func LengthViolations(s Schema, d Data) []Difference {
	var diffs []Difference
	for _, name := range slices.Sorted(maps.Keys(s.Tables)) {
		td, ok := d[name]
		if !ok {
			continue
		}
		t := s.Tables[name]
		for _, col := range slices.Sorted(maps.Keys(t.Columns)) {
			limit, limited := typeLength(t.Columns[col].Type)
			cd, ok := td.Columns[col]
			if !limited || !ok || cd.MaxLength <= limit {
				continue
			}
			diffs = append(diffs, Difference{
				Subject: "table " + name + ": column " + col,
				Change:  "cannot hold its data",
				Detail:  fmt.Sprintf("declared %s, holds a value of %d characters", strings.ToLower(t.Columns[col].Type), cd.MaxLength),
			})
		}
	}
	return diffs
}

// volatileDefaults are the functions whose value changes from one call to
// the next, in the defaults of PostgreSQL and SQLite columns.
var volatileDefaults = []string{
	"now()", "current_timestamp", "current_date", "current_time", "localtimestamp", "localtime",
	"clock_timestamp(", "statement_timestamp(", "transaction_timestamp(", "timeofday(",
	"random(", "gen_random_uuid(", "uuid_generate_", "randomblob(", "'now'",
}

// VolatileDefault reports whether a column default gives another value
// each time (now(), CURRENT_TIMESTAMP, gen_random_uuid()...). Such
// columns (updated_at, touched by triggers too) change whenever a
// migration rewrites rows, by design, so data comparisons leave them out.
func VolatileDefault(def string) bool {
	d := strings.ToLower(def)
	for _, v := range volatileDefaults {
		if strings.Contains(d, v) {
			return true
		}
	}
	return false
}

// Restrict returns d with only the tables and columns that s has: the
// data a down followed by an up should keep is the data in the columns
// the down does not remove.
func (d Data) Restrict(s Schema) Data {
	out := make(Data, len(d))
	for name, td := range d {
		t, ok := s.Tables[name]
		if !ok {
			continue
		}
		cols := make(map[string]ColumnData, len(td.Columns))
		for c, cd := range td.Columns {
			if _, ok := t.Columns[c]; ok {
				cols[c] = cd
			}
		}
		out[name] = TableData{Rows: td.Rows, Columns: cols}
	}
	return out
}
