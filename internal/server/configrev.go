package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/postgres"
	"github.com/shipgate/shipgate/internal/rollout"
)

// Servers sharing a PostgreSQL store run one config: its revisions are in
// the store (postgres.ConfigRevision). `shipgate apply -f` and SIGHUP, on
// any server, record the new config as the next revision once that server
// has it running (all or nothing, as on one server), and every other
// server applies it from the store when the change feed (or its poll)
// tells it; only the leader starts the engines of apps added or changed.
// A server starting on a store that holds a revision runs it, whatever its
// -f file says (and says so when they differ); the first server on a new
// store records its file as revision 1. docs/ha.md says why.

// configRev is what a server sharing a store knows of its config revision.
type configRev struct {
	mu sync.Mutex
	// running is the revision this server runs; pending a newer one it
	// could not apply, for the reason in err.
	running, pending int64
	err              string
	// files are the running revision's files.
	files []config.File
}

func (r *configRev) get() (running, pending int64, err string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running, r.pending, r.err
}

func (r *configRev) set(running int64, files []config.File) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running, r.pending, r.err, r.files = running, 0, "", files
}

// same reports whether files hold what the running revision holds.
func (r *configRev) same(files []config.File) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running > 0 && files != nil && sameFiles(files, r.files)
}

// fail records that revision id could not be applied; it reports whether
// that is news (another revision, or another reason), worth a log line.
func (r *configRev) fail(id int64, err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	news := r.pending != id || r.err != err.Error()
	r.pending, r.err = id, err.Error()
	return news
}

// collectors returns the gauges shipgate_config_revision (the store's
// config revision this server runs) and shipgate_config_revision_pending
// (a newer one it could not apply, 0 when none), read at each scrape.
func (r *configRev) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shipgate_config_revision",
			Help: "The store's config revision this server runs (servers sharing a PostgreSQL store).",
		}, func() float64 { running, _, _ := r.get(); return float64(running) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shipgate_config_revision_pending",
			Help: "A newer config revision of the store that this server could not apply (GET /v1/status says why), 0 when none.",
		}, func() float64 { _, pending, _ := r.get(); return float64(pending) }),
	}
}

// readAppFiles reads the app files at path as config.LoadApps does.
func readAppFiles(path string) ([]config.File, error) {
	names, err := config.AppFiles(path)
	if err != nil {
		return nil, err
	}
	files := make([]config.File, 0, len(names))
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		files = append(files, config.File{Name: name, Data: data})
	}
	return files, nil
}

// sameFiles reports whether a and b hold the same contents in the same
// order, whatever their names.
func sameFiles(a, b []config.File) bool {
	return slices.EqualFunc(a, b, func(x, y config.File) bool { return bytes.Equal(x.Data, y.Data) })
}

// storeConfig decides what a server starting on a shared store runs: the
// store's latest revision if there is one, or else its own files (nil
// when it was given parsed configs), recorded as revision 1. It returns
// the configs to run, and records their revision (none: 0) as running.
func (cp *ControlPlane) storeConfig(ctx context.Context, pg *postgres.Store, files []config.File, cfgs []*config.Config, server string, out func(string, ...any)) ([]*config.Config, error) {
	for {
		rev, found, err := pg.LatestConfigRevision(ctx)
		if err != nil {
			return nil, err
		}
		if found {
			stored, err := config.ParseFiles(rev.Files)
			if err != nil {
				return nil, fmt.Errorf("the store's config revision %d (%s) does not parse with this shipgate: %w", rev.ID, rev.Source, err)
			}
			if files != nil && !sameFiles(files, rev.Files) {
				out("shipgate: running the store's config revision %d (%s, applied by %s); it differs from %s: shipgate apply -f to change it\n",
					rev.ID, rev.Source, rev.Actor, cp.configPath)
				cp.log.Warn("the config file differs from the store's config revision; running the revision", "path", cp.configPath, "revision", rev.ID)
			}
			cp.revision.set(rev.ID, rev.Files)
			return stored, nil
		}
		if files == nil {
			return cfgs, nil
		}
		rev, err = pg.AddConfigRevision(ctx, 0, postgres.ConfigRevision{Files: files, Source: cp.configPath, Actor: "server:" + server, Reason: "first server on the store", Server: server})
		if errors.Is(err, rollout.ErrConflict) {
			continue // another server recorded its own first: run that
		}
		if err != nil {
			return nil, err
		}
		cp.revision.set(rev.ID, files)
		return cfgs, nil
	}
}

// followConfig applies the store's latest config revision if it is newer
// than the one this server runs. A revision it cannot apply (a router's
// address taken on this machine) leaves it on the one it runs, says so in
// status and in the log, and is tried again at the next change.
func (cp *ControlPlane) followConfig(ctx context.Context) error {
	pg, ok := cp.Store.(*postgres.Store)
	if !ok || cp.ha == nil {
		return nil
	}
	rev, found, err := pg.LatestConfigRevision(ctx)
	if err != nil || !found {
		return err
	}
	if running, _, _ := cp.revision.get(); rev.ID <= running {
		return nil
	}
	cfgs, err := config.ParseFiles(rev.Files)
	if err == nil {
		_, err = cp.apply(ctx, cfgs, rev.Files, rev.Actor, rev.Reason, rev.Source, &rev)
	}
	if err != nil {
		if cp.revision.fail(rev.ID, err) {
			cp.log.Error("config revision not applied on this server; it runs the one before", "revision", rev.ID, "error", err)
		}
		return err
	}
	return nil
}
