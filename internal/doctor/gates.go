package doctor

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
)

// Thresholds of the gates, from the seeds.
const (
	// maxCanaryWeight is the largest first canary step that counts as a
	// small slice of users.
	maxCanaryWeight = 10
	// minCanaryBake is the least bake of that step.
	minCanaryBake = 10 * time.Minute
	// maxRestore is the longest median rollback, decision to traffic back.
	maxRestore = 90 * time.Second
	// defaultDrillWithin is how recent a drill must be when the config
	// does not say.
	defaultDrillWithin = 30 * 24 * time.Hour
	// reportEvery is how recent the last Monday report must be.
	reportEvery = 8 * 24 * time.Hour
)

var (
	shipgateDeploy = regexp.MustCompile(`shipgate\s+(deploy|plan)\b`)
	iacApply       = regexp.MustCompile(`terraform\b[^\n]*\sapply\b|tofu\b[^\n]*\sapply\b|pulumi\s+up|pulumi/actions|kubectl\s+apply|helm\s+(upgrade|install)|aws\s+cloudformation\s+deploy|az\s+deployment|kustomize\s+build|cdk\s+deploy|argocd\s+app\s+sync|hashicorp/setup-terraform`)
	browserRun     = regexp.MustCompile(`playwright\s+test|cypress\s+run|cypress-io/github-action|\bwdio\b|selenium|playwright`)
	checkFlag      = regexp.MustCompile(`--check[\s=]+([A-Za-z0-9][A-Za-z0-9._-]*)=`)
	browserName    = regexp.MustCompile(`(?i)e2e|browser|playwright|cypress|selenium|webdriver`)
	reportRun      = regexp.MustCompile(`shipgate\s+(report|dora)\b`)
	// jobStart is a line that starts a CI job: a top-level GitLab key, a
	// GitHub Actions job (two spaces in), a Jenkins stage.
	jobStart = regexp.MustCompile(`(?m)^( {0,2}[A-Za-z0-9_.-]+:\s*$|\s*stage\s*\()`)
)

const noConfigStep = "Write shipgate.yaml (docs/config.md has a complete one) and check it with `shipgate validate`."

// configProblem returns the gate as missing when there is no usable
// config, with what is wrong.
func (f *facts) configProblem(g Gate) (Gate, bool) {
	switch {
	case f.cfg != nil:
		return g, false
	case f.cfgErr != "":
		g.Status = Partly
		g.Evidence = append(g.Evidence, "shipgate.yaml does not load: "+f.cfgErr)
		g.Step = "Fix shipgate.yaml: `shipgate validate` lists every problem with its line."
	default:
		g.Status = Missing
		g.Evidence = append(g.Evidence, "no "+f.in.ConfigName+" in the repository")
		g.Step = noConfigStep
	}
	return g, true
}

func releaseDay(f *facts) Gate {
	g := Gate{ID: GateReleaseDay, Title: "A written release day",
		Why: "Everyone can read how a release goes out, step by step, and it goes out the same way every time, run by a tool rather than from memory."}
	if g, done := f.configProblem(g); done {
		if g.Status == Missing {
			g.Step = noConfigStep + " Then `shipgate plan --env production` prints your release day."
		}
		return g
	}
	envs := sortedEnvs(f)
	g.Evidence = append(g.Evidence, fmt.Sprintf("%s declares %s: %s", f.in.ConfigName, plural(len(envs), "environment"), strings.Join(envs, ", ")))
	var outside []string
	for _, e := range envs {
		if !slices.Contains(f.cfg.Pipeline, e) {
			outside = append(outside, e)
		}
	}
	var steps []string
	switch {
	case len(envs) == 1:
		g.Evidence = append(g.Evidence, "one environment: `shipgate plan --env "+envs[0]+"` writes its release day")
	case len(outside) == 0:
		g.Evidence = append(g.Evidence, "pipeline "+strings.Join(f.cfg.Pipeline, " → ")+": `shipgate plan` writes the release day of every environment")
	default:
		g.Evidence = append(g.Evidence, "not in the pipeline: "+strings.Join(outside, ", "))
		steps = append(steps, fmt.Sprintf("Put every environment in the pipeline, in order (pipeline: [%s] in %s), so that `shipgate plan` writes one release day for all of them.", strings.Join(pipelineGuess(f), ", "), f.in.ConfigName))
	}
	if cs := f.ciRunning(shipgateDeploy, false); len(cs) > 0 {
		g.Evidence = append(g.Evidence, "CI runs shipgate deploy/plan: "+paths(cs))
	} else {
		g.Evidence = append(g.Evidence, "no CI file runs shipgate deploy or plan: releases are started by hand")
		steps = append(steps, "Run `shipgate deploy --wait` from CI after the build (a job on the main branch), so that the written plan is what runs.")
	}
	g.Status, g.Step = verdict(steps)
	return g
}

