package api

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/rollout"
)

// Release variables hold what differs between two runs of the same code:
// a database URL, an API key, a fail rate. Their values are secrets: the
// API answers them to admin tokens only, and to every other role with
// each value replaced by RedactedValue, so the names stay visible.

// RedactedValue stands for a release variable's value in answers to a
// token that may not read it.
const RedactedValue = "[redacted]"

// varNamePattern is the rule for a release variable's name, the config's
// own: it is substituted as ${NAME}.
var varNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// reservedVars are set by shipgate for every instance; a release
// variable of that name would be overwritten or would override them.
var reservedVars = []string{"VERSION", "PORT", "APP", "ENV"}

// validateVarNames refuses release variables whose names could not be
// referenced as ${NAME}, that shipgate sets itself, or that steer the
// dynamic loader (LD_PRELOAD, LD_LIBRARY_PATH, DYLD_*): a deployer token
// must not be able to pick code for an instance to load.
func validateVarNames(vars map[string]string) error {
	for _, name := range slices.Sorted(maps.Keys(vars)) {
		switch {
		case !varNamePattern.MatchString(name):
			return &rollout.FieldError{Field: "vars." + name, Message: fmt.Sprintf("variable names must be letters, digits and underscores, not starting with a digit, got %q", name)}
		case slices.Contains(reservedVars, name):
			return &rollout.FieldError{Field: "vars." + name, Message: name + " is set by shipgate for every instance; choose another name"}
		case strings.HasPrefix(name, "LD_") || strings.HasPrefix(name, "DYLD_"):
			return &rollout.FieldError{Field: "vars." + name, Message: name + " would steer the dynamic loader of the instances; choose another name"}
		}
	}
	return nil
}

// mayReadSecrets reports whether the request's token may read release
// variable values: admin tokens only.
func mayReadSecrets(ctx context.Context) bool {
	return tokenFrom(ctx).Role == auth.RoleAdmin
}

// redactVars returns vars with every value replaced, or vars itself for a
// token that may read them.
func redactVars(ctx context.Context, vars map[string]string) map[string]string {
	if len(vars) == 0 || mayReadSecrets(ctx) {
		return vars
	}
	out := make(map[string]string, len(vars))
	for k := range vars {
		out[k] = RedactedValue
	}
	return out
}

// redactRelease returns rel with its variable values redacted for the
// request's token.
func redactRelease(ctx context.Context, rel rollout.Release) rollout.Release {
	rel.Vars = redactVars(ctx, rel.Vars)
	return rel
}

// varRef is a run.env value that is only a reference to a variable: it
// shows no value, so it is answered as is.
var varRef = regexp.MustCompile(`^\$\{[A-Za-z_][A-Za-z0-9_]*\}$`)

// redactRollout returns ro with the literal values of the instance
// template's environment (run.env, frozen into the rollout's spec at
// deploy) redacted for a token that may not read secrets: a team may put
// a credential there as well as in a variable. References such as
// ${DB_URL} stay, since they show no value.
func redactRollout(ctx context.Context, ro *rollout.Rollout) *rollout.Rollout {
	if ro == nil || ro.Spec == nil || len(ro.Spec.Run.Env) == 0 || mayReadSecrets(ctx) {
		return ro
	}
	spec := *ro.Spec
	spec.Run.Env = make(map[string]string, len(ro.Spec.Run.Env))
	for k, v := range ro.Spec.Run.Env {
		if !varRef.MatchString(v) {
			v = RedactedValue
		}
		spec.Run.Env[k] = v
	}
	out := *ro
	out.Spec = &spec
	return &out
}

// redactAnswer redacts what an answer holds of rollouts (redactRollout).
func redactAnswer(ctx context.Context, v any) any {
	if mayReadSecrets(ctx) {
		return v
	}
	switch x := v.(type) {
	case rollout.Rollout:
		return *redactRollout(ctx, &x)
	case *rollout.Rollout:
		return redactRollout(ctx, x)
	case []rollout.Rollout:
		out := make([]rollout.Rollout, len(x))
		for i := range x {
			out[i] = *redactRollout(ctx, &x[i])
		}
		return out
	case rollout.AppStatus:
		envs := make([]rollout.EnvStatus, len(x.Envs))
		for i, e := range x.Envs {
			e.Active = redactRollout(ctx, e.Active)
			envs[i] = e
		}
		x.Envs = envs
		return x
	}
	return v
}
