// Package apitest serves the real API handler over loopback HTTP on a
// real SQLite store in a temporary directory, for the tests of the API
// and of its clients (the CLI), as net/http/httptest serves a handler.
package apitest

import (
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/dora"
	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/report"
	"github.com/shipgate/shipgate/internal/sqlite"
)

// Options configure a Server.
type Options struct {
	// Service serves the rollout routes. Nil leaves them unusable, for
	// tests of other routes.
	Service api.Service
	// Flags starts the flags service on the store and serves the flag
	// routes.
	Flags bool
	// Logger receives the handler's logs. Nil discards them.
	Logger *slog.Logger
	// App is the app the server manages.
	App string
	// DORA serves the DORA, release change and incident routes on the
	// store, with weeks starting Monday in UTC.
	DORA bool
	// Kubernetes, when set, serves shipgate kubernetes leave.
	Kubernetes api.KubernetesService
}

// Server is an API server whose tokens, flags and audit log are in a
// SQLite store. It is closed when the test ends.
type Server struct {
	// URL is the base URL of the API, such as http://127.0.0.1:38127.
	URL string
	// Store holds the tokens, the flags and the audit log.
	Store *sqlite.Store
	// Flags is the flags service, nil unless Options.Flags is set.
	Flags *flags.Service
	// DBPath is the SQLite database file, for tests that alter it behind
	// the store's back.
	DBPath string
}

// Start starts a Server for the test t, with the token routes and the
// flag client keys on its store.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	ctx := t.Context()
	dbPath := filepath.Join(t.TempDir(), "shipgate.db")
	store, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	s := &Server{Store: store, DBPath: dbPath}
	hopts := api.HandlerOptions{Logger: opts.Logger, App: opts.App, Tokens: store, AuditChain: store, Kubernetes: opts.Kubernetes}
	if opts.Flags {
		if s.Flags, err = flags.NewService(ctx, flags.Options{Store: store}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Flags.Close)
		hopts.Flags, hopts.FlagKeys = s.Flags, store
	}
	if opts.DORA {
		hopts.DORA = &report.Service{Store: store, Calendar: dora.DefaultCalendar(time.UTC)}
		hopts.Incidents = store
		hopts.Notifications = store
	}
	srv := httptest.NewServer(api.NewHandler(opts.Service, store, hopts))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Token stores a token named name with role, as the server stores its
// admin token at first start, and returns its secret.
func (s *Server) Token(t testing.TB, name string, role auth.Role) string {
	t.Helper()
	secret, err := auth.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Store.CreateToken(t.Context(), auth.Token{Name: name, Role: role}, auth.Hash(secret)); err != nil {
		t.Fatal(err)
	}
	return secret
}

// Client returns a client of the server that authenticates with secret.
func (s *Server) Client(secret string) *api.Client {
	return api.NewClient(s.URL, secret, nil)
}