func iac(f *facts) Gate {
	g := Gate{ID: GateIaC, Title: "Infrastructure as code",
		Why: "Servers, databases and networks are described in files reviewed like code, so a lost machine is rebuilt by a command, not from someone's memory."}
	if len(f.iac) == 0 {
		g.Status = Missing
		g.Evidence = append(g.Evidence, "no Terraform, OpenTofu, Pulumi, CloudFormation, Bicep, Kubernetes, Helm or Kustomize files in the repository")
		g.Step = "Describe the servers in code in this repository: Terraform (or OpenTofu) for machines and databases, or Kubernetes manifests for a cluster, applied by CI with `terraform apply`."
		return g
	}
	g.Evidence = append(g.Evidence, summarize(f.iac))
	if cs := f.ciRunning(iacApply, false); len(cs) > 0 {
		g.Status = Installed
		g.Evidence = append(g.Evidence, "CI applies it: "+paths(cs))
		return g
	}
	g.Status = Partly
	g.Evidence = append(g.Evidence, "no CI file applies it (terraform apply, kubectl apply, helm upgrade, pulumi up...)")
	g.Step = "Apply the infrastructure from CI (for example `terraform apply` in a job on the main branch), so that what the repository says is what runs."
	return g
}

func staging(f *facts) Gate {
	g := Gate{ID: GateStaging, Title: "A staging that matches production",
		Why: "Every release runs first somewhere built like production, and Shipgate refuses to deploy while the two differ, so staging's green means something."}
	if g, done := f.configProblem(g); done {
		if g.Status == Missing {
			g.Step = noConfigStep + " Give it a staging and a production environment."
		}
		return g
	}
	if f.prod == "" {
		g.Status = Missing
		g.Evidence = append(g.Evidence, "no environment is production (none is named production, and the pipeline does not say)")
		g.Step = "Name the production environment production in shipgate.yaml, and add a staging before it: pipeline: [staging, production]."
		return g
	}
	if f.staging == "" {
		g.Status = Missing
		g.Evidence = append(g.Evidence, "only "+f.prod+": no staging environment before it")
		g.Step = fmt.Sprintf("Add a staging environment to %s and put it before %s: pipeline: [staging, %s].", f.in.ConfigName, f.prod, f.prod)
		return g
	}
	var steps []string
	st, _ := f.cfg.Stage(f.prod)
	if st.Previous == f.staging {
		g.Evidence = append(g.Evidence, fmt.Sprintf("%s comes before %s in the pipeline: a release reaches %s only after %s", f.staging, f.prod, f.prod, f.staging))
	} else {
		g.Evidence = append(g.Evidence, fmt.Sprintf("%s exists but the pipeline does not put it before %s", f.staging, f.prod))
		steps = append(steps, fmt.Sprintf("Put %s before %s in the pipeline (pipeline: [%s, %s]) so that no release reaches %s without passing %s.", f.staging, f.prod, f.staging, f.prod, f.prod, f.staging))
	}
	if st.Env.Gates.Drift != nil {
		against := st.Env.Gates.Drift.Against
		if against == "" {
			against = st.Previous
		}
		g.Evidence = append(g.Evidence, fmt.Sprintf("%s has a drift gate against %s", f.prod, against))
	} else {
		g.Evidence = append(g.Evidence, f.prod+" has no drift gate: nothing refuses a deploy while it differs from "+f.staging)
		steps = append(steps, fmt.Sprintf("Add gates: {drift: {against: %s}} to %s, so that a deploy is refused while the two differ.", f.staging, f.prod))
	}
	if h := f.in.History; h == nil {
		g.Evidence = append(g.Evidence, "drift now: not checked (no server)")
	} else {
		measured := false
		for _, d := range h.Drift {
			if d.Env != f.prod {
				continue
			}
			measured = true
			if d.OK {
				g.Evidence = append(g.Evidence, fmt.Sprintf("drift now: %s matches %s within what is allowed", d.Env, d.Against))
			} else {
				g.Evidence = append(g.Evidence, fmt.Sprintf("drift now: %s differs from %s: %s", d.Env, d.Against, d.Detail))
				steps = append(steps, fmt.Sprintf("Make %s match %s again (`shipgate drift --env %s` lists the differences), or allow the ones that are intended.", d.Env, d.Against, d.Env))
			}
		}
		if !measured && st.Env.Gates.Drift != nil {
			g.Evidence = append(g.Evidence, "drift now: the server did not measure it")
		}
	}
	g.Status, g.Step = verdict(steps)
	return g
}

