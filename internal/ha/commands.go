package ha

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/postgres"
	"github.com/shipgate/shipgate/internal/rollout"
)

// CommandStore keeps the commands (internal/postgres).
type CommandStore interface {
	SubmitCommand(ctx context.Context, c postgres.Command) (postgres.Command, bool, error)
	ClaimCommand(ctx context.Context) (postgres.Command, bool, error)
	FinishCommand(ctx context.Context, id int64, failed bool, outcome json.RawMessage) error
	GetCommand(ctx context.Context, id int64) (postgres.Command, error)
}

// Command kinds: the api.Service methods that change a rollout.
const (
	KindDeploy   = "deploy"
	KindRollback = "rollback"
	KindApprove  = "approve"
	KindPromote  = "promote"
	KindPause    = "pause"
	KindResume   = "resume"
	KindRetry    = "retry"
	KindDrill    = "drill"
)

// IdempotencyHeader is the HTTP header a client names a command with: a
// request sent again with the same key (after a timeout, to another
// server) gets the first one's answer instead of acting twice.
const IdempotencyHeader = "Idempotency-Key"

type keyCtx struct{}

// WithIdempotencyKey returns ctx carrying the key of the command it asks for.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, keyCtx{}, key)
}

// IdempotencyKeys hands each request's Idempotency-Key header to the
// commands it asks for.
func IdempotencyKeys(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if key := r.Header.Get(IdempotencyHeader); key != "" {
			r = r.WithContext(WithIdempotencyKey(r.Context(), key))
		}
		h.ServeHTTP(w, r)
	})
}

// envelope is a command's payload: the request, and who asks (the
// requests do not carry their actor in JSON).
type envelope struct {
	Request json.RawMessage `json:"request"`
	Actor   string          `json:"actor,omitempty"`
	Role    string          `json:"role,omitempty"`
}

// refusal is a failed command's outcome: the API's answer.
type refusal struct {
	Status int           `json:"status"`
	Error  *api.APIError `json:"error"`
}

// Commands turns the rollout-changing calls of the API into commands in
// the store (Service) and carries them out on the leader (Execute).
type Commands struct {
	Store CommandStore
	// Server is this server's ID, recorded with what it submits.
	Server string
	// Wait bounds how long a call waits for the leader to carry its
	// command out; then it answers 503 naming the command, which stays
	// pending. Default 30s.
	Wait   time.Duration
	Logger *slog.Logger

	mu      sync.Mutex
	changed chan struct{} // closed and replaced at each notification
}

// Notify tells waiting calls and the executor that commands changed; feed
// it from the store's change feed (postgres.CommandsChannel).
func (c *Commands) Notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changed != nil {
		close(c.changed)
	}
	c.changed = make(chan struct{})
}

func (c *Commands) changes() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changed == nil {
		c.changed = make(chan struct{})
	}
	return c.changed
}

func (c *Commands) log() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// Service returns svc with its rollout-changing methods going through the
// store: each becomes a command the leader carries out, and returns the
// leader's answer. Reads go to svc.
func (c *Commands) Service(svc api.Service) api.Service { return &forwarder{Service: svc, c: c} }

type forwarder struct {
	api.Service
	c *Commands
}

func (f *forwarder) Deploy(ctx context.Context, req rollout.DeployRequest) (rollout.Rollout, error) {
	return f.c.submit(ctx, KindDeploy, req, req.Actor, "")
}

func (f *forwarder) Rollback(ctx context.Context, req rollout.RollbackRequest) (rollout.Rollout, error) {
	return f.c.submit(ctx, KindRollback, req, req.Actor, "")
}

func (f *forwarder) Approve(ctx context.Context, req rollout.ApproveRequest) (rollout.Rollout, error) {
	return f.c.submit(ctx, KindApprove, req, req.Actor, req.Role)
}

func (f *forwarder) Promote(ctx context.Context, req rollout.PromoteRequest) (rollout.Rollout, error) {
	return f.c.submit(ctx, KindPromote, req, req.Actor, "")
}

func (f *forwarder) Pause(ctx context.Context, req rollout.PauseRequest) (rollout.Rollout, error) {
	return f.c.submit(ctx, KindPause, req, req.Actor, "")
}

