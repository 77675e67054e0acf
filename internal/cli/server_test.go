package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shipgate/shipgate/internal/server"
)

// TestCLI_FindsTheServerOfItsDataDir is item 15 of issue 10: the CLI
// went to the default address whatever server ran on its data dir, and a
// server there that did not know the token said only "unknown token". It
// now takes the URL the data dir's server wrote, and its errors name the
// URL it tried and where it came from.
func TestCLI_FindsTheServerOfItsDataDir(t *testing.T) {
	e := newEnv(t)
	urlFile := filepath.Join(e.data, server.APIURLFile)
	if err := os.WriteFile(urlFile, []byte(e.url+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.runRaw(t, "--data", e.data, "--token", e.token, "status")
	r.wantCode(t, ExitOK)

	// $SHIPGATE_SERVER wins over the data dir, and errors say where the
	// URL came from.
	e.getenv[envServer] = "http://127.0.0.1:1"
	r = e.runRaw(t, "--data", e.data, "--token", e.token, "status")
	r.wantCode(t, ExitFailure)
	if want := "cannot reach the shipgate server at http://127.0.0.1:1 (from $SHIPGATE_SERVER)"; !strings.Contains(r.stderr, want) {
		t.Fatalf("stderr does not say %q:\n%s", want, r.stderr)
	}
	delete(e.getenv, envServer)

	// A token the server does not know: the error names the server.
	r = e.runRaw(t, "--data", e.data, "--token", "sgt_other", "status")
	r.wantCode(t, ExitFailure)
	if want := "the server at " + e.url + " (from " + urlFile + ") refused the token: unknown token"; !strings.Contains(r.stderr, want) {
		t.Fatalf("stderr does not say %q:\n%s", want, r.stderr)
	}
}

// TestCLI_JSONErrorsOnStdout checks that with -o json a failing command
// prints one JSON error document on stdout, with the exit code.
func TestCLI_JSONErrorsOnStdout(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"--server", "http://127.0.0.1:1", "status", "-o", "json"}, ExitFailure},
		{[]string{"deploy", "shop", "7.0.0", "-o", "json"}, ExitFailure},
		{[]string{"deploy", "shop", "1.1.0", "--timeout", "0s", "-o", "json"}, ExitInvalid},
	} {
		r := e.run(t, tc.args...)
		r.wantCode(t, tc.code)
		var je jsonError
		decodeOne(t, r.stdout, &je)
		if je.Error.Message == "" || je.Error.ExitCode != tc.code {
			t.Errorf("%v: stdout %s, want an error with exit code %d", tc.args, r.stdout, tc.code)
		}
		if !json.Valid([]byte(r.stdout)) {
			t.Errorf("%v: stdout is not JSON: %s", tc.args, r.stdout)
		}
	}
}

// TestCLI_ServerWarnsOnPlainHTTPBeyondLoopback is item 15 of issue 10:
// --listen on an address other machines reach, without TLS, warns that
// tokens cross the network in clear text; loopback and TLS do not.
func TestCLI_ServerWarnsOnPlainHTTPBeyondLoopback(t *testing.T) {
	e := newEnv(t)
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	for _, tc := range []struct {
		args []string
		warn bool
	}{
		{[]string{"--listen", "0.0.0.0:7070"}, true},
		{[]string{"--listen", ":7070"}, true},
		{[]string{"--listen", "10.1.2.3:7070"}, true},
		{[]string{"--listen", "127.0.0.1:7070"}, false},
		{[]string{"--listen", "localhost:7070"}, false},
		{[]string{"--listen", "0.0.0.0:7070", "--tls-cert", "a.pem", "--tls-key", "k.pem"}, false},
	} {
		// The config is missing: the command fails after the warning,
		// without starting anything.
		r := e.runRaw(t, append([]string{"--data", e.data, "server", "-f", missing}, tc.args...)...)
		r.wantCode(t, ExitInvalid)
		if got := strings.Contains(r.stderr, "warning: the API listens on"); got != tc.warn {
			t.Errorf("%v: warned %v, want %v:\n%s", tc.args, got, tc.warn, r.stderr)
		}
	}
	r := e.runRaw(t, "--data", e.data, "server", "-f", missing, "--tls-cert", "a.pem")
	r.wantCode(t, ExitInvalid)
	if !strings.Contains(r.stderr, "--tls-cert and --tls-key go together") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
}