func browserTests(f *facts) Gate {
	g := Gate{ID: GateBrowserTests, Title: "Real-browser tests that block the merge",
		Why: "A robot clicks through the product in a real browser on every change, and a red result stops the release, so customers are not the ones who find the broken checkout."}
	if len(f.browser) == 0 {
		g.Status = Missing
		g.Evidence = append(g.Evidence, "no Playwright, Cypress, Selenium or WebdriverIO config or dependency in the repository")
		g.Step = "Add Playwright (`npm init playwright@latest`) with one test of the main user journey, run `npx playwright test` in CI on every pull request, and record it with `shipgate release create ... --check e2e=passed` required by gates: {checks: [e2e]} in production."
		return g
	}
	g.Evidence = append(g.Evidence, summarize(f.browser))
	var steps []string
	runs := f.ciRunning(browserRun, true)
	if len(runs) > 0 {
		g.Evidence = append(g.Evidence, "CI runs them on every pull request: "+paths(runs))
	} else {
		g.Evidence = append(g.Evidence, "no CI file runs them on pull requests")
		steps = append(steps, "Run the browser tests in CI on every pull request (`npx playwright test` or `npx cypress run` in a job triggered by pull_request) and make that job required in the branch protection.")
	}
	if name, env := f.browserCheck(runs); name != "" {
		g.Evidence = append(g.Evidence, fmt.Sprintf("%s requires the check %s before a release", env, name))
	} else {
		g.Evidence = append(g.Evidence, "no environment requires their result as a release check")
		prod := f.prod
		if prod == "" {
			prod = "production"
		}
		steps = append(steps, fmt.Sprintf("Record their result with `shipgate release create APP VERSION --check e2e=passed` in CI and require it: gates: {checks: [e2e]} in %s.", prod))
	}
	g.Status, g.Step = verdict(steps)
	return g
}

// browserCheck returns a required release check that carries the browser
// tests' result: one that the CI files running them record, or one named
// like them, and the environment that requires it.
func (f *facts) browserCheck(runs []ciFile) (name, env string) {
	if f.cfg == nil {
		return "", ""
	}
	// A check carries the browser tests' result when it is recorded in
	// the job that runs them: CI stops a job at its first failed command.
	recorded := map[string]bool{}
	for _, c := range runs {
		for _, job := range splitJobs(c.text) {
			if !browserRun.MatchString(job) {
				continue
			}
			for _, m := range checkFlag.FindAllStringSubmatch(job, -1) {
				recorded[m[1]] = true
			}
		}
	}
	for _, e := range sortedEnvs(f) {
		if slices.Contains(f.cfg.Environments[e].Gates.RequireLevels, "e2e") {
			return "require_levels: e2e", e
		}
		for _, c := range f.cfg.Environments[e].Gates.Checks {
			if recorded[c] || browserName.MatchString(c) {
				return c, e
			}
		}
	}
	return "", ""
}

