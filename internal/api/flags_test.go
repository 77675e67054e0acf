package api_test

// Tests of the flag admin routes with the real flags service on the real
// SQLite store, through the API's Go client over real HTTP.

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/api/apitest"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/sqlite"
)

type flagEnv struct {
	url    string
	store  *sqlite.Store
	svc    *flags.Service
	admin  *api.Client
	secret map[auth.Role]string
}

func startFlagAPI(t *testing.T) *flagEnv {
	t.Helper()
	srv := apitest.Start(t, apitest.Options{Flags: true})
	e := &flagEnv{url: srv.URL, store: srv.Store, svc: srv.Flags, secret: map[auth.Role]string{}}
	for _, role := range []auth.Role{auth.RoleAdmin, auth.RoleViewer, auth.RoleFlagClient} {
		e.secret[role] = srv.Token(t, string(role)+"-token", role)
	}
	e.admin = srv.Client(e.secret[auth.RoleAdmin])
	return e
}

func apiError(t *testing.T, err error) *api.APIError {
	t.Helper()
	var ae *api.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v is not an API error", err)
	}
	return ae
}

func TestFlagsAPI_Lifecycle(t *testing.T) {
	e := startFlagAPI(t)
	ctx := t.Context()
	c := e.admin
	// An --expires in the past is refused; a definition imported with
	// one (a flag that is already debt) is taken as it is.
	def := `{"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off", "metadata": {"owner": "payments", "expires": "2020-01-31"}}`
	if _, err := c.CreateFlag(ctx, api.CreateFlagRequest{Key: "new-checkout", Definition: json.RawMessage(def), Reason: "ship dark"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateFlag(ctx, api.CreateFlagRequest{Key: "new-checkout"}); apiError(t, err).Status != http.StatusConflict {
		t.Fatalf("second create: %v, want 409", err)
	}
	if _, err := c.PutSegment(ctx, "internal", api.SegmentRequest{Rules: []string{"email ends_with @shipgate.dev"}, Reason: "staff"}); err != nil {
		t.Fatal(err)
	}
	pct := 5
	d, err := c.TargetFlag(ctx, "new-checkout", api.TargetRequest{Percent: &pct, Segments: []string{"internal"}, Users: []string{"u-42"}, Reason: "first users"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"if":[{"in":[{"var":"targetingKey"},["u-42"]]},"on",{"$ref":"internal"},"on",{"fractional":[["on",5],["off",95]]}]}`
	if got := string(d.Definition.Targeting); got != want {
		t.Fatalf("targeting\n got %s\nwant %s", got, want)
	}
	// Raising the percentage keeps the users and the segment.
	pct = 25
	if d, err = c.TargetFlag(ctx, "new-checkout", api.TargetRequest{Percent: &pct}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(d.Definition.Targeting), `"u-42"`) || !strings.Contains(string(d.Definition.Targeting), `["on",25]`) {
		t.Fatalf("after rollout 25%%: %s", d.Definition.Targeting)
	}
	for key, wantOn := range map[string]bool{"u-42": true, "nobody-in-particular-7": flags.BucketFor("new-checkout", "nobody-in-particular-7") < 25} {
		if r := e.svc.Evaluate("new-checkout", map[string]any{"targetingKey": key}); (r.Value == true) != wantOn {
			t.Errorf("%s: %+v, want on=%v", key, r, wantOn)
		}
	}
	if r := e.svc.Evaluate("new-checkout", map[string]any{"targetingKey": "x", "email": "a@shipgate.dev"}); r.Value != true || r.Reason != flags.ReasonTargetingMatch {
		t.Errorf("internal user: %+v, want on by targeting match", r)
	}

	// Disabling is audited with before and after.
	if _, err := c.FlagAction(ctx, "new-checkout", "disable", "errors on /pay"); err != nil {
		t.Fatal(err)
	}
	events, err := e.store.ListAudit(ctx, audit.Filter{Subject: "flag/new-checkout", Action: flags.ActionDisable})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Actor != "user:admin-token" || events[0].Reason != "errors on /pay" ||
		!strings.Contains(events[0].Data["before"], `"ENABLED"`) || !strings.Contains(events[0].Data["after"], `"DISABLED"`) {
		t.Fatalf("audit of disable = %+v", events)
	}

	// Expired, so it is debt, with its owner.
	debts, err := c.StaleFlags(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(debts) != 1 || debts[0].Key != "new-checkout" || debts[0].Owner != "payments" || !strings.Contains(debts[0].Reasons[0], "expired") {
		t.Fatalf("stale = %+v", debts)
	}

	// Evaluated a moment ago: deleting needs force, and force needs a reason.
	if err := c.DeleteFlag(ctx, "new-checkout", false, ""); apiError(t, err).Status != http.StatusConflict {
		t.Fatalf("delete without force: %v, want 409", err)
	}
	if err := c.DeleteFlag(ctx, "new-checkout", true, ""); apiError(t, err).Status != http.StatusBadRequest {
		t.Fatalf("delete by force without reason: %v, want 400", err)
	}
	if err := c.DeleteFlag(ctx, "new-checkout", true, "replaced by checkout-v3"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetFlag(ctx, "new-checkout"); apiError(t, err).Status != http.StatusNotFound {
		t.Fatalf("get after delete: %v, want 404", err)
	}
}

func TestFlagsAPI_InvalidDefinitionsChangeNothing(t *testing.T) {
	e := startFlagAPI(t)
	ctx := t.Context()
	if _, err := e.admin.ImportFlags(ctx, []byte(`{"flags": {"checkout": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}}}`), "fixture"); err != nil {
		t.Fatal(err)
	}
	before, err := e.admin.ExportFlags(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, definition, field string
	}{
		// flagd refuses an unknown default variant too; the others break
		// its schema, which Shipgate holds to.
		{"unknown default variant", `{"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "maybe"}`,
			"/flags/checkout/defaultVariant"},
		{"mixed variant types", `{"state": "ENABLED", "variants": {"on": true, "off": "no"}, "defaultVariant": "on"}`, "/flags/checkout/variants"},
		{"bad state", `{"state": "ON", "variants": {"on": true}, "defaultVariant": "on"}`, "/flags/checkout/state"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.admin.PutFlag(ctx, "checkout", api.PutFlagRequest{Definition: json.RawMessage(tc.definition), Reason: "try"})
			ae := apiError(t, err)
			if ae.Status != http.StatusBadRequest || ae.Field != tc.field {
				t.Fatalf("got %d field %q (%s), want 400 naming %s", ae.Status, ae.Field, ae.Message, tc.field)
			}
			// The same through an import of a flagd file.
			file := `{"flags": {"checkout": ` + tc.definition + `}}`
			_, err = e.admin.ImportFlags(ctx, []byte(file), "try")
			if ae := apiError(t, err); ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, tc.field) {
				t.Fatalf("import: got %d %s, want 400 naming %s", ae.Status, ae.Message, tc.field)
			}
			after, err := e.admin.ExportFlags(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Fatalf("the stored flags changed:\n%s\n%s", before, after)
			}
		})
	}
}

