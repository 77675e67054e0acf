package flags

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/clock"
)

// Audit actions of flag changes. Subjects are "flag/<key>" and
// "segment/<name>".
const (
	ActionCreate     = "flag.create"
	ActionUpdate     = "flag.update"
	ActionEnable     = "flag.enable"
	ActionDisable    = "flag.disable"
	ActionTarget     = "flag.target"
	ActionArchive    = "flag.archive"
	ActionDelete     = "flag.delete"
	ActionImport     = "flag.import"
	ActionGuardStep  = "flag.guard.step"
	ActionGuardOff   = "flag.guard.off"
	ActionGuardDone  = "flag.guard.done"
	ActionSegmentSet = "segment.set"
	ActionSegmentDel = "segment.delete"
)

// Store persists flags, segments and evaluation counts. CommitFlags
// writes a Change and its audit events in one transaction.
type Store interface {
	// LoadFlags returns every flag and segment.
	LoadFlags(ctx context.Context) ([]*Flag, []Segment, error)
	// CommitFlags writes c atomically, audit events included.
	CommitFlags(ctx context.Context, c Change) error
	// FlagUsage returns the stored evaluation counts, by flag key.
	FlagUsage(ctx context.Context) (map[string]Usage, error)
	// AddFlagUsage adds counts to the stored ones.
	AddFlagUsage(ctx context.Context, counts map[string]Usage) error
	// LoadGuards returns the latest guarded rollout of each flag that
	// had one (Change.Guards writes them).
	LoadGuards(ctx context.Context) ([]GuardRecord, error)
}

// Change is what Store.CommitFlags writes in one transaction.
type Change struct {
	// Put are flags to insert or replace.
	Put []*Flag
	// Delete are flag keys to delete.
	Delete []string
	// PutSegments are segments to insert or replace.
	PutSegments []Segment
	// DeleteSegments are segment names to delete.
	DeleteSegments []string
	// Audit events are appended in order; the store sets Seq and hashes.
	Audit []audit.Event
	// Guards are guarded rollouts to insert or replace, by flag key: the
	// latest of each flag is kept. Deleting a flag deletes its record.
	Guards []GuardRecord
}

// Usage is how often a flag was evaluated.
type Usage struct {
	// Variants counts evaluations by variant served; "" counts the
	// evaluations that served no variant (disabled, errors).
	Variants map[string]uint64 `json:"variants"`
	// Last is the time of the last evaluation.
	Last time.Time `json:"last,omitzero"`
}

// Total returns the number of evaluations.
func (u Usage) Total() uint64 {
	var n uint64
	for _, c := range u.Variants {
		n += c
	}
	return n
}

