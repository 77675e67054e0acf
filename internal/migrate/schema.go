package migrate

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Schema is the structure of a database as its catalog describes it:
// what an application depends on, without the data. Maps are keyed by
// name, so that the order of columns or of catalog rows never makes two
// equal schemas differ.
type Schema struct {
	Tables map[string]Table
}

// Table is a table of a Schema.
type Table struct {
	Name    string
	Columns map[string]Column
	// Indexes are the indexes created with CREATE INDEX; the ones that
	// back a primary key or unique constraint are in Constraints.
	Indexes     map[string]Index
	Constraints []Constraint
}

// Column is a column of a table.
type Column struct {
	Name string
	// Type is normalised: lower case, single spaces, "varchar(255)".
	Type    string
	NotNull bool
	// Default is the default expression as the catalog prints it, "" for
	// none.
	Default string
}

// Index is an index of a table.
type Index struct {
	Name string
	// Columns are in index order; an expression stands for itself.
	Columns []string
	Unique  bool
	// Where is the predicate of a partial index.
	Where string
}

// ConstraintKind is the kind of a table constraint.
type ConstraintKind string

// Kinds of table constraints.
const (
	PrimaryKey ConstraintKind = "primary key"
	ForeignKey ConstraintKind = "foreign key"
	Unique     ConstraintKind = "unique"
	CheckKind  ConstraintKind = "check"
)

// Constraint is a table constraint.
type Constraint struct {
	Kind ConstraintKind
	// Name is "" where the database does not name constraints (SQLite).
	Name    string
	Columns []string
	// RefTable, RefColumns, OnUpdate and OnDelete describe a foreign key.
	RefTable           string
	RefColumns         []string
	OnUpdate, OnDelete string
	// Check is the expression of a check constraint.
	Check string
}

// key identifies a constraint by what it does, not by its name.
func (c Constraint) key() string {
	switch c.Kind {
	case ForeignKey:
		return fmt.Sprintf("foreign key (%s) references %s (%s)", strings.Join(c.Columns, ", "), c.RefTable, strings.Join(c.RefColumns, ", "))
	case CheckKind:
		return "check (" + c.Check + ")"
	}
	return fmt.Sprintf("%s (%s)", c.Kind, strings.Join(c.Columns, ", "))
}

// Difference is one way a schema, or the data in it, is not what it
// should be.
type Difference struct {
	// Subject is what differs: "table users", "table users: column email".
	Subject string
	// Change says how: "missing", "left behind", "type differs".
	Change string
	// Detail gives the values: "now varchar(100), was varchar(255)".
	Detail string
}

// String reads "table users: column email missing (was varchar(255))".
func (d Difference) String() string { return d.Format("") }

// Format returns the difference with when ("after down") after the
// change: "table users: column email missing after down (was text)".
func (d Difference) Format(when string) string {
	s := d.Subject + " " + d.Change
	if when != "" {
		s += " " + when
	}
	if d.Detail != "" {
		s += " (" + d.Detail + ")"
	}
	return s
}

// DiffSchemas returns how got differs from want, sorted by table.
func DiffSchemas(want, got Schema) []Difference {
	var diffs []Difference
	for _, name := range unionKeys(want.Tables, got.Tables) {
		w, inWant := want.Tables[name]
		g, inGot := got.Tables[name]
		subject := "table " + name
		switch {
		case !inGot:
			diffs = append(diffs, Difference{Subject: subject, Change: "missing"})
		case !inWant:
			diffs = append(diffs, Difference{Subject: subject, Change: "left behind", Detail: "it did not exist before"})
		default:
			diffs = append(diffs, diffTable(subject, w, g)...)
		}
	}
	return diffs
}

