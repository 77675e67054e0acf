// Package rollout is the heart of Shipgate: it plans how a release replaces
// the stable one in an environment and drives that plan, step by step, as a
// durable state machine.
//
// # Data flow
//
//	API/CLI ──Deploy/Rollback──▶ Engine ──Commit──▶ Store (rollout + frozen Spec, env state, audit in one tx)
//	                               │
//	                               ├─ Specs.Spec (the config, translated by internal/plan; frozen at deploy)
//	                               └─ Environments.For(app, env) ──▶ Environment
//	                                    ├─ Runtime.Ensure/Observe/Remove      (a release at N instances)
//	                                    ├─ Prober.Probe                       (smoke checks straight to instances)
//	                                    ├─ TrafficRouter.SetRoutes/VerifyRoutes (stable/canary split, confirmed)
//	                                    ├─ Drainer.Drain                      (optional: requests in flight)
//	                                    └─ MetricSource.Window ──▶ analysis.Sequence ──▶ pass / fail / wait
//
// Every change of a rollout is committed to the Store before the engine acts
// on it, and every action (ensure a release, set routes, remove a release)
// is idempotent, so after a crash the engine resumes a rollout from its last
// committed step, with the Spec it froze at creation and the evidence and
// bake time its bake had recorded. A rollback always moves traffic first
// (one SetRoutes call), lets the router drain what was in flight, and only
// then stops instances.
//
// # Types: commands, reconciler, executors
//
// The engine is three parts that share one set of dependencies:
//
//	              deps (specs, store, environments, migrations, tests,
//	               │    clock, logger, tick/drain/verify, digest key)
//	     ┌─────────┴──────────┐
//	  Engine               reconciler ──▶ executors[step.Kind]
//	(commands)              (drivers)       (one per step kind)
//
// deps holds what New was given. It is set once and only read after, so
// it has no lock; its methods are what both sides need: the calls to an
// environment's adapters (environments.go: env, setRoutes, ensure,
// alive, failedInstance, retireDrained, window, probe), the Spec a
// rollout runs with (rolloutSpec, rolloutSpecOrLive), the routing tables
// (canaryRoutes, stableRoutes), what is live (liveState, nextEnvState),
// audit events (event), release digests and the migrator.
//
// Engine is the commands side, the exported API the server calls:
// Deploy, Rollback, Retry, Pause, Resume, Promote, Status, History,
// Audit, Wait (commands.go); CreateRelease, GetRelease, Approve,
// Plan, Drill (pipeline.go); Drift and the pipeline gates (gates.go,
// testgates.go, migrations.go: checkMigrations). A command checks its
// request, commits what it decided to the store (a new rollout with its
// audit events, in one transaction) and hands over to the reconciler:
// launch for a new rollout, or, for the rollout running now, a command
// delivered to its driver (driver.deliver: an approval, a promotion, a
// pause, a resume; driver.requestAbort: a rollback). It owns no state of
// its own: everything it decides is in the store, everything in flight is
// on a driver.
//
// reconciler drives the active rollouts (reconciler.go). It owns the
// drivers, one goroutine per environment with an active rollout, and
// their lifetime (startDrivers, which first recovers each environment's
// routes and instances from the store, and stopDrivers). Its mutex
// guards the drivers map and the base context; a command that creates a
// rollout (Deploy, Rollback, Drill) holds it from its check that the
// environment is free (claim, which waits for the driver of a rollout
// that has ended to leave) until launch and unclaim, so an environment
// never has two drivers. The commands never touch the reconciler's lock
// or map themselves.
// Each driver's own mutex guards what commands hand it. A driver runs
// drive: runStep runs the current step with the executor of its kind,
// advance commits the next step, decideRollback commits a rollback and
// restoreStable carries it out (a rollback is Rollback, the command,
// then those two: one name each); bake (bake.go) is the analysis loop of
// every baking step, and the reconciler records its changes with save
// and mustSave, which stop every driver when another server leads.
//
// One executor per step kind sits behind the executors table
// (reconciler.go): step_traffic.go (start, smoke, internal and weight,
// promote, scale down), steps.go (approval, rolling batch, post-deploy
// smoke, observe, the drill's restore), migrations.go (migrate). An
// executor is a method of the reconciler; it is idempotent, so a resumed
// rollout runs its step again from what it recorded.
//
// The commands never call the reconciler's step code and the reconciler
// never calls a command: they meet in the store and on a driver.
// spec.go is the Spec; plan.go turns a Spec into steps (planSteps,
// rollbackSteps, drillSteps); ports.go declares the adapters.
//
// # Time
//
// Every wait of the engine (bakes, delays, retries, bounds) is a timer or
// a ticker of its Clock, so the package's tests run real rollouts on
// virtual time (clocktest.Fake) with the real store, router and runtime.
//
// # The plan, frozen
//
// The engine does not read the config file: internal/plan translates it
// into a Spec per environment (Specs, in spec.go), and a deploy freezes
// that Spec into its rollout. Every step reads the rollout's Spec, so a
// rollout resumed after the config changed runs what was planned; only the
// values of variables, which may be secrets, are never recorded and come
// from the live config and the release.
//
// # Ports
//
// The engine declares what it needs from the world as small interfaces in
// ports.go: Store, Specs, Environments (each environment's Runtime,
// TrafficRouter, MetricSource, Prober and optional Drainer), Migrations
// and Clock. Environments is the one factory of adapters: local processes
// and the builtin router by default (internal/process, internal/proxy),
// others (Kubernetes, Gateway API, Prometheus) per environment; the engine
// never asks which adapter it has. Runtimes own their instances: the
// engine ensures a release at a count, observes it and removes it, and
// records instances only to route to them and to resume. Every routing
// change is verified before a bake starts; every bake judges the metric
// source's window since it began, so a resumed bake keeps its evidence.
// Adapters live in sibling packages (sqlite, process, proxy, plan) and
// internal/server wires them; this package imports none of them, nor the
// config, nor net/http nor database/sql.
package rollout
