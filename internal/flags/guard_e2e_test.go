package flags_test

// The guarded rollout end to end: a real HTTP app that asks for its flag
// through the OpenFeature SDK's OFREP provider and reports the variant it
// served in X-Flag-<key>, behind the real builtin router (internal/proxy),
// whose per-flag counters the guard judges, under real HTTP load. The
// flags live in the real SQLite store.

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ofrepprovider "github.com/open-feature/go-sdk-contrib/providers/ofrep"
	"github.com/open-feature/go-sdk/openfeature"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/ofrep"
	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/sqlite"
)

var domainSeq atomic.Int64

type guardEnv struct {
	store *sqlite.Store
	svc   *flags.Service
	proxy *proxy.Proxy
	stop  func()
}

// startGuardEnv starts the flags service with its OFREP server, an app
// whose "on" path fails failOn of its requests, and the router in front.
func startGuardEnv(t *testing.T, failOn float64) *guardEnv {
	t.Helper()
	ctx := t.Context()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "shipgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	p := proxy.New(proxy.Config{Env: "production", Listen: "127.0.0.1:0", StickyHeader: "X-User-ID", Logger: slog.New(slog.DiscardHandler)})
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	svc, err := flags.NewService(ctx, flags.Options{Store: store, Stats: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	if _, err := svc.Create(ctx, flags.NewBooleanFlag("checkout", "payments", "", time.Time{}, time.Now()), flags.Who{Actor: "user:dev"}); err != nil {
		t.Fatal(err)
	}
	secret, _ := auth.NewSecret()
	if err := store.CreateToken(ctx, auth.Token{Name: "shop", Role: auth.RoleFlagClient}, auth.Hash(secret)); err != nil {
		t.Fatal(err)
	}
	ofrepSrv := httptest.NewServer(ofrep.NewHandler(svc, store, ofrep.Options{}))
	t.Cleanup(ofrepSrv.Close)

	// The app: an OpenFeature client per request context, as a Go
	// service would have it.
	domain := fmt.Sprintf("guard-app-%d", domainSeq.Add(1))
	if err := openfeature.SetNamedProviderAndWait(domain, ofrepprovider.NewProvider(ofrepSrv.URL, ofrepprovider.WithBearerToken(secret))); err != nil {
		t.Fatal(err)
	}
	of := openfeature.NewClient(domain)
	var fails atomic.Uint64
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, _ := of.BooleanValueDetails(r.Context(), "checkout", false, openfeature.NewEvaluationContext(r.Header.Get("X-User-ID"), nil))
		variant := "off"
		if d.Value {
			variant = "on"
		}
		w.Header().Set("X-Flag-checkout", variant)
		if d.Value && rand.Float64() < failOn {
			fails.Add(1)
			http.Error(w, "new checkout broke", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}))
	t.Cleanup(app.Close)
	if err := p.SetRoutes(ctx, rollout.Routes{Stable: rollout.Backend{Version: "v1", Addrs: []string{app.Listener.Addr().String()}}, Seed: "s"}); err != nil {
		t.Fatal(err)
	}

	// Load: users hitting the router, bounded in time by the test.
	loadCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 5 * time.Second}
			for i := 0; loadCtx.Err() == nil; i++ {
				req, _ := http.NewRequestWithContext(loadCtx, http.MethodGet, "http://"+p.Addr()+"/pay", nil)
				req.Header.Set("X-User-ID", fmt.Sprintf("user-%d-%d", w, i%500))
				if resp, err := hc.Do(req); err == nil {
					resp.Body.Close()
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	e := &guardEnv{store: store, svc: svc, proxy: p, stop: func() { cancel(); wg.Wait() }}
	t.Cleanup(e.stop)
	return e
}

func TestRunGuarded_SwitchesOffAFailingFlag(t *testing.T) {
	e := startGuardEnv(t, 0.30)
	spec := flags.GuardSpec{Steps: []int{10, 50, 100}, Bake: 2 * time.Second, Interval: 200 * time.Millisecond,
		Guards: []string{"error_rate<5%"}, MinRequests: 30, MaxWait: 20 * time.Second}
	st := e.svc.RunGuarded(t.Context(), "checkout", spec, e.proxy, flags.Who{Actor: "user:dev", Reason: "release new checkout"})
	if st.Phase != flags.GuardSwitchedOff || st.Step != 0 {
		t.Fatalf("phase %s at step %d (%d%%): %s; want switched_off at the first step", st.Phase, st.Step, st.Percent, st.Reason)
	}
	f, _ := e.svc.Snapshot().Flag("checkout")
	if f.State != flags.Disabled {
		t.Fatalf("flag state %s, want DISABLED", f.State)
	}
	if r := e.svc.Evaluate("checkout", map[string]any{"targetingKey": "anyone"}); r.Reason != flags.ReasonDisabled {
		t.Fatalf("evaluation after the switch: %+v", r)
	}
	events, err := e.store.ListAudit(t.Context(), audit.Filter{Subject: "flag/checkout", Action: flags.ActionGuardOff})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Actor != "shipgate" || events[0].Data["after"] == "" {
		t.Fatalf("audit of the switch = %+v", events)
	}
	t.Logf("switched off: %s (on %d requests %.1f%% errors, off %d requests)", events[0].Reason,
		st.On.Requests, st.On.ErrorRate*100, st.Off.Requests)
}

func TestRunGuarded_HealthyFlagReaches100(t *testing.T) {
	e := startGuardEnv(t, 0)
	spec := flags.GuardSpec{Steps: []int{10, 50, 100}, Bake: time.Second, Interval: 200 * time.Millisecond,
		Guards: []string{"error_rate<5%", "latency_p99<3x"}, MinRequests: 30, MaxWait: 30 * time.Second}
	st := e.svc.RunGuarded(t.Context(), "checkout", spec, e.proxy, flags.Who{Actor: "user:dev"})
	if st.Phase != flags.GuardSucceeded || st.Percent != 100 {
		t.Fatalf("phase %s at %d%%: %s; want succeeded at 100%%", st.Phase, st.Percent, st.Reason)
	}
	f, _ := e.svc.Snapshot().Flag("checkout")
	if p, ok := flags.PlanOf(f); !ok || p.Percent != 100 || f.State != flags.Enabled || f.Stage() != flags.StageReleased {
		t.Fatalf("flag after the rollout: %+v", f)
	}
	steps, err := e.store.ListAudit(t.Context(), audit.Filter{Subject: "flag/checkout", Action: flags.ActionGuardStep})
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 3 {
		t.Fatalf("%d audited steps, want 3", len(steps))
	}
}
