package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/shipgate/shipgate/internal/config"
)

// Limits of the repository walk: doctor reads configuration files, not
// the whole tree.
const (
	maxFiles    = 50000
	maxFileSize = 1 << 20
)

// skipDirs are directories that hold no file of the team's own.
var skipDirs = []string{".git", "node_modules", "vendor", "testdata", ".terraform", ".venv", "venv", "dist", "build", "target", ".shipgate"}

// facts is what doctor found, shared by the judges.
type facts struct {
	in      Input
	cfg     *config.Config
	cfgErr  string
	cfgRaw  map[string]any
	ci      []ciFile
	iac     []found
	browser []found
	// prod and staging name those environments, "" when there is none.
	prod, staging string
}

// ciFile is one CI configuration file.
type ciFile struct {
	path, system string
	text         string
	// onChange is true when the file runs on pull or merge requests (or,
	// for systems without such a trigger in the file, on every push).
	onChange bool
	// scheduled is true when the file has a time-based trigger.
	scheduled bool
}

// found is one piece of evidence in the repository: what, and where.
type found struct {
	kind, path string
}

func (f found) String() string { return f.kind + " (" + f.path + ")" }

func gather(in Input) *facts {
	f := &facts{in: in}
	f.loadConfig()
	f.walk()
	f.pickEnvironments()
	return f
}

func (f *facts) loadConfig() {
	data, err := f.in.ConfigData, error(nil)
	if data == nil && f.in.Repo != nil {
		data, err = fs.ReadFile(f.in.Repo, f.in.ConfigPath)
	}
	switch {
	case data == nil && err == nil:
		return
	case errors.Is(err, fs.ErrNotExist):
		return
	case err != nil:
		f.cfgErr = err.Error()
		return
	}
	_ = yaml.Unmarshal(data, &f.cfgRaw)
	cfg, err := config.Parse(f.in.ConfigName, data)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) && len(ce.Problems) > 0 {
			p := ce.Problems[0]
			f.cfgErr = fmt.Sprintf("%s:%d: %s: %s", f.in.ConfigName, p.Line, p.Field, p.Message)
			if len(ce.Problems) > 1 {
				f.cfgErr += fmt.Sprintf(" (and %s more)", plural(len(ce.Problems)-1, "problem"))
			}
		} else {
			f.cfgErr = err.Error()
		}
		return
	}
	f.cfg = cfg
}

var (
	k8sKind       = regexp.MustCompile(`(?m)^kind:\s*\S`)
	k8sAPIVersion = regexp.MustCompile(`(?m)^apiVersion:\s*\S`)
	cfnTemplate   = regexp.MustCompile(`(?m)AWSTemplateFormatVersion|^\s+Type:\s*["']?AWS::`)
)

// walk visits the repository once and sorts what it finds.
func (f *facts) walk() {
	if f.in.Repo == nil {
		return
	}
	n := 0
	_ = fs.WalkDir(f.in.Repo, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable: doctor reports what it could read
		}
		if d.IsDir() {
			if p != "." && slices.Contains(skipDirs, d.Name()) {
				return fs.SkipDir
			}
			return nil
		}
		if n++; n > maxFiles {
			return fs.SkipAll
		}
		f.visit(p, d)
		return nil
	})
}

func (f *facts) read(p string) string {
	info, err := fs.Stat(f.in.Repo, p)
	if err != nil || info.Size() > maxFileSize {
		return ""
	}
	b, err := fs.ReadFile(f.in.Repo, p)
	if err != nil {
		return ""
	}
	return string(b)
}

func (f *facts) visit(p string, d fs.DirEntry) {
	name := d.Name()
	ext := path.Ext(name)
	dir := path.Dir(p)
	yamlFile := ext == ".yml" || ext == ".yaml"
	switch {
	case dir == ".github/workflows" && yamlFile:
		f.addCI(p, "GitHub Actions")
		return
	case p == ".gitlab-ci.yml":
		f.addCI(p, "GitLab CI")
		return
	case name == "Jenkinsfile":
		f.addCI(p, "Jenkins")
		return
	case p == ".circleci/config.yml":
		f.addCI(p, "CircleCI")
		return
	}
	switch {
	case ext == ".tf" || strings.HasSuffix(name, ".tf.json"):
		f.iac = append(f.iac, found{"Terraform", p})
	case ext == ".tofu":
		f.iac = append(f.iac, found{"OpenTofu", p})
	case name == "Pulumi.yaml" || name == "Pulumi.yml":
		f.iac = append(f.iac, found{"Pulumi", p})
	case ext == ".bicep":
		f.iac = append(f.iac, found{"Bicep", p})
	case name == "Chart.yaml":
		f.iac = append(f.iac, found{"Helm chart", p})
	case name == "kustomization.yaml" || name == "kustomization.yml":
		f.iac = append(f.iac, found{"Kustomize", p})
	case (yamlFile || ext == ".json" || ext == ".template") && p != f.in.ConfigPath && !strings.HasPrefix(p, ".") && !strings.Contains(p, "/templates/"):
		text := f.read(p)
		switch {
		case cfnTemplate.MatchString(text):
			f.iac = append(f.iac, found{"CloudFormation", p})
		case yamlFile && k8sKind.MatchString(text) && k8sAPIVersion.MatchString(text):
			f.iac = append(f.iac, found{"Kubernetes manifest", p})
		}
	}
	f.visitBrowser(p, name)
}