// splitJobs cuts a CI file into its jobs, roughly: at each line that
// starts one.
func splitJobs(text string) []string {
	var jobs []string
	last := 0
	for _, loc := range jobStart.FindAllStringIndex(text, -1) {
		jobs = append(jobs, text[last:loc[0]])
		last = loc[0]
	}
	return append(jobs, text[last:])
}

func canary(f *facts) Gate {
	g := Gate{ID: GateCanary, Title: "A small canary that rolls back by itself",
		Why: "A new version first meets a few percent of users for several minutes while its errors and speed are measured, and bad numbers move everyone back without waking anyone."}
	if g, done := f.configProblem(g); done {
		return g
	}
	if f.prod == "" {
		g.Status = Missing
		g.Evidence = append(g.Evidence, "no environment is production")
		g.Step = "Name the production environment production in shipgate.yaml; the default canary (5% for 10m, then 25%, 50%) applies to it."
		return g
	}
	st, _ := f.cfg.Stage(f.prod)
	c := st.Strategy.Canary
	if c == nil {
		kind := "blue-green"
		if st.Strategy.Rolling != nil {
			kind = "rolling"
		}
		g.Status = Partly
		g.Evidence = append(g.Evidence, fmt.Sprintf("%s deploys %s: every user meets the new version at once, or by whole instances", f.prod, kind))
		g.Step = fmt.Sprintf("Use a canary in %s: strategy: {canary: {steps: [{weight: 5, bake: 10m}, {weight: 25, bake: 15m}, {weight: 50, bake: 15m}]}}.", f.prod)
		return g
	}
	var steps []string
	first := c.Steps[0]
	g.Evidence = append(g.Evidence, fmt.Sprintf("%s canary starts at %d%% for %s", f.prod, first.Weight, short(first.Bake.D())))
	switch {
	case first.Weight > maxCanaryWeight:
		steps = append(steps, fmt.Sprintf("Start the %s canary at %d%% or less: steps: [{weight: 5, bake: 10m}, ...].", f.prod, maxCanaryWeight))
	case first.Bake.D() < minCanaryBake:
		steps = append(steps, fmt.Sprintf("Bake the first canary step of %s at least %s (bake: 10m), long enough to see real traffic.", f.prod, minCanaryBake))
	}
	var gates []string
	for _, ag := range st.Analysis.Gates {
		gates = append(gates, string(ag.Metric))
	}
	if len(gates) > 0 {
		g.Evidence = append(g.Evidence, "automatic rollback when a gate fails: "+strings.Join(gates, ", "))
	} else {
		steps = append(steps, "Add analysis gates (error_rate, latency_p99) so that a bad canary rolls back by itself.")
	}
	g.Status, g.Step = verdict(steps)
	return g
}

