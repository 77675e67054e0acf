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
// # Files
//
// engine.go holds the Engine and its start-up; commands.go the commands
// (deploy, rollback, status...), pipeline.go and gates.go those of the
// release pipeline (releases, approvals, plan, drill, drift);
// reconciler.go drives each active rollout and carries out rollbacks;
// environments.go every call to an environment's adapters; spec.go the
// Spec; one executor per step kind (step_traffic.go, steps.go, bake.go,
// migrations.go) sits behind the executors table.
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
