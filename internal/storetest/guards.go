package storetest

import (
	"reflect"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/flags"
)

// This file is the contract of guarded flag rollouts in the store: the
// latest of each flag, written with the flag change that takes its step,
// read back whole by any server on the store.

func guardRecord(key string, step int, phase string) flags.GuardRecord {
	spec := flags.GuardSpec{Steps: []int{5, 25, 100}, Bake: 10 * time.Minute, Guards: []string{"error_rate<0.5%", "latency_p99<2x"},
		Interval: time.Second, MinRequests: 50, MaxWait: 30 * time.Minute}
	return flags.GuardRecord{Key: key, Spec: spec, Actor: "user:ana", Reason: "release the new checkout",
		Status: flags.GuardStatus{Key: key, Phase: phase, Step: step, Percent: spec.Steps[step], Steps: spec.Steps,
			Verdict: analysis.Pass, Started: t0, StepStarted: t0.Add(time.Duration(step) * 10 * time.Minute)},
		LastOff: &flags.Window{Requests: 900, Status5xx: 3, Latency: []uint64{0, 400, 500}}}
}

func testGuards(t *testing.T, b Backend) {
	path := b.Fresh(t)
	s := b.Open(t, path, nil)
	other := b.Open(t, path, nil) // a second server on the same store
	ctx := t.Context()
	if recs, err := s.LoadGuards(ctx); err != nil || len(recs) != 0 {
		t.Fatalf("LoadGuards on an empty store = %+v, %v", recs, err)
	}
	f := testFlag("checkout")
	first := guardRecord("checkout", 0, flags.GuardRunning)
	if err := s.CommitFlags(ctx, flags.Change{Put: []*flags.Flag{f}, Guards: []flags.GuardRecord{first},
		Audit: []audit.Event{{Actor: "user:ana", Action: flags.ActionGuardStep, Subject: "flag/checkout"}}}); err != nil {
		t.Fatalf("CommitFlags with a guarded rollout: %v", err)
	}
	recs, err := other.LoadGuards(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || !reflect.DeepEqual(recs[0], first) {
		t.Fatalf("LoadGuards through another handle = %+v, want %+v", recs, first)
	}

	// The next step replaces the record; a guard record alone (no flag
	// change, no audit) is a change too.
	next := guardRecord("checkout", 1, flags.GuardRunning)
	if err := other.CommitFlags(ctx, flags.Change{Guards: []flags.GuardRecord{next}}); err != nil {
		t.Fatal(err)
	}
	if recs, err = s.LoadGuards(ctx); err != nil || len(recs) != 1 || !reflect.DeepEqual(recs[0], next) {
		t.Fatalf("LoadGuards after the next step = %+v, %v; want only %+v", recs, err, next)
	}

	// A change that fails stores none of its guard records.
	err = s.CommitFlags(ctx, flags.Change{Guards: []flags.GuardRecord{guardRecord("checkout", 2, flags.GuardSucceeded)},
		Audit: []audit.Event{{Actor: "", Action: flags.ActionGuardDone}}})
	if err == nil {
		t.Fatal("CommitFlags with an event without actor succeeded")
	}
	if recs, _ = s.LoadGuards(ctx); len(recs) != 1 || recs[0].Status.Step != 1 || recs[0].Status.Phase != flags.GuardRunning {
		t.Fatalf("LoadGuards after a failed commit = %+v, want step 2 running", recs)
	}

	// Several flags, by key; deleting a flag deletes its record.
	done := guardRecord("banner", 2, flags.GuardSucceeded)
	done.Status.Finished = t0.Add(time.Hour)
	if err := s.CommitFlags(ctx, flags.Change{Put: []*flags.Flag{testFlag("banner")}, Guards: []flags.GuardRecord{done}}); err != nil {
		t.Fatal(err)
	}
	if recs, _ = other.LoadGuards(ctx); len(recs) != 2 || recs[0].Key != "banner" || !recs[0].Status.Done() || recs[1].Key != "checkout" {
		t.Fatalf("LoadGuards with two flags = %+v", recs)
	}
	if err := s.CommitFlags(ctx, flags.Change{Delete: []string{"checkout"},
		Audit: []audit.Event{{Actor: "user:ana", Action: flags.ActionDelete, Subject: "flag/checkout"}}}); err != nil {
		t.Fatal(err)
	}
	if recs, _ = other.LoadGuards(ctx); len(recs) != 1 || recs[0].Key != "banner" {
		t.Fatalf("LoadGuards after deleting checkout = %+v", recs)
	}

	// store migrate copies them.
	if err := s.CommitFlags(ctx, flags.Change{Put: []*flags.Flag{f}, Guards: []flags.GuardRecord{next}}); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.Counts().FlagGuards; got != 2 {
		t.Fatalf("Export counts %d guarded rollouts, want 2", got)
	}
	copied := b.Open(t, b.Fresh(t), nil)
	if err := copied.Import(ctx, snap); err != nil {
		t.Fatalf("Import: %v", err)
	}
	want, _ := s.LoadGuards(ctx)
	if got, err := copied.LoadGuards(ctx); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("LoadGuards of the copy = %+v, %v; want %+v", got, err, want)
	}
}
