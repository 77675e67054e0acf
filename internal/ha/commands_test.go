package ha

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/pgtest"
	"github.com/shipgate/shipgate/internal/postgres"
	"github.com/shipgate/shipgate/internal/rollout"
)

// recorder is the leader's engine as the executor sees it: it counts what
// it is asked to do. Reads it does not override are nil (a call panics).
type recorder struct {
	api.Service
	mu       sync.Mutex
	deploys  []rollout.DeployRequest
	promotes []rollout.PromoteRequest
	made     []rollout.Rollout
	events   []audit.Event
	// skew is added to the time of what it creates: the leader's clock
	// against the follower's that stamped the command.
	skew time.Duration
	// auditErr, when set, is what Audit answers.
	auditErr error
}

// stamp is the data of an event about rollout id, with the command ctx
// carries, as the engine's commit records it (rollout.WithCommand).
func stamp(ctx context.Context, id int64) map[string]string {
	d := map[string]string{"rollout": strconv.FormatInt(id, 10)}
	if c := rollout.CommandOf(ctx); c != "" {
		d[rollout.CommandData] = c
	}
	return d
}

// Promote ends the bake of rollout 1 and audits it, as the engine does.
func (r *recorder) Promote(ctx context.Context, req rollout.PromoteRequest) (rollout.Rollout, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.promotes = append(r.promotes, req)
	r.events = append([]audit.Event{{Time: time.Now().Add(r.skew), Actor: req.Actor, Action: audit.ActionPromoteManual, Subject: req.App + "/production/v2",
		Reason: req.Reason, Data: stamp(ctx, 1)}}, r.events...)
	return r.made[len(r.made)-1], nil
}

func (r *recorder) Audit(_ context.Context, f audit.Filter) ([]audit.Event, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.auditErr != nil {
		return nil, r.auditErr
	}
	var out []audit.Event
	for _, e := range r.events {
		if (f.Action == "" || e.Action == f.Action) && strings.HasPrefix(e.Subject, f.Subject) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (r *recorder) GetRollout(_ context.Context, id int64) (rollout.Rollout, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ro := range r.made {
		if ro.ID == id {
			return ro, nil
		}
	}
	return rollout.Rollout{}, rollout.ErrNotFound
}

// Deploy creates a rollout and audits it in one go, as the engine does.
func (r *recorder) Deploy(ctx context.Context, req rollout.DeployRequest) (rollout.Rollout, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.Version == "" {
		return rollout.Rollout{}, &rollout.FieldError{Field: "version", Message: "required"}
	}
	r.deploys = append(r.deploys, req)
	now := time.Now().Add(r.skew)
	ro := rollout.Rollout{ID: int64(len(r.made) + 1), App: req.App, Env: "production", Kind: rollout.KindDeploy, Version: req.Version, Actor: req.Actor, CreatedAt: now}
	r.made = append([]rollout.Rollout{ro}, r.made...)
	r.events = append([]audit.Event{{Time: now, Actor: req.Actor, Action: audit.ActionDeploy, Subject: req.App + "/production/" + req.Version,
		Data: stamp(ctx, ro.ID)}}, r.events...)
	return ro, nil
}

func (r *recorder) History(context.Context, string, string, int) ([]rollout.Rollout, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]rollout.Rollout(nil), r.made...), nil
}

