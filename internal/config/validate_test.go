package config

import (
	"strings"
	"testing"
)

// TestParse_Rules checks each rule of pipelines, gates, hotfixes and
// strategies once, with the exact problem it reports. Every case is a file
// that starts with "app: api" and a run on lines 1 and 2.
func TestParse_Rules(t *testing.T) {
	const envs = "environments:\n  staging: {listen: 127.0.0.1:9080}\n  production: {listen: 127.0.0.1:8080, sticky: {header: X-User-ID}}\n"
	for _, tt := range []struct {
		name, yaml, want string
	}{
		{"valid", envs + "pipeline: [staging, production]\nhotfix: {skip: [drift]}\n", ""},
		{"app strategy sets none", envs + "strategy: {}\n", ""},
		{"environment strategy sets none",
			"environments: {production: {listen: 127.0.0.1:8080, strategy: {}}}\n",
			"3:63: environments.production.strategy: set one of canary, blue_green, rolling, or leave strategy out to use the app's"},
		{"three strategies",
			"environments: {production: {listen: 127.0.0.1:8080}}\nstrategy:\n  rolling: {}\n  blue_green: {}\n  canary: {}\n",
			"6:3: strategy.blue_green: rolling is already set (line 5); set only one of canary, blue_green, rolling\n" +
				"7:3: strategy.canary: rolling is already set (line 5); set only one of canary, blue_green, rolling"},
		{"environment strategy sets two",
			"environments:\n  production:\n    listen: 127.0.0.1:8080\n    strategy: {canary: {}, rolling: {bake: 1m}}\n",
			"6:28: environments.production.strategy.rolling: canary is already set (line 6); set only one of canary, blue_green, rolling"},
		{"empty sections",
			"environments:\n  staging:\n    listen: 127.0.0.1:9080\n    strategy:\n      rolling:\n  production:\n    listen: 127.0.0.1:8080\n    gates: {drift: }\n" +
				"strategy:\n  canary:\n    internal:\nhotfix:\n",
			"7:7: environments.staging.strategy.rolling: rolling is empty, which leaves it unset; write rolling: {} to set it with its defaults, or remove it\n" +
				"10:13: environments.production.gates.drift: drift is empty, which leaves it unset; write drift: {} to set it with its defaults, or remove it\n" +
				"13:5: strategy.canary.internal: internal is empty, which leaves it unset; write internal: {} to set it with its defaults, or remove it\n" +
				"14:1: hotfix: hotfix is empty, which leaves it unset; write hotfix: {} to set it with its defaults, or remove it"},
		{"negative max_surge", envs + "strategy: {rolling: {max_surge: -1}}\n",
			"6:33: strategy.rolling.max_surge: must be at least 0, got -1"},
		{"negative max_unavailable", envs + "strategy: {rolling: {max_unavailable: -2}}\n",
			"6:39: strategy.rolling.max_unavailable: must be at least 0, got -2"},
		{"negative rolling bake", envs + "strategy: {rolling: {bake: -1s}}\n",
			"6:28: strategy.rolling.bake: must not be negative, got -1s"},
		{"negative keep_blue", envs + "strategy: {blue_green: {keep_blue: -1m, analysis: 0s}}\n",
			"6:36: strategy.blue_green.keep_blue: must not be negative, got -1m"},
		{"internal matches no one", envs + "strategy: {canary: {internal: {bake: 1m}}}\n",
			"6:31: strategy.canary.internal: set at least one of header, cookie and users, to say who is internal"},
		{"internal bad header and cookie", envs + "strategy: {canary: {internal: {header: X Internal, cookie: 'a;b'}}}\n",
			"6:40: strategy.canary.internal.header: must be a valid HTTP header name, like X-Internal, got \"X Internal\"\n" +
				"6:60: strategy.canary.internal.cookie: must be a valid cookie name, like internal, got \"a;b\""},
		{"internal empty header", envs + "strategy: {canary: {internal: {header: ''}}}\n",
			"6:40: strategy.canary.internal.header: must be a valid HTTP header name, like X-Internal, got \"\""},
		{"internal values without header", "environments: {production: {listen: 127.0.0.1:8080, sticky: {cookie: sid}}}\nstrategy: {canary: {internal: {users: [a], values: [x]}}}\n",
			"4:52: strategy.canary.internal.values: values are matched against the header or the cookie, and neither is set; set header or cookie, or remove values"},
		{"internal users empty and repeated", "environments: {production: {listen: 127.0.0.1:8080, sticky: {cookie: sid}}}\nstrategy: {canary: {internal: {users: [a, '', a], bake: -1m}}}\n",
			"4:43: strategy.canary.internal.users[1]: must be a user id, as sent in the sticky header or cookie; got an empty string\n" +
				"4:47: strategy.canary.internal.users[2]: \"a\" is already listed (users[0]); remove one\n" +
				"4:57: strategy.canary.internal.bake: must not be negative, got -1m"},
		{"environment's own internal users without sticky",
			"environments:\n  production:\n    listen: 127.0.0.1:8080\n    strategy: {canary: {internal: {users: [a]}}}\n",
			"4:3: environments.production.sticky: required by environments.production.strategy.canary.internal.users (line 6): internal users are recognised by the user id in the sticky header or cookie, and this environment sets neither; set sticky.header or sticky.cookie"},
		{"app's internal users, overridden where there is no sticky",
			envs + "strategy: {canary: {internal: {users: [a]}}}\n",
			"4:3: environments.staging.sticky: required by strategy.canary.internal.users (line 6): internal users are recognised by the user id in the sticky header or cookie, and this environment sets neither; set sticky.header or sticky.cookie, or give this environment a strategy of its own"},
		{"app's internal users, with an override",
			"environments:\n  staging: {listen: 127.0.0.1:9080, strategy: {rolling: {}}}\n  production: {listen: 127.0.0.1:8080, sticky: {header: X-User-ID}}\nstrategy: {canary: {internal: {users: [a]}}}\n",
			""},
		{"pipeline repeats", envs + "pipeline: [staging, production, staging]\n",
			"6:33: pipeline[2]: \"staging\" is already in the pipeline (pipeline[0]); list each environment once"},
		{"hotfix skips", envs + "hotfix: {skip: [aproval, post_smoke, drill, drill, tests], bake_scale: 0}\n",
			"6:17: hotfix.skip[0]: unknown gate \"aproval\"; did you mean \"approval\"?\n" +
				"6:26: hotfix.skip[1]: post_smoke checks are never skipped, not even by a hotfix: a release that fails them is broken; remove post_smoke\n" +
				"6:45: hotfix.skip[3]: \"drill\" is already listed (skip[2]); remove one\n" +
				"6:52: hotfix.skip[4]: unknown gate \"tests\"; use one of pipeline, checks, approval, drill, drift, flaky_tests, ci_time, require_levels\n" +
				"6:72: hotfix.bake_scale: must be greater than 0 and at most 1 (0.1 makes every bake a tenth as long), got 0"},
		{"hotfix bake_scale over 1", envs + "hotfix: {bake_scale: 1.5}\n",
			"6:22: hotfix.bake_scale: must be greater than 0 and at most 1 (0.1 makes every bake a tenth as long), got 1.5"},
		{"empty check name", "environments: {production: {listen: 127.0.0.1:8080, gates: {checks: ['', .hidden]}}}\n",
			"3:70: environments.production.gates.checks[0]: check names must be letters, digits, dots, dashes and underscores, starting with a letter or digit, like unit-tests, got \"\"\n" +
				"3:74: environments.production.gates.checks[1]: check names must be letters, digits, dots, dashes and underscores, starting with a letter or digit, like unit-tests, got \".hidden\""},
		{"approval not a bool", "environments: {production: {listen: 127.0.0.1:8080, gates: {approval: yes}}}\n",
			"3:71: environments.production.gates.approval: must be true, false or a mapping (required, prevent_self_approval, roles), got \"yes\""},
		{"approval of a role that cannot approve", "environments: {production: {listen: 127.0.0.1:8080, gates: {approval: {required: 2, roles: [viewer]}}}}\n",
			"3:93: environments.production.gates.approval.roles[0]: must be deployer or admin (the roles that can call approve), got \"viewer\""},
		{"negative drill_within", "environments: {production: {listen: 127.0.0.1:8080, gates: {drill_within: -24h}}}\n",
			"3:75: environments.production.gates.drill_within: must not be negative, got -24h"},
		{"drift without a predecessor",
			"environments:\n  staging: {listen: 127.0.0.1:9080, gates: {drift: {allow: [vars]}}}\n  production: {listen: 127.0.0.1:8080}\npipeline: [staging, production]\n",
			"4:45: environments.staging.gates.drift.against: required: \"staging\" has no environment before it in the pipeline; name the environment to compare with, like against: production"},
		{"drift against an unknown environment, allowing too much",
			"environments:\n  staging: {listen: 127.0.0.1:9080}\n  production:\n    listen: 127.0.0.1:8080\n    gates: {drift: {against: stagin, allow: [vars, secrets, vars]}}\n",
			"7:30: environments.production.gates.drift.against: unknown environment \"stagin\"; did you mean \"staging\"?\n" +
				"7:52: environments.production.gates.drift.allow[1]: unknown kind of difference \"secrets\"; use one of vars, command, instances, migrations\n" +
				"7:61: environments.production.gates.drift.allow[2]: \"vars\" is already listed (allow[0]); remove one"},
		{"drift with one environment", "environments: {production: {listen: 127.0.0.1:8080, gates: {drift: {}}}}\n",
			"3:68: environments.production.gates.drift: there is no other environment to compare \"production\" with; remove drift"},
		{"drift with a wrong pipeline", "environments:\n  staging: {listen: 127.0.0.1:9080}\n  production:\n    listen: 127.0.0.1:8080\n    gates: {drift: {}}\npipeline: [stage, production]\n",
			"8:12: pipeline[0]: unknown environment \"stage\"; use one of production, staging"},
		{"bad preview_listen", "environments: {production: {listen: 127.0.0.1:8080, preview_listen: ':8081'}}\n",
			"3:69: environments.production.preview_listen: bad preview_listen address \":8081\": the host is missing; write \"127.0.0.1:8081\" to serve this machine only, or \"0.0.0.0:8081\" to serve every network"},
		{"empty preview_listen", "environments: {production: {listen: 127.0.0.1:8080, preview_listen: ''}}\n",
			"3:69: environments.production.preview_listen: bad preview_listen address \"\": missing port in address; write host:port, like \"127.0.0.1:8080\""},
		{"preview_listen before a listen it clashes with",
			"environments:\n  staging: {preview_listen: 127.0.0.1:8080, listen: 127.0.0.1:9080}\n  production: {listen: 0.0.0.0:8080}\n",
			"5:24: environments.production.listen: \"0.0.0.0:8080\" overlaps \"127.0.0.1:8080\", the preview_listen address of environment \"staging\" (line 4); give every listen and preview_listen address its own port"},
		{"environment vars and instances",
			"environments:\n  production:\n    listen: 127.0.0.1:8080\n    vars: {VERSION: x, 1X: y, OK: z}\n    instances: 0\n  staging: {listen: 127.0.0.1:9080, instances: 101}\n",
			"6:12: environments.production.vars.VERSION: VERSION is set by shipgate for every instance; choose another name\n" +
				"6:24: environments.production.vars.1X: variable names must be letters, digits and underscores, not starting with a digit, got \"1X\"\n" +
				"7:16: environments.production.instances: must be between 1 and 100, got 0\n" +
				"8:48: environments.staging.instances: must be between 1 and 100, got 101"},
		{"environment analysis",
			"environments:\n  production:\n    listen: 127.0.0.1:8080\n    analysis:\n      interval: 0s\n      pass_confidence: 1\n      gates: [{metric: error_rate, max: 2}, {metric: latency_p50}]\n",
			"7:17: environments.production.analysis.interval: must be greater than 0, got 0s\n" +
				"8:24: environments.production.analysis.pass_confidence: must be between 0.5 and 0.9999, got 1\n" +
				"9:41: environments.production.analysis.gates[0].max: must be a fraction from 0 to 1 (0.005) or a percentage up to 100% (\"0.5%\") for error_rate, got 2\n" +
				"9:45: environments.production.analysis.gates[1]: the gate has no limit: set max (like \"250ms\"), max_ratio_to_stable (like 2) or both"},
		{"environment canary steps",
			"environments:\n  production:\n    listen: 127.0.0.1:8080\n    strategy: {canary: {steps: [{weight: 50}, {weight: 50}]}}\n",
			"6:56: environments.production.strategy.canary.steps[1].weight: weights not increasing: 50 after 50 in steps[0]; each step must send more users to the canary than the one before"},
		{"smoke checks everywhere",
			"environments:\n  production:\n    listen: 127.0.0.1:8080\n    smoke: [{path: healthz}]\n    post_smoke: [{path: /, expect_status: 99}]\npost_smoke: [{timeout: 0s}]\n",
			"6:20: environments.production.smoke[0].path: must start with \"/\", got \"healthz\"\n" +
				"7:43: environments.production.post_smoke[0].expect_status: must be an HTTP status code from 100 to 599, got 99\n" +
				"8:14: post_smoke[0].path: required: the path to request, like \"/healthz\"\n" +
				"8:24: post_smoke[0].timeout: must be greater than 0, got 0s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("shipgate.yaml", []byte("app: api\nrun: {command: [./api]}\n"+tt.yaml))
			want := ""
			if tt.want != "" {
				want = "shipgate.yaml:" + strings.ReplaceAll(tt.want, "\n", "\nshipgate.yaml:")
			}
			if got := errorText(err); got != want {
				t.Errorf("error:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
