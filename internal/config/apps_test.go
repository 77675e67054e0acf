package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadApps_Valid(t *testing.T) {
	for _, tt := range []struct {
		path string
		want []string
	}{
		{"testdata/apps/valid/dir", []string{"billing", "shop"}}, // name order: billing.yml, shop.yaml
		{"testdata/apps/valid/multi.yaml", []string{"shop", "billing"}},
		{"testdata/valid/anchors.yaml", []string{"shop"}}, // a one-app file reads as before
	} {
		t.Run(tt.path, func(t *testing.T) {
			apps, err := LoadApps(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range apps {
				got = append(got, c.App)
				if c.Source == "" {
					t.Errorf("app %s: no source", c.App)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("apps %v, want %v", got, tt.want)
			}
		})
	}
}

// Each invalid fixture is a directory or a file beside its .err, which
// holds the exact error: every problem names file:line and the field, and
// a problem between two apps names both places.
func TestLoadApps_Invalid(t *testing.T) {
	for _, name := range []string{"duplicate", "ports", "seconderror", "serverwide"} {
		t.Run(name, func(t *testing.T) {
			apps, err := LoadApps(filepath.Join("testdata/apps/invalid", name))
			var cerr *Error
			if !errors.As(err, &cerr) || apps != nil {
				t.Fatalf("LoadApps = %v, %v; want no apps and a *config.Error", apps, err)
			}
			golden := filepath.Join("testdata/apps/invalid", name+".err")
			got := err.Error() + "\n"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("error:\n%s\nwant (%s):\n%s", got, golden, want)
			}
		})
	}
}

func TestLoadApps_Empty(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadApps(dir); err == nil || !strings.Contains(err.Error(), dir+": the directory has no app file") {
		t.Errorf("LoadApps(empty dir) = %v, want an error naming it", err)
	}
	if _, err := LoadApps(filepath.Join(dir, "missing")); err == nil {
		t.Error("LoadApps(missing) succeeded")
	}
}

// FuzzParseApps checks that no input makes ParseApps panic, and that it
// returns either valid apps with distinct names and router addresses, or
// problems that say where.
func FuzzParseApps(f *testing.F) {
	files, err := filepath.Glob("testdata/*/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	more, err := filepath.Glob("testdata/apps/*/*/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range append(append(files, more...), "testdata/apps/valid/multi.yaml") {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		apps, err := ParseApps("apps.yaml", data)
		if err == nil {
			if len(apps) == 0 {
				t.Fatal("ParseApps returned neither apps nor an error")
			}
			names := map[string]bool{}
			for _, c := range apps {
				checkInvariants(t, c)
				if names[c.App] {
					t.Errorf("two apps named %q", c.App)
				}
				names[c.App] = true
			}
			return
		}
		var cerr *Error
		if !errors.As(err, &cerr) || len(cerr.Problems) == 0 || apps != nil {
			t.Fatalf("ParseApps = %v, %v; want no apps and a *config.Error with problems", apps, err)
		}
		for _, p := range cerr.Problems {
			if p.Line < 1 && (p.Message != emptyMessage || !hasNoDocument(data)) && !strings.Contains(p.Message, "second") {
				t.Errorf("problem without a line: %s", p)
			}
		}
	})
}
