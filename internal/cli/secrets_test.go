package cli

import (
	"strings"
	"testing"
)

// TestCLI_ReleaseVarsAreSecrets is defect 12 of issue 10 at the CLI: a
// deployer token (not admin) sees variable names with redacted values, in
// text and JSON; a bad variable name is refused with exit 2, naming it.
func TestCLI_ReleaseVarsAreSecrets(t *testing.T) {
	e := newEnv(t)
	for _, args := range [][]string{{"release", "show", "shop", "1.1.0"}, {"release", "show", "shop", "1.1.0", "-o", "json"}} {
		r := e.run(t, args...)
		r.wantCode(t, ExitOK)
		if strings.Contains(r.stdout, "hunter2") || !strings.Contains(r.stdout, "DB_PASSWORD") || !strings.Contains(r.stdout, "[redacted]") {
			t.Fatalf("%v: want DB_PASSWORD with its value redacted:\n%s", args, r.stdout)
		}
	}
	for _, name := range []string{"PORT", "LD_PRELOAD", "../x"} {
		r := e.run(t, "deploy", "shop", "1.1.0", "--var", name+"=x")
		r.wantCode(t, ExitInvalid)
		if !strings.Contains(r.stderr, "vars."+name) {
			t.Errorf("--var %s=x: stderr does not name vars.%s:\n%s", name, name, r.stderr)
		}
	}
}