// TestFlagsAPI_FlagClientKeyRefused: a flag client key only evaluates; it
// is refused on every admin route, and a viewer cannot change flags.
func TestFlagsAPI_FlagClientKeyRefused(t *testing.T) {
	e := startFlagAPI(t)
	routes := []struct{ method, path string }{
		{"GET", "/v1/flags"}, {"POST", "/v1/flags"}, {"GET", "/v1/flags/stale"}, {"GET", "/v1/flags/export"},
		{"POST", "/v1/flags/import"}, {"GET", "/v1/flags/segments"}, {"PUT", "/v1/flags/segments/x"},
		{"DELETE", "/v1/flags/segments/x"}, {"POST", "/v1/flags/keys"}, {"GET", "/v1/flags/x"}, {"PUT", "/v1/flags/x"},
		{"DELETE", "/v1/flags/x"}, {"POST", "/v1/flags/x/enable"}, {"POST", "/v1/flags/x/disable"},
		{"POST", "/v1/flags/x/archive"}, {"POST", "/v1/flags/x/target"}, {"POST", "/v1/flags/x/guarded-rollout"},
		{"GET", "/v1/flags/x/guarded-rollout"}, {"GET", "/v1/status"}, {"GET", "/v1/audit"}, {"POST", "/v1/deploys"},
		{"POST", "/v1/rollbacks"}, {"GET", "/metrics"},
	}
	for _, r := range routes {
		resp, _ := send(t, r.method, e.url+r.path, e.secret[auth.RoleFlagClient], `{}`)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s with a flag client key: %d, want 403", r.method, r.path, resp.StatusCode)
		}
	}
	viewer := api.NewClient(e.url, e.secret[auth.RoleViewer], nil)
	if _, err := viewer.CreateFlag(t.Context(), api.CreateFlagRequest{Key: "x"}); apiError(t, err).Status != http.StatusForbidden {
		t.Errorf("viewer create: %v, want 403", err)
	}
	key, err := e.admin.CreateFlagKey(t.Context(), "shop")
	if err != nil || key.Role != "flag-client" || !strings.HasPrefix(key.Secret, "sgt_") {
		t.Fatalf("CreateFlagKey = %+v, %v", key, err)
	}
	tok, err := e.store.TokenByHash(t.Context(), auth.Hash(key.Secret))
	if err != nil || tok.Role != auth.RoleFlagClient {
		t.Fatalf("stored key = %+v, %v", tok, err)
	}
}