// browserConfigs are the config files of browser test tools.
var browserConfigs = map[string]string{
	"playwright.config.ts": "Playwright", "playwright.config.js": "Playwright", "playwright.config.mjs": "Playwright", "playwright.config.cjs": "Playwright",
	"cypress.config.ts": "Cypress", "cypress.config.js": "Cypress", "cypress.config.mjs": "Cypress", "cypress.config.cjs": "Cypress", "cypress.json": "Cypress",
	"wdio.conf.js": "WebdriverIO", "wdio.conf.ts": "WebdriverIO",
}

// browserDeps are dependencies that mean browser tests, by the manifest
// that declares them.
var browserDeps = []struct{ manifest, dep, tool string }{
	{"package.json", `"@playwright/test"`, "Playwright"},
	{"package.json", `"cypress"`, "Cypress"},
	{"package.json", `"selenium-webdriver"`, "Selenium"},
	{"package.json", `"webdriverio"`, "WebdriverIO"},
	{"requirements.txt", "selenium", "Selenium"},
	{"requirements.txt", "playwright", "Playwright"},
	{"pyproject.toml", "selenium", "Selenium"},
	{"pyproject.toml", "playwright", "Playwright"},
	{"pom.xml", "selenium-java", "Selenium"},
	{"build.gradle", "selenium-java", "Selenium"},
	{"go.mod", "github.com/playwright-community/playwright-go", "Playwright"},
	{"go.mod", "github.com/tebeka/selenium", "Selenium"},
}

func (f *facts) visitBrowser(p, name string) {
	if tool, ok := browserConfigs[name]; ok {
		f.browser = append(f.browser, found{tool + " config", p})
		return
	}
	var text string
	for _, b := range browserDeps {
		if b.manifest != name {
			continue
		}
		if text == "" {
			text = f.read(p)
		}
		if strings.Contains(text, b.dep) {
			f.browser = append(f.browser, found{b.tool + " dependency", p})
		}
	}
}

var (
	ghOnChange = regexp.MustCompile(`(?m)^\s*-?\s*(pull_request|pull_request_target|merge_group)\b|^on:\s*\[?[^\n]*\bpull_request\b`)
	ghSchedule = regexp.MustCompile(`(?m)^\s*schedule:|^\s*-?\s*cron:`)
	glOnChange = regexp.MustCompile(`merge_request_event|merge_requests`)
	glRules    = regexp.MustCompile(`(?m)^\s*(rules|only|workflow):`)
	glSchedule = regexp.MustCompile(`"schedule"|== "schedule"|schedules`)
	jkSchedule = regexp.MustCompile(`cron\s*\(`)
	ccSchedule = regexp.MustCompile(`(?m)^\s*(scheduled-pipelines|triggers:|cron:)`)
)

func (f *facts) addCI(p, system string) {
	c := ciFile{path: p, system: system, text: f.read(p)}
	switch system {
	case "GitHub Actions":
		c.onChange = ghOnChange.MatchString(c.text)
		c.scheduled = ghSchedule.MatchString(c.text)
	case "GitLab CI":
		// A GitLab pipeline without rules runs on every push, merge
		// requests included.
		c.onChange = glOnChange.MatchString(c.text) || !glRules.MatchString(c.text)
		c.scheduled = glSchedule.MatchString(c.text)
	case "Jenkins":
		c.onChange = true
		c.scheduled = jkSchedule.MatchString(c.text)
	case "CircleCI":
		c.onChange = true
		c.scheduled = ccSchedule.MatchString(c.text)
	}
	f.ci = append(f.ci, c)
}

// ciRunning returns the CI files whose text matches re, and only those
// that run on changes when onChange is set.
func (f *facts) ciRunning(re *regexp.Regexp, onChange bool) []ciFile {
	var out []ciFile
	for _, c := range f.ci {
		if re.MatchString(c.text) && (!onChange || c.onChange) {
			out = append(out, c)
		}
	}
	return out
}

// pickEnvironments finds production (production, prod, or the last stage
// of the pipeline, or the only environment) and staging (staging, stage,
// or the stage before production).
func (f *facts) pickEnvironments() {
	if f.cfg == nil {
		return
	}
	envs := f.cfg.Environments
	for _, name := range []string{"production", "prod"} {
		if envs[name] != nil {
			f.prod = name
			break
		}
	}
	if f.prod == "" && len(f.cfg.Pipeline) > 0 {
		f.prod = f.cfg.Pipeline[len(f.cfg.Pipeline)-1]
	}
	if f.prod == "" && len(envs) == 1 {
		for name := range envs {
			f.prod = name
		}
	}
	for _, name := range []string{"staging", "stage"} {
		if envs[name] != nil && name != f.prod {
			f.staging = name
			break
		}
	}
	if f.staging == "" && f.prod != "" {
		if st, err := f.cfg.Stage(f.prod); err == nil {
			f.staging = st.Previous
		}
	}
}

func paths(cs []ciFile) string {
	var ps []string
	for _, c := range cs {
		ps = append(ps, c.path)
	}
	return strings.Join(ps, ", ")
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
