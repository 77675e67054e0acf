// Package api is Shipgate's JSON HTTP API: the handler the control plane
// serves and the Go client the CLI uses to talk to it.
//
// The handler authenticates every request but /healthz with a bearer token,
// checks the token's role, decodes and validates the request, calls the
// Service and writes the result as JSON. Errors are turned into status
// codes and the error body in exactly one place, writeError.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/rollout"
)

// Service is what the API needs from the rollout engine.
type Service interface {
	Deploy(ctx context.Context, req rollout.DeployRequest) (rollout.Rollout, error)
	Rollback(ctx context.Context, req rollout.RollbackRequest) (rollout.Rollout, error)
	Status(ctx context.Context, app string) (rollout.AppStatus, error)
	GetRollout(ctx context.Context, id int64) (rollout.Rollout, error)
	History(ctx context.Context, app, env string, limit int) ([]rollout.Rollout, error)
	Audit(ctx context.Context, f audit.Filter) ([]audit.Event, error)

	// The release pipeline: releases and their CI checks, the gates a
	// deploy must pass, approvals and rollback drills.
	CreateRelease(ctx context.Context, req rollout.ReleaseRequest) (rollout.Release, error)
	GetRelease(ctx context.Context, app, version string) (rollout.Release, error)
	Approve(ctx context.Context, req rollout.ApproveRequest) (rollout.Rollout, error)
	// Promote ends the running bake as passed (a paused rollout goes on).
	Promote(ctx context.Context, req rollout.PromoteRequest) (rollout.Rollout, error)
	// Pause holds the running bake; Resume lets it go on.
	Pause(ctx context.Context, req rollout.PauseRequest) (rollout.Rollout, error)
	Resume(ctx context.Context, req rollout.PauseRequest) (rollout.Rollout, error)
	// Retry deploys again an environment's last deploy, rolled back or failed.
	Retry(ctx context.Context, req rollout.RetryRequest) (rollout.Rollout, error)
	Plan(ctx context.Context, req rollout.DeployRequest) (rollout.PlanView, error)
	Drift(ctx context.Context, app, env, against string) (rollout.DriftReport, error)
	Drill(ctx context.Context, req rollout.DrillRequest) (rollout.Rollout, error)
}

// TokenStore finds API tokens by the hash of their secret.
type TokenStore interface {
	// TokenByHash returns the token whose secret hashes to secretHash, or
	// an error wrapping rollout.ErrNotFound when there is none.
	TokenByHash(ctx context.Context, secretHash string) (auth.Token, error)
}

// HandlerOptions configure the API handler.
type HandlerOptions struct {
	// Logger receives one line per request and the detail of internal
	// errors. Nil discards them.
	Logger *slog.Logger
	// Metrics, when set, is served at /metrics to viewer tokens.
	Metrics http.Handler
	// App is the one app the server manages; GET /v1/status reports it.
	App string
	// Flags, when set, serves the flag admin routes under /v1/flags, and
	// FlagKeys creates flag client keys for them.
	Flags    FlagService
	FlagKeys FlagKeyStore
	// Tokens, when set, serves the token routes under /v1/tokens to
	// admin tokens.
	Tokens TokenAdmin
	// AuditChain, when set, serves GET /v1/audit/chain: the audit events
	// in ascending order with their hashes, for `shipgate audit verify`.
	AuditChain AuditChainReader
	// DORA, when set, serves GET /v1/dora; Incidents serves the release
	// change and incident routes (dora.go).
	DORA      DORAService
	Incidents IncidentStore
	// Notifications, when set, serves GET /v1/notifications.
	Notifications NotificationLister
	// Done, when closed, ends the event streams (GET /v1/events), so that
	// a graceful shutdown does not wait for their clients.
	Done <-chan struct{}
	// Tests, when set, serves the test signal routes (tests.go).
	Tests TestService
	// Retire, when set, serves the retirement routes (retire.go).
	Retire RetireService
	// Config, when set, serves POST /v1/config (shipgate apply) to admin
	// tokens (config.go).
	Config ConfigService
	// Kubernetes, when set, serves POST /v1/kubernetes/leaves (shipgate
	// kubernetes leave) to admin tokens (kubernetes.go).
	Kubernetes KubernetesService
}

// Limits of the API.
const (
	// maxBodyBytes caps a request body.
	maxBodyBytes = 1 << 20
	// defaultHistoryLimit is the number of rollouts listed when the
	// request does not say.
	defaultHistoryLimit = 20
	// maxListLimit caps the limit of any list.
	maxListLimit = 1000
)

// versionPattern is what a release version may look like: it ends up in
// instance ids, file names and URLs, so it is kept to a safe alphabet.
var versionPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)

