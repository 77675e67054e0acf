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

// TestAPIError_ValidationPathOnce: a flag definition refused names its
// JSON path once. The message of a *flags.ValidationError already starts
// with the path of each problem; the client printed the field before it
// again ("error: /flags/x/targeting: /flags/x/targeting: a guarded
// rollout needs ..."), found by starting a guarded rollout of an imported
// flag as a new user would.
func TestAPIError_ValidationPathOnce(t *testing.T) {
	ae, _ := errorFor(fmt.Errorf("guard: %w", &flags.ValidationError{Problems: []flags.Problem{
		{Path: "/flags/x/targeting", Message: "a guarded rollout needs a boolean flag whose targeting Shipgate wrote"},
		{Path: "/flags/x/variants", Message: "second problem"},
	}}))
	if ae.Field != "/flags/x/targeting" {
		t.Fatalf("field = %q, want the first problem's path", ae.Field)
	}
	want := "/flags/x/targeting: a guarded rollout needs a boolean flag whose targeting Shipgate wrote\n/flags/x/variants: second problem"
	if got := ae.Error(); got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	// A message that does not name its field still gets it.
	fe, _ := errorFor(&rollout.FieldError{Field: "vars", Message: "release v3: it was recorded with FAIL"})
	if got, want := fe.Error(), "vars: release v3: it was recorded with FAIL"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}