func (f *forwarder) Resume(ctx context.Context, req rollout.PauseRequest) (rollout.Rollout, error) {
	return f.c.submit(ctx, KindResume, req, req.Actor, "")
}

func (f *forwarder) Retry(ctx context.Context, req rollout.RetryRequest) (rollout.Rollout, error) {
	return f.c.submit(ctx, KindRetry, req, req.Actor, "")
}

func (f *forwarder) Drill(ctx context.Context, req rollout.DrillRequest) (rollout.Rollout, error) {
	return f.c.submit(ctx, KindDrill, req, req.Actor, "")
}

// submit records a command and waits for the leader's answer.
func (c *Commands) submit(ctx context.Context, kind string, req any, actor, role string) (rollout.Rollout, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return rollout.Rollout{}, fmt.Errorf("encode %s command: %w", kind, err)
	}
	payload, err := json.Marshal(envelope{Request: body, Actor: actor, Role: role})
	if err != nil {
		return rollout.Rollout{}, fmt.Errorf("encode %s command: %w", kind, err)
	}
	key, _ := ctx.Value(keyCtx{}).(string)
	if key == "" {
		key = newKey()
	}
	cmd, _, err := c.Store.SubmitCommand(ctx, postgres.Command{Key: key, Kind: kind, Actor: actor, Payload: payload, SubmittedBy: c.Server})
	if err != nil {
		return rollout.Rollout{}, err
	}
	wait := c.Wait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		changed := c.changes()
		got, err := c.Store.GetCommand(ctx, cmd.ID)
		if err == nil && got.Finished() {
			return outcome(got)
		}
		select {
		case <-ctx.Done():
			return rollout.Rollout{}, ctx.Err()
		case <-deadline.C:
			return rollout.Rollout{}, &api.APIError{Status: http.StatusServiceUnavailable, Code: "pending",
				Message: fmt.Sprintf("command %d (%s) is recorded but no leader carried it out within %s; it stays pending: "+
					"send the request again with the same %s header (%s) to get its answer", cmd.ID, kind, wait, IdempotencyHeader, key)}
		case <-changed:
		case <-time.After(250 * time.Millisecond): // the feed is a hint; poll too
		}
	}
}

// outcome is a finished command's answer as the leader gave it.
func outcome(cmd postgres.Command) (rollout.Rollout, error) {
	if cmd.State == postgres.CommandFailed {
		var r refusal
		if err := json.Unmarshal(cmd.Error, &r); err != nil || r.Error == nil {
			return rollout.Rollout{}, fmt.Errorf("command %d failed: %s", cmd.ID, cmd.Error)
		}
		r.Error.Status = r.Status
		return rollout.Rollout{}, r.Error
	}
	var ro rollout.Rollout
	if err := json.Unmarshal(cmd.Result, &ro); err != nil {
		return rollout.Rollout{}, fmt.Errorf("decode the answer of command %d: %w", cmd.ID, err)
	}
	return ro, nil
}

// Execute carries out the store's commands with svc (the leader's
// engine), one at a time, oldest first, until ctx ends: run it while
// leading.
func (c *Commands) Execute(ctx context.Context, svc api.Service) {
	for ctx.Err() == nil {
		changed := c.changes()
		cmd, found, err := c.Store.ClaimCommand(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.log().Warn("claim a command", "error", err)
			}
			sleep(ctx, time.Second)
			continue
		}
		if !found {
			select {
			case <-ctx.Done():
			case <-changed:
			case <-time.After(time.Second):
			}
			continue
		}
		c.carryOut(ctx, svc, cmd)
	}
}

// carryOut runs one claimed command and records its outcome.
func (c *Commands) carryOut(ctx context.Context, svc api.Service, cmd postgres.Command) {
	log := c.log().With("command", cmd.ID, "kind", cmd.Kind, "attempt", cmd.Attempts)
	r, err := c.run(ctx, svc, cmd)
	if ctx.Err() != nil {
		// Leadership ended mid-way: the next leader claims it again.
		log.Warn("command interrupted: leadership ended", "error", err)
		return
	}
	var out json.RawMessage
	failed := err != nil
	if failed {
		ae := api.ErrorOf(err)
		if ae.Code == "internal" {
			log.Error("command failed", "error", err)
		}
		out, _ = json.Marshal(refusal{Status: ae.Status, Error: ae})
	} else {
		out, _ = json.Marshal(r)
		log.Info("command carried out", "rollout", r.ID)
	}
	if err := c.Store.FinishCommand(ctx, cmd.ID, failed, out); err != nil {
		log.Warn("record the outcome of a command", "error", err)
	}
}

