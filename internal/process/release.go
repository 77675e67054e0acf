package process

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/shipgate/shipgate/internal/rollout"
)

// The release-level verbs of rollout.Runtime, over the per-instance ones:
// a release is the set of instances of one app, environment and version,
// whether this runtime started them or an earlier server did (the
// registry knows those), so a server that restarts finds them again
// instead of starting duplicates.

var _ rollout.Runtime = (*Runtime)(nil)

// releaseLocks serialises Ensure and Remove per release.
var releaseLocks sync.Map // rollout.ReleaseRef -> *sync.Mutex

func lockRelease(ref rollout.ReleaseRef) func() {
	m, _ := releaseLocks.LoadOrStore(ref, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

func refOf(inst rollout.Instance) rollout.ReleaseRef {
	return rollout.ReleaseRef{App: inst.App, Env: inst.Env, Version: inst.Version}
}

// Ensure makes exactly spec.Count instances of spec's release run: it
// adopts those an earlier server left running, forgets those that exited,
// stops the extra ones (spec.StopFirst first) and starts the missing ones,
// then returns them all, sorted by ID. If the missing ones cannot start,
// the ones it started are stopped and the error says why.
func (r *Runtime) Ensure(ctx context.Context, spec rollout.InstanceSpec) ([]rollout.Instance, error) {
	ref := rollout.ReleaseRef{App: spec.App, Env: spec.Env, Version: spec.Version}
	if spec.Count <= 0 {
		return nil, r.Remove(ctx, ref)
	}
	if err := validate(spec); err != nil {
		return nil, err
	}
	if r.isClosed() {
		return nil, errClosed
	}
	unlock := lockRelease(ref)
	defer unlock()
	r.adoptRelease(ctx, ref, spec)
	var current, exited []*instance
	for _, in := range r.supervised(ref) {
		if in.status().State == rollout.InstanceExited {
			exited = append(exited, in)
			continue
		}
		current = append(current, in)
	}
	r.forget(exited)
	if extra := len(current) - spec.Count; extra > 0 {
		slices.SortStableFunc(current, func(a, b *instance) int {
			return stopRank(a, spec.StopFirst) - stopRank(b, spec.StopFirst)
		})
		gone := current[:extra]
		current = current[extra:]
		err := r.stopAll(ctx, gone)
		r.forgetGone(gone)
		if err != nil {
			return nil, fmt.Errorf("scale %s down to %d: %w", describe(spec), spec.Count, err)
		}
	}
	out := make([]rollout.Instance, 0, spec.Count)
	for _, in := range current {
		out = append(out, in.inst)
	}
	if missing := spec.Count - len(current); missing > 0 {
		more := spec
		more.Count = missing
		started, err := r.Start(ctx, more)
		if err != nil {
			return nil, err
		}
		out = append(out, started...)
	}
	slices.SortFunc(out, func(a, b rollout.Instance) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// stopRank orders instances to stop when scaling down: those named in
// first, then unhealthy ones, then the rest.
func stopRank(in *instance, first []string) int {
	switch {
	case slices.Contains(first, in.inst.ID):
		return 0
	case in.status().State == rollout.InstanceUnhealthy:
		return 1
	default:
		return 2
	}
}

// Observe returns the release's instances with their status: those this
// runtime supervises (also the ones that exited, until they are removed or
// ensured away), and those only the registry knows (started by an earlier
// server and not adopted yet), as unknown.
func (r *Runtime) Observe(_ context.Context, ref rollout.ReleaseRef) ([]rollout.ObservedInstance, error) {
	var out []rollout.ObservedInstance
	seen := map[string]bool{}
	for _, in := range r.supervised(ref) {
		seen[in.inst.ID] = true
		out = append(out, rollout.ObservedInstance{Instance: in.inst, Status: in.status()})
	}
	recs, err := r.records()
	if err != nil {
		return nil, err
	}
	for _, rec := range recs {
		if refOf(rec.Instance) == ref && !seen[rec.Instance.ID] {
			out = append(out, rollout.ObservedInstance{Instance: rec.Instance,
				Status: rollout.InstanceStatus{State: rollout.InstanceUnknown, Reason: "started by an earlier server, not adopted yet"}})
		}
	}
	slices.SortFunc(out, func(a, b rollout.ObservedInstance) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Remove stops every instance of the release, those an earlier server
// started included, and forgets them.
func (r *Runtime) Remove(ctx context.Context, ref rollout.ReleaseRef) error {
	unlock := lockRelease(ref)
	defer unlock()
	ins := r.supervised(ref)
	recs, err := r.records()
	for _, rec := range recs {
		if refOf(rec.Instance) == ref && r.lookup(rec.Instance.ID) == nil {
			if in := r.fromRegistry(rec.Instance.ID); in != nil {
				ins = append(ins, in)
			}
		}
	}
	stopErr := r.stopAll(ctx, ins)
	r.forgetGone(ins)
	return errors.Join(err, stopErr)
}

// adoptRelease adopts the live instances of ref that the registry knows
// and this runtime does not supervise. One that cannot be adopted (it does
// not answer) is stopped.
func (r *Runtime) adoptRelease(ctx context.Context, ref rollout.ReleaseRef, spec rollout.InstanceSpec) {
	recs, err := r.records()
	if err != nil {
		r.log.Warn("read the instance registry", "err", err)
		return
	}
	for _, rec := range recs {
		if refOf(rec.Instance) != ref || r.lookup(rec.Instance.ID) != nil {
			continue
		}
		if err := r.Adopt(ctx, rec.Instance, spec); err != nil {
			r.log.Info("instance not adopted, stopping it", "instance", rec.Instance.ID, "err", err)
			if in := r.fromRegistry(rec.Instance.ID); in != nil {
				_ = r.stop(ctx, in)
			}
		}
	}
}

// supervised returns the instances of ref this runtime supervises.
func (r *Runtime) supervised(ref rollout.ReleaseRef) []*instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*instance
	for _, in := range r.instances {
		if refOf(in.inst) == ref {
			out = append(out, in)
		}
	}
	slices.SortFunc(out, func(a, b *instance) int { return strings.Compare(a.inst.ID, b.inst.ID) })
	return out
}

// forgetGone forgets the instances of ins whose process is gone; one a
// stop could not end stays supervised, so that a later Remove tries again.
func (r *Runtime) forgetGone(ins []*instance) {
	var gone []*instance
	for _, in := range ins {
		if in.gone() {
			gone = append(gone, in)
		}
	}
	r.forget(gone)
}
