package cli

import (
	"errors"
	"fmt"
	"testing"

	"github.com/shipgate/shipgate/internal/rollout"
)

// TestConfigError_ServerRefusal: a server that refuses what it was
// started with (a directory of three apps on a PostgreSQL store, found
// by running store migrate and then the server as a new user would)
// exits 2, invalid input, with a sentence. It exited 1 with
// "...; run a group of servers (and a database) per app: invalid".
func TestConfigError_ServerRefusal(t *testing.T) {
	err := configError(fmt.Errorf("start: %w", fmt.Errorf("3 apps on a PostgreSQL store: several servers on one store manage one app for now; run a group of servers (and a database) per app: %w", rollout.ErrInvalid)))
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != ExitInvalid {
		t.Fatalf("configError = %#v, want exit %d", err, ExitInvalid)
	}
	if got, want := err.Error(), "start: 3 apps on a PostgreSQL store: several servers on one store manage one app for now; run a group of servers (and a database) per app"; got != want {
		t.Fatalf("message = %q, want %q", got, want)
	}
	if configError(errors.New("listen: address in use")).Error() != "listen: address in use" {
		t.Fatal("another error changed")
	}
}