func openPG(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestCommands_DeployCarriedOutOnceAcrossADeadLeader: a follower takes a
// deploy; leader A claims it, deploys, and dies before recording the
// outcome; leader B claims it again, finds the rollout A made, and answers
// with it: one deploy, and the follower's caller gets the rollout. A
// refused command comes back to the caller as the API error the leader
// met.
func TestCommands_DeployCarriedOutOnceAcrossADeadLeader(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.Shared(t).NewDatabase(t)
	a, b, f := openPG(t, dsn), openPG(t, dsn), openPG(t, dsn)
	rec := &recorder{}
	follower := &Commands{Store: f, Server: "f", Wait: 20 * time.Second}
	svc := follower.Service(rec)

	answered := deployAsync(ctx, svc, rollout.DeployRequest{App: "shop", Version: "v2", Actor: "user:alice"})

	// Leader A claims the command and carries it out, then dies.
	if _, err := a.Campaign(ctx, "a", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	cmd := claimAs(t, a)
	if _, err := (&Commands{}).run(ctx, rec, cmd); err != nil {
		t.Fatal(err)
	}

	// Leader B, once A's lease is over, claims it again and runs the
	// executor.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := b.Campaign(ctx, "b", time.Minute); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("B never took over: %v", err)
		}
	}
	leader := &Commands{Store: b, Server: "b"}
	execCtx, stop := context.WithCancel(ctx)
	defer stop()
	go leader.Execute(execCtx, rec)

	got := <-answered
	if got.err != nil || got.r.Version != "v2" || got.r.ID != 1 {
		t.Fatalf("the follower's caller got %+v, %v; want rollout 1 of v2", got.r, got.err)
	}
	rec.mu.Lock()
	n := len(rec.deploys)
	rec.mu.Unlock()
	if n != 1 {
		t.Fatalf("the deploy was carried out %d times, want once", n)
	}
	done, err := f.GetCommand(ctx, cmd.ID)
	if err != nil || done.State != postgres.CommandDone || done.Attempts != 2 {
		t.Errorf("command = %+v, %v; want done at attempt 2", done, err)
	}

	// A refusal travels back as the leader's API error.
	_, err = svc.Deploy(ctx, rollout.DeployRequest{App: "shop", Actor: "user:alice"})
	var ae *api.APIError
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Field != "version" || !errors.Is(err, rollout.ErrInvalid) {
		t.Fatalf("refused deploy = %#v, want a 400 naming the field version", err)
	}
}

// TestCommands_PromoteNotRepeatedByTheNextLeader: a promote a dead leader
// carried out (its audit event is there) is answered by the next leader,
// not done again: a second one would skip the next bake too.
func TestCommands_PromoteNotRepeatedByTheNextLeader(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.Shared(t).NewDatabase(t)
	a, b, f := openPG(t, dsn), openPG(t, dsn), openPG(t, dsn)
	rec := &recorder{made: []rollout.Rollout{{ID: 1, App: "shop", Env: "production", Version: "v2"}}}
	svc := (&Commands{Store: f, Server: "f", Wait: 20 * time.Second}).Service(rec)
	answered := make(chan error, 1)
	go func() {
		_, err := svc.Promote(ctx, rollout.PromoteRequest{App: "shop", Reason: "enough evidence", Actor: "user:alice"})
		answered <- err
	}()
	if _, err := a.Campaign(ctx, "a", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	cmd := claimAs(t, a)
	if _, err := (&Commands{}).run(ctx, rec, cmd); err != nil { // A promotes, then dies
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := b.Campaign(ctx, "b", time.Minute); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("B never took over: %v", err)
		}
	}
	execCtx, stop := context.WithCancel(ctx)
	defer stop()
	go (&Commands{Store: b, Server: "b"}).Execute(execCtx, rec)
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.promotes) != 1 {
		t.Fatalf("promoted %d times, want once", len(rec.promotes))
	}
}

