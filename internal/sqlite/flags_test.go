package sqlite

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/flags"
)

func testFlag(key string) *flags.Flag {
	return flags.NewBooleanFlag(key, "team-a", "a test flag", time.Time{}, t0)
}

func TestStore_CommitFlags(t *testing.T) {
	s, path := openStore(t)
	ctx := t.Context()
	f := testFlag("new-checkout")
	seg := flags.Segment{Name: "internal", Rule: json.RawMessage(`{"ends_with":[{"var":"email"},"@acme.com"]}`)}
	err := s.CommitFlags(ctx, flags.Change{
		Put: []*flags.Flag{f}, PutSegments: []flags.Segment{seg},
		Audit: []audit.Event{{Actor: "user:ana", Action: flags.ActionCreate, Subject: "flag/new-checkout", Reason: "ship dark"}},
	})
	if err != nil {
		t.Fatalf("CommitFlags: %v", err)
	}
	list, segs, err := s.LoadFlags(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Key != "new-checkout" || list[0].MetaString(flags.MetaOwner) != "team-a" {
		t.Fatalf("LoadFlags = %+v", list)
	}
	if len(segs) != 1 || string(segs[0].Rule) != string(seg.Rule) {
		t.Fatalf("segments = %+v", segs)
	}
	events, err := s.ListAudit(ctx, audit.Filter{Subject: "flag/"})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Reason != "ship dark" || events[0].Seq == 0 {
		t.Fatalf("audit = %+v", events)
	}

	// A change whose audit event is refused is not stored at all.
	g := testFlag("other")
	err = s.CommitFlags(ctx, flags.Change{Put: []*flags.Flag{g}, Delete: []string{"new-checkout"},
		Audit: []audit.Event{{Actor: "", Action: flags.ActionCreate}}})
	if err == nil {
		t.Fatal("CommitFlags with an event without actor succeeded")
	}
	db := rawDB(t, path)
	if got, want := count(t, db, "flags"), 1; got != want {
		t.Fatalf("%d flags after the failed commit, want %d", got, want)
	}

	if err := s.CommitFlags(ctx, flags.Change{Delete: []string{"new-checkout"}, DeleteSegments: []string{"internal"},
		Audit: []audit.Event{{Actor: "user:ana", Action: flags.ActionDelete, Subject: "flag/new-checkout"}}}); err != nil {
		t.Fatal(err)
	}
	if got := count(t, db, "flags") + count(t, db, "flag_segments"); got != 0 {
		t.Fatalf("%d rows left after delete", got)
	}
}

func TestStore_FlagUsage(t *testing.T) {
	s, path := openStore(t)
	ctx := t.Context()
	t1 := t0.Add(time.Hour)
	if err := s.AddFlagUsage(ctx, map[string]flags.Usage{"a": {Variants: map[string]uint64{"on": 3, "off": 1}, Last: t0}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddFlagUsage(ctx, map[string]flags.Usage{"a": {Variants: map[string]uint64{"on": 2}, Last: t1}}); err != nil {
		t.Fatal(err)
	}
	// Counts survive a restart.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	u, err := s2.FlagUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := u["a"].Variants["on"], uint64(5); got != want {
		t.Errorf("on = %d, want %d", got, want)
	}
	if got, want := u["a"].Total(), uint64(6); got != want {
		t.Errorf("total = %d, want %d", got, want)
	}
	if !u["a"].Last.Equal(t1) {
		t.Errorf("last = %v, want %v", u["a"].Last, t1)
	}
}
