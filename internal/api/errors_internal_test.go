package api

import (
	"errors"
	"fmt"
	"testing"

	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/rollout"
)

// TestKindless is item 15 of issue 10: error messages no longer end in
// ": conflict" or ": not found", and still say what is wrong.
func TestKindless(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("release %s of %s: %w", "1.4.2", "shop", rollout.ErrNotFound), "release 1.4.2 of shop not found"},
		{fmt.Errorf("rollout %d: %w", 99, rollout.ErrNotFound), "rollout 99 not found"},
		{fmt.Errorf("no rollout of shop is running in staging: %w", rollout.ErrNotFound), "no rollout of shop is running in staging"},
		{fmt.Errorf("rollout 3 of shop/production is still at step 2/5 (weight 10%%); wait for it or roll it back: %w", rollout.ErrConflict),
			"rollout 3 of shop/production is still at step 2/5 (weight 10%); wait for it or roll it back"},
		{fmt.Errorf("%w: a token with this name exists; delete it first or pick another name", rollout.ErrConflict),
			"a token with this name exists; delete it first or pick another name"},
		{fmt.Errorf("flag %q: %w", "checkout", flags.ErrNotFound), `flag "checkout" not found`},
		{fmt.Errorf("environment %q: %w", "prod", rollout.ErrInvalid), `environment "prod" is invalid`},
		{errors.New("plain"), "plain"},
	} {
		if got := kindless(tc.err); got != tc.want {
			t.Errorf("kindless(%q) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
