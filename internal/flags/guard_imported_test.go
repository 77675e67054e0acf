package flags_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/shipgate/shipgate/internal/flags"
)

// TestService_GuardedRolloutOfAnImportedFlagSaysWhatToDo: a guarded
// rollout of a flag imported from a flagd file (targeting written by
// hand) is refused at the flag's targeting, and the refusal gives the
// command that hands the targeting to Shipgate. It only said "needs a
// boolean flag whose targeting Shipgate wrote", which left a new user
// with an imported flag guessing.
func TestService_GuardedRolloutOfAnImportedFlagSaysWhatToDo(t *testing.T) {
	e := newResumeEnv(t)
	svc := e.service(false)
	const file = `{"flags": {"greeting": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
	  "targeting": {"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]}, ["on", 0], ["off", 100]]}}}}`
	if _, err := svc.Import(t.Context(), []byte(file), flags.Who{Actor: "user:dev", Reason: "from flagd"}); err != nil {
		t.Fatal(err)
	}
	_, err := svc.StartGuardedRollout("greeting", resumeSpec, flags.Who{Actor: "user:dev"})
	var ve *flags.ValidationError
	if !errors.As(err, &ve) || ve.Problems[0].Path != "/flags/greeting/targeting" {
		t.Fatalf("guarded rollout of an imported flag: %v, want refused at /flags/greeting/targeting", err)
	}
	const hint = "shipgate flags rollout greeting 0% --replace"
	if !strings.Contains(err.Error(), hint) {
		t.Fatalf("refusal %q does not say %q", err, hint)
	}
}
