package server

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDown_PlaneDirInUse: Down on a plane dir refuses, naming the server,
// while a server's lock file there is held; --force goes on; a file left
// by a dead server (not locked) is removed and does not refuse.
func TestDown_PlaneDirInUse(t *testing.T) {
	ctx := context.Background()
	plane := t.TempDir()
	l, err := lockPlaneDir(plane, "/srv/a", "127.0.0.1:7070")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Down(ctx, plane, "", false, io.Discard)
	for _, want := range []string{"plane dir of a live server", "pid " + strconv.Itoa(os.Getpid()), "/srv/a", "127.0.0.1:7070", "--force"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("down while a server uses the plane dir: %v, want an error with %q", err, want)
		}
	}
	if _, err := Down(ctx, plane, "", true, io.Discard); err != nil {
		t.Fatalf("down --force: %v", err)
	}
	if err := l.release(); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(plane, planeLockPattern)); len(left) != 0 {
		t.Fatalf("files left after release: %v", left)
	}
	// A dead server's file: written, never locked by a live process.
	stale := filepath.Join(plane, "server-123.plane")
	if err := os.WriteFile(stale, []byte("pid 1, data dir /srv/b, API x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Down(ctx, plane, "", false, io.Discard); err != nil {
		t.Fatalf("down with a dead server's file: %v", err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("the dead server's file is still there: %v", err)
	}
}
