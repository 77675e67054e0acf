package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/shipgate/shipgate/internal/postgres"
	"github.com/shipgate/shipgate/internal/sqlite"
	"github.com/shipgate/shipgate/internal/store"
)

// Store is what a control plane keeps its state in: the SQLite file of
// its data dir, or a PostgreSQL database (store.Store).
type Store = store.Store

// Both stores hold everything the server keeps: a table added to one
// and named in store.Store breaks the build of the other until it holds
// it too, instead of a server on it losing the data.
var (
	_ Store = (*sqlite.Store)(nil)
	_ Store = (*postgres.Store)(nil)
)

// StoreSpec names a store: where it is and how to log in.
type StoreSpec struct {
	// URL is "sqlite:PATH" or a postgres:// (postgresql://) URL. Empty
	// means the SQLite file shipgate.db in DataDir.
	URL string
	// PasswordFile, when set, holds the PostgreSQL password (its first
	// line), so that the password is neither in the URL, which ps shows,
	// nor in the environment. $PGPASSWORD and ~/.pgpass work too.
	PasswordFile string
	// DataDir is where the default SQLite store lives.
	DataDir string
}

// Kind returns "sqlite" or "postgres", or an error naming what the URL
// should look like.
func (s StoreSpec) Kind() (string, error) {
	switch {
	case s.URL == "", strings.HasPrefix(s.URL, "sqlite:"):
		return "sqlite", nil
	case strings.HasPrefix(s.URL, "postgres://"), strings.HasPrefix(s.URL, "postgresql://"):
		return "postgres", nil
	}
	return "", fmt.Errorf("store %q: want sqlite:PATH or postgres://USER@HOST/DB", redactStore(s.URL))
}

// String describes the store for logs, without its password.
func (s StoreSpec) String() string {
	if s.URL == "" {
		return "sqlite:" + filepath.Join(s.DataDir, "shipgate.db")
	}
	return redactStore(s.URL)
}

func redactStore(u string) string {
	if strings.HasPrefix(u, "sqlite:") {
		return u
	}
	return postgres.Redact(u)
}

// OpenStore opens the store spec names, creating or migrating its schema.
func OpenStore(ctx context.Context, spec StoreSpec) (store.Store, error) {
	kind, err := spec.Kind()
	if err != nil {
		return nil, err
	}
	switch kind {
	case "sqlite":
		path := strings.TrimPrefix(spec.URL, "sqlite:")
		if spec.URL == "" {
			path = filepath.Join(spec.DataDir, "shipgate.db")
		}
		s, err := sqlite.Open(ctx, path)
		if err != nil {
			return nil, err
		}
		return s, nil
	default:
		var opts []postgres.Option
		if spec.PasswordFile != "" {
			b, err := os.ReadFile(spec.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("read the store's password file: %w", err)
			}
			password, _, _ := strings.Cut(string(b), "\n")
			opts = append(opts, postgres.WithPassword(strings.TrimRight(password, "\r")))
		}
		s, err := postgres.Open(ctx, spec.URL, opts...)
		// Open names the store redacted; its errors never quote the
		// password.
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

// serverLocker is a store several servers could open at once: a running
// server holds its lock, so that a second is refused (until leader
// election lets them share it, docs/ha.md).
type serverLocker interface {
	LockServer(ctx context.Context, holder string, lost func(error)) (unlock func() error, err error)
}

// adminTokenName is the name of the admin token a server registers for
// its token file. A shared store has one admin token per data dir, so
// that a server starting with a new data dir does not revoke the token of
// another server on the same store.
func adminTokenName(spec StoreSpec) string {
	if kind, _ := spec.Kind(); kind == "sqlite" {
		return "admin"
	}
	host, _ := os.Hostname()
	dir, err := filepath.Abs(spec.DataDir)
	if err != nil {
		dir = spec.DataDir
	}
	sum := sha256.Sum256([]byte(host + "\x00" + dir))
	return "admin-" + hex.EncodeToString(sum[:4])
}

// openStore opens the store spec names for cp and, for a store several
// servers could share, takes its server lock: a server that loses the
// lock (its connection broke, so another server may have taken over)
// stops rather than act beside a successor.
func (cp *ControlPlane) openStore(ctx context.Context, spec StoreSpec) error {
	var err error
	if cp.Store, err = OpenStore(ctx, spec); err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	cp.log.Info("store open", "store", spec.String())
	if sh, ok := cp.Store.(serverSharer); ok {
		// Several servers share the store; the lease says which leads
		// (ha.go), and fencing keeps a stale one from writing. The shared
		// lock only keeps a copy out: losing it (a database restart) is
		// logged, not fatal.
		lost := func(err error) {
			cp.log.Warn("the store's shared server lock is lost; a store copy is no longer kept out", "error", err)
		}
		if cp.unlockStore, err = sh.ShareServer(ctx, postgres.ServerHolder(spec.DataDir), lost); err != nil {
			return fmt.Errorf("open store: %w", err)
		}
		return nil
	}
	l, ok := cp.Store.(serverLocker)
	if !ok {
		return nil
	}
	lost := func(err error) {
		cp.log.Error("stopping: the store's lock is lost, another server may take over", "error", err)
		select {
		case cp.storeLost <- err:
		default:
		}
	}
	if cp.unlockStore, err = l.LockServer(ctx, postgres.ServerHolder(spec.DataDir), lost); err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	return nil
}

// serverSharer is a store several servers share, holding its server lock
// together.
type serverSharer interface {
	ShareServer(ctx context.Context, holder string, lost func(error)) (unlock func() error, err error)
}

// LockForCopy keeps servers off the store spec names while a copy reads
// or writes it, and returns how to let them back: a PostgreSQL store's
// server lock, or for a SQLite file in a server's data dir (one with a
// server.lock), that data dir's lock. A running server is an error
// naming it.
func LockForCopy(ctx context.Context, st Store, spec StoreSpec, holder string) (unlock func() error, err error) {
	if l, ok := st.(serverLocker); ok {
		return l.LockServer(ctx, holder, nil)
	}
	dir := spec.DataDir
	if spec.URL != "" {
		dir = filepath.Dir(strings.TrimPrefix(spec.URL, "sqlite:"))
	}
	if _, err := os.Stat(filepath.Join(dir, LockFile)); err != nil {
		return func() error { return nil }, nil // no server ever ran on it
	}
	lock, err := lockDataDir(dir)
	if err != nil {
		return nil, err
	}
	return lock.release, nil
}
