package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/flags"
)

// FlagService is what the flag admin routes need from the flags service.
type FlagService interface {
	Snapshot() *flags.Snapshot
	Create(ctx context.Context, f *flags.Flag, who flags.Who) (*flags.Flag, error)
	Put(ctx context.Context, f *flags.Flag, who flags.Who) (*flags.Flag, error)
	Enable(ctx context.Context, key string, who flags.Who) (*flags.Flag, error)
	Disable(ctx context.Context, key string, who flags.Who) (*flags.Flag, error)
	Archive(ctx context.Context, key string, who flags.Who) (*flags.Flag, error)
	Target(ctx context.Context, key string, replace bool, who flags.Who, edit func(*flags.Plan) error) (*flags.Flag, error)
	Delete(ctx context.Context, key string, force bool, who flags.Who) error
	Import(ctx context.Context, data []byte, who flags.Who) ([]*flags.Flag, error)
	PutSegment(ctx context.Context, seg flags.Segment, who flags.Who) error
	DeleteSegment(ctx context.Context, name string, who flags.Who) error
	Usage(ctx context.Context) (map[string]flags.Usage, error)
	Stale(ctx context.Context) ([]flags.Debt, error)
	StartGuardedRollout(key string, spec flags.GuardSpec, who flags.Who) (flags.GuardStatus, error)
	GuardedStatus(key string) (flags.GuardStatus, bool)
}

// FlagKeyStore stores flag client keys, each with the audit event of its
// creation in the same transaction.
type FlagKeyStore interface {
	CreateTokenAudited(ctx context.Context, t auth.Token, secretHash string, e audit.Event) error
}

// FlagSummary is one line of the flag list.
type FlagSummary struct {
	Key         string   `json:"key"`
	State       string   `json:"state"`
	Stage       string   `json:"stage,omitempty"`
	Owner       string   `json:"owner,omitempty"`
	Description string   `json:"description,omitempty"`
	Default     string   `json:"default_variant,omitempty"`
	Variants    []string `json:"variants"`
	// Percent is the share of users who get "on" when Shipgate wrote the
	// targeting; nil for hand-written targeting.
	Percent *int `json:"percent,omitempty"`
	// Plan is who gets "on", when Shipgate wrote the targeting.
	Plan          *flags.Plan `json:"plan,omitempty"`
	Expires       string      `json:"expires,omitempty"`
	Evaluations   uint64      `json:"evaluations"`
	LastEvaluated time.Time   `json:"last_evaluated,omitzero"`
}

// FlagDetail is a flag's full definition in flagd's schema, with its key.
type FlagDetail struct {
	Key        string      `json:"key"`
	Definition *flags.Flag `json:"definition"`
	Usage      flags.Usage `json:"usage"`
}

// CreateFlagRequest creates a flag: a boolean flag served dark, or the
// given flagd definition.
type CreateFlagRequest struct {
	Key         string `json:"key"`
	Owner       string `json:"owner,omitempty"`
	Description string `json:"description,omitempty"`
	// Expires is a date (2025-12-31) or an RFC 3339 time.
	Expires string `json:"expires,omitempty"`
	// Definition, when set, is the whole flag in flagd's schema.
	Definition json.RawMessage `json:"definition,omitempty"`
	Reason     string          `json:"reason,omitempty"`
}

// PutFlagRequest replaces a flag's whole definition.
type PutFlagRequest struct {
	Definition json.RawMessage `json:"definition"`
	Reason     string          `json:"reason,omitempty"`
}

// ReasonRequest carries the reason of a simple change.
type ReasonRequest struct {
	Reason string `json:"reason,omitempty"`
}

