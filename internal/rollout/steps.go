package rollout

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"sort"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/audit"
)

// stepApproval waits until the rollout has the approvals its rule
// requires (Engine.Approve hands each one to the driver) for the release
// as it is now. Approvals given for the release as it was before a change
// are void.
func (e *reconciler) stepApproval(ctx context.Context, d *driver, r *Rollout) error {
	if r.Approval != nil {
		return e.checkApproval(ctx, r)
	}
	for {
		d.mu.Lock()
		var a *Approval
		if len(d.approvals) > 0 {
			a, d.approvals = d.approvals[0], d.approvals[1:]
		}
		d.mu.Unlock()
		if a != nil {
			if slices.ContainsFunc(r.Approvals, func(x Approval) bool { return x.By == a.By && x.Digest == a.Digest }) {
				d.ack()
				continue // the same person twice, handed over at once
			}
			var events []audit.Event
			kept := r.Approvals[:0:0]
			for _, old := range r.Approvals {
				if old.Digest == a.Digest {
					kept = append(kept, old)
					continue
				}
				ev := e.event(r, ActorEngine, audit.ActionApprovalVoid, fmt.Sprintf("the approval by %s is void: release %s changed after it was approved", old.By, r.Version))
				ev.Data["approved_digest"], ev.Data["digest"] = old.Digest, a.Digest
				events = append(events, ev)
			}
			kept = append(kept, *a)
			r.Approvals = kept
			need := r.rule().Required
			ev := e.event(r, a.By, audit.ActionApprove, a.Comment)
			ev.Data["digest"] = a.Digest
			ev.Data["approvals"] = fmt.Sprintf("%d/%d", len(r.Approvals), need)
			events = append(events, ev)
			done := len(r.Approvals) >= need
			if done {
				r.Approval = a
			}
			err := e.save(ctx, r, nil, events...)
			d.ack()
			if err != nil || done {
				return err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-d.wake:
		}
	}
}

// checkApproval fails if the release changed since it was approved.
func (e *reconciler) checkApproval(ctx context.Context, r *Rollout) error {
	if r.Approval == nil {
		return nil
	}
	rel, err := e.store.GetRelease(ctx, r.App, r.Version)
	if err != nil {
		return err
	}
	if d := e.releaseDigest(rel); d != r.Approval.Digest {
		reason := fmt.Sprintf("the approval by %s is void: release %s changed after it was approved", r.Approval.By, r.Version)
		ev := e.event(r, ActorEngine, audit.ActionApprovalVoid, reason)
		ev.Data["approved_digest"], ev.Data["digest"] = r.Approval.Digest, d
		r.Approval = nil
		if err := e.save(ctx, r, nil, ev); err != nil {
			return err
		}
		return failf("%s", reason)
	}
	return nil
}

// releaseDigest identifies a release as approved and as recorded in the
// audit log: its commit, checks, variables and image. It is an HMAC-SHA256 under
// the server's secret digest key (Options.DigestKey), truncated to 128
// bits, so that a digest in an audit event or a notification does not let
// anyone who reads it test guesses of low-entropy variable values (a plain
// hash would).
func (e *deps) releaseDigest(rel Release) string {
	h := hmac.New(sha256.New, e.digestKey)
	fmt.Fprintf(h, "%s\x00%s\x00", rel.Version, rel.Commit)
	for _, k := range sortedKeys(rel.Checks) {
		fmt.Fprintf(h, "check %s=%s\x00", k, rel.Checks[k])
	}
	for _, k := range sortedKeys(rel.Vars) {
		fmt.Fprintf(h, "var %s=%s\x00", k, rel.Vars[k])
	}
	if rel.Image != "" {
		// Only when set: the digests of releases without an image (all
		// those recorded before images) stay what they were.
		fmt.Fprintf(h, "image %s\x00", rel.Image)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// stepBatch replaces one batch of a rolling rollout: with max_surge it
// starts the batch's new instances first and stops as many old ones after
// the bake; without, it takes old ones out of the router and stops them
// first. Every part is idempotent: counts, not events, say what is left.
func (e *reconciler) stepBatch(ctx context.Context, d *driver, st *Spec, r *Rollout, step Step) error {
	want := 0 // new instances once this batch is done
	for i := 0; i <= r.StepIndex; i++ {
		if r.Steps[i].Kind == StepBatch {
			want += r.Steps[i].Count
		}
	}
	surge := st.Strategy.Rolling.MaxSurge > 0
	if !surge {
		if err := e.retireOld(ctx, st, r, want); err != nil {
			return err
		}
	}
	if want != len(r.New) {
		insts, err := e.ensure(ctx, st, r.Version, want, nil)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return failf("%s did not start: %v", r.Version, err)
		}
		var added []Instance
		for _, inst := range insts {
			if !slices.ContainsFunc(r.New, func(o Instance) bool { return o.ID == inst.ID }) {
				added = append(added, inst)
			}
		}
		r.New = insts
		if err := e.save(ctx, r, nil); err != nil {
			return err
		}
		for _, inst := range added {
			if err := e.smokeInstance(ctx, st, r.Env, inst); err != nil {
				return err
			}
		}
	}
	weight := 100 * len(r.New) / (len(r.New) + len(r.Old))
	if err := e.setRoutes(ctx, r.Env, e.canaryRoutes(st, r, weight)); err != nil {
		return fmt.Errorf("add batch to the router: %w", err)
	}
	since := e.clock.Now() // the window begins once the batch is served
	r.Weight = weight
	if r.FirstTrafficAt.IsZero() {
		r.FirstTrafficAt = e.clock.Now()
	}
	if err := e.save(ctx, r, nil); err != nil {
		return err
	}
	// With no old instance left there is no stable traffic to compare
	// with: the batch must not fail a gate, but cannot wait for a pass.
	if err := e.bake(ctx, d, st, r, step, since, r.Version, r.FromVersion, nil, len(r.Old) > 0); err != nil {
		return err
	}
	if surge {
		return e.retireOld(ctx, st, r, want)
	}
	return nil
}

// retireOld takes old instances out of the router and stops them until want
// of them have been replaced (or none is left).
func (e *reconciler) retireOld(ctx context.Context, st *Spec, r *Rollout, want int) error {
	n := min(want-len(r.Replaced), len(r.Old))
	if n <= 0 {
		// Done, but perhaps not carried out before a crash: the old
		// release at the count that is left (idempotent).
		if len(r.Replaced) > 0 {
			return e.retireDrained(ctx, st, r.FromVersion, r.Replaced, len(r.Old))
		}
		return nil
	}
	gone := r.Old[:n]
	r.Replaced = append(r.Replaced, gone...)
	r.Old = append([]Instance(nil), r.Old[n:]...)
	weight := 100
	if total := len(r.New) + len(r.Old); total > 0 && len(r.Old) > 0 {
		weight = 100 * len(r.New) / total
	}
	if len(r.New) == 0 {
		weight = 0
	}
	if err := e.setRoutes(ctx, r.Env, e.canaryRoutes(st, r, weight)); err != nil {
		return fmt.Errorf("take old instances out of the router: %w", err)
	}
	r.Weight = weight
	if err := e.save(ctx, r, nil); err != nil {
		return err
	}
	if err := e.retireDrained(ctx, st, r.FromVersion, gone, len(r.Old)); err != nil {
		return fmt.Errorf("stop replaced instances: %w", err)
	}
	return nil
}

// smokeInstance sends the stage's smoke checks to one instance.
func (e *reconciler) smokeInstance(ctx context.Context, st *Spec, env string, inst Instance) error {
	for _, c := range st.Smoke {
		if err := e.probe(ctx, env, inst.Addr, c); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return failf("smoke check GET %s on %s failed: %v", c.Path, inst.ID, err)
		}
	}
	return nil
}

// stepPostSmoke sends the post-deploy smoke checks through the router, as
// a user would reach the new release. A drill without post_smoke checks
// uses the smoke checks.
func (e *reconciler) stepPostSmoke(ctx context.Context, st *Spec, r *Rollout) error {
	checks := st.PostSmoke
	if len(checks) == 0 {
		checks = st.Smoke
	}
	addr := routerProbeAddr(st.Listen)
	for _, c := range checks {
		if err := e.probe(ctx, r.Env, addr, c); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return failf("post-deploy smoke check GET %s through the router failed: %v", c.Path, err)
		}
	}
	return nil
}

