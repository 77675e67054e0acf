package config

import (
	"fmt"
	"strings"
)

// DefaultEnv returns the environment a command acts on when none is named:
// "production" if there is one, else the only environment.
func (c *Config) DefaultEnv() (string, error) {
	if _, ok := c.Environments["production"]; ok {
		return "production", nil
	}
	names := sortedKeys(c.Environments)
	if len(names) == 1 {
		return names[0], nil
	}
	if len(names) == 0 {
		return "", fmt.Errorf("%s declares no environments; add one under environments", c.source())
	}
	return "", fmt.Errorf("%s has several environments (%s) and none is named production; choose one with --env", c.source(), strings.Join(names, ", "))
}

// Environment returns the environment called name.
func (c *Config) Environment(name string) (*Environment, error) {
	if env, ok := c.Environments[name]; ok && env != nil {
		return env, nil
	}
	names := sortedKeys(c.Environments)
	if len(names) == 0 {
		return nil, fmt.Errorf("unknown environment %q: %s declares no environments", name, c.source())
	}
	return nil, fmt.Errorf("unknown environment %q: %s declares %s", name, c.source(), strings.Join(names, ", "))
}

func (c *Config) source() string {
	if c.Source == "" {
		return "the config"
	}
	return c.Source
}