func (c *Commands) run(ctx context.Context, svc api.Service, cmd postgres.Command) (rollout.Rollout, error) {
	var env envelope
	if err := json.Unmarshal(cmd.Payload, &env); err != nil {
		return rollout.Rollout{}, fmt.Errorf("command %d: decode: %w: %w", cmd.ID, err, rollout.ErrInvalid)
	}
	decode := func(v any) error {
		if err := json.Unmarshal(env.Request, v); err != nil {
			return fmt.Errorf("command %d: decode %s: %w: %w", cmd.ID, cmd.Kind, err, rollout.ErrInvalid)
		}
		return nil
	}
	// What carrying the command out writes records its identity (in the
	// data of its audit events, in the transaction of the rollout it
	// creates or changes): a later attempt looks for that, not at clocks.
	ctx = rollout.WithCommand(ctx, commandID(cmd))
	switch cmd.Kind {
	case KindDeploy:
		var req rollout.DeployRequest
		if err := decode(&req); err != nil {
			return rollout.Rollout{}, err
		}
		req.Actor = env.Actor
		// An earlier leader claimed it and died: was the rollout created?
		// Then that is the answer, not a second deploy.
		if r, ok, err := c.carriedOut(ctx, svc, cmd, req.App, audit.ActionDeploy); err != nil || ok {
			return r, err
		}
		return svc.Deploy(ctx, req)
	case KindApprove:
		var req rollout.ApproveRequest
		if err := decode(&req); err != nil {
			return rollout.Rollout{}, err
		}
		req.Actor, req.Role = env.Actor, env.Role
		if cmd.Attempts > 1 {
			if r, ok := approvedBy(ctx, svc, req); ok {
				return r, nil
			}
		}
		return svc.Approve(ctx, req)
	case KindRollback:
		var req rollout.RollbackRequest
		if err := decode(&req); err != nil {
			return rollout.Rollout{}, err
		}
		req.Actor = env.Actor
		// A second rollback would go back one more release.
		if r, ok, err := c.carriedOut(ctx, svc, cmd, req.App, audit.ActionRollbackManual); err != nil || ok {
			return r, err
		}
		return svc.Rollback(ctx, req)
	case KindPromote:
		var req rollout.PromoteRequest
		if err := decode(&req); err != nil {
			return rollout.Rollout{}, err
		}
		req.Actor = env.Actor
		// A second promote would skip the next bake too.
		if r, ok, err := c.carriedOut(ctx, svc, cmd, req.App, audit.ActionPromoteManual); err != nil || ok {
			return r, err
		}
		return svc.Promote(ctx, req)
	case KindPause, KindResume:
		var req rollout.PauseRequest
		if err := decode(&req); err != nil {
			return rollout.Rollout{}, err
		}
		req.Actor = env.Actor
		action := audit.ActionPause
		if cmd.Kind == KindResume {
			action = audit.ActionResume
		}
		if r, ok, err := c.carriedOut(ctx, svc, cmd, req.App, action); err != nil || ok {
			return r, err
		}
		if cmd.Kind == KindPause {
			return svc.Pause(ctx, req)
		}
		return svc.Resume(ctx, req)
	case KindRetry:
		var req rollout.RetryRequest
		if err := decode(&req); err != nil {
			return rollout.Rollout{}, err
		}
		req.Actor = env.Actor
		// A retry is a deploy, audited as one.
		if r, ok, err := c.carriedOut(ctx, svc, cmd, req.App, audit.ActionDeploy); err != nil || ok {
			return r, err
		}
		return svc.Retry(ctx, req)
	case KindDrill:
		var req rollout.DrillRequest
		if err := decode(&req); err != nil {
			return rollout.Rollout{}, err
		}
		req.Actor = env.Actor
		// A drill's rollout is created with a deploy event.
		if r, ok, err := c.carriedOut(ctx, svc, cmd, req.App, audit.ActionDeploy); err != nil || ok {
			return r, err
		}
		return svc.Drill(ctx, req)
	}
	return rollout.Rollout{}, fmt.Errorf("command %d: unknown kind %q: %w", cmd.ID, cmd.Kind, rollout.ErrInvalid)
}

