package rollout

// DeployRequest asks for a release to be rolled out to an environment.
type DeployRequest struct {
	App string `json:"app"`
	// Env is the environment; "" picks "production" when the app has it,
	// or the app's only environment.
	Env     string `json:"env,omitempty"`
	Version string `json:"version"`
	// Commit is the source commit SHA, recorded with the release.
	Commit string `json:"commit,omitempty"`
	// Vars are release variables (override the app's vars).
	Vars map[string]string `json:"vars,omitempty"`
	// Actor is who asks; set by the API from the token, never by the client.
	Actor string `json:"-"`
}

// RollbackRequest asks for an environment to go back to its last good
// release: the stable one while a rollout runs, the previous one otherwise.
type RollbackRequest struct {
	App    string `json:"app"`
	Env    string `json:"env,omitempty"`
	Reason string `json:"reason"`
	Actor  string `json:"-"`
}

// AppStatus is what is live in each environment of an app.
type AppStatus struct {
	App  string      `json:"app"`
	Envs []EnvStatus `json:"environments"`
}

// EnvStatus is one environment: its router address, what is stable, and
// the rollout in progress if any.
type EnvStatus struct {
	Env    string    `json:"env"`
	Listen string    `json:"listen"`
	State  *EnvState `json:"state,omitempty"`
	Active *Rollout  `json:"active,omitempty"`
}
