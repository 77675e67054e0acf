// Package rollout is the heart of Shipgate: it plans how a release replaces
// the stable one in an environment and drives that plan, step by step, as a
// durable state machine.
//
// # Data flow
//
//	API/CLI ──Deploy/Rollback──▶ Engine ──Commit──▶ Store (rollout, env state, audit in one tx)
//	                               │
//	                               ├─ Runtime.Start/Stop/Status   (instances of a release)
//	                               ├─ Prober (smoke checks straight to instances)
//	                               ├─ Router.SetRoutes            (stable/canary split)
//	                               └─ Router.Stats ──▶ analysis.Sequence ──▶ pass / fail / wait
//
// Every change of a rollout is committed to the Store before the engine acts
// on it, and every action (start instances, set routes, stop instances) is
// idempotent, so after a crash the engine resumes a rollout from its last
// committed step. A rollback always moves traffic first (one SetRoutes call)
// and only then stops instances.
//
// # Ports
//
// The engine declares what it needs from the world as small interfaces in
// ports.go: Store, Runtime, Router, Prober and Clock. Adapters live in
// sibling packages (sqlite, process, proxy) and cmd/server wires them; this
// package imports none of them, nor net/http nor database/sql.
package rollout
