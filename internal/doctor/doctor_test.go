package doctor

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/* with the reports doctor makes now")

// now is the time of every fixture report.
var now = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// diagnoseFixture runs doctor on testdata/repos/<name>, with the history
// in testdata/repos/<name>.history.json when there is one.
func diagnoseFixture(t *testing.T, name string) Report {
	t.Helper()
	in := Input{Repo: os.DirFS(filepath.Join("testdata", "repos", name)), Now: now,
		HistoryNote: "no server reachable at http://127.0.0.1:7070"}
	data, err := os.ReadFile(filepath.Join("testdata", "repos", name+".history.json"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		t.Fatal(err)
	default:
		in.History = &History{}
		if err := json.Unmarshal(data, in.History); err != nil {
			t.Fatalf("%s.history.json: %v", name, err)
		}
	}
	return Diagnose(in)
}

// TestDiagnose_Fixtures checks the verdict on each gate of each fixture
// repository, and the exit decision.
func TestDiagnose_Fixtures(t *testing.T) {
	tests := []struct {
		repo string
		want map[string]Status
		ok   bool
	}{
		{"all", map[string]Status{GateReleaseDay: Installed, GateIaC: Installed, GateStaging: Installed, GateBrowserTests: Installed,
			GateCanary: Installed, GateRollback: Installed, GateMondayReport: Installed}, true},
		{"none", map[string]Status{GateReleaseDay: Missing, GateIaC: Missing, GateStaging: Missing, GateBrowserTests: Missing,
			GateCanary: Missing, GateRollback: Missing, GateMondayReport: Missing}, true},
		{"mixed-gitlab", map[string]Status{GateReleaseDay: Partly, GateIaC: Partly, GateStaging: Partly, GateBrowserTests: Partly,
			GateCanary: Partly, GateRollback: Missing, GateMondayReport: Missing}, true},
		{"mixed-jenkins", map[string]Status{GateReleaseDay: Partly, GateIaC: Installed, GateStaging: Missing, GateBrowserTests: Missing,
			GateCanary: Partly, GateRollback: Partly, GateMondayReport: Partly}, false},
	}
	for _, tt := range tests {
		t.Run(tt.repo, func(t *testing.T) {
			rep := diagnoseFixture(t, tt.repo)
			if got, want := len(rep.Gates), 7; got != want {
				t.Fatalf("%d gates, want %d", got, want)
			}
			for _, g := range rep.Gates {
				if got, want := g.Status, tt.want[g.ID]; got != want {
					t.Errorf("%s: %s, want %s; evidence %q, step %q", g.ID, got, want, g.Evidence, g.Step)
				}
				if g.Status != Installed && g.Step == "" {
					t.Errorf("%s is %s without a step", g.ID, g.Status)
				}
				if g.Status == Installed && g.Step != "" {
					t.Errorf("%s is installed but has a step %q", g.ID, g.Step)
				}
				if len(g.Evidence) == 0 {
					t.Errorf("%s has no evidence", g.ID)
				}
			}
			if got := rep.OK(); got != tt.ok {
				t.Errorf("OK() = %v, want %v (required missing: %v)", got, tt.ok, rep.RequiredMissing)
			}
		})
	}
}

// TestDiagnose_RequiredMissing: a gate named in doctor.required that is
// missing fails the report; one that is partly installed does not.
func TestDiagnose_RequiredMissing(t *testing.T) {
	repo := fstest.MapFS{"shipgate.yaml": {Data: []byte(`app: shop
run: {command: [./shop]}
environments:
  production: {listen: 127.0.0.1:8080}
doctor:
  required: [iac, canary]
`)}}
	rep := Diagnose(Input{Repo: repo, Now: now})
	if got, want := rep.RequiredMissing, []string{GateIaC}; !equal(got, want) {
		t.Fatalf("required missing = %v, want %v", got, want)
	}
	if rep.OK() {
		t.Fatal("OK() with a required gate missing")
	}
	if !rep.Gates[4].Required || rep.Gates[4].Status != Installed {
		t.Fatalf("canary: %+v, want required and installed (the default canary is 5%% for 10m)", rep.Gates[4])
	}
	if rep.Server.Reachable {
		t.Fatal("server reachable without a history")
	}
}

// TestDiagnose_BrokenConfig: a config that does not load makes the gates
// that read it partly installed, with the first problem at its line.
func TestDiagnose_BrokenConfig(t *testing.T) {
	repo := fstest.MapFS{"shipgate.yaml": {Data: []byte("app: shop\nrun: {command: [./shop]}\nenvironments:\n  production: {listen: nowhere}\n")}}
	rep := Diagnose(Input{Repo: repo, Now: now})
	g := rep.Gates[0]
	if g.Status != Partly || len(g.Evidence) == 0 || !bytes.Contains([]byte(g.Evidence[0]), []byte("shipgate.yaml:4: environments.production.listen")) {
		t.Fatalf("release day on a broken config: %+v", g)
	}
}

// TestDiagnose_TestdataIsNotTheTeams: fixtures under testdata (a tool's
// own test repositories, as in Shipgate's) are not the team's
// infrastructure; the same file elsewhere is.
func TestDiagnose_TestdataIsNotTheTeams(t *testing.T) {
	tf := &fstest.MapFile{Data: []byte("resource \"aws_instance\" \"web\" {}\n")}
	in := Diagnose(Input{Repo: fstest.MapFS{"infra/main.tf": tf}, Now: now}).Gates[1]
	out := Diagnose(Input{Repo: fstest.MapFS{"internal/doctor/testdata/repos/all/infra/main.tf": tf}, Now: now}).Gates[1]
	if in.Status == Missing || out.Status != Missing {
		t.Fatalf("infra/main.tf: %s, testdata/…/main.tf: %s; want found, then missing", in.Status, out.Status)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestReport_Golden compares the reports of every fixture, in every
// format, with testdata/golden. Run with -update to rewrite them.
func TestReport_Golden(t *testing.T) {
	formats := map[string]func(Report, *bytes.Buffer) error{
		"md":   func(r Report, b *bytes.Buffer) error { return r.WriteMarkdown(b) },
		"html": func(r Report, b *bytes.Buffer) error { return r.WriteHTML(b) },
		"json": func(r Report, b *bytes.Buffer) error { return r.WriteJSON(b) },
	}
	for _, repo := range []string{"all", "none", "mixed-gitlab", "mixed-jenkins"} {
		rep := diagnoseFixture(t, repo)
		for ext, write := range formats {
			t.Run(repo+"."+ext, func(t *testing.T) {
				var b bytes.Buffer
				if err := write(rep, &b); err != nil {
					t.Fatal(err)
				}
				golden := filepath.Join("testdata", "golden", repo+"."+ext)
				if *update {
					if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test -update to create it)", err)
				}
				if !bytes.Equal(b.Bytes(), want) {
					t.Errorf("%s differs from the report made now (run go test -update and review the diff):\n%s", golden, b.String())
				}
			})
		}
	}
}