// TestCommands_PendingWithoutALeader: with no leader the caller is told,
// after Wait, that its command is recorded and pending (503); sent again
// with the same idempotency key once a server leads, it gets the one
// answer, and the deploy is done once.
func TestCommands_PendingWithoutALeader(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.Shared(t).NewDatabase(t)
	leaderStore, f := openPG(t, dsn), openPG(t, dsn)
	rec := &recorder{}
	svc := (&Commands{Store: f, Server: "f", Wait: 300 * time.Millisecond}).Service(rec)
	keyed := WithIdempotencyKey(ctx, "ci-run-77")
	req := rollout.DeployRequest{App: "shop", Version: "v3", Actor: "user:ci"}
	_, err := svc.Deploy(keyed, req)
	var ae *api.APIError
	if !errors.As(err, &ae) || ae.Status != 503 || ae.Code != "pending" || !strings.Contains(ae.Message, "ci-run-77") {
		t.Fatalf("deploy without a leader = %#v, want 503 pending naming the key", err)
	}
	if _, err := leaderStore.Campaign(ctx, "l", time.Minute); err != nil {
		t.Fatal(err)
	}
	execCtx, stop := context.WithCancel(ctx)
	defer stop()
	go (&Commands{Store: leaderStore, Server: "l"}).Execute(execCtx, rec)
	var r rollout.Rollout
	for deadline := time.Now().Add(10 * time.Second); ; {
		if r, err = svc.Deploy(keyed, req); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deploy sent again once a server leads: %v", err)
		}
	}
	if again, err := svc.Deploy(keyed, req); err != nil || again.ID != r.ID {
		t.Fatalf("third send = %+v, %v; want rollout %d again", again, err, r.ID)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.deploys) != 1 {
		t.Fatalf("deployed %d times, want once", len(rec.deploys))
	}
}

// claimAs submits nothing: it waits until the store holds a pending
// command and claims it as the leader of st.
func claimAs(t *testing.T, st *postgres.Store) postgres.Command {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, found, err := st.ClaimCommand(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if found {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatal("no command reached the store")
		}
	}
}

// takeOver makes st's server the leader once the dead one's lease is over.
func takeOver(t *testing.T, st *postgres.Store, id string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := st.Campaign(t.Context(), id, time.Minute); err == nil {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("%s never took over: %v", id, err)
		}
	}
}