// commandID is the identity a command's effects record
// (rollout.WithCommand): its ID in the commands table.
func commandID(cmd postgres.Command) string { return strconv.FormatInt(cmd.ID, 10) }

// reclaimScan bounds how many of an app's latest audit events of one
// action a re-claim looks through for the command's identity. A command
// is claimed again once the lease of the leader that died holding it has
// run out (seconds), so what it wrote is among the newest.
const reclaimScan = 500

// carriedOut finds, for a command an earlier leader claimed (attempt 2
// or more), the audit event that says that leader carried it out: action
// on app, recorded with this command's identity (rollout.CommandData),
// which the engine writes in the same transaction as the rollout it
// creates or changes. It returns the rollout the event names. No clock
// is compared: a rollout created by a leader whose clock is behind the
// follower's is found, and an identical earlier deploy by the same actor
// is not taken for this one. On a first attempt it finds nothing without
// asking.
func (c *Commands) carriedOut(ctx context.Context, svc api.Service, cmd postgres.Command, app, action string) (rollout.Rollout, bool, error) {
	if cmd.Attempts < 2 {
		return rollout.Rollout{}, false, nil
	}
	// Not knowing is not "not done": a store that cannot answer now (a
	// database restarting) is asked again for a while, and then the
	// command fails, saying so, rather than being carried out twice.
	var events []audit.Event
	var err error
	for try := 0; ; try++ {
		if events, err = svc.Audit(ctx, audit.Filter{Subject: app + "/", Action: action, Limit: reclaimScan}); err == nil {
			break
		}
		c.log().Warn("look for what an earlier attempt of a command did", "command", cmd.ID, "error", err)
		if try == reclaimTries-1 || ctx.Err() != nil {
			return rollout.Rollout{}, false, notKnown(cmd, "could not tell whether an earlier leader carried it out, so it was not carried out: see shipgate status, and send it again if it is not done")
		}
		sleep(ctx, reclaimPause)
	}
	want := commandID(cmd)
	for _, e := range events {
		if e.Data[rollout.CommandData] != want {
			continue
		}
		id, err := strconv.ParseInt(e.Data["rollout"], 10, 64)
		if err != nil {
			continue
		}
		r, err := svc.GetRollout(ctx, id)
		if err != nil {
			c.log().Warn("read the rollout an earlier attempt of a command made", "command", cmd.ID, "rollout", id, "error", err)
			return rollout.Rollout{}, false, notKnown(cmd, fmt.Sprintf("carried out by an earlier leader (rollout %d), which cannot be read now: see shipgate status", id))
		}
		c.log().Info("command carried out by an earlier leader; not again", "command", cmd.ID, "kind", cmd.Kind, "rollout", id)
		return r, true, nil
	}
	return rollout.Rollout{}, false, nil
}

// notKnown is the answer to a command whose earlier attempt's outcome
// the store cannot tell now: 503, which a client may send again; the
// store's error is logged, not sent.
func notKnown(cmd postgres.Command, msg string) error {
	return &api.APIError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: fmt.Sprintf("command %d: %s", cmd.ID, msg)}
}

// reclaimTries is how many times, reclaimPause apart, a re-claim asks
// the store what an earlier attempt did before it gives up.
const reclaimTries = 10

var reclaimPause = time.Second // a variable for the tests

// approvedBy finds the approval an earlier attempt of an approve command
// recorded on the active rollout.
func approvedBy(ctx context.Context, svc api.Service, req rollout.ApproveRequest) (rollout.Rollout, bool) {
	hist, err := svc.History(ctx, req.App, req.Env, 1)
	if err != nil || len(hist) == 0 {
		return rollout.Rollout{}, false
	}
	r := hist[0]
	if req.Version != "" && r.Version != req.Version {
		return rollout.Rollout{}, false
	}
	if slices.ContainsFunc(r.Approvals, func(a rollout.Approval) bool { return a.By == req.Actor }) {
		return r, true
	}
	return rollout.Rollout{}, false
}

func newKey() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "auto-" + hex.EncodeToString(b[:])
}
