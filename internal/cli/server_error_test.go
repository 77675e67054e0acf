package cli

import (
	"errors"
	"fmt"
	"testing"

	"github.com/shipgate/shipgate/internal/rollout"
)

// TestConfigError_ServerRefusal: a server that refuses what it was
// started with (found when servers on PostgreSQL still refused several
// apps; here an adopted Deployment without the container the config
// names) exits 2, invalid input, with a sentence. It exited 1 with
// "...: invalid" at its end.
func TestConfigError_ServerRefusal(t *testing.T) {
	err := configError(fmt.Errorf("start: %w", fmt.Errorf("environments.production.kubernetes.container: the Deployment shop/shop to adopt has no container \"web\"; it has app: %w", rollout.ErrInvalid)))
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != ExitInvalid {
		t.Fatalf("configError = %#v, want exit %d", err, ExitInvalid)
	}
	if got, want := err.Error(), "start: environments.production.kubernetes.container: the Deployment shop/shop to adopt has no container \"web\"; it has app"; got != want {
		t.Fatalf("message = %q, want %q", got, want)
	}
	if configError(errors.New("listen: address in use")).Error() != "listen: address in use" {
		t.Fatal("another error changed")
	}
}