// TestCommands_ReclaimedDeployRecognisedDespiteClockSkew: leader A's clock
// is 10 s behind the follower's that stamped the command, so the rollout A
// created is 10 s older than the command. A dies before recording the
// outcome; B claims the command again and recognises the rollout by the
// command's identity recorded with it: one deploy, not two.
func TestCommands_ReclaimedDeployRecognisedDespiteClockSkew(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.Shared(t).NewDatabase(t)
	a, b, f := openPG(t, dsn), openPG(t, dsn), openPG(t, dsn)
	rec := &recorder{skew: -10 * time.Second}
	svc := (&Commands{Store: f, Server: "f", Wait: 20 * time.Second}).Service(rec)
	answered := deployAsync(ctx, svc, rollout.DeployRequest{App: "shop", Version: "v2", Actor: "user:alice"})
	if _, err := a.Campaign(ctx, "a", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	cmd := claimAs(t, a)
	made, err := (&Commands{}).run(ctx, rec, cmd) // A deploys, then dies
	if err != nil {
		t.Fatal(err)
	}
	if !made.CreatedAt.Before(cmd.CreatedAt.Add(-5 * time.Second)) {
		t.Fatalf("rollout created at %s, command at %s: the test needs the rollout well before the command", made.CreatedAt, cmd.CreatedAt)
	}
	takeOver(t, b, "b")
	execCtx, stop := context.WithCancel(ctx)
	defer stop()
	go (&Commands{Store: b, Server: "b"}).Execute(execCtx, rec)

	got := <-answered
	if got.err != nil || got.r.ID != made.ID || got.r.Version != "v2" {
		t.Fatalf("the caller got %+v, %v; want rollout %d of v2", got.r, got.err, made.ID)
	}
	rec.mu.Lock()
	n := len(rec.deploys)
	rec.mu.Unlock()
	if n != 1 {
		t.Fatalf("the deploy was carried out %d times, want once", n)
	}
	done, err := f.GetCommand(ctx, cmd.ID)
	if err != nil || done.State != postgres.CommandDone || done.Attempts != 2 {
		t.Errorf("command = %+v, %v; want done at attempt 2", done, err)
	}
}

// TestCommands_ReclaimedDeployNotTakenForAnEarlierIdenticalOne: alice
// deployed v2 a moment ago (on this server, not through this command).
// Her second deploy of v2 becomes a command that leader A claims and dies
// with before carrying it out. B claims it again and must carry it out:
// the earlier identical deploy by the same actor, within a second of the
// command, is not what this command did.
func TestCommands_ReclaimedDeployNotTakenForAnEarlierIdenticalOne(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.Shared(t).NewDatabase(t)
	a, b, f := openPG(t, dsn), openPG(t, dsn), openPG(t, dsn)
	rec := &recorder{}
	req := rollout.DeployRequest{App: "shop", Version: "v2", Actor: "user:alice"}
	earlier, err := rec.Deploy(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	svc := (&Commands{Store: f, Server: "f", Wait: 20 * time.Second}).Service(rec)
	answered := deployAsync(ctx, svc, req)
	if _, err := a.Campaign(ctx, "a", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	cmd := claimAs(t, a) // A claims it and dies before acting
	if earlier.CreatedAt.Before(cmd.CreatedAt.Add(-time.Second)) {
		t.Fatalf("earlier deploy at %s, command at %s: the test needs them within a second", earlier.CreatedAt, cmd.CreatedAt)
	}
	takeOver(t, b, "b")
	execCtx, stop := context.WithCancel(ctx)
	defer stop()
	go (&Commands{Store: b, Server: "b"}).Execute(execCtx, rec)

	got := <-answered
	if got.err != nil || got.r.ID == earlier.ID || got.r.Version != "v2" {
		t.Fatalf("the caller got %+v, %v; want a new rollout of v2, not rollout %d", got.r, got.err, earlier.ID)
	}
	rec.mu.Lock()
	n := len(rec.deploys)
	rec.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d deploys, want 2: the earlier one and this command's", n)
	}
}

// TestCommands_ReclaimThatCannotReadTheAuditFails: leader A carried out a
// deploy and died; B claims the command again but the store cannot tell
// it what A did (its audit reads fail). B must not deploy a second time:
// after asking again for a while, the command fails and says why.
func TestCommands_ReclaimThatCannotReadTheAuditFails(t *testing.T) {
	defer func(p time.Duration) { reclaimPause = p }(reclaimPause)
	reclaimPause = 10 * time.Millisecond
	ctx := t.Context()
	dsn := pgtest.Shared(t).NewDatabase(t)
	a, b, f := openPG(t, dsn), openPG(t, dsn), openPG(t, dsn)
	rec := &recorder{}
	svc := (&Commands{Store: f, Server: "f", Wait: 20 * time.Second}).Service(rec)
	answered := deployAsync(ctx, svc, rollout.DeployRequest{App: "shop", Version: "v2", Actor: "user:alice"})
	if _, err := a.Campaign(ctx, "a", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	cmd := claimAs(t, a)
	if _, err := (&Commands{}).run(ctx, rec, cmd); err != nil { // A deploys, then dies
		t.Fatal(err)
	}
	rec.mu.Lock()
	rec.auditErr = errors.New("connection refused")
	rec.mu.Unlock()
	takeOver(t, b, "b")
	execCtx, stop := context.WithCancel(ctx)
	defer stop()
	go (&Commands{Store: b, Server: "b"}).Execute(execCtx, rec)

	err := (<-answered).err
	if err == nil || !strings.Contains(err.Error(), "could not tell whether an earlier leader carried it out") {
		t.Fatalf("the caller got %v; want the command refused, saying it could not tell", err)
	}
	rec.mu.Lock()
	n := len(rec.deploys)
	rec.mu.Unlock()
	if n != 1 {
		t.Fatalf("the deploy was carried out %d times, want once (by A only)", n)
	}
}

// answer is what a command sent through a follower got back.
type answer struct {
	r   rollout.Rollout
	err error
}

// deployAsync sends req through svc (a follower's commands) and returns
// where its answer arrives once a leader has carried it out.
func deployAsync(ctx context.Context, svc api.Service, req rollout.DeployRequest) <-chan answer {
	answered := make(chan answer, 1)
	go func() {
		r, err := svc.Deploy(ctx, req)
		answered <- answer{r, err}
	}()
	return answered
}
