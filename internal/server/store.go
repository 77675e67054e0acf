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
		if err != nil {
			return nil, err
		}
		return s, nil
	}
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