// TargetRequest changes who gets a flag. Users, segments and rules are
// added to those the flag has, unless Clear is set.
type TargetRequest struct {
	// Percent, when set, is the share of other users who get "on".
	Percent *int `json:"percent,omitempty"`
	// Users are targeting keys.
	Users []string `json:"users,omitempty"`
	// Segments are shared rules.
	Segments []string `json:"segments,omitempty"`
	// Rules are attribute rules such as "email ends_with @acme.com".
	Rules []string `json:"rules,omitempty"`
	// Clear drops the users, segments and rules the flag had.
	Clear bool `json:"clear,omitempty"`
	// Replace allows overwriting hand-written targeting.
	Replace bool   `json:"replace,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// SegmentRequest sets a shared rule.
type SegmentRequest struct {
	// Rule is JSON Logic; or give Rules, attribute rules any of which matches.
	Rule   json.RawMessage `json:"rule,omitempty"`
	Rules  []string        `json:"rules,omitempty"`
	Reason string          `json:"reason,omitempty"`
}

// FlagKeyRequest creates a flag client key.
type FlagKeyRequest struct {
	Name string `json:"name"`
}

// FlagKey is a new flag client key; the secret is shown once.
type FlagKey struct {
	Name   string `json:"name"`
	Role   string `json:"role"`
	Secret string `json:"secret"`
}

// GuardRequest starts a guarded rollout.
type GuardRequest struct {
	Steps []int `json:"steps"`
	// Bake and Interval are durations such as "10m" and "5s".
	Bake        string   `json:"bake"`
	Interval    string   `json:"interval,omitempty"`
	Guards      []string `json:"guards"`
	MinRequests int      `json:"min_requests,omitempty"`
	Reason      string   `json:"reason,omitempty"`
}

// ImportResult lists the flags an import created or changed, and what
// looks wrong in the imported flags' targeting: flagd loads such rules
// and resolves them at evaluation time, and so does Shipgate.
type ImportResult struct {
	Changed  []string        `json:"changed"`
	Warnings []flags.Problem `json:"warnings"`
}

type flagHandler struct {
	*handler
	svc  FlagService
	keys FlagKeyStore
}

// mountFlags adds the flag admin routes under /v1/flags. Every route
// needs an admin-API role (viewer and up): a flag-client key, which only
// evaluates, is refused with 403.
func mountFlags(mux *http.ServeMux, h *handler, svc FlagService, keys FlagKeyStore) {
	f := &flagHandler{handler: h, svc: svc, keys: keys}
	mux.Handle("GET /v1/flags", h.require(auth.RoleViewer, f.list))
	mux.Handle("POST /v1/flags", h.require(auth.RoleDeployer, f.create))
	mux.Handle("GET /v1/flags/stale", h.require(auth.RoleViewer, f.stale))
	mux.Handle("GET /v1/flags/export", h.require(auth.RoleViewer, f.export))
	mux.Handle("POST /v1/flags/import", h.require(auth.RoleDeployer, f.importFile))
	mux.Handle("GET /v1/flags/segments", h.require(auth.RoleViewer, f.segments))
	mux.Handle("PUT /v1/flags/segments/{name}", h.require(auth.RoleDeployer, f.putSegment))
	mux.Handle("DELETE /v1/flags/segments/{name}", h.require(auth.RoleDeployer, f.deleteSegment))
	mux.Handle("POST /v1/flags/keys", h.require(auth.RoleAdmin, f.createKey))
	mux.Handle("GET /v1/flags/{key}", h.require(auth.RoleViewer, f.get))
	mux.Handle("PUT /v1/flags/{key}", h.require(auth.RoleDeployer, f.put))
	mux.Handle("DELETE /v1/flags/{key}", h.require(auth.RoleDeployer, f.delete))
	mux.Handle("POST /v1/flags/{key}/enable", h.require(auth.RoleDeployer, f.simple(svc.Enable)))
	mux.Handle("POST /v1/flags/{key}/disable", h.require(auth.RoleDeployer, f.simple(svc.Disable)))
	mux.Handle("POST /v1/flags/{key}/archive", h.require(auth.RoleDeployer, f.simple(svc.Archive)))
	mux.Handle("POST /v1/flags/{key}/target", h.require(auth.RoleDeployer, f.target))
	mux.Handle("POST /v1/flags/{key}/guarded-rollout", h.require(auth.RoleDeployer, f.startGuard))
	mux.Handle("GET /v1/flags/{key}/guarded-rollout", h.require(auth.RoleViewer, f.guardStatus))
}

func who(r *http.Request, reason string) flags.Who {
	return flags.Who{Actor: actorFrom(r.Context()), Reason: strings.TrimSpace(reason)}
}

func (f *flagHandler) list(w http.ResponseWriter, r *http.Request) {
	usage, err := f.svc.Usage(r.Context())
	if err != nil {
		f.writeError(w, r, err)
		return
	}
	out := []FlagSummary{}
	for _, fl := range f.svc.Snapshot().Flags() {
		out = append(out, summarize(fl, usage[fl.Key]))
	}
	f.writeJSON(w, http.StatusOK, out)
}

func summarize(fl *flags.Flag, u flags.Usage) FlagSummary {
	s := FlagSummary{
		Key: fl.Key, State: string(fl.State), Stage: string(fl.Stage()), Owner: fl.MetaString(flags.MetaOwner),
		Description: fl.MetaString(flags.MetaDescription), Default: fl.Default(), Expires: fl.MetaString(flags.MetaExpires),
		Evaluations: u.Total(), LastEvaluated: u.Last, Variants: []string{},
	}
	for name := range fl.Variants {
		s.Variants = append(s.Variants, name)
	}
	slices.Sort(s.Variants)
	if p, ok := flags.PlanOf(fl); ok {
		s.Percent, s.Plan = &p.Percent, &p
	}
	return s
}

func (f *flagHandler) get(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	fl, ok := f.svc.Snapshot().Flag(key)
	if !ok {
		f.writeError(w, r, fmt.Errorf("flag %q: %w", key, flags.ErrNotFound))
		return
	}
	usage, err := f.svc.Usage(r.Context())
	f.respond(w, r, http.StatusOK, FlagDetail{Key: key, Definition: fl, Usage: usage[key]}, err)
}

func (f *flagHandler) create(w http.ResponseWriter, r *http.Request) {
	req, err := decodeJSON[CreateFlagRequest](w, r, nil)
	if err != nil {
		f.writeError(w, r, err)
		return
	}
	if req.Key == "" {
		f.writeError(w, r, invalid("key", "is required"))
		return
	}
	var fl *flags.Flag
	if len(req.Definition) > 0 {
		var problems []flags.Problem
		if fl, problems = flags.ParseFlag(req.Key, req.Definition); len(problems) > 0 {
			f.writeError(w, r, &flags.ValidationError{Problems: problems})
			return
		}
	} else {
		var expires time.Time
		if req.Expires != "" {
			t, err := flags.ParseTime(req.Expires)
			if err != nil {
				f.writeError(w, r, invalid("expires", err.Error()))
				return
			}
			// A date is read as its last second, so today is accepted.
			if t.Before(time.Now()) {
				f.writeError(w, r, invalid("expires", fmt.Sprintf("%s is in the past; give the date the flag should be gone by, today at the earliest", req.Expires)))
				return
			}
			expires = t
		}
		fl = flags.NewBooleanFlag(req.Key, req.Owner, req.Description, expires, time.Now())
	}
	out, err := f.svc.Create(r.Context(), fl, who(r, req.Reason))
	if err != nil {
		f.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/flags/"+out.Key)
	f.writeJSON(w, http.StatusCreated, FlagDetail{Key: out.Key, Definition: out})
}

func (f *flagHandler) put(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	req, err := decodeJSON[PutFlagRequest](w, r, nil)
	if err != nil {
		f.writeError(w, r, err)
		return
	}
	if len(req.Definition) == 0 {
		f.writeError(w, r, invalid("definition", "is required: the flag in flagd's schema"))
		return
	}
	fl, problems := flags.ParseFlag(key, req.Definition)
	if len(problems) > 0 {
		f.writeError(w, r, &flags.ValidationError{Problems: problems})
		return
	}
	out, err := f.svc.Put(r.Context(), fl, who(r, req.Reason))
	f.respond(w, r, http.StatusOK, FlagDetail{Key: key, Definition: out}, err)
}

// simple serves a change that takes only a reason.
func (f *flagHandler) simple(change func(context.Context, string, flags.Who) (*flags.Flag, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := decodeOptionalJSON[ReasonRequest](w, r)
		if err != nil {
			f.writeError(w, r, err)
			return
		}
		key := r.PathValue("key")
		out, err := change(r.Context(), key, who(r, req.Reason))
		f.respond(w, r, http.StatusOK, FlagDetail{Key: key, Definition: out}, err)
	}
}

func (f *flagHandler) target(w http.ResponseWriter, r *http.Request) {
	req, err := decodeJSON[TargetRequest](w, r, nil)
	if err != nil {
		f.writeError(w, r, err)
		return
	}
	var rules []flags.Rule
	for i, s := range req.Rules {
		rule, err := flags.ParseRule(s)
		if err != nil {
			f.writeError(w, r, invalid("rules["+strconv.Itoa(i)+"]", err.Error()))
			return
		}
		rules = append(rules, rule)
	}
	if req.Percent != nil && (*req.Percent < 0 || *req.Percent > 100) {
		f.writeError(w, r, invalid("percent", "must be from 0 to 100"))
		return
	}
	key := r.PathValue("key")
	out, err := f.svc.Target(r.Context(), key, req.Replace, who(r, req.Reason), func(p *flags.Plan) error {
		if req.Clear {
			p.Users, p.Segments, p.Rules = nil, nil, nil
		}
		p.Users = appendNew(p.Users, req.Users...)
		p.Segments = appendNew(p.Segments, req.Segments...)
		for _, rule := range rules {
			if !containsRule(p.Rules, rule) {
				p.Rules = append(p.Rules, rule)
			}
		}
		if req.Percent != nil {
			p.Percent = *req.Percent
		}
		return nil
	})
	f.respond(w, r, http.StatusOK, FlagDetail{Key: key, Definition: out}, err)
}

func appendNew(list []string, add ...string) []string {
	for _, a := range add {
		a = strings.TrimSpace(a)
		found := a == ""
		for _, x := range list {
			found = found || x == a
		}
		if !found {
			list = append(list, a)
		}
	}
	return list
}

func containsRule(rules []flags.Rule, r flags.Rule) bool {
	for _, x := range rules {
		if x.String() == r.String() {
			return true
		}
	}
	return false
}

func (f *flagHandler) delete(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	force := q.Get("force") == "true"
	if err := f.svc.Delete(r.Context(), r.PathValue("key"), force, who(r, q.Get("reason"))); err != nil {
		f.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *flagHandler) importFile(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		f.writeError(w, r, decodeError(err))
		return
	}
	changed, err := f.svc.Import(r.Context(), data, who(r, r.URL.Query().Get("reason")))
	if err != nil {
		f.writeError(w, r, err)
		return
	}
	res := ImportResult{Changed: []string{}, Warnings: []flags.Problem{}}
	for _, fl := range changed {
		res.Changed = append(res.Changed, fl.Key)
		prefix := "/flags/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(fl.Key) + "/"
		for _, p := range f.svc.Snapshot().Warnings() {
			if strings.HasPrefix(p.Path, prefix) {
				res.Warnings = append(res.Warnings, p)
			}
		}
	}
	f.writeJSON(w, http.StatusOK, res)
}

func (f *flagHandler) export(w http.ResponseWriter, r *http.Request) {
	snap := f.svc.Snapshot()
	b, err := flags.Marshal(snap.Flags(), snap.Segments())
	if err != nil {
		f.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("ETag", snap.ETag())
	_, _ = w.Write(append(b, '\n'))
}

func (f *flagHandler) stale(w http.ResponseWriter, r *http.Request) {
	debts, err := f.svc.Stale(r.Context())
	f.respond(w, r, http.StatusOK, orEmpty(debts), err)
}

func (f *flagHandler) segments(w http.ResponseWriter, _ *http.Request) {
	f.writeJSON(w, http.StatusOK, orEmpty(f.svc.Snapshot().Segments()))
}

func (f *flagHandler) putSegment(w http.ResponseWriter, r *http.Request) {
	req, err := decodeJSON[SegmentRequest](w, r, nil)
	if err != nil {
		f.writeError(w, r, err)
		return
	}
	rule := req.Rule
	if len(req.Rules) > 0 {
		if len(rule) > 0 {
			f.writeError(w, r, invalid("rules", "give either rule (JSON Logic) or rules, not both"))
			return
		}
		if rule, err = segmentLogic(req.Rules); err != nil {
			f.writeError(w, r, invalid("rules", err.Error()))
			return
		}
	}
	if len(rule) == 0 {
		f.writeError(w, r, invalid("rule", "is required: JSON Logic, or rules such as \"email ends_with @acme.com\""))
		return
	}
	seg := flags.Segment{Name: r.PathValue("name"), Rule: rule}
	if err := f.svc.PutSegment(r.Context(), seg, who(r, req.Reason)); err != nil {
		f.writeError(w, r, err)
		return
	}
	f.writeJSON(w, http.StatusOK, seg)
}

// segmentLogic writes attribute rules as one JSON Logic rule: any matches.
func segmentLogic(rules []string) (json.RawMessage, error) {
	p := flags.Plan{}
	for _, s := range rules {
		rule, err := flags.ParseRule(s)
		if err != nil {
			return nil, err
		}
		p.Rules = append(p.Rules, rule)
	}
	return flags.RulesLogic(p.Rules)
}

func (f *flagHandler) deleteSegment(w http.ResponseWriter, r *http.Request) {
	if err := f.svc.DeleteSegment(r.Context(), r.PathValue("name"), who(r, r.URL.Query().Get("reason"))); err != nil {
		f.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *flagHandler) createKey(w http.ResponseWriter, r *http.Request) {
	req, err := decodeJSON[FlagKeyRequest](w, r, nil)
	if err != nil {
		f.writeError(w, r, err)
		return
	}
	if strings.TrimSpace(req.Name) == "" {
		f.writeError(w, r, invalid("name", "is required: name the app that will hold the key"))
		return
	}
	tok := auth.Token{Name: req.Name, Role: auth.RoleFlagClient, CreatedAt: time.Now().UTC()}
	secret, err := createToken(r, f.keys.CreateTokenAudited, tok)
	noStore(w)
	f.respond(w, r, http.StatusCreated, FlagKey{Name: req.Name, Role: string(auth.RoleFlagClient), Secret: secret}, err)
}

func (f *flagHandler) startGuard(w http.ResponseWriter, r *http.Request) {
	req, err := decodeJSON[GuardRequest](w, r, nil)
	if err != nil {
		f.writeError(w, r, err)
		return
	}
	spec := flags.GuardSpec{Steps: req.Steps, Guards: req.Guards, MinRequests: req.MinRequests}
	for field, s := range map[string]string{"bake": req.Bake, "interval": req.Interval} {
		if s == "" {
			continue
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			f.writeError(w, r, invalid(field, fmt.Sprintf("must be a positive duration such as 10m, not %q", s)))
			return
		}
		if field == "bake" {
			spec.Bake = d
		} else {
			spec.Interval = d
		}
	}
	key := r.PathValue("key")
	st, err := f.svc.StartGuardedRollout(key, spec, who(r, req.Reason))
	if err != nil {
		f.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/flags/"+key+"/guarded-rollout")
	f.writeJSON(w, http.StatusAccepted, st)
}

func (f *flagHandler) guardStatus(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	st, ok := f.svc.GuardedStatus(key)
	if !ok {
		f.writeError(w, r, fmt.Errorf("no guarded rollout of flag %q: %w", key, flags.ErrNotFound))
		return
	}
	f.writeJSON(w, http.StatusOK, st)
}
