package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// chain returns n events linked as a store would link them.
func chain(n int) []Event {
	events := make([]Event, n)
	prev := ""
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for i := range events {
		e := Event{
			Seq:     int64(i + 1),
			Time:    t0.Add(time.Duration(i) * time.Second),
			Actor:   "user:alice",
			Action:  ActionStep,
			Subject: "rollout/" + strconv.Itoa(i+1),
			Reason:  "step " + strconv.Itoa(i),
			Outcome: "ok",
			Data:    map[string]string{"weight": strconv.Itoa(5 * i)},
		}
		e.PrevHash = prev
		e.Hash = e.ComputeHash()
		prev = e.Hash
		events[i] = e
	}
	return events
}

// clone copies events deeply enough that tampering with one leaves the
// original alone.
func clone(events []Event) []Event {
	out := make([]Event, len(events))
	for i, e := range events {
		e.Data = maps.Clone(e.Data)
		out[i] = e
	}
	return out
}

func TestEvent_ComputeHash_Golden(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "event.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e Event
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}

	golden := []struct {
		file string
		got  []byte
	}{
		{"event.canonical", e.canonical()},
		{"event.hash", []byte(e.ComputeHash() + "\n")},
	}
	for _, g := range golden {
		path := filepath.Join("testdata", g.file)
		if *update {
			if err := os.WriteFile(path, g.got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(g.got, want) {
			t.Errorf("%s changed; the hash encoding is a published format and must not change:\ngot  %q\nwant %q", g.file, g.got, want)
		}
	}
}

// TestEvent_ComputeHash_DocExample keeps the worked example in the doc
// comment of ComputeHash true.
func TestEvent_ComputeHash_DocExample(t *testing.T) {
	e := Event{
		Seq:     1,
		Time:    time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC),
		Actor:   "shipgate",
		Action:  ActionDeploy,
		Subject: "shop/production/v2",
		Outcome: "ok",
		Data:    map[string]string{"gate": "error_rate"},
	}
	wantEnc := "17:shipgate.audit.v1,1:1,20:2024-05-01T12:00:00Z,8:shipgate,6:deploy,18:shop/production/v2,0:,2:ok,1:1,4:gate,10:error_rate,0:,"
	if got := string(e.canonical()); got != wantEnc {
		t.Errorf("canonical = %q, want %q", got, wantEnc)
	}
	if got, want := e.ComputeHash(), "675e04dd6c3c321956cbac353189ed638495b31bd327e1a7a7a9e544c1550019"; got != want {
		t.Errorf("ComputeHash = %s, want %s", got, want)
	}
}

