package rollout

import (
	"errors"
	"strings"
	"testing"
)

func TestIrreversibleGate(t *testing.T) {
	irr := []string{"007_merge_accounts (rows merged; the old split cannot be rebuilt)"}
	without := &Spec{Name: "production"}
	with := &Spec{Name: "production", Gates: GatesSpec{Approval: &ApprovalRule{Required: 1}}}

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
