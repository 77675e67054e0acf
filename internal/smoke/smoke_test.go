package smoke

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/rollout"
)

func TestProber_Probe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			_, _ = w.Write([]byte("ok v2"))
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		case "/redirect":
			http.Redirect(w, r, "/healthz", http.StatusFound)
		default:
			http.Error(w, "broken", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct {
		name    string
		check   rollout.SmokeCheck
		wantErr string
	}{
		{"ok", rollout.SmokeCheck{Path: "/healthz"}, ""},
		{"body matches", rollout.SmokeCheck{Path: "/healthz", ExpectBody: "v2"}, ""},
		{"body differs", rollout.SmokeCheck{Path: "/healthz", ExpectBody: "v3"}, `expected the body to contain "v3", got "ok v2"`},
		{"status differs", rollout.SmokeCheck{Path: "/pay"}, `expected status 200, got 500: "broken"`},
		{"redirect is not followed", rollout.SmokeCheck{Path: "/redirect", ExpectStatus: 302}, ""},
		{"timeout", rollout.SmokeCheck{Path: "/slow", Timeout: 50 * time.Millisecond}, "no answer"},
	}
	p := New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.Probe(context.Background(), addr, tt.check)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Probe: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Probe error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}