func rollback(f *facts) Gate {
	g := Gate{ID: GateRollback, Title: "Every deploy reversible in under 90 seconds, and logged",
		Why: "Undoing a bad release is one command that puts the old version back in seconds; it is rehearsed, timed, and written down with who, what and why."}
	if g, done := f.configProblem(g); done {
		return g
	}
	var steps []string
	within := defaultDrillWithin
	drillGate := false
	if f.prod != "" {
		if d := f.cfg.Environments[f.prod].Gates.DrillWithin.D(); d > 0 {
			within, drillGate = d, true
			g.Evidence = append(g.Evidence, fmt.Sprintf("%s refuses a deploy without a rollback drill in the last %s", f.prod, days(d)))
		}
	}
	drillEnv := f.staging
	if drillEnv == "" {
		drillEnv = f.prod
	}
	h := f.in.History
	if h == nil {
		g.Evidence = append(g.Evidence, "rollback times and drills: not checked (no server)")
		if !drillGate {
			g.Status = Missing
			g.Step = fmt.Sprintf("Run `shipgate drill --env %s --wait` to rehearse a rollback, and add gates: {drill_within: 720h} to %s.", drillEnv, orProd(f.prod))
			return g
		}
		g.Status = Partly
		g.Step = "Run doctor where it can reach the shipgate server (--server), so that it can measure the rollbacks."
		return g
	}
	var restore []time.Duration
	var rollbacks []Rollout
	var lastDrill time.Time
	for _, r := range h.Rollouts {
		if !r.RollbackStartedAt.IsZero() {
			rollbacks = append(rollbacks, r)
			if !r.TrafficRestoredAt.IsZero() {
				restore = append(restore, r.TrafficRestoredAt.Sub(r.RollbackStartedAt))
			}
		}
		if r.Kind == "drill" && r.Phase == "succeeded" && r.FinishedAt.After(lastDrill) {
			lastDrill = r.FinishedAt
		}
	}
	if len(restore) > 0 {
		med := median(restore)
		g.Evidence = append(g.Evidence, fmt.Sprintf("%s measured: median %s from the decision to all traffic back", plural(len(restore), "rollback"), seconds(med)))
		if med > maxRestore {
			steps = append(steps, fmt.Sprintf("Bring the median rollback under %s (now %s): keep the old release running longer after a promotion (scale_down_delay) so that a rollback is a routing change.", seconds(maxRestore), seconds(med)))
		}
	} else {
		g.Evidence = append(g.Evidence, "no rollback recorded yet")
	}
	switch {
	case lastDrill.IsZero():
		g.Evidence = append(g.Evidence, "no successful rollback drill")
		steps = append(steps, fmt.Sprintf("Run `shipgate drill --env %s --wait` to rehearse a rollback and time it.", drillEnv))
	case f.in.Now.Sub(lastDrill) > within:
		g.Evidence = append(g.Evidence, fmt.Sprintf("last successful drill %s ago, more than %s", days(f.in.Now.Sub(lastDrill)), days(within)))
		steps = append(steps, fmt.Sprintf("Run `shipgate drill --env %s --wait`: the last drill is older than %s.", drillEnv, days(within)))
	default:
		g.Evidence = append(g.Evidence, fmt.Sprintf("last successful drill %s ago", days(f.in.Now.Sub(lastDrill))))
	}
	if len(rollbacks) > 0 {
		audited := map[string]bool{}
		for _, ev := range h.Audit {
			if ev.Action == audit.ActionRollbackAuto || ev.Action == audit.ActionRollbackManual {
				audited[ev.Data["rollout"]] = true
			}
		}
		var unlogged []string
		for _, r := range rollbacks {
			if !audited[strconv.FormatInt(r.ID, 10)] {
				unlogged = append(unlogged, strconv.FormatInt(r.ID, 10))
			}
		}
		if len(unlogged) == 0 {
			g.Evidence = append(g.Evidence, "every rollback is in the audit log with who and why")
		} else {
			g.Evidence = append(g.Evidence, "rollbacks missing from the audit log: rollouts "+strings.Join(unlogged, ", "))
			steps = append(steps, "Check the audit log (`shipgate audit verify`): rollbacks of rollouts "+strings.Join(unlogged, ", ")+" were not logged.")
		}
	}
	if !drillGate {
		steps = append(steps, fmt.Sprintf("Add gates: {drill_within: 720h} to %s, so that a deploy is refused when no rollback was rehearsed in 30 days.", orProd(f.prod)))
	}
	switch {
	case len(restore) == 0 && lastDrill.IsZero() && !drillGate:
		g.Status, g.Step = Missing, steps[0]
	default:
		g.Status, g.Step = verdict(steps)
	}
	return g
}

