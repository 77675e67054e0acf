package config

import "time"

// Defaults are set before a value is decoded, so that a field the file
// leaves out keeps its default while a field the file sets, even to zero,
// keeps what the file says and is validated as written. The values are the
// ones promised in the doc comments of config.go.

// defaulter is implemented by the types whose zero value is not their
// default; the decoder calls setDefaults on every new one before filling it.
type defaulter interface {
	setDefaults()
}

var (
	_ defaulter = (*Config)(nil)
	_ defaulter = (*Canary)(nil)
	_ defaulter = (*CanaryStep)(nil)
	_ defaulter = (*SmokeCheck)(nil)
	_ defaulter = (*Analysis)(nil)
	_ defaulter = (*BlueGreen)(nil)
	_ defaulter = (*Rolling)(nil)
	_ defaulter = (*Internal)(nil)
	_ defaulter = (*Hotfix)(nil)
	_ defaulter = (*Approval)(nil)
)

func (a *Approval) setDefaults() {
	a.Required = 1
}

func (c *Config) setDefaults() {
	c.Run.setDefaults()
	c.Analysis.setDefaults()
}

func (r *Run) setDefaults() {
	r.Instances = 2
	r.Health.setDefaults()
	r.StartTimeout = Duration(30 * time.Second)
	r.StopGrace = Duration(10 * time.Second)
}

func (h *Health) setDefaults() {
	h.Path = "/healthz"
	h.Interval = Duration(time.Second)
	h.Timeout = Duration(time.Second)
	h.FailureThreshold = 3
}

func (c *Canary) setDefaults() {
	c.ScaleDownDelay = Duration(30 * time.Second)
}

func (b *BlueGreen) setDefaults() {
	b.KeepBlue = Duration(10 * time.Minute)
	b.Analysis = Duration(time.Minute)
}

func (r *Rolling) setDefaults() {
	r.MaxSurge = 1
	r.MaxUnavailable = 0
	r.Bake = Duration(30 * time.Second)
}

func (i *Internal) setDefaults() {
	i.Bake = Duration(10 * time.Minute)
}

func (h *Hotfix) setDefaults() {
	h.BakeScale = 0.1
}

func (s *CanaryStep) setDefaults() {
	s.Bake = Duration(10 * time.Minute)
}

func (a *Analysis) setDefaults() {
	a.Interval = Duration(10 * time.Second)
	a.MinRequests = 50
	a.FailConfidence = 0.99
	a.PassConfidence = 0.95
	a.OnInconclusive = InconclusivePause
}

func (s *SmokeCheck) setDefaults() {
	s.ExpectStatus = 200
	s.Timeout = Duration(5 * time.Second)
}

// defaultSteps is the canary of a config that sets no steps.
func defaultSteps() []CanaryStep {
	return []CanaryStep{
		{Weight: 5, Bake: Duration(10 * time.Minute)},
		{Weight: 25, Bake: Duration(15 * time.Minute)},
		{Weight: 50, Bake: Duration(15 * time.Minute)},
	}
}

// defaultGates are the gates of a config that sets none.
func defaultGates() []Gate {
	return []Gate{
		{Metric: MetricErrorRate, Max: &Threshold{Value: 0.01}},
		{Metric: MetricLatencyP99, MaxRatioToStable: 2},
	}
}

// fillEmpty sets the defaults that depend on the whole decoded file rather
// than on one field: the app's strategy when it sets none, empty lists of
// steps and gates, and the environment a drift gate compares with.
//
// An environment's strategy and analysis replace the app's as a whole, so
// they are filled the same way; an environment's strategy that sets
// nothing is left empty for validation to refuse, since leaving it out is
// the way to use the app's.
func (c *Config) fillEmpty() {
	if len(c.Strategy.set()) == 0 {
		c.Strategy.Canary = &Canary{}
		c.Strategy.Canary.setDefaults()
	}
	c.Strategy.fillEmpty()
	c.Analysis.fillEmpty()
	for name, env := range c.Environments {
		if env == nil {
			continue
		}
		if env.Strategy != nil {
			env.Strategy.fillEmpty()
		}
		if env.Analysis != nil {
			env.Analysis.fillEmpty()
		}
		// Only a predecessor that exists is filled in: a wrong pipeline is
		// reported there, and not a second time as a missing against.
		if d := env.Gates.Drift; d != nil && d.Against == "" {
			if prev := c.previous(name); prev != "" && c.Environments[prev] != nil {
				d.Against = prev
			}
		}
	}
}

func (s *Strategy) fillEmpty() {
	if s.Canary != nil && len(s.Canary.Steps) == 0 {
		s.Canary.Steps = defaultSteps()
	}
}

func (a *Analysis) fillEmpty() {
	if len(a.Gates) == 0 {
		a.Gates = defaultGates()
	}
}
