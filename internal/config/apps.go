package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// A server manages several apps: LoadApps reads them from a directory of
// app files, or from one file holding several apps as YAML documents
// separated by "---". A file with one app (app: at the top) is read as
// before.

// LoadApps reads the apps at path: a directory (every *.yaml and *.yml
// file in it, not its subdirectories, in name order; files whose names
// start with a dot are left out) or one file. Each file holds one app or
// several, one per YAML document. Every problem of every file is
// reported, with file:line; then the apps are checked together (no two
// with the same name, no two routers on the same address). The apps are
// returned in the order they were read.
func LoadApps(path string) ([]*Config, error) {
	files, err := AppFiles(path)
	if err != nil {
		return nil, err
	}
	contents := make([]File, 0, len(files))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		contents = append(contents, File{Name: file, Data: data})
	}
	return ParseFiles(contents)
}

// AppFiles returns the app files at path as LoadApps reads them: path
// itself when it is a file, or the *.yaml and *.yml files of the
// directory path, in name order.
func AppFiles(path string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("read config directory: %w", err)
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || (filepath.Ext(name) != ".yaml" && filepath.Ext(name) != ".yml") {
			continue
		}
		files = append(files, filepath.Join(path, name))
	}
	if len(files) == 0 {
		return nil, &Error{Problems: []Problem{{File: path, Message: "the directory has no app file: put one *.yaml file per app in it"}}}
	}
	return files, nil
}

// File is an app file's name (its path, as problems will name it) and
// content, as shipgate apply sends it.
type File struct {
	Name string `json:"name"`
	Data []byte `json:"data"`
}

// ParseFiles parses app files as LoadApps reads them: every problem of
// every file, then the apps checked together.
func ParseFiles(files []File) ([]*Config, error) {
	if len(files) == 0 {
		return nil, &Error{Problems: []Problem{{Message: "no app file given"}}}
	}
	var (
		apps     []parsedApp
		problems []Problem
	)
	for _, f := range files {
		got, err := parseApps(f.Name, f.Data)
		var ce *Error
		switch {
		case errors.As(err, &ce):
			problems = append(problems, ce.Problems...)
		case err != nil:
			return nil, err
		}
		apps = append(apps, got...)
	}
	if len(problems) > 0 {
		return nil, &Error{Problems: problems}
	}
	if err := checkApps(apps); err != nil {
		return nil, err
	}
	out := make([]*Config, len(apps))
	for i, a := range apps {
		out[i] = a.c
	}
	return out, nil
}

// parsedApp is an app as parsed, with the line of each of its fields.
type parsedApp struct {
	c     *Config
	lines map[string]int
}

// ParseApps decodes data, the content of the file name, as one app per
// YAML document, each like Parse, and checks them together as LoadApps
// does. Empty documents (a trailing "---") are left out; a file with no
// app is an error.
func ParseApps(name string, data []byte) ([]*Config, error) {
	apps, err := parseApps(name, data)
	if err != nil {
		return nil, err
	}
	if err := checkApps(apps); err != nil {
		return nil, err
	}
	out := make([]*Config, len(apps))
	for i, a := range apps {
		out[i] = a.c
	}
	return out, nil
}

func parseApps(name string, data []byte) ([]parsedApp, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var (
		apps     []parsedApp
		problems []Problem
	)
	for {
		d := &decoder{file: name, nodes: map[string]entry{}}
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			d.syntaxError(data, err)
			problems = append(problems, d.problems...)
			break
		}
		if len(doc.Content) != 1 || isNull(doc.Content[0]) {
			continue
		}
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			problems = append(problems, Problem{File: name, Line: root.Line, Column: root.Column,
				Message: `each document must be a mapping of fields, like "app: shop", got ` + describe(root)})
			continue
		}
		c, lines, err := d.parseRoot(name, root)
		if err != nil {
			problems = append(problems, d.problems...)
			continue
		}
		apps = append(apps, parsedApp{c, lines})
	}
	if len(problems) > 0 {
		return nil, newError(problems)
	}
	if len(apps) == 0 {
		return nil, newError([]Problem{{File: name, Message: emptyMessage}})
	}
	return apps, nil
}

