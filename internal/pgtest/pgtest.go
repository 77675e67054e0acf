// Package pgtest runs throwaway PostgreSQL servers for tests: the real
// server from the Debian package postgresql, initialised in a temporary
// directory, listening on a free port of 127.0.0.1 and on a unix socket in
// that directory, with fsync off, and removed when the tests end.
//
// PostgreSQL refuses to run as root. When the tests run as root (as CI
// does here), initdb and postgres run as the user nobody: the temporary
// directory is given to nobody, and the processes are started with
// nobody's uid and gid (os/exec's SysProcAttr.Credential), which needs no
// su, sudo or runuser. As any other user, they run as that user.
//
// Tests that need PostgreSQL call Shared (one server for the package,
// started on first use and stopped by Main) or New (a server of the
// test's own). Without the server binaries they skip with a message
// saying how to install them; in CI (CI=true) they fail instead, so that a
// missing install is never mistaken for a pass.
package pgtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	// The pgx driver, registered as "pgx" for database/sql.
	_ "github.com/jackc/pgx/v5/stdlib"
)

// ErrNotFound means the PostgreSQL server binaries are not installed.
var ErrNotFound = errors.New("PostgreSQL server binaries not found: apt-get install postgresql")

// envBin names a directory holding initdb and postgres, to use instead of
// the newest /usr/lib/postgresql/*/bin.
const envBin = "PGTEST_BIN"

// startTimeout bounds initdb plus the server's start.
const startTimeout = 60 * time.Second

// BinDir returns the directory of the server binaries initdb and postgres:
// $PGTEST_BIN if set, else the newest /usr/lib/postgresql/<major>/bin that
// has them (where Debian's postgresql package puts them), else an error
// wrapping ErrNotFound.
func BinDir() (string, error) {
	if dir := os.Getenv(envBin); dir != "" {
		if hasServer(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("$%s=%s has no initdb and postgres: %w", envBin, dir, ErrNotFound)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	dirs = slices.DeleteFunc(dirs, func(d string) bool { return !hasServer(d) })
	if len(dirs) == 0 {
		return "", ErrNotFound
	}
	slices.SortFunc(dirs, func(a, b string) int { return majorOf(b) - majorOf(a) })
	return dirs[0], nil
}

func hasServer(dir string) bool {
	for _, name := range []string{"initdb", "postgres"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() {
			return false
		}
	}
	return true
}

// majorOf returns the major version in /usr/lib/postgresql/<major>/bin.
func majorOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Server is a running PostgreSQL server.
type Server struct {
	// DSN connects to the database "postgres" as the superuser
	// "postgres", over TCP; any password is accepted.
	DSN string
	// Port is the TCP port on 127.0.0.1; SocketDir holds the unix socket.
	Port      int
	SocketDir string

	dir  string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan struct{}
	dbs  atomic.Int64
	stop sync.Once
}

// Start initialises a database cluster in a new temporary directory and
// starts a server on it. Stop it with Stop.
func Start(ctx context.Context) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	base := ""
	if cred != nil {
		// nobody must reach the directory, and $TMPDIR may be under /root.
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("start postgres: give %s to the server's user: %w", dir, err)
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "-N")
	initdb.Dir = dir
	initdb.Env = serverEnv(dir)
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start postgres: initdb: %w\n%s", err, out)
	}

	// A free port can be taken by someone else before the server binds
	// it; try again with another.
	var lastErr error
	for range 3 {
		s, err := startServer(ctx, bin, dir, cred)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if ctx.Err() != nil || !strings.Contains(err.Error(), "could not bind") && !strings.Contains(err.Error(), "could not create") {
			break
		}
	}
	_ = os.RemoveAll(dir)
	return nil, lastErr
}

// serverCredential returns the credential to run the server with: nobody's
// when running as root, nil (this process's own) otherwise.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("start postgres: running as root, and postgres refuses root: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("start postgres: user nobody: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: false, Groups: []uint32{}}, nil
}

func serverEnv(dir string) []string {
	return []string{"PATH=/usr/bin:/bin", "HOME=" + dir, "LC_ALL=C", "TZ=UTC"}
}

