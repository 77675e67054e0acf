package cli

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/sqlite"
	"github.com/shipgate/shipgate/internal/testsignal"
)

// newTestsEnv is newEnv with the test signal routes on a real store, the
// service's clock set by the test.
func newTestsEnv(t *testing.T, now *time.Time) *env {
	t.Helper()
	secret, err := auth.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "shipgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	svc := newScriptedService()
	tests := &testsignal.Service{Store: store, Now: func() time.Time { return *now }}
	srv := httptest.NewServer(api.NewHandler(svc, tokenMap{auth.Hash(secret): {Name: "ci", Role: auth.RoleDeployer}},
		api.HandlerOptions{App: "shop", Tests: tests}))
	t.Cleanup(srv.Close)
	return &env{svc: svc, url: srv.URL, token: secret, data: t.TempDir(), getenv: map[string]string{}}
}

func junitFixture(name string) string {
	return filepath.Join("..", "testsignal", "testdata", "junit", name)
}

// TestCLI_ReleaseCreateJUnit records JUnit reports with a release, then
// lists the flaky tests with their owners from CODEOWNERS.
func TestCLI_ReleaseCreateJUnit(t *testing.T) {
	now := t0.Add(-50 * time.Hour)
	e := newTestsEnv(t, &now)
	r := e.run(t, "release", "create", "shop", "1.1.0", "--commit", "bbbb", "--junit", junitFixture("surefire-flaky.xml"), "--ci-duration", "11m")
	r.wantCode(t, ExitOK)
	wantContains(t, "stdout", r.stdout, "release shop 1.1.0 recorded",
		"5: 4 passed, 1 failed, 0 skipped, 1 passed on a retry",
		"  unit         4: 3 passed, 1 failed", "CI time        11m\n",
		"flaky: com.shop.CartTest.addItem")

	now = t0.Add(-time.Hour)
	r = e.run(t, "release", "create", "shop", "1.2.0", "--commit", "cccc", "--junit", junitFixture("retries.xml"))
	r.wantCode(t, ExitOK)
	now = t0.Add(-30 * time.Minute)
	r = e.run(t, "release", "create", "shop", "1.2.0", "--commit", "cccc", "--junit", junitFixture("mass-failure.xml"), "-o", "json")
	r.wantCode(t, ExitOK)
	var rt releaseTests
	decodeOne(t, r.stdout, &rt)
	if rt.Release.Version != "1.2.0" || rt.Tests.Run.Commit != "cccc" || rt.Tests.Counts.Total.Total != 7 || !rt.Tests.Run.Infra {
		t.Fatalf("json output = %+v", rt)
	}

	repo := t.TempDir()
	if err := os.MkdirAll(filepath.Join(repo, ".github"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, ".github", "CODEOWNERS"), []byte("* @shop/dev\n**/com/shop/Cart* @shop/cart\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = e.run(t, "tests", "flaky", "--repo", repo, "-o", "json")
	r.wantCode(t, ExitOK)
	var list []testsignal.Flaky
	decodeOne(t, r.stdout, &list)
	if len(list) != 2 || list[0].ID != "com.shop.CartTest.addItem" || list[0].Owner != "@shop/cart" || !list[0].FirstSeen.Equal(t0.Add(-50*time.Hour)) ||
		list[1].ID != "checkout.spec.ts.pays" || list[1].Owner != "@shop/dev" {
		t.Fatalf("flaky = %+v", list)
	}
	// The CI time per week, for the Monday report: the runs above are
	// in the week before t0's (Saturday 1 March 2025).
	c := api.NewClient(e.url, e.token, nil)
	weeks, err := c.TestTrend(t.Context(), "shop", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(weeks) != 2 || weeks[1].Runs != 1 || weeks[1].MedianCI != 11*time.Minute {
		t.Fatalf("trend = %+v", weeks)
	}
	r = e.run(t, "tests", "flaky", "--repo", repo)
	r.wantCode(t, ExitOK)
	wantContains(t, "stdout", r.stdout, "com.shop.CartTest.addItem  unit   50h2m", "@shop/cart", "2 tests flaky")

	recorded := len(e.svc.releases)
	for _, tc := range []struct {
		name string
		args []string
		err  string
	}{
		{"no such file", []string{"--junit", "nowhere.xml"}, "--junit nowhere.xml: no such file"},
		{"not junit", []string{"--junit", "cli.go"}, "--junit cli.go: read JUnit XML"},
		{"duration alone", []string{"--ci-duration", "3m"}, "--ci-duration goes with --junit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.run(t, append([]string{"release", "create", "shop", "1.3.0", "--commit", "dddd"}, tc.args...)...)
			r.wantCode(t, ExitInvalid)
			if !strings.Contains(r.stderr, tc.err) {
				t.Fatalf("stderr = %q, want %q", r.stderr, tc.err)
			}
			if len(e.svc.releases) != recorded {
				t.Fatal("a release was recorded although its reports were refused")
			}
		})
	}
}