func mondayReport(f *facts) Gate {
	g := Gate{ID: GateMondayReport, Title: "One number on Monday morning",
		Why: "Every Monday the team gets how often it shipped, how long changes took, how often they failed and how fast it recovered, and can see the trend."}
	var configured []string
	if _, ok := f.cfgRaw["report"]; ok {
		configured = append(configured, f.in.ConfigName+" has a report section")
	}
	if n, ok := f.cfgRaw["notifications"].(map[string]any); ok && n["report"] != nil {
		configured = append(configured, f.in.ConfigName+" schedules the weekly report (notifications.report)")
	}
	for _, c := range f.ci {
		if c.scheduled && reportRun.MatchString(c.text) {
			configured = append(configured, "a scheduled CI job sends it: "+c.path)
		}
	}
	step := "Schedule `shipgate report` for Monday morning: a CI job with on: schedule: [{cron: '0 8 * * 1'}] that runs it and posts the result to the team's channel."
	if len(configured) == 0 {
		g.Status = Missing
		g.Evidence = append(g.Evidence, "no report section in the config and no scheduled CI job runs shipgate report or dora")
		g.Step = step
		return g
	}
	g.Evidence = append(g.Evidence, configured...)
	h := f.in.History
	if h == nil {
		g.Evidence = append(g.Evidence, "reports sent: not checked (no server)")
		g.Status = Partly
		g.Step = "Run doctor where it can reach the shipgate server (--server), so that it can see the reports sent."
		return g
	}
	var last time.Time
	for _, ev := range h.Audit {
		if strings.HasPrefix(ev.Action, "report.") && ev.Outcome != "failed" && ev.Time.After(last) {
			last = ev.Time
		}
	}
	switch {
	case last.IsZero():
		g.Evidence = append(g.Evidence, "no report sent yet, by the audit log")
		g.Status, g.Step = Partly, "Make sure the scheduled job runs and reaches the server: no report is in the audit log yet."
	case f.in.Now.Sub(last) > reportEvery:
		g.Evidence = append(g.Evidence, fmt.Sprintf("last report sent %s ago", days(f.in.Now.Sub(last))))
		g.Status, g.Step = Partly, "The last report is more than a week old: check that the scheduled job still runs."
	default:
		g.Evidence = append(g.Evidence, fmt.Sprintf("last report sent %s ago", days(f.in.Now.Sub(last))))
		g.Status = Installed
	}
	return g
}

// verdict is installed without steps, else partly with the first step.
func verdict(steps []string) (Status, string) {
	if len(steps) == 0 {
		return Installed, ""
	}
	return Partly, steps[0]
}

func sortedEnvs(f *facts) []string {
	var out []string
	for name := range f.cfg.Environments {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// pipelineGuess orders the environments for a suggested pipeline: the
// configured pipeline, then the others, production last.
func pipelineGuess(f *facts) []string {
	var out []string
	for _, e := range f.cfg.Pipeline {
		if e != f.prod {
			out = append(out, e)
		}
	}
	for _, e := range sortedEnvs(f) {
		if !slices.Contains(out, e) && e != f.prod {
			out = append(out, e)
		}
	}
	if f.prod != "" {
		out = append(out, f.prod)
	}
	return out
}

// summarize lists evidence grouped by kind: "Terraform (infra/main.tf,
// infra/db.tf)".
func summarize(fs []found) string {
	var kinds []string
	byKind := map[string][]string{}
	for _, x := range fs {
		if _, ok := byKind[x.kind]; !ok {
			kinds = append(kinds, x.kind)
		}
		byKind[x.kind] = append(byKind[x.kind], x.path)
	}
	var parts []string
	for _, k := range kinds {
		ps := byKind[k]
		if len(ps) > 3 {
			ps = append(ps[:3:3], fmt.Sprintf("%d more", len(byKind[k])-3))
		}
		parts = append(parts, k+" ("+strings.Join(ps, ", ")+")")
	}
	return "found " + strings.Join(parts, "; ")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
}

// days writes a duration in days, or hours under two days.
func days(d time.Duration) string {
	if d < 48*time.Hour {
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

// short writes a duration without its zero units: 10m, 1h30m, 45s.
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func orProd(p string) string {
	if p == "" {
		return "production"
	}
	return p
}
