package cli

// Tests of `shipgate flags` against the real flag admin API: the flags
// service on the real SQLite store behind the real handler.

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/api/apitest"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/flags"
)

type flagsCLI struct {
	url, token string
	svc        *flags.Service
}

func startFlagsCLI(t *testing.T) *flagsCLI {
	t.Helper()
	srv := apitest.Start(t, apitest.Options{Flags: true})
	return &flagsCLI{url: srv.URL, token: srv.Token(t, "ana", auth.RoleAdmin), svc: srv.Flags}
}

func (e *flagsCLI) run(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), append([]string{"--server", e.url, "--token", e.token}, args...), deps{
		stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr,
		getenv: func(string) string { return "" }, now: time.Now,
		pollInterval: 5 * time.Millisecond, progressEvery: 5 * time.Second,
	})
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func TestFlagsCommand_Everyday(t *testing.T) {
	e := startFlagsCLI(t)
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"flags", "create", "new-checkout", "--owner", "payments", "--expires", "2030-01-31"}, "flag new-checkout created"},
		{[]string{"flags", "segment", "set", "internal", "--target", "email ends_with @shipgate.dev"}, "segment internal"},
		{[]string{"flags", "rollout", "new-checkout", "--segment", "internal"}, "0% + segment internal"},
		{[]string{"flags", "rollout", "new-checkout", "5%"}, "5% + segment internal"},
		{[]string{"flags", "rollout", "new-checkout", "--target", "country in CA,US"}, "country in CA,US"},
		{[]string{"flags", "list"}, "new-checkout"},
		{[]string{"flags", "disable", "new-checkout", "--reason", "errors"}, "flag new-checkout disabled"},
		{[]string{"flags", "stale"}, "no stale flags"},
	}
	for _, s := range steps {
		r := e.run(t, s.args...)
		if r.code != ExitOK || !strings.Contains(r.stdout, s.want) {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q; want %q", s.args, r.code, r.stdout, r.stderr, s.want)
		}
	}
	r := e.run(t, "flags", "get", "new-checkout", "-o", "json")
	var d api.FlagDetail
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || r.code != ExitOK {
		t.Fatalf("get -o json: %d %v: %s", r.code, err, r.stdout)
	}
	want := `{"if":[{"$ref":"internal"},"on",{"in":[{"var":"country"},["CA","US"]]},"on",{"fractional":[["on",5],["off",95]]}]}`
	var compact bytes.Buffer
	if err := json.Compact(&compact, d.Definition.Targeting); err != nil {
		t.Fatal(err)
	}
	if got := compact.String(); got != want || d.Definition.State != flags.Disabled {
		t.Fatalf("definition: state %s targeting %s, want DISABLED and %s", d.Definition.State, got, want)
	}
}

func TestFlagsCommand_InvalidExitsTwo(t *testing.T) {
	e := startFlagsCLI(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(good, []byte(`{"flags": {"a": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(`{"flags": {"a": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "maybe"},
		"b": {"state": "ENABLED", "variants": {"on": true, "off": "no"}, "defaultVariant": "on"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := e.run(t, "flags", "import", good); r.code != ExitOK {
		t.Fatalf("import good: %d %s", r.code, r.stderr)
	}
	before := e.svc.Snapshot().ETag()
	r := e.run(t, "flags", "import", bad)
	if r.code != ExitInvalid {
		t.Fatalf("import bad: exit %d, want %d", r.code, ExitInvalid)
	}
	for _, want := range []string{bad + ": /flags/a/defaultVariant", bad + ": /flags/b/variants: all variants must have the same type"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr %q does not name %q", r.stderr, want)
		}
	}
	if e.svc.Snapshot().ETag() != before {
		t.Error("the stored flags changed")
	}
	// Rejected by the server too, for a definition sent by the API.
	r = e.run(t, "flags", "rollout", "a", "150%")
	if r.code != ExitInvalid {
		t.Errorf("rollout 150%%: exit %d, want %d", r.code, ExitInvalid)
	}
	r = e.run(t, "flags", "create", "c", "--file", bad)
	if r.code != ExitInvalid {
		t.Errorf("create --file with a whole file: exit %d, want %d: %s", r.code, ExitInvalid, r.stderr)
	}
}

// TestFlagsCommand_ImportWarns: a file flagd loads is imported even where
// its targeting can only fail at evaluation time; the CLI says where.
func TestFlagsCommand_ImportWarns(t *testing.T) {
	e := startFlagsCLI(t)
	path := filepath.Join(t.TempDir(), "flagd.json")
	if err := os.WriteFile(path, []byte(`{"flags": {"a": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
		"targeting": {"if": [{"equals": [{"var": "plan"}, "pro"]}, "on", "off"]}}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.run(t, "flags", "import", path)
	if r.code != ExitOK {
		t.Fatalf("import: exit %d, stderr %q", r.code, r.stderr)
	}
	if want := "warning: " + path + ": /flags/a/targeting/if/0/equals: unknown operator \"equals\""; !strings.Contains(r.stdout, want) {
		t.Errorf("stdout %q does not hold %q", r.stdout, want)
	}
	if _, ok := e.svc.Snapshot().Flag("a"); !ok {
		t.Error("the flag was not imported")
	}
}