// TestFlagsAPI_ImportLoadsWhatFlagdLoads: a file flagd loads is imported
// even where its targeting can only fail or fall to the default at
// evaluation time (each problem comes back as a warning), and a $ref may
// name a shared rule stored on the server.
func TestFlagsAPI_ImportLoadsWhatFlagdLoads(t *testing.T) {
	e := startFlagAPI(t)
	ctx := t.Context()
	if _, err := e.admin.PutSegment(ctx, "staff", api.SegmentRequest{Rules: []string{"email ends_with @shipgate.dev"}, Reason: "staff"}); err != nil {
		t.Fatal(err)
	}
	file := `{"metadata": {"team": "growth"}, "flags": {
		"unknown-op": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
			"targeting": {"if": [{"equals": [{"var": "plan"}, "pro"]}, "on", "off"]}},
		"relative": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
			"targeting": {"fractional": [["on", 1], ["off", 1]]}},
		"no-such-variant": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
			"targeting": {"if": [{"==": [{"var": "plan"}, "pro"]}, "onn", "off"]}},
		"stored-ref": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
			"targeting": {"if": [{"$ref": "staff"}, "on", "off"]}, "metadata": {"owner": "web"}}}}`
	res, err := e.admin.ImportFlags(ctx, []byte(file), "from flagd")
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if got, want := strings.Join(res.Changed, ","), "no-such-variant,relative,stored-ref,unknown-op"; got != want {
		t.Errorf("changed %s, want %s", got, want)
	}
	var paths []string
	for _, w := range res.Warnings {
		paths = append(paths, w.Path)
	}
	if got, want := strings.Join(paths, " "), "/flags/no-such-variant/targeting/if/1 /flags/unknown-op/targeting/if/0/equals"; got != want {
		t.Errorf("warnings at %s, want %s", got, want)
	}
	snap := e.svc.Snapshot()
	now := time.Now()
	for _, tc := range []struct {
		key     string
		ctx     map[string]any
		variant string
		reason  flags.Reason
		code    flags.ErrorCode
	}{
		{"unknown-op", map[string]any{"plan": "pro"}, "", flags.ReasonError, flags.CodeParseError},
		{"no-such-variant", map[string]any{"plan": "pro"}, "", flags.ReasonError, flags.CodeGeneral},
		{"no-such-variant", map[string]any{"plan": "free"}, "off", flags.ReasonTargetingMatch, ""},
		{"stored-ref", map[string]any{"email": "ana@shipgate.dev"}, "on", flags.ReasonTargetingMatch, ""},
		{"stored-ref", map[string]any{"email": "bo@example.com"}, "off", flags.ReasonTargetingMatch, ""},
	} {
		r := snap.Evaluate(tc.key, tc.ctx, now)
		if r.Variant != tc.variant || r.Reason != tc.reason || r.ErrorCode != tc.code {
			t.Errorf("%s %v: %+v, want %q %s %s", tc.key, tc.ctx, r, tc.variant, tc.reason, tc.code)
		}
	}
	// Metadata as flagd serves it: the file's, inherited, nothing added.
	r := snap.Evaluate("stored-ref", nil, now)
	if want := map[string]any{"team": "growth", "owner": "web"}; !reflect.DeepEqual(r.Metadata, want) {
		t.Errorf("metadata %v, want %v", r.Metadata, want)
	}
}