func startServer(ctx context.Context, bin, dir string, cred *syscall.Credential) (*Server, error) {
	port, err := freePort(ctx)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	return startServerOn(ctx, bin, dir, cred, port)
}

func startServerOn(ctx context.Context, bin, dir string, cred *syscall.Credential, port int) (*Server, error) {
	s := &Server{
		Port:      port,
		SocketDir: dir,
		DSN:       fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port),
		dir:       dir,
		log:       &bytes.Buffer{},
		done:      make(chan struct{}),
	}
	// Not CommandContext: ctx bounds the start, not the server's life.
	//nolint:gosec,noctx // The server binary found by BinDir; see above.
	s.cmd = exec.Command(filepath.Join(bin, "postgres"),
		"-D", filepath.Join(dir, "data"),
		"-p", strconv.Itoa(port),
		"-k", dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=100",
	)
	s.cmd.Dir = dir
	s.cmd.Env = serverEnv(dir)
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	// Pdeathsig stops the server if the test binary dies without Stop.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(ctx); err != nil {
		s.kill()
		return nil, err
	}
	return s, nil
}

func freePort(ctx context.Context) (int, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady returns once the server accepts queries.
func (s *Server) waitReady(ctx context.Context) error {
	db, err := sql.Open("pgx", s.DSN)
	if err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	defer db.Close()
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := db.PingContext(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("start postgres: the server exited: %s", strings.TrimSpace(s.log.String()))
		case <-ctx.Done():
			return fmt.Errorf("start postgres: not ready: %w (last: %w)\n%s", ctx.Err(), err, s.log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop stops the server (a fast shutdown: sessions are ended, not waited
// for) and removes its directory. Calls after the first do nothing.
func (s *Server) Stop() error {
	var err error
	s.stop.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
			s.kill()
			err = errors.New("stop postgres: no fast shutdown within 15s; killed")
		}
		err = errors.Join(err, os.RemoveAll(s.dir))
	})
	return err
}

// Restart stops the server as a database restart does (a fast shutdown:
// every session is cut), leaves it down for down, and starts it again on
// the same data and port. Only for a server of New: the shared one
// serves other tests.
func (s *Server) Restart(ctx context.Context, down time.Duration) error {
	bin, err := BinDir()
	if err != nil {
		return err
	}
	cred, err := serverCredential()
	if err != nil {
		return err
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.kill()
	}
	time.Sleep(down)
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	n, err := startServerOn(ctx, bin, s.dir, cred, s.Port)
	if err != nil {
		return fmt.Errorf("restart postgres: %w", err)
	}
	s.cmd, s.done, s.log = n.cmd, n.done, n.log
	return nil
}

func (s *Server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// NewDatabase creates an empty database on the server and returns a DSN
// to it. The database is dropped when t ends.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test_%d", s.dbs.Add(1))
	db, err := sql.Open("pgx", s.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", s.DSN)
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, name)
}

// require skips t when the server binaries are missing, or fails it in CI.
func require(t testing.TB) {
	t.Helper()
	if _, err := BinDir(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: tests that need PostgreSQL must run; scripts/deps.sh test installs it)", err)
		}
		t.Skipf("SKIPPED: %v", err)
	}
}

// New starts a server for t alone, stopped when t ends.
func New(t testing.TB) *Server {
	t.Helper()
	require(t)
	s, err := Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

var shared struct {
	mu  sync.Mutex
	srv *Server
	err error
}

// Shared returns the package's shared server, starting it on first use.
// Main stops it after the package's tests.
func Shared(t testing.TB) *Server {
	t.Helper()
	require(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.err = Start(context.Background())
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.srv
}

// Main runs a package's tests and stops the shared server after them.
// Call it from TestMain: os.Exit(pgtest.Main(m)). Without the server
// binaries it says so on stderr, once, so that skipped tests are noticed.
func Main(m *testing.M) int {
	if _, err := BinDir(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v; tests that need PostgreSQL will be skipped (or fail, with CI=true)\n", err)
	}
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil {
		if err := shared.srv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
	}
	return code
}