// Options configure a Service.
type Options struct {
	// Store persists flags; required.
	Store Store
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Clock, when set, is the clock of guarded rollouts (their bakes and
	// intervals) and of Now: a test steps it to run bakes of minutes in
	// milliseconds. Default the wall clock.
	Clock clock.Clock
	// Passive, when set, makes the service drive no guarded rollout
	// until Drive is called: a follower on a shared store persists the
	// rollouts it is asked to start and leaves them to the leader.
	Passive bool
	// RecentlyEvaluated is how recent an evaluation makes deleting a flag
	// need force. Default 7 days.
	RecentlyEvaluated time.Duration
	// Stale is the staleness policy of the debt report.
	Stale StalePolicy
	// Stats, when set, measures flag-on and flag-off traffic for guarded
	// rollouts (the builtin router).
	Stats FlagStatsSource
}

// Service is the flags application: it serves evaluations from an
// immutable snapshot, applies changes through the store (validated,
// audited, atomic), tells watchers about them, and counts evaluations.
type Service struct {
	store  Store
	now    func() time.Time
	recent time.Duration
	stale  StalePolicy

	// mu serializes changes; evaluations never take it.
	mu   sync.Mutex
	snap atomic.Pointer[Snapshot]

	watchMu  sync.Mutex
	watchers map[chan struct{}]struct{}

	usage usageCounter

	guardsMu sync.Mutex
	guards   map[string]*guardRun
	stats    FlagStatsSource
	clock    clock.Clock
	// drive is the context guarded rollouts run under while this service
	// drives them (Drive), nil or done otherwise.
	drive context.Context
	runs  sync.WaitGroup
	// life bounds the guarded rollouts the service runs; Close ends it.
	life context.Context
	stop context.CancelFunc
}

// NewService loads the flags from the store and compiles them.
func NewService(ctx context.Context, opts Options) (*Service, error) {
	if opts.Store == nil {
		return nil, errors.New("flags: a store is required")
	}
	s := &Service{
		store:    opts.Store,
		now:      opts.Now,
		recent:   opts.RecentlyEvaluated,
		stale:    opts.Stale.withDefaults(),
		watchers: map[chan struct{}]struct{}{},
		guards:   map[string]*guardRun{},
		stats:    opts.Stats,
	}
	s.life, s.stop = context.WithCancel(context.WithoutCancel(ctx))
	s.clock = opts.Clock
	if s.clock == nil {
		s.clock = clock.Real{}
	} else if s.now == nil {
		s.now = s.clock.Now
	}
	if s.now == nil {
		s.now = time.Now
	}
	if !opts.Passive {
		s.drive = s.life
	}
	if s.recent <= 0 {
		s.recent = 7 * 24 * time.Hour
	}
	s.usage.counts = map[string]*Usage{}
	flags, segments, err := s.store.LoadFlags(ctx)
	if err != nil {
		return nil, fmt.Errorf("load flags: %w", err)
	}
	snap, err := Compile(flags, segments)
	if err != nil {
		return nil, fmt.Errorf("stored flags do not compile: %w", err)
	}
	s.snap.Store(snap)
	return s, nil
}

// Reload reads the flags from the store again and serves them if they
// changed: another server on the same store changed them (the store's
// change feed says when). Watchers are told of a change.
func (s *Service) Reload(ctx context.Context) error {
	if err := s.reload(ctx); err != nil {
		return err
	}
	// A guarded rollout another server started: driven here if this
	// service drives them.
	if d := s.driving(); d != nil {
		return s.resumeGuards(d)
	}
	return nil
}

func (s *Service) reload(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	flags, segments, err := s.store.LoadFlags(ctx)
	if err != nil {
		return fmt.Errorf("reload flags: %w", err)
	}
	next, err := Compile(flags, segments)
	if err != nil {
		return fmt.Errorf("stored flags do not compile: %w", err)
	}
	if cur := s.snap.Load(); cur != nil && cur.etag == next.etag {
		return nil
	}
	s.snap.Store(next)
	s.notify()
	return nil
}

// Close stops the guarded rollouts in progress and waits for them; each
// stays at the percentage it had reached, and at its step in the store,
// for Drive to resume it.
func (s *Service) Close() {
	s.stop()
	s.runs.Wait()
}

// StartGuardedRollout starts a guarded rollout measured by the service's
// stats source. It is persisted first; while this service drives guarded
// rollouts it runs here until it ends or the service is closed, otherwise
// (a follower) the service that drives them picks it up.
func (s *Service) StartGuardedRollout(key string, spec GuardSpec, who Who) (GuardStatus, error) {
	if d := s.driving(); d != nil {
		return s.StartGuarded(d, key, spec, s.stats, who)
	}
	rec, err := s.newGuard(s.life, key, spec, s.stats, who)
	return rec.Status, err
}

// Snapshot returns the flags being served now.
func (s *Service) Snapshot() *Snapshot { return s.snap.Load() }

// Evaluate evaluates one flag and counts the evaluation.
func (s *Service) Evaluate(key string, ctx map[string]any) Result {
	now := s.now()
	r := s.snap.Load().Evaluate(key, ctx, now)
	if r.ErrorCode != CodeFlagNotFound || r.Metadata != nil {
		s.usage.add(key, r.Variant, now)
	}
	return r
}

// EvaluateAll evaluates every flag for one context, by key, and returns
// the ETag of the definitions used.
func (s *Service) EvaluateAll(ctx map[string]any) ([]Result, string) {
	now := s.now()
	snap := s.snap.Load()
	out := make([]Result, 0, len(snap.keys))
	for _, k := range snap.keys {
		r := snap.flags[k].evaluate(k, ctx, now)
		s.usage.add(k, r.Variant, now)
		out = append(out, r)
	}
	return out, snap.etag
}

// Watch returns a channel that receives a value after every change, and
// a function to stop watching. A slow watcher misses no change: the
// channel holds one pending notice, which stands for all since.
func (s *Service) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.watchMu.Lock()
	s.watchers[ch] = struct{}{}
	s.watchMu.Unlock()
	return ch, func() {
		s.watchMu.Lock()
		delete(s.watchers, ch)
		s.watchMu.Unlock()
	}
}

