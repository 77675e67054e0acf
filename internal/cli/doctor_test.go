package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shipgate/shipgate/internal/doctor"
)

// fixtureRepo is a doctor fixture repository.
func fixtureRepo(name string) string {
	return filepath.Join("..", "doctor", "testdata", "repos", name)
}

// TestCLI_Doctor runs doctor on the fixture repositories offline: the exit
// code follows doctor.required, and every format prints its document.
func TestCLI_Doctor(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"all installed but the history, md", []string{"--repo", fixtureRepo("all")}, ExitOK, "| 1 | A written release day (required) | ✅ installed |", ""},
		{"none, html", []string{"--repo", fixtureRepo("none"), "-o", "html"}, ExitOK, "0 of 7 gates installed, 0 partly, 7 missing.", ""},
		{"required staging missing", []string{"--repo", fixtureRepo("mixed-jenkins")}, ExitGate, "Required but missing: staging.", "error: required gates missing: staging"},
		{"config outside the repository", []string{"--repo", fixtureRepo("none"), "-f", filepath.Join(fixtureRepo("mixed-jenkins"), "shipgate.yaml")}, ExitGate, "# Shipgate doctor: api", ""},
		{"missing config file", []string{"--repo", fixtureRepo("none"), "-f", "nowhere.yaml"}, ExitInvalid, "", "config file nowhere.yaml does not exist"},
		{"bad format", []string{"--repo", fixtureRepo("all"), "-o", "xml"}, ExitInvalid, "", `invalid --output "xml": want md, html or json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.run(t, append([]string{"doctor", "--offline"}, tt.args...)...)
			r.wantCode(t, tt.code)
			if !strings.Contains(r.stdout, tt.stdout) {
				t.Errorf("stdout does not contain %q:\n%s", tt.stdout, r.stdout)
			}
			if !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr does not contain %q:\n%s", tt.stderr, r.stderr)
			}
		})
	}
}

// TestCLI_DoctorHistory reads the history from a server when one answers,
// and says so when none does.
func TestCLI_DoctorHistory(t *testing.T) {
	e := newEnv(t)
	r := e.run(t, "doctor", "--repo", fixtureRepo("all"), "-o", "json")
	r.wantCode(t, ExitOK)
	var rep doctor.Report
	decodeOne(t, r.stdout, &rep)
	if !rep.Server.Reachable || rep.Server.URL != e.url {
		t.Fatalf("server = %+v, want reachable at %s", rep.Server, e.url)
	}
	if got, want := rep.Server.Note, "history read from the server: 2 rollouts"; !strings.HasPrefix(got, want) {
		t.Errorf("note = %q, want it to start with %q", got, want)
	}
	// The scripted server has no drill: the rollback gate says so.
	if g := rep.Gates[5]; g.Status != doctor.Partly || !strings.Contains(strings.Join(g.Evidence, "\n"), "no successful rollback drill") {
		t.Errorf("rollback gate = %+v", g)
	}

	r = e.runRaw(t, "--server", "http://127.0.0.1:1", "doctor", "--repo", fixtureRepo("all"), "-o", "json")
	r.wantCode(t, ExitOK)
	var off doctor.Report
	if err := json.Unmarshal([]byte(r.stdout), &off); err != nil {
		t.Fatal(err)
	}
	if off.Server.Reachable || !strings.HasPrefix(off.Server.Note, "no server reachable at http://127.0.0.1:1") {
		t.Errorf("server = %+v, want a note that none is reachable", off.Server)
	}
	if g := off.Gates[5]; !strings.Contains(strings.Join(g.Evidence, "\n"), "not checked (no server)") {
		t.Errorf("rollback gate without a server = %+v", g)
	}
}
