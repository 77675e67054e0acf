package server

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// TestConfigRev_Metrics: /metrics has the revision a server runs and the
// one it could not apply, as gauges read at each scrape; applying a newer
// revision clears the pending one.
func TestConfigRev_Metrics(t *testing.T) {
	var rev configRev
	reg := prometheus.NewRegistry()
	reg.MustRegister(rev.collectors()...)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	scrape := func() string {
		t.Helper()
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	check := func(want ...string) {
		t.Helper()
		body := scrape()
		for _, w := range want {
			if !strings.Contains(body, "\n"+w+"\n") {
				t.Errorf("/metrics has no line %q:\n%s", w, body)
			}
		}
	}
	check("# TYPE shipgate_config_revision gauge", "shipgate_config_revision 0", "shipgate_config_revision_pending 0")
	rev.set(3, nil)
	rev.fail(4, errors.New("secret_env SHIPGATE_X is not set"))
	check("shipgate_config_revision 3", "# TYPE shipgate_config_revision_pending gauge", "shipgate_config_revision_pending 4")
	rev.set(5, nil)
	check("shipgate_config_revision 5", "shipgate_config_revision_pending 0")
}