func (s *Service) notify() {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	for ch := range s.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Who is the author of a change and why they made it.
type Who struct {
	// Actor is "user:<token name>" or "shipgate".
	Actor string
	// Reason is why, in words; required for deletions by force.
	Reason string
}

// commit validates the set that results from change, writes it with its
// audit events, and serves it. The caller holds s.mu.
func (s *Service) commit(ctx context.Context, c Change) (*Snapshot, error) {
	cur := s.snap.Load()
	flags := map[string]*Flag{}
	for _, f := range cur.Flags() {
		flags[f.Key] = f
	}
	for _, f := range c.Put {
		flags[f.Key] = f
	}
	for _, k := range c.Delete {
		delete(flags, k)
	}
	segs := map[string]Segment{}
	for _, sg := range cur.Segments() {
		segs[sg.Name] = sg
	}
	for _, sg := range c.PutSegments {
		segs[sg.Name] = sg
	}
	for _, n := range c.DeleteSegments {
		delete(segs, n)
	}
	next, err := Compile(mapValues(flags), mapValues(segs))
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	for i := range c.Audit {
		if c.Audit[i].Time.IsZero() {
			c.Audit[i].Time = now
		}
	}
	if err := s.store.CommitFlags(ctx, c); err != nil {
		return nil, fmt.Errorf("store flag change: %w", err)
	}
	s.snap.Store(next)
	s.notify()
	return next, nil
}

func mapValues[V any](m map[string]V) []V {
	out := make([]V, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, m[k])
	}
	return out
}

// event returns the audit event of a flag change, with the definitions
// before and after it.
func event(action string, key string, who Who, before, after *Flag) audit.Event {
	e := audit.Event{Actor: who.Actor, Action: action, Subject: "flag/" + key, Reason: who.Reason, Outcome: "ok", Data: map[string]string{}}
	if before != nil {
		b, _ := json.Marshal(before)
		e.Data["before"] = string(b)
	}
	if after != nil {
		b, _ := json.Marshal(after)
		e.Data["after"] = string(b)
	}
	return e
}

func checkWho(who Who) error {
	if who.Actor == "" {
		return errors.New("flags: a change needs an actor")
	}
	return nil
}

// Create adds a new flag. A flag with the same key is ErrConflict.
func (s *Service) Create(ctx context.Context, f *Flag, who Who) (*Flag, error) {
	if err := checkWho(who); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.snap.Load().Flag(f.Key); ok {
		return nil, fmt.Errorf("flag %q exists; change it with enable, disable, rollout or put: %w", f.Key, ErrConflict)
	}
	f = f.Clone()
	if f.MetaString(MetaCreated) == "" {
		f.SetMeta(MetaCreated, s.now().UTC().Format(time.RFC3339))
	}
	if _, err := s.commit(ctx, Change{Put: []*Flag{f}, Audit: []audit.Event{event(ActionCreate, f.Key, who, nil, f)}}); err != nil {
		return nil, err
	}
	return f, nil
}

