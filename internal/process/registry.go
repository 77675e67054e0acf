package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/rollout"
)

// The registry is one file per running instance under
// DataDir/instances/, written as soon as the process exists and removed
// once it is gone. It is how a server that restarts after a crash finds
// instances that an earlier server started but never recorded in its store
// (it died between starting them and committing): List returns them, and
// the engine stops those nobody owns, so no instance is orphaned.

// record is what the registry keeps of an instance.
type record struct {
	Instance  rollout.Instance `json:"instance"`
	StopGrace time.Duration    `json:"stop_grace"`
}

func (r *Runtime) registryDir() string { return filepath.Join(r.dataDir, "instances") }

func (r *Runtime) recordPath(id string) string {
	return filepath.Join(r.registryDir(), id+".json")
}

// register writes in's record; a failure is logged, not fatal: the
// registry only helps to clean up after a crash.
func (r *Runtime) register(in *instance) {
	b, err := json.Marshal(record{Instance: in.inst, StopGrace: in.spec.StopGrace})
	if err == nil {
		err = os.MkdirAll(r.registryDir(), 0o700)
	}
	if err == nil {
		tmp := r.recordPath(in.inst.ID) + ".tmp"
		if err = os.WriteFile(tmp, b, 0o600); err == nil {
			err = os.Rename(tmp, r.recordPath(in.inst.ID))
		}
	}
	if err != nil {
		r.log.Warn("record instance in the registry", "instance", in.inst.ID, "err", err)
	}
}

func (r *Runtime) unregister(id string) {
	if err := os.Remove(r.recordPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		r.log.Warn("remove instance from the registry", "instance", id, "err", err)
	}
}

// List returns the instances started by this runtime or by an earlier one
// with the same data dir whose process is still alive. Records of gone
// processes are removed.
func (r *Runtime) List(_ context.Context) ([]rollout.Instance, error) {
	recs, err := r.records()
	if err != nil {
		return nil, err
	}
	out := make([]rollout.Instance, 0, len(recs))
	for _, rec := range recs {
		out = append(out, rec.Instance)
	}
	return out, nil
}

func (r *Runtime) records() ([]record, error) {
	entries, err := os.ReadDir(r.registryDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read instance registry: %w", err)
	}
	var out []record
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(r.registryDir(), e.Name()))
		if err != nil {
			continue
		}
		var rec record
		if json.Unmarshal(b, &rec) != nil || rec.Instance.PID <= 0 {
			continue
		}
		if !alive(rec.Instance.PID) {
			r.unregister(rec.Instance.ID)
			continue
		}
		out = append(out, rec)
	}
	return out, nil
}

// fromRegistry returns an instance this runtime does not supervise but
// whose live process the registry knows, so that Stop can still stop it.
func (r *Runtime) fromRegistry(id string) *instance {
	b, err := os.ReadFile(r.recordPath(id))
	if err != nil {
		return nil
	}
	var rec record
	if json.Unmarshal(b, &rec) != nil || rec.Instance.PID <= 0 || !alive(rec.Instance.PID) {
		return nil
	}
	spec := withDefaults(rollout.InstanceSpec{App: rec.Instance.App, Env: rec.Instance.Env, Version: rec.Instance.Version, StopGrace: rec.StopGrace})
	in := newInstance(rec.Instance, spec, r.logPath(spec, id))
	in.adopted = true
	in.group = isGroupLeader(rec.Instance.PID)
	in.setRunning()
	return in
}