// routerProbeAddr is where the engine reaches a router listening on listen.
func routerProbeAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// stepObserve analyses the new release after a blue-green switch against
// what the old one measured before it, while the old one still runs: a
// failed gate switches back at once.
func (e *reconciler) stepObserve(ctx context.Context, d *driver, st *Spec, r *Rollout, step Step) error {
	since := e.clock.Now()
	var blue analysis.Sample
	if r.Blue != nil {
		blue = r.Blue.sample()
	}
	return e.bake(ctx, d, st, r, step, since, r.Version, r.FromVersion, &blue, true)
}

// stepRestore ends a drill: traffic goes back to the release that was
// current, whose instances kept running.
func (e *reconciler) stepRestore(ctx context.Context, st *Spec, r *Rollout) error {
	if err := e.setRoutes(ctx, r.Env, e.stableRoutes(st, r.FromVersion, r.Old, r.Seed)); err != nil {
		return fmt.Errorf("switch back: %w", err)
	}
	r.Weight = 0
	env := e.nextEnvState(ctx, r, r.FromVersion, r.Old, false)
	ev := e.event(r, ActorEngine, audit.ActionStep, fmt.Sprintf("drill: %s served; back on %s", r.Version, r.FromVersion))
	return e.save(ctx, r, &env, ev)
}
