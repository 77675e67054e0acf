package postgres

import (
	"errors"
	"sync"
	"testing"

	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/pgtest"
	"github.com/shipgate/shipgate/internal/rollout"
)

// TestConfigRevisions_OneAfterAnother: revisions are numbered from 1 and
// read back whole; two servers applying onto the same revision at once
// record one revision, and the other is refused with a conflict naming
// the revision to apply onto.
func TestConfigRevisions_OneAfterAnother(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.Shared(t).NewDatabase(t)
	a, b := openStore(t, dsn, nil), openStore(t, dsn, nil)
	if _, found, err := a.LatestConfigRevision(ctx); err != nil || found {
		t.Fatalf("LatestConfigRevision on a new store = %v, %v; want none", found, err)
	}
	files := []config.File{{Name: "/etc/shipgate/shop.yaml", Data: []byte("app: shop\n")}}
	r1, err := a.AddConfigRevision(ctx, 0, ConfigRevision{Files: files, Source: "/etc/shipgate/shop.yaml", Actor: "server:s1", Server: "s1"})
	if err != nil || r1.ID != 1 {
		t.Fatalf("first revision = %+v, %v; want revision 1", r1, err)
	}
	got, found, err := b.LatestConfigRevision(ctx)
	if err != nil || !found || got.ID != 1 || len(got.Files) != 1 || string(got.Files[0].Data) != "app: shop\n" || got.Actor != "server:s1" {
		t.Fatalf("LatestConfigRevision = %+v, %v, %v; want revision 1 as recorded", got, found, err)
	}

	// Two applies onto revision 1 at once: one is revision 2.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, st := range []*Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = st.AddConfigRevision(ctx, 1, ConfigRevision{Files: files, Source: "apply", Actor: "user:alice", Server: "s"})
		}()
	}
	wg.Wait()
	ok, conflicts := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, rollout.ErrConflict):
			conflicts++
		default:
			t.Fatalf("concurrent apply: %v", err)
		}
	}
	if ok != 1 || conflicts != 1 {
		t.Fatalf("two applies onto revision 1: %d recorded, %d conflicts; want 1 and 1", ok, conflicts)
	}
	if _, err := a.AddConfigRevision(ctx, 1, ConfigRevision{Files: files}); !errors.Is(err, rollout.ErrConflict) {
		t.Fatalf("an apply onto revision 1 once 2 exists = %v, want a conflict", err)
	}
	if got, _, _ := a.LatestConfigRevision(ctx); got.ID != 2 {
		t.Fatalf("latest revision %d, want 2", got.ID)
	}
}
