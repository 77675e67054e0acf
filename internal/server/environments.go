package server

import (
	"fmt"

	"github.com/shipgate/shipgate/internal/rollout"
)

// environments is what each environment of the app is made of, built
// from the config: the server's local-process runtime, the environment's
// builtin router (traffic, measurement and draining) and the smoke
// prober. It is the engine's one factory of adapters.
type environments struct {
	app  string
	envs map[string]rollout.Environment
}

var _ rollout.Environments = (*environments)(nil)

func (e *environments) For(app, env string) (rollout.Environment, error) {
	en, ok := e.envs[env]
	if !ok || app != e.app {
		return rollout.Environment{}, fmt.Errorf("no environment %s of app %s on this server: %w", env, app, rollout.ErrNotFound)
	}
	return en, nil
}