// Put creates a flag or replaces its whole definition.
func (s *Service) Put(ctx context.Context, f *Flag, who Who) (*Flag, error) {
	if err := checkWho(who); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	before, exists := s.snap.Load().Flag(f.Key)
	// A whole definition is stored as given: flagd would serve no
	// metadata it does not have.
	f = f.Clone()
	action := ActionUpdate
	if !exists {
		action = ActionCreate
	}
	if _, err := s.commit(ctx, Change{Put: []*Flag{f}, Audit: []audit.Event{event(action, f.Key, who, before, f)}}); err != nil {
		return nil, err
	}
	return f, nil
}

// Edit applies fn to a copy of the flag key and commits the result with
// an audit event of the given action. Nothing changes if fn fails, if the
// result does not validate, or if it equals the flag as it was.
func (s *Service) Edit(ctx context.Context, key, action string, who Who, fn func(*Flag) error) (*Flag, error) {
	return s.edit(ctx, key, action, who, fn, nil)
}

// edit is Edit that also writes guards in the same transaction, even when
// the flag does not change.
func (s *Service) edit(ctx context.Context, key, action string, who Who, fn func(*Flag) error, guards []GuardRecord) (*Flag, error) {
	if err := checkWho(who); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	before, ok := s.snap.Load().Flag(key)
	if !ok {
		return nil, fmt.Errorf("flag %q: %w", key, ErrNotFound)
	}
	f := before.Clone()
	if err := fn(f); err != nil {
		return nil, err
	}
	f.Key = key
	if same(before, f) {
		if len(guards) > 0 {
			if err := s.store.CommitFlags(ctx, Change{Guards: guards}); err != nil {
				return nil, fmt.Errorf("store guarded rollout: %w", err)
			}
		}
		return f, nil
	}
	if _, err := s.commit(ctx, Change{Put: []*Flag{f}, Audit: []audit.Event{event(action, key, who, before, f)}, Guards: guards}); err != nil {
		return nil, err
	}
	return f, nil
}

func same(a, b *Flag) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// Enable serves the flag again.
func (s *Service) Enable(ctx context.Context, key string, who Who) (*Flag, error) {
	return s.Edit(ctx, key, ActionEnable, who, func(f *Flag) error {
		if f.Stage() == StageArchived {
			return fmt.Errorf("flag %q is archived; give it a stage with a rollout or put before enabling it: %w", key, ErrConflict)
		}
		f.State = Enabled
		return nil
	})
}

// Disable is the kill switch: every client falls back to its code
// default as soon as it hears of the change.
func (s *Service) Disable(ctx context.Context, key string, who Who) (*Flag, error) {
	return s.Edit(ctx, key, ActionDisable, who, func(f *Flag) error {
		f.State = Disabled
		return nil
	})
}

// Target changes who gets the flag with edit, applied to the flag's
// current plan. A flag with hand-written targeting is refused unless
// replace is set, so that a friendly edit never drops rules silently.
func (s *Service) Target(ctx context.Context, key string, replace bool, who Who, edit func(*Plan) error) (*Flag, error) {
	return s.Edit(ctx, key, ActionTarget, who, func(f *Flag) error {
		p, ok := PlanOf(f)
		if !ok && !replace {
			return invalidf(pointer("/flags", key)+"/targeting", "has hand-written targeting that this edit would replace; see it with `shipgate flags get %s -o json`, then pass --replace or edit the JSON", key)
		}
		if !ok {
			p = Plan{}
		}
		if err := edit(&p); err != nil {
			return err
		}
		return ApplyPlan(f, p, s.now())
	})
}

