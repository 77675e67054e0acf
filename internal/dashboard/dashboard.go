// Package dashboard is Shipgate's web dashboard, served by `shipgate
// server` under /ui/: what is live in each environment, the rollout in
// progress pushed live over server-sent events, buttons to roll back,
// approve, pause, resume and promote (end the bake now), history, the DORA report and the audit log with its chain
// verification.
//
// It is server-rendered html/template with one embedded script and one
// stylesheet; nothing is loaded from the network. A person logs in with an
// API token, which is exchanged for an HttpOnly, SameSite=Strict session
// cookie; every state-changing request carries the session's CSRF token;
// the token's role decides what the page offers and what the server
// accepts, and a revoked token ends its sessions at once.
package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/report"
	"github.com/shipgate/shipgate/internal/rollout"
)

//go:embed templates static
var files embed.FS

// Service is what the dashboard needs from the rollout engine.
type Service interface {
	Status(ctx context.Context, app string) (rollout.AppStatus, error)
	History(ctx context.Context, app, env string, limit int) ([]rollout.Rollout, error)
	Rollback(ctx context.Context, req rollout.RollbackRequest) (rollout.Rollout, error)
	Approve(ctx context.Context, req rollout.ApproveRequest) (rollout.Rollout, error)
	Promote(ctx context.Context, req rollout.PromoteRequest) (rollout.Rollout, error)
	Pause(ctx context.Context, req rollout.PauseRequest) (rollout.Rollout, error)
	Resume(ctx context.Context, req rollout.PauseRequest) (rollout.Rollout, error)
	Audit(ctx context.Context, f audit.Filter) ([]audit.Event, error)
}

// Tokens finds API tokens by the hash of their secret.
type Tokens interface {
	TokenByHash(ctx context.Context, secretHash string) (auth.Token, error)
}

// Chain reads the whole audit chain, for its verification.
type Chain interface {
	AuditChain(ctx context.Context, fromSeq int64) ([]audit.Event, error)
}

// Reports builds the weekly report.
type Reports interface {
	Report(ctx context.Context, q report.WeekQuery) (report.Report, error)
}

// Options configure the dashboard.
type Options struct {
	// App is the app the server manages, when it manages one.
	App string
	// Apps, when set, lists the apps the server manages, in config order
	// (a reload changes them): each page shows the app its "app"
	// parameter names, the first by default, and links to the others.
	Apps    func() []string
	Service Service
	Tokens  Tokens
	// Chain and Reports, when set, serve the audit verification and the
	// DORA page.
	Chain   Chain
	Reports Reports
	// Flags, when set, serves the flags page and its kill switch.
	Flags  Flags
	Logger *slog.Logger
	// SessionTTL is how long a session lasts without a new login (12h).
	SessionTTL time.Duration
	// Poll is how often the event stream looks for changes (250ms).
	Poll time.Duration
	// Done, when closed, ends the event streams (server shutdown).
	Done <-chan struct{}
}

// CookieName is the session cookie.
const CookieName = "shipgate_session"

// Prefix is where the dashboard is mounted.
const Prefix = "/ui/"

type session struct {
	tokenHash string
	name      string
	role      auth.Role
	csrf      string
	expires   time.Time
}

// Handler serves the dashboard.
type Handler struct {
	opts     Options
	log      *slog.Logger
	pages    map[string]*template.Template
	mux      *http.ServeMux
	mu       sync.Mutex
	sessions map[string]*session
}

// New returns the dashboard's handler, to mount at Prefix.
func New(opts Options) (*Handler, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	if opts.Poll <= 0 {
		opts.Poll = 250 * time.Millisecond
	}
	h := &Handler{opts: opts, log: opts.Logger, pages: map[string]*template.Template{}, sessions: map[string]*session{}}
	for _, page := range []string{"login", "home", "audit", "dora", "flags"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, err
		}
		h.pages[page] = t
	}
	static, err := fs.Sub(files, "static")
	if err != nil {
		return nil, err
	}
	m := http.NewServeMux()
	m.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /ui/login", h.loginPage)
	m.HandleFunc("POST /ui/login", h.login)
	m.Handle("POST /ui/logout", h.need(auth.RoleViewer, true, h.logout))
	m.Handle("GET /ui/{$}", h.need(auth.RoleViewer, false, h.home))
	m.Handle("GET /ui/events", h.need(auth.RoleViewer, false, h.events))
	m.Handle("GET /ui/audit", h.need(auth.RoleViewer, false, h.audit))
	m.Handle("GET /ui/dora", h.need(auth.RoleViewer, false, h.dora))
	m.Handle("POST /ui/rollback", h.need(auth.RoleDeployer, true, h.rollback))
	m.Handle("POST /ui/approve", h.need(auth.RoleDeployer, true, h.approve))
	m.Handle("POST /ui/promote", h.need(auth.RoleDeployer, true, h.promote))
	m.Handle("POST /ui/pause", h.need(auth.RoleDeployer, true, h.pause))
	m.Handle("POST /ui/resume", h.need(auth.RoleDeployer, true, h.resume))
	m.Handle("GET /ui/flags", h.need(auth.RoleViewer, false, h.flagsPage))
	m.Handle("POST /ui/flags/disable", h.need(auth.RoleDeployer, true, h.killFlag))
	h.mux = m
	return h, nil
}

// ServeHTTP serves the dashboard with headers that keep it from being
// framed, sniffed or made to load anything from elsewhere.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

