// Package dora turns Shipgate's own record of deploys and incidents into
// the five DORA keys (dora.dev): deployment frequency, change lead time,
// change fail rate, failed deployment recovery time and deployment rework
// rate, per app and environment, each with its sample size, its 2023
// performance band and its trend against the four weeks before.
//
// It is pure: it imports no storage, no transport and no config types. An
// adapter builds the Deploy and Incident records from the store (rollouts,
// releases, incidents) and calls Summarize.
//
// # Definitions
//
// A deployment is a rollout of kind "deploy" in the environment that
// reached users (got some traffic). Rollouts stopped by a gate before any
// user saw them are counted apart (StoppedBeforeUsers): the gates worked,
// production did not fail. Manual rollbacks and drills are not deployments.
//
// A deployment failed when it needed intervention: it was rolled back
// (automatically or by a person, during or after its rollout), or an
// incident was opened against it (and possibly fixed by a hotfix deploy).
// A manual rollback that undoes another rollback (a rollback of a rollback)
// blames no deployment.
//
// Recovery time of a failed deployment runs from the earliest moment the
// failure was detected (rollback started, incident opened) to the earliest
// moment service was restored after it (traffic back on the old release,
// the fix deploy live at 100%, the incident resolved).
//
// Every number is bucketed by the week in which its deployment started, in
// the Calendar's time zone and week start.
package dora