// Archive disables the flag and marks it archived: the normal step
// before deleting it.
func (s *Service) Archive(ctx context.Context, key string, who Who) (*Flag, error) {
	return s.Edit(ctx, key, ActionArchive, who, func(f *Flag) error {
		f.State = Disabled
		f.SetMeta(MetaStage, string(StageArchived))
		return nil
	})
}

// Delete deletes a flag. A flag evaluated within the recent window
// (default 7 days) is refused with ErrConflict unless force is set, and
// force needs a reason.
func (s *Service) Delete(ctx context.Context, key string, force bool, who Who) error {
	if err := checkWho(who); err != nil {
		return err
	}
	if force && strings.TrimSpace(who.Reason) == "" {
		return invalidf("/reason", "deleting a flag by force needs a reason; it goes to the audit log")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	before, ok := s.snap.Load().Flag(key)
	if !ok {
		return fmt.Errorf("flag %q: %w", key, ErrNotFound)
	}
	if !force {
		last, err := s.lastEvaluated(ctx, key)
		if err != nil {
			return err
		}
		if !last.IsZero() && s.now().Sub(last) < s.recent {
			return fmt.Errorf("flag %q was evaluated %s ago, so code still reads it; archive it first (shipgate flags archive %s), or delete with --force and a --reason: %w",
				key, s.now().Sub(last).Round(time.Second), key, ErrConflict)
		}
	}
	_, err := s.commit(ctx, Change{Delete: []string{key}, Audit: []audit.Event{event(ActionDelete, key, who, before, nil)}})
	return err
}

// Import loads a flagd file: every flag and shared rule in it is created
// or replaced, in one transaction, each with its own audit event.
// Flags not in the file are left alone. A flag is stored as the file
// has it, with the file's metadata inherited as flagd does, and nothing
// added, so that it evaluates with the metadata flagd would return. A
// $ref may name a shared rule already stored.
func (s *Service) Import(ctx context.Context, data []byte, who Who) ([]*Flag, error) {
	if err := checkWho(who); err != nil {
		return nil, err
	}
	file, err := ParseFile(data)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.snap.Load()
	c := Change{PutSegments: file.Segments}
	var changed []*Flag
	for _, sg := range file.Segments {
		c.Audit = append(c.Audit, audit.Event{Actor: who.Actor, Action: ActionSegmentSet, Subject: "segment/" + sg.Name, Reason: who.Reason, Outcome: "ok",
			Data: map[string]string{"after": string(sg.Rule)}})
	}
	for _, f := range file.Flags {
		before, exists := cur.Flag(f.Key)
		if exists && same(before, f) {
			continue
		}
		c.Put = append(c.Put, f)
		c.Audit = append(c.Audit, event(ActionImport, f.Key, who, before, f))
		changed = append(changed, f)
	}
	if len(c.Audit) == 0 {
		return nil, nil
	}
	if _, err := s.commit(ctx, c); err != nil {
		return nil, err
	}
	return changed, nil
}

// PutSegment creates or replaces a shared rule. Every flag using it
// changes with it, so the whole set is validated again.
func (s *Service) PutSegment(ctx context.Context, seg Segment, who Who) error {
	if err := checkWho(who); err != nil {
		return err
	}
	if err := checkName(seg.Name); err != nil {
		return invalidf(pointer("/$evaluators", seg.Name), "segment name: %v", err)
	}
	seg.Rule = compact(seg.Rule)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := audit.Event{Actor: who.Actor, Action: ActionSegmentSet, Subject: "segment/" + seg.Name, Reason: who.Reason, Outcome: "ok",
		Data: map[string]string{"after": string(seg.Rule)}}
	for _, old := range s.snap.Load().Segments() {
		if old.Name == seg.Name {
			e.Data["before"] = string(old.Rule)
		}
	}
	_, err := s.commit(ctx, Change{PutSegments: []Segment{seg}, Audit: []audit.Event{e}})
	return err
}

// DeleteSegment deletes a shared rule no flag uses.
func (s *Service) DeleteSegment(ctx context.Context, name string, who Who) error {
	if err := checkWho(who); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	found := slices.ContainsFunc(s.snap.Load().Segments(), func(sg Segment) bool { return sg.Name == name })
	if !found {
		return fmt.Errorf("segment %q: %w", name, ErrNotFound)
	}
	e := audit.Event{Actor: who.Actor, Action: ActionSegmentDel, Subject: "segment/" + name, Reason: who.Reason, Outcome: "ok"}
	_, err := s.commit(ctx, Change{DeleteSegments: []string{name}, Audit: []audit.Event{e}})
	return err
}

// Usage returns the evaluation counts of every flag: stored counts plus
// those not flushed yet.
func (s *Service) Usage(ctx context.Context) (map[string]Usage, error) {
	stored, err := s.store.FlagUsage(ctx)
	if err != nil {
		return nil, fmt.Errorf("read flag usage: %w", err)
	}
	return s.usage.merge(stored), nil
}

func (s *Service) lastEvaluated(ctx context.Context, key string) (time.Time, error) {
	u, err := s.Usage(ctx)
	if err != nil {
		return time.Time{}, err
	}
	return u[key].Last, nil
}

// FlushUsage writes the counts gathered since the last flush to the
// store. On failure they are kept for the next flush.
func (s *Service) FlushUsage(ctx context.Context) error {
	pending := s.usage.take()
	if len(pending) == 0 {
		return nil
	}
	if err := s.store.AddFlagUsage(ctx, pending); err != nil {
		s.usage.putBack(pending)
		return fmt.Errorf("flush flag usage: %w", err)
	}
	return nil
}

// Run flushes evaluation counts every interval until ctx is done, then
// once more. Counts gathered after the last flush before a crash are
// lost: at most one interval's worth, which does not move a staleness
// report measured in days.
func (s *Service) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return s.FlushUsage(context.WithoutCancel(ctx))
		case <-t.C:
			// A failed flush keeps its counts for the next one.
			_ = s.FlushUsage(ctx)
		}
	}
}

