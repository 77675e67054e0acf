package audit

// Actions recorded for incidents and release changes (the DORA record).
const (
	ActionIncidentOpen    = "incident.open"    // someone opened an incident against a deploy
	ActionIncidentResolve = "incident.resolve" // someone resolved it (data: fix_deploy)
	ActionReleaseChange   = "release.change"   // CI recorded a release's commits and size
)

// ActionNotifyConfig records that the server started with other webhooks
// or another report schedule than the last time (data: digest, webhooks).
const ActionNotifyConfig = "notify.config"

// ActionDeployExternal records a deploy made outside Shipgate, recorded
// so that DORA counts it (data: live_at, rolled_back_at).
const ActionDeployExternal = "deploy.external"
