package server_test

import (
	"strings"
	"testing"

	"github.com/shipgate/shipgate/internal/server"
)

// TestRESTConfig_NoClusterSaysWhereItLooked: with no kubeconfig anywhere,
// the error names the places docs/kubernetes.md says the server looks, in
// its order, instead of client-go's "try setting KUBERNETES_MASTER
// environment variable", which Shipgate does not read.
func TestRESTConfig_NoClusterSaysWhereItLooked(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	t.Setenv("HOME", t.TempDir())
	_, err := server.RESTConfig("")
	if err == nil {
		t.Fatal("RESTConfig with no kubeconfig anywhere: no error")
	}
	for _, want := range []string{"kubernetes.kubeconfig", "$KUBECONFIG", "in-cluster", "~/.kube/config"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "KUBERNETES_MASTER") {
		t.Errorf("error %q points at KUBERNETES_MASTER, which Shipgate does not read", err)
	}
}