// usageCounter counts evaluations in memory between flushes.
type usageCounter struct {
	mu     sync.Mutex
	counts map[string]*Usage
}

func (u *usageCounter) add(key, variant string, now time.Time) {
	u.mu.Lock()
	c := u.counts[key]
	if c == nil {
		c = &Usage{Variants: map[string]uint64{}}
		u.counts[key] = c
	}
	c.Variants[variant]++
	if now.After(c.Last) {
		c.Last = now
	}
	u.mu.Unlock()
}

func (u *usageCounter) take() map[string]Usage {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[string]Usage, len(u.counts))
	for k, c := range u.counts {
		out[k] = *c
	}
	u.counts = map[string]*Usage{}
	return out
}

func (u *usageCounter) putBack(m map[string]Usage) {
	for k, c := range m {
		for v, n := range c.Variants {
			u.mu.Lock()
			x := u.counts[k]
			if x == nil {
				x = &Usage{Variants: map[string]uint64{}}
				u.counts[k] = x
			}
			x.Variants[v] += n
			if c.Last.After(x.Last) {
				x.Last = c.Last
			}
			u.mu.Unlock()
		}
	}
}

func (u *usageCounter) merge(stored map[string]Usage) map[string]Usage {
	out := make(map[string]Usage, len(stored))
	for k, c := range stored {
		vs := make(map[string]uint64, len(c.Variants))
		for v, n := range c.Variants {
			vs[v] = n
		}
		out[k] = Usage{Variants: vs, Last: c.Last}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for k, c := range u.counts {
		x, ok := out[k]
		if !ok {
			x = Usage{Variants: map[string]uint64{}}
		}
		for v, n := range c.Variants {
			x.Variants[v] += n
		}
		if c.Last.After(x.Last) {
			x.Last = c.Last
		}
		out[k] = x
	}
	return out
}
