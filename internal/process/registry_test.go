package process

import (
	"context"
	"log/slog"
	"testing"
)

// A server that dies between starting instances and recording them leaves
// them to the registry: the next runtime on the same data dir lists them
// and can stop them.
func TestRuntime_Registry(t *testing.T) {
	dir := t.TempDir()
	first := New(Config{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	s := shopSpec(t)
	s.Count = 2
	ins, err := first.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	first.Close() // the server is gone; its instances are not

	second := New(Config{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	defer second.Close()
	listed, err := second.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(listed), 2; got != want {
		t.Fatalf("listed %d instances, want %d", got, want)
	}
	for _, l := range listed {
		if l.ID != ins[0].ID && l.ID != ins[1].ID {
			t.Fatalf("listed %s, which was not started", l.ID)
		}
	}
	// Stop works on instances the second runtime never started nor adopted.
	if err := second.Stop(context.Background(), ins); err != nil {
		t.Fatal(err)
	}
	assertGone(t, []int{ins[0].PID, ins[1].PID})
	if listed, _ := second.List(context.Background()); len(listed) != 0 {
		t.Fatalf("after stop the registry still lists %d instances", len(listed))
	}
}
