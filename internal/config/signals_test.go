package config

import (
	"slices"
	"testing"
	"time"
)

func TestLoad_TestGatesDefaults(t *testing.T) {
	c, err := Load("testdata/valid/tests.yaml")
	if err != nil {
		t.Fatal(err)
	}
	g := c.Environments["production"].Gates
	if got, want := g.FlakyTests.MaxAge.D(), 48*time.Hour; got != want {
		t.Errorf("flaky_tests.max_age = %s, want the default %s", got, want)
	}
	if got, want := g.CITime.Max.D(), 20*time.Minute; got != want {
		t.Errorf("ci_time.max = %s, want %s", got, want)
	}
	if got, want := c.Tests.InfraFailureRatio, 0.5; got != want {
		t.Errorf("infra_failure_ratio = %g, want the default %g", got, want)
	}
	if got, want := c.Levels(), []string{"unit", "integration", "e2e", "contract"}; !slices.Equal(got, want) {
		t.Errorf("levels = %v, want %v", got, want)
	}
}