// checkApps reports what makes apps unable to run in one server: two apps
// with the same name, two apps whose routers would listen on the same
// address, server-wide sections (dora, retire, notifications.report) in
// another app than the first, and two webhooks of the same name. Each problem names both places.
func checkApps(apps []parsedApp) error {
	var problems []Problem
	seen := map[string]parsedApp{}
	for _, a := range apps {
		if first, ok := seen[a.c.App]; ok {
			problems = append(problems, Problem{File: a.c.Source, Line: a.lines[""], Field: "app",
				Message: fmt.Sprintf("app %q is declared twice: here and in %s:%d; give each app its own name", a.c.App, first.c.Source, first.lines[""])})
			continue
		}
		seen[a.c.App] = a
	}
	// The server's DORA calendar, retirement settings and weekly report
	// are one for all its apps; they read the first app's sections.
	// Another app's would be ignored, which must not happen silently.
	// Every app may declare webhooks (another app's get its own events),
	// but their names are the server's: they name the deliveries.
	if len(apps) > 1 {
		first := apps[0]
		hooks := map[string]string{} // webhook name: where it was first declared
		for _, a := range apps {
			if a.c.Notifications == nil {
				continue
			}
			for i, w := range a.c.Notifications.Webhooks {
				path := fmt.Sprintf("notifications.webhooks[%d].name", i)
				if where, ok := hooks[w.Name]; ok {
					problems = append(problems, Problem{File: a.c.Source, Line: a.lines[path], Field: path,
						Message: fmt.Sprintf("%q is already the name of a webhook of %s; webhook names are the server's: give each its own", w.Name, where)})
					continue
				}
				hooks[w.Name] = fmt.Sprintf("app %q (%s:%d)", a.c.App, a.c.Source, a.lines[path])
			}
		}
		for _, a := range apps[1:] {
			for _, f := range []struct {
				field string
				set   bool
			}{{"notifications.report", a.c.Notifications != nil && a.c.Notifications.Report != nil}, {"dora", a.c.DORA != nil}, {"retire", a.c.Retire != nil}} {
				if f.set {
					problems = append(problems, Problem{File: a.c.Source, Line: a.lines[f.field], Field: f.field,
						Message: fmt.Sprintf("a server with several apps reads %s from its first app only (%q, %s:%d); move it there", f.field, first.c.App, first.c.Source, first.lines[""])})
				}
			}
		}
	}
	type bound struct {
		parsedApp
		path string
		text string
	}
	var addrs []bound
	for _, a := range apps {
		c := a.c
		for _, env := range sortedKeys(c.Environments) {
			e := c.Environments[env]
			addrs = append(addrs, bound{a, "environments." + env + ".listen", e.Listen})
			if e.PreviewListen != "" {
				addrs = append(addrs, bound{a, "environments." + env + ".preview_listen", e.PreviewListen})
			}
		}
	}
	for i, a := range addrs {
		ap, msg := parseListen(a.text)
		if msg != "" {
			continue // Parse reported it
		}
		for _, b := range addrs[:i] {
			if b.c == a.c {
				continue // Parse reported it
			}
			bp, msg := parseListen(b.text)
			if msg != "" || !overlap(ap, bp) {
				continue
			}
			problems = append(problems, Problem{File: a.c.Source, Line: a.lines[a.path], Field: a.path,
				Message: fmt.Sprintf("%q of app %q overlaps %q, %s of app %q at %s:%d; give every app's routers their own ports",
					a.text, a.c.App, b.text, b.path, b.c.App, b.c.Source, b.lines[b.path])})
			break
		}
	}
	if len(problems) == 0 {
		return nil
	}
	slices.SortStableFunc(problems, func(x, y Problem) int { return strings.Compare(x.File, y.File) })
	return &Error{Problems: problems}
}
