// Package server wires the control plane together: it loads the config,
// opens the store, builds the runtime, the routers and the rollout engine,
// and serves the API. It is the composition root; the CLI's `server`
// command and the demo both use it.
package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
)

// Options configure a control plane.
type Options struct {
	// ConfigPath is the path of shipgate.yaml.
	ConfigPath string
	// DataDir holds the database, the admin token and instance logs.
	DataDir string
	// Listen is the API address. Default 127.0.0.1:7070.
	Listen string
	// Logger receives the server's logs.
	Logger *slog.Logger
	// Out receives the few lines a person starting the server should read
	// (where the API listens, where the admin token is).
	Out io.Writer
}

// Run starts the control plane and serves until ctx is done.
func Run(ctx context.Context, opts Options) error {
	_ = ctx
	_ = opts
	return errors.New("server: not wired yet")
}