type sessionKey struct{}

// need lets a request through when it has a live session whose token
// still exists and allows role; state-changing requests must also carry
// the session's CSRF token. Without a session a page redirects to the
// login; anything else is refused.
func (h *Handler) need(role auth.Role, csrf bool, next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := h.session(r)
		if s == nil {
			if r.Method == http.MethodGet && r.URL.Path != "/ui/events" {
				http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "not logged in", http.StatusUnauthorized)
			return
		}
		if csrf {
			got := r.Header.Get("X-CSRF-Token")
			if got == "" {
				got = r.PostFormValue("csrf")
			}
			if subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
				http.Error(w, "missing or wrong CSRF token: reload the page and try again", http.StatusForbidden)
				return
			}
		}
		if !s.role.Allows(role) {
			http.Error(w, "this needs the "+string(role)+" role; "+s.name+" has the "+string(s.role)+" role", http.StatusForbidden)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
	})
}

// session returns the request's live session, nil when there is none, it
// expired, or its token was revoked.
func (h *Handler) session(r *http.Request) *session {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return nil
	}
	h.mu.Lock()
	s := h.sessions[c.Value]
	if s != nil && time.Now().After(s.expires) {
		delete(h.sessions, c.Value)
		s = nil
	}
	h.mu.Unlock()
	if s == nil {
		return nil
	}
	tok, err := h.opts.Tokens.TokenByHash(r.Context(), s.tokenHash)
	if err != nil || tok.Name != s.name {
		h.mu.Lock()
		delete(h.sessions, c.Value)
		h.mu.Unlock()
		return nil
	}
	s.role = tok.Role
	return s
}

func sessionOf(r *http.Request) *session {
	s, _ := r.Context().Value(sessionKey{}).(*session)
	return s
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// sameOrigin reports whether a POST without a session (the login) comes
// from the dashboard's own page: browsers send Origin on every POST, so a
// form on another site that logs a victim in as the attacker is refused.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		return r.Header.Get("Sec-Fetch-Site") != "cross-site"
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, "login", map[string]any{"Next": safeNext(r.URL.Query().Get("next")), "Error": ""}, http.StatusOK)
}

// safeNext keeps a post-login redirect inside the dashboard.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return Prefix
	}
	return next
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "cross-site login refused", http.StatusForbidden)
		return
	}
	secret := strings.TrimSpace(r.PostFormValue("token"))
	next := safeNext(r.PostFormValue("next"))
	hash := auth.Hash(secret)
	tok, err := h.opts.Tokens.TokenByHash(r.Context(), hash)
	if secret == "" || err != nil || !tok.Role.Allows(auth.RoleViewer) {
		if err != nil && !errors.Is(err, rollout.ErrNotFound) {
			h.log.Error("dashboard login", "err", err)
		}
		h.render(w, r, "login", map[string]any{"Next": next, "Error": "That token is not valid here. Use an API token with the viewer, deployer or admin role."}, http.StatusUnauthorized)
		return
	}
	id := randomHex(32)
	s := &session{tokenHash: hash, name: tok.Name, role: tok.Role, csrf: randomHex(32), expires: time.Now().Add(h.opts.SessionTTL)}
	h.mu.Lock()
	h.sessions[id] = s
	h.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: id, Path: Prefix, HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: int(h.opts.SessionTTL.Seconds())})
	h.log.Info("dashboard login", "actor", "user:"+tok.Name, "role", tok.Role)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(CookieName); err == nil {
		h.mu.Lock()
		delete(h.sessions, c.Value)
		h.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: Prefix, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// pageData is what every page's layout reads.
type pageData struct {
	// App is the app the page shows; Apps every app the server manages.
	App     string
	Apps    []string
	User    string
	Role    auth.Role
	CSRF    string
	CanAct  bool
	Flash   string
	Content any
}

func (h *Handler) data(r *http.Request, content any) pageData {
	s := sessionOf(r)
	app, _ := h.appOf(r)
	return pageData{App: app, Apps: h.apps(), User: s.name, Role: s.role, CSRF: s.csrf, CanAct: s.role.Allows(auth.RoleDeployer),
		Flash: r.URL.Query().Get("flash"), Content: content}
}

// apps returns the apps the server manages.
func (h *Handler) apps() []string {
	if h.opts.Apps != nil {
		if names := h.opts.Apps(); len(names) > 0 {
			return names
		}
	}
	return []string{h.opts.App}
}

// appOf returns the app a request is about: the one its "app" parameter
// (query or form) names, the first app when it names none. An app the
// server does not manage is an error naming those it does.
func (h *Handler) appOf(r *http.Request) (string, error) {
	apps := h.apps()
	name := r.FormValue("app")
	if name == "" {
		return apps[0], nil
	}
	if slices.Contains(apps, name) {
		return name, nil
	}
	return apps[0], fmt.Errorf("app %q is not managed by this server; it manages %s", name, strings.Join(apps, ", "))
}

// needApp answers 404 for a request naming an app the server does not
// manage, and returns false.
func (h *Handler) needApp(w http.ResponseWriter, r *http.Request) (string, bool) {
	app, err := h.appOf(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return "", false
	}
	return app, true
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, page string, v any, status int) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := h.pages[page].Execute(w, v); err != nil {
		h.log.Error("dashboard render", "page", page, "path", r.URL.Path, "err", err)
	}
}
