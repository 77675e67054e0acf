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
)

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

func (s *CanaryStep) setDefaults() {
	s.Bake = Duration(10 * time.Minute)
}

func (a *Analysis) setDefaults() {
	a.Interval = Duration(10 * time.Second)
	a.MinRequests = 50
	a.FailConfidence = 0.99
	a.PassConfidence = 0.95
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
// than on one field: a missing strategy, and empty lists of steps and gates.
func (c *Config) fillEmpty() {
	if c.Strategy.Canary == nil {
		c.Strategy.Canary = &Canary{}
		c.Strategy.Canary.setDefaults()
	}
	if len(c.Strategy.Canary.Steps) == 0 {
		c.Strategy.Canary.Steps = defaultSteps()
	}
	if len(c.Analysis.Gates) == 0 {
		c.Analysis.Gates = defaultGates()
	}
}
