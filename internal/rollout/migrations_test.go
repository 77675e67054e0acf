package rollout

import (
	"errors"
	"strings"
	"testing"

	"github.com/shipgate/shipgate/internal/config"
)

func TestIrreversibleGate(t *testing.T) {
	irr := []string{"007_merge_accounts (rows merged; the old split cannot be rebuilt)"}
	without := &config.Stage{Name: "production", Env: &config.Environment{}}
	with := &config.Stage{Name: "production", Env: &config.Environment{Gates: config.Gates{Approval: &config.Approval{Required: 1}}}}

	if err := irreversibleGate(without, nil); err != nil {
		t.Errorf("no irreversible migration: %v", err)
	}
	err := irreversibleGate(without, irr)
	var ge *GateError
	if !errors.As(err, &ge) || ge.Gate != "migrations" || !strings.Contains(err.Error(), "007_merge_accounts (rows merged") ||
		!strings.Contains(err.Error(), "add gates: {approval: true} to environment production") {
		t.Errorf("without an approval gate: %v", err)
	}
	if err := irreversibleGate(with, irr); err != nil {
		t.Errorf("behind an approval: %v", err)
	}
}
