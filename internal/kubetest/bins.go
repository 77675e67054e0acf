package kubetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// binNames are the binaries a cluster needs in its bin dir.
var binNames = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok"}

// findBins returns the directory holding the control plane's binaries:
// $SHIPGATE_KUBE_BIN if set, else what scripts/kube/build.sh prints (it
// builds them the first time, and is a cache lookup afterwards; under
// go test -short it only looks the cache up).
func findBins() (string, error) {
	if dir := os.Getenv("SHIPGATE_KUBE_BIN"); dir != "" {
		return dir, checkBins(dir, "SHIPGATE_KUBE_BIN")
	}
	script, err := buildScript()
	if err != nil {
		return "", err
	}
	// A cold build takes minutes: its progress goes to stderr as it comes.
	var out, errOut bytes.Buffer
	cmd := exec.Command("bash", script)
	if testing.Short() {
		// -short never waits for a cold build: a cached one or a skip.
		cmd.Env = append(os.Environ(), "SHIPGATE_KUBE_CACHED_ONLY=1")
	}
	cmd.Stdout = &out
	cmd.Stderr = io.MultiWriter(&errOut, os.Stderr)
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s (set SHIPGATE_KUBE_BIN to a directory with %s instead): %w\n%s",
			script, strings.Join(binNames, ", "), err, tail(errOut.String(), 40))
	}
	dir := strings.TrimSpace(out.String())
	if i := strings.LastIndexByte(dir, '\n'); i >= 0 {
		dir = dir[i+1:]
	}
	return dir, checkBins(dir, script)
}

func checkBins(dir, from string) error {
	for _, b := range binNames {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return fmt.Errorf("%s: %s has no %s: %w", from, dir, b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "kwok-stages.yaml")); err != nil {
		return fmt.Errorf("%s: %s has no kwok-stages.yaml (scripts/kube/build.sh extracts it from the kwok module): %w", from, dir, err)
	}
	return nil
}

// buildScript finds scripts/kube/build.sh above the working directory (a
// test runs in its package's directory).
func buildScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "scripts", "kube", "build.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no scripts/kube/build.sh above the working directory, and SHIPGATE_KUBE_BIN is unset")
		}
		dir = parent
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