type handler struct {
	svc     Service
	tokens  TokenStore
	log     *slog.Logger
	metrics http.Handler
	app     string
	done    <-chan struct{}
}

// NewHandler returns the API's HTTP handler.
func NewHandler(svc Service, tokens TokenStore, opts HandlerOptions) http.Handler {
	h := &handler{
		svc:     svc,
		tokens:  tokens,
		log:     opts.Logger,
		metrics: opts.Metrics,
		app:     opts.App,
		done:    opts.Done,
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", h.health)
	mux.Handle("POST /v1/deploys", h.require(auth.RoleDeployer, h.deploy))
	mux.Handle("POST /v1/rollbacks", h.require(auth.RoleDeployer, h.rollback))
	mux.Handle("GET /v1/status", h.require(auth.RoleViewer, h.defaultStatus))
	mux.Handle("GET /v1/apps/{app}/status", h.require(auth.RoleViewer, h.status))
	mux.Handle("GET /v1/apps/{app}/rollouts", h.require(auth.RoleViewer, h.history))
	mux.Handle("GET /v1/rollouts/{id}", h.require(auth.RoleViewer, h.getRollout))
	mux.Handle("GET /v1/audit", h.require(auth.RoleViewer, h.audit))
	// The release pipeline (pipeline.go).
	mux.Handle("POST /v1/releases", h.require(auth.RoleDeployer, h.createRelease))
	mux.Handle("GET /v1/apps/{app}/releases/{version}", h.require(auth.RoleViewer, h.getRelease))
	mux.Handle("POST /v1/approvals", h.require(auth.RoleDeployer, h.approve))
	mux.Handle("POST /v1/promotions", h.require(auth.RoleDeployer, h.promote))
	mux.Handle("POST /v1/pauses", h.require(auth.RoleDeployer, h.pauseOrResume(false)))
	mux.Handle("POST /v1/resumptions", h.require(auth.RoleDeployer, h.pauseOrResume(true)))
	mux.Handle("POST /v1/retries", h.require(auth.RoleDeployer, h.retry))
	mux.Handle("POST /v1/plans", h.require(auth.RoleViewer, h.plan))
	mux.Handle("GET /v1/apps/{app}/drift", h.require(auth.RoleViewer, h.drift))
	mux.Handle("POST /v1/drills", h.require(auth.RoleDeployer, h.drill))
	mux.Handle("GET /metrics", h.require(auth.RoleViewer, h.serveMetrics))
	if opts.Flags != nil {
		mountFlags(mux, h, opts.Flags, opts.FlagKeys)
	}
	if opts.Tokens != nil {
		mountTokens(mux, h, opts.Tokens)
	}
	if opts.AuditChain != nil {
		mux.Handle("GET /v1/audit/chain", h.require(auth.RoleViewer, h.auditChain(opts.AuditChain)))
	}
	mountDORA(mux, h, opts.DORA, opts.Incidents)
	mountEvents(mux, h) // events.go
	if opts.Notifications != nil {
		mountNotifications(mux, h, opts.Notifications)
	}
	if opts.Tests != nil {
		mountTests(mux, h, opts.Tests)
	}
	if opts.Retire != nil {
		mountRetire(mux, h, opts.Retire)
	}
	if opts.Config != nil {
		mountConfig(mux, h, opts.Config)
	}
	if opts.Kubernetes != nil {
		mountKubernetes(mux, h, opts.Kubernetes)
	}
	return h.logRequests(mux)
}

func (h *handler) health(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (h *handler) deploy(w http.ResponseWriter, r *http.Request) {
	req, err := decodeJSON(w, r, validateDeploy)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	// The actor is who holds the token, whatever the body says; the
	// json:"-" tag already keeps it out of decoding, this makes it certain.
	req.Actor = actorFrom(r.Context())
	ro, err := h.svc.Deploy(r.Context(), req)
	h.respondStarted(w, r, ro, err)
}

// respondStarted answers a rollout that was just started, or err: 202,
// with the Location to follow it at.
func (h *handler) respondStarted(w http.ResponseWriter, r *http.Request, ro rollout.Rollout, err error) {
	if err == nil {
		w.Header().Set("Location", "/v1/rollouts/"+strconv.FormatInt(ro.ID, 10))
	}
	h.respond(w, r, http.StatusAccepted, ro, err)
}

func validateDeploy(req rollout.DeployRequest) error {
	if err := requireApp(req.App); err != nil {
		return err
	}
	if err := validateVersion(req.Version); err != nil {
		return err
	}
	if req.Hotfix && strings.TrimSpace(req.Reason) == "" {
		return &rollout.FieldError{Field: "reason", Message: "is required for a hotfix: say why it may skip gates"}
	}
	return validateVarNames(req.Vars)
}

// requireApp checks the app of a request body.
func requireApp(app string) error {
	if app == "" {
		return &rollout.FieldError{Field: "app", Message: "is required"}
	}
	return nil
}

// validateVersion checks a release version, in a body or a path.
func validateVersion(v string) error {
	if v == "" {
		return &rollout.FieldError{Field: "version", Message: "is required"}
	}
	if !versionPattern.MatchString(v) {
		return &rollout.FieldError{
			Field:   "version",
			Message: "must start with a letter or digit and hold at most 128 letters, digits, '.', '_', '+' or '-'",
		}
	}
	return nil
}

func validateRollback(req rollout.RollbackRequest) error {
	if err := requireApp(req.App); err != nil {
		return err
	}
	if strings.TrimSpace(req.Reason) == "" {
		return &rollout.FieldError{Field: "reason", Message: "is required: say why you roll back"}
	}
	return nil
}

func (h *handler) rollback(w http.ResponseWriter, r *http.Request) {
	req, err := decodeJSON(w, r, validateRollback)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	req.Actor = actorFrom(r.Context())
	ro, err := h.svc.Rollback(r.Context(), req)
	h.respondStarted(w, r, ro, err)
}

// appLister is implemented by a Service that manages several apps.
type appLister interface {
	AppNames() []string
}

func (h *handler) defaultStatus(w http.ResponseWriter, r *http.Request) {
	if l, ok := h.svc.(appLister); ok {
		if names := l.AppNames(); len(names) == 1 {
			h.writeStatus(w, r, names[0])
		} else {
			h.writeError(w, r, &APIError{
				Status:  http.StatusNotFound,
				Code:    codeNotFound,
				Message: "this server manages several apps (" + strings.Join(names, ", ") + "); name one: /v1/apps/{app}/status, or shipgate status APP",
			})
		}
		return
	}
	if h.app == "" {
		h.writeError(w, r, &APIError{
			Status:  http.StatusNotFound,
			Code:    codeNotFound,
			Message: "this server manages no app; ask for /v1/apps/{app}/status",
		})
		return
	}
	h.writeStatus(w, r, h.app)
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	h.writeStatus(w, r, r.PathValue("app"))
}

func (h *handler) writeStatus(w http.ResponseWriter, r *http.Request, app string) {
	st, err := h.svc.Status(r.Context(), app)
	h.respond(w, r, http.StatusOK, st, err)
}

func (h *handler) getRollout(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		h.writeError(w, r, &rollout.FieldError{Field: "id", Message: "must be a positive integer"})
		return
	}
	ro, err := h.svc.GetRollout(r.Context(), id)
	h.respond(w, r, http.StatusOK, ro, err)
}

func (h *handler) history(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r, defaultHistoryLimit)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	list, err := h.svc.History(r.Context(), r.PathValue("app"), r.URL.Query().Get("env"), limit)
	h.respond(w, r, http.StatusOK, orEmpty(list), err)
}