// TestEvent_ComputeHash_Same checks that what the encoding leaves out (the
// Hash itself, the time zone, Go's monotonic clock reading, nil versus empty
// Data) does not change the hash.
func TestEvent_ComputeHash_Same(t *testing.T) {
	base := chain(1)[0]
	now := time.Now()
	tests := []struct {
		name string
		a, b func(*Event)
	}{
		{"hash field", func(*Event) {}, func(e *Event) { e.Hash = "something else" }},
		{"time zone", func(*Event) {}, func(e *Event) { e.Time = e.Time.In(time.FixedZone("CEST", 2*60*60)) }},
		{"monotonic reading", func(e *Event) { e.Time = now.Round(0) }, func(e *Event) { e.Time = now }},
		{"nil and empty data", func(e *Event) { e.Data = nil }, func(e *Event) { e.Data = map[string]string{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := clone([]Event{base})[0], clone([]Event{base})[0]
			tt.a(&a)
			tt.b(&b)
			if got, want := b.ComputeHash(), a.ComputeHash(); got != want {
				t.Errorf("hash = %s, want %s", got, want)
			}
		})
	}
}

// TestEvent_ComputeHash_Unambiguous checks pairs of events whose fields
// concatenate to the same text: the encoding must tell them apart.
func TestEvent_ComputeHash_Unambiguous(t *testing.T) {
	tests := []struct {
		name string
		a, b Event
	}{
		{"actor/action boundary", Event{Actor: "ab", Action: "c"}, Event{Actor: "a", Action: "bc"}},
		{"subject/reason boundary", Event{Subject: "x,", Reason: "y"}, Event{Subject: "x", Reason: ",y"}},
		{"field shifted", Event{Reason: "r"}, Event{Outcome: "r"}},
		{"data key/value boundary", Event{Data: map[string]string{"a": "b=c"}}, Event{Data: map[string]string{"a=b": "c"}}},
		{"data entries vs one", Event{Data: map[string]string{"a": "1", "b": "2"}}, Event{Data: map[string]string{"a": "1,1:b,1:2"}}},
		{"data vs prev hash", Event{Data: map[string]string{"k": "v"}}, Event{PrevHash: "k"}},
		{"netstring in a field", Event{Actor: "1:a,", Action: ""}, Event{Actor: "", Action: "1:a,"}},
		{"seq", Event{Seq: 1}, Event{Seq: 2}},
		{"nanoseconds", Event{Time: time.Unix(0, 1)}, Event{Time: time.Unix(0, 2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.a.ComputeHash() == tt.b.ComputeHash() {
				t.Errorf("%+v and %+v hash alike", tt.a, tt.b)
			}
		})
	}
}

// FuzzEvent_canonical checks that the encoding can be decoded back into
// the fields it came from, which is what makes it unambiguous.
func FuzzEvent_canonical(f *testing.F) {
	f.Add(int64(1), int64(0), "shipgate", "deploy", "a/b/c", "", "ok", "k", "v", "")
	f.Add(int64(7), int64(1e18), "1:a,", ",", "", "2:", "", "", "", "abc")
	f.Fuzz(func(t *testing.T, seq, nanos int64, actor, action, subject, reason, outcome, key, value, prev string) {
		e := Event{
			Seq: seq, Time: time.Unix(0, nanos), Actor: actor, Action: action, Subject: subject,
			Reason: reason, Outcome: outcome, Data: map[string]string{key: value, key + "2": value + "x"}, PrevHash: prev,
		}
		items, err := splitNetstrings(e.canonical())
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			hashDomain, strconv.FormatInt(seq, 10), time.Unix(0, nanos).UTC().Format(time.RFC3339Nano),
			actor, action, subject, reason, outcome, "2", key, value, key + "2", value + "x", prev,
		}
		if strings.Join(items, "\x00") != strings.Join(want, "\x00") || len(items) != len(want) {
			t.Errorf("decoded %q, want %q", items, want)
		}
	})
}

// splitNetstrings decodes a sequence of netstrings, as an auditor's tool
// would.
func splitNetstrings(b []byte) ([]string, error) {
	var items []string
	for len(b) > 0 {
		colon := bytes.IndexByte(b, ':')
		if colon < 1 {
			return nil, errors.New("missing length")
		}
		n, err := strconv.Atoi(string(b[:colon]))
		if err != nil || n < 0 || colon+1+n >= len(b) || b[colon+1+n] != ',' {
			return nil, errors.New("bad netstring")
		}
		items = append(items, string(b[colon+1:colon+1+n]))
		b = b[colon+1+n+1:]
	}
	return items, nil
}

func TestVerify_Valid(t *testing.T) {
	events := chain(6)
	tests := []struct {
		name   string
		events []Event
	}{
		{"none", nil},
		{"whole chain", events},
		{"from the middle", events[3:]},
		{"one event", events[4:5]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Verify(tt.events); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

// TestVerify_Tamper changes one field of event 3 in a chain of 5 and
// expects Verify to name seq 3.
func TestVerify_Tamper(t *testing.T) {
	tests := []struct {
		field  string
		tamper func(*Event)
	}{
		{"Seq", func(e *Event) { e.Seq = 30 }},
		{"Time", func(e *Event) { e.Time = e.Time.Add(time.Nanosecond) }},
		{"Actor", func(e *Event) { e.Actor = "user:mallory" }},
		{"Action", func(e *Event) { e.Action = ActionRollbackManual }},
		{"Subject", func(e *Event) { e.Subject = "rollout/99" }},
		{"Reason", func(e *Event) { e.Reason = "" }},
		{"Outcome", func(e *Event) { e.Outcome = "failed" }},
		{"Data value", func(e *Event) { e.Data["weight"] = "100" }},
		{"Data key added", func(e *Event) { e.Data["bypass"] = "true" }},
		{"Data removed", func(e *Event) { e.Data = nil }},
		{"PrevHash", func(e *Event) { e.PrevHash = strings.Repeat("0", 64) }},
		{"Hash", func(e *Event) { e.Hash = strings.Repeat("0", 64) }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			events := clone(chain(5))
			tt.tamper(&events[2])
			assertBrokenAt(t, Verify(events), 3)
		})
	}
}

// TestVerify_TamperRehashed shows that rewriting an event together with its
// own hash is caught by the next event's link.
func TestVerify_TamperRehashed(t *testing.T) {
	events := clone(chain(5))
	events[2].Reason = "nothing to see"
	events[2].Hash = events[2].ComputeHash()
	assertBrokenAt(t, Verify(events), 4)
}

func TestVerify_Structure(t *testing.T) {
	full := chain(5)
	first := full[0]
	first.PrevHash = "abc"
	first.Hash = first.ComputeHash()
	zero := full[0]
	zero.Seq = 0
	zero.Hash = zero.ComputeHash()

	tests := []struct {
		name   string
		events []Event
		seq    int64
	}{
		{"swap", []Event{full[0], full[2], full[1], full[3]}, 2},
		{"delete middle", []Event{full[0], full[1], full[3], full[4]}, 3},
		{"duplicate", []Event{full[0], full[1], full[1], full[2]}, 3},
		{"reversed", []Event{full[4], full[3]}, 6},
		{"first with prev hash", []Event{first}, 1},
		{"seq zero", []Event{zero}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertBrokenAt(t, Verify(tt.events), tt.seq)
		})
	}
}

func assertBrokenAt(t *testing.T, err error, seq int64) {
	t.Helper()
	var ce *ChainError
	if !errors.As(err, &ce) {
		t.Fatalf("Verify = %v, want a *ChainError", err)
	}
	if got, want := ce.Seq, seq; got != want {
		t.Errorf("broken at seq %d (%v), want %d", got, err, want)
	}
	if ce.Reason == "" || !strings.Contains(err.Error(), strconv.FormatInt(seq, 10)) {
		t.Errorf("error %q does not say where and why", err)
	}
}
