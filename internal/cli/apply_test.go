package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shipgate/shipgate/internal/api"
)

const twoApps = `app: shop
run: {command: [./shop, --port, "${PORT}"]}
environments:
  production: {listen: 127.0.0.1:8080}
---
app: billing
run: {command: [./billing, --port, "${PORT}"]}
environments:
  production: {listen: 127.0.0.1:8081}
`

func TestCLI_ValidateSeveralApps(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "apps.yaml")
	writeFile(t, file, twoApps)
	e := &env{getenv: map[string]string{}, data: t.TempDir()}
	r := e.runRaw(t, "validate", "-f", file)
	r.wantCode(t, ExitOK)
	if want := file + ": ok (app shop, 1 environment)\n" + file + ": ok (app billing, 1 environment)\n"; r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	r = e.runRaw(t, "validate", "-f", file, "-o", "json")
	r.wantCode(t, ExitOK)
	var v validation
	decodeOne(t, r.stdout, &v)
	if !v.Valid || len(v.Apps) != 2 || v.Apps[1].App != "billing" {
		t.Errorf("validation = %+v, want both apps", v)
	}
	clash := filepath.Join(dir, "clash.yaml")
	writeFile(t, clash, strings.Replace(twoApps, "8081", "8080", 1))
	r = e.runRaw(t, "validate", "-f", clash)
	r.wantCode(t, ExitInvalid)
	if want := clash + `:9: environments.production.listen: "127.0.0.1:8080" of app "billing" overlaps`; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr = %q, want %q", r.stderr, want)
	}
}

// apply checks the files before it sends them: a broken one exits 2 and
// reaches no server; a good one is sent whole, as absolute paths.
func TestCLI_Apply(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "apps.yaml")
	writeFile(t, file, twoApps)
	var got api.ApplyRequest
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if r.Method != http.MethodPost || r.URL.Path != "/v1/config" {
			http.Error(w, "unexpected "+r.URL.Path, http.StatusNotFound)
			return
		}
		_ = json.NewDecoder(r.Body).Decode(&got)
		_ = json.NewEncoder(w).Encode(api.ApplyResult{Apps: []string{"shop", "billing"}, Added: []string{"billing"}, Unchanged: []string{"shop"}, Revision: 7})
	}))
	defer srv.Close()
	e := &env{getenv: map[string]string{}, data: t.TempDir()}

	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, strings.Replace(twoApps, "app: billing", "app: Billing", 1))
	r := e.runRaw(t, "--server", srv.URL, "--token", "x", "apply", "-f", bad)
	r.wantCode(t, ExitInvalid)
	if !strings.Contains(r.stderr, bad+":6:6: app:") || calls != 0 {
		t.Fatalf("broken apply: stderr %q, %d calls; want the problem and no call", r.stderr, calls)
	}

	r = e.runRaw(t, "--server", srv.URL, "--token", "x", "apply", "-f", file, "--reason", "add billing")
	r.wantCode(t, ExitOK)
	if len(got.Files) != 1 || got.Files[0].Name != file || got.Files[0].Content != twoApps || got.Reason != "add billing" {
		t.Errorf("sent %+v", got)
	}
	if !strings.Contains(r.stdout, "the server manages shop, billing") || !strings.Contains(r.stdout, "added: billing") ||
		!strings.Contains(r.stdout, "config revision 7: every server on the store applies it") {
		t.Errorf("stdout = %q", r.stdout)
	}
	r = e.runRaw(t, "--server", srv.URL, "--token", "x", "apply", "-f", file, "-o", "json")
	r.wantCode(t, ExitOK)
	var res api.ApplyResult
	decodeOne(t, r.stdout, &res)
	if len(res.Added) != 1 || res.Revision != 7 {
		t.Errorf("json = %+v", res)
	}
}