func (h *handler) audit(w http.ResponseWriter, r *http.Request) {
	// 0 lets the store apply its own default (audit.Filter documents it).
	limit, err := queryLimit(r, 0)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	events, err := h.auditEvents(r.Context(), audit.Filter{
		Subject: q.Get("subject"),
		Action:  q.Get("action"),
		Limit:   limit,
	})
	h.respond(w, r, http.StatusOK, orEmpty(events), err)
}

// queryLimit reads the limit query parameter, def when it is absent.
func queryLimit(r *http.Request, def int) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxListLimit {
		return 0, &rollout.FieldError{Field: "limit", Message: "must be an integer from 1 to " + strconv.Itoa(maxListLimit)}
	}
	return n, nil
}

func (h *handler) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if h.metrics == nil {
		h.writeError(w, r, &APIError{Status: http.StatusNotFound, Code: codeNotFound, Message: "metrics are not enabled on this server"})
		return
	}
	h.metrics.ServeHTTP(w, r)
}

// statusRecorder remembers the status code a handler wrote, for the
// request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logRequests logs one line per request: the method, the path, the status
// and the actor, never a header or the query, since the Authorization
// header holds a secret.
func (h *handler) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		var actor string
		r = r.WithContext(context.WithValue(r.Context(), actorSlotKey{}, &actor))
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		// Successful reads are debug: `deploy --wait` polls twice a second
		// and would drown the changes and the errors.
		level := slog.LevelInfo
		if r.Method == http.MethodGet && rec.status < 400 {
			level = slog.LevelDebug
		}
		h.log.LogAttrs(r.Context(), level, "api request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.status),
			slog.String("actor", actor),
			slog.Duration("duration", time.Since(start)),
		)
	})
}