func diffTable(subject string, want, got Table) []Difference {
	var diffs []Difference
	add := func(what, change, detail string) {
		diffs = append(diffs, Difference{Subject: subject + ": " + what, Change: change, Detail: detail})
	}
	diffKeyed(want.Columns, got.Columns, "column ", add, func(c Column) string { return "was " + c.describe() }, notBefore[Column],
		func(what string, w, g Column) {
			if w.Type != g.Type {
				add(what, "type differs", fmt.Sprintf("now %s, was %s", orNone(g.Type), orNone(w.Type)))
			}
			if w.NotNull != g.NotNull {
				add(what, "nullability differs", fmt.Sprintf("now %s, was %s", nullText(g.NotNull), nullText(w.NotNull)))
			}
			if w.Default != g.Default {
				add(what, "default differs", fmt.Sprintf("now %s, was %s", orNone(g.Default), orNone(w.Default)))
			}
		})
	diffKeyed(want.Indexes, got.Indexes, "index ", add, func(ix Index) string { return "was " + ix.describe() }, notBefore[Index],
		func(what string, w, g Index) {
			if !slices.Equal(w.Columns, g.Columns) {
				add(what, "columns differ", fmt.Sprintf("now (%s), was (%s)", strings.Join(g.Columns, ", "), strings.Join(w.Columns, ", ")))
			}
			if w.Unique != g.Unique {
				add(what, "unique differs", fmt.Sprintf("now %t, was %t", g.Unique, w.Unique))
			}
			if w.Where != g.Where {
				add(what, "predicate differs", fmt.Sprintf("now %s, was %s", orNone(g.Where), orNone(w.Where)))
			}
		})
	byName := func(c Constraint) string { return nameDetail(c.Name) }
	diffKeyed(constraintsByKey(want.Constraints), constraintsByKey(got.Constraints), "constraint ", add, byName, byName,
		func(what string, w, g Constraint) {
			if w.Name != g.Name {
				add(what, "name differs", fmt.Sprintf("now %s, was %s", orNone(g.Name), orNone(w.Name)))
			}
			if w.OnDelete != g.OnDelete || w.OnUpdate != g.OnUpdate {
				add(what, "actions differ", fmt.Sprintf("now on delete %s on update %s, was on delete %s on update %s", g.OnDelete, g.OnUpdate, w.OnDelete, w.OnUpdate))
			}
		})
	return diffs
}

// notBefore is the detail of a column or index left behind by a down.
func notBefore[V any](V) string { return "it did not exist before" }

// diffKeyed compares two keyed sets of one kind (columns, indexes,
// constraints), in key order: a key only before is "missing", a key only
// after is "left behind", each with the detail its function gives, and a
// key on both sides is handed to both.
func diffKeyed[V any](want, got map[string]V, kind string, add func(what, change, detail string),
	missing, leftBehind func(V) string, both func(what string, w, g V)) {
	for _, key := range unionKeys(want, got) {
		w, inWant := want[key]
		g, inGot := got[key]
		what := kind + key
		switch {
		case !inGot:
			add(what, "missing", missing(w))
		case !inWant:
			add(what, "left behind", leftBehind(g))
		default:
			both(what, w, g)
		}
	}
}

func constraintsByKey(cs []Constraint) map[string]Constraint {
	m := make(map[string]Constraint, len(cs))
	for _, c := range cs {
		k := c.key()
		// Two identical constraints (possible in SQLite) are one for
		// comparison; keep the first by name so that results are stable.
		if prev, ok := m[k]; ok && prev.Name <= c.Name {
			continue
		}
		m[k] = c
	}
	return m
}

func (c Column) describe() string {
	s := orNone(c.Type)
	if c.NotNull {
		s += " not null"
	}
	if c.Default != "" {
		s += " default " + c.Default
	}
	return s
}

func (ix Index) describe() string {
	s := "(" + strings.Join(ix.Columns, ", ") + ")"
	if ix.Unique {
		s = "unique " + s
	}
	if ix.Where != "" {
		s += " where " + ix.Where
	}
	return s
}

func nameDetail(name string) string {
	if name == "" {
		return ""
	}
	return "named " + name
}

func nullText(notNull bool) string {
	if notNull {
		return "not null"
	}
	return "nullable"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// unionKeys returns the keys of a and b, sorted.
func unionKeys[V any](a, b map[string]V) []string {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}
