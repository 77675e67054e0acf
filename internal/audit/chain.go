package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// hashDomain opens every encoded event, so that a hash of an audit event can
// never be mistaken for the hash of anything else, and so that a future
// encoding can say it is a different one.
const hashDomain = "shipgate.audit.v1"

// ComputeHash returns the lowercase hex SHA-256 of the event's canonical
// encoding. Every field but Hash is covered, so changing any of them, or
// PrevHash and thus the order of the chain, changes the hash.
//
// The canonical encoding is a sequence of netstrings: each item is written
// as its length in bytes (decimal ASCII, no leading zeros), a colon, the
// bytes, and a comma, so "ab" becomes "2:ab,". The items, in this order, are:
//
//  1. the literal "shipgate.audit.v1";
//  2. Seq in decimal ASCII;
//  3. Time in UTC, formatted as RFC 3339 with nanoseconds and trailing
//     zeros of the fraction removed (Go's time.RFC3339Nano), for example
//     "2024-05-01T12:00:00.5Z"; the zero time is "0001-01-01T00:00:00Z";
//  4. Actor, Action, Subject, Reason and Outcome, as UTF-8 bytes;
//  5. the number of Data entries in decimal ASCII, then for each entry, in
//     ascending byte order of the keys, the key and then the value;
//  6. PrevHash.
//
// A nil Data and an empty one encode alike. Anyone can recompute the hash
// outside Shipgate from an event as the API returns it. For example, the
// event with Seq 1, Time 2024-05-01T12:00:00Z, Actor "shipgate", Action
// "deploy", Subject "shop/production/v2", Outcome "ok", Data
// {"gate": "error_rate"} and the other fields empty hashes to
// 675e04dd6c3c321956cbac353189ed638495b31bd327e1a7a7a9e544c1550019:
//
//	printf '%s' '17:shipgate.audit.v1,1:1,20:2024-05-01T12:00:00Z,8:shipgate,6:deploy,18:shop/production/v2,0:,2:ok,1:1,4:gate,10:error_rate,0:,' | sha256sum
func (e Event) ComputeHash() string {
	sum := sha256.Sum256(e.canonical())
	return hex.EncodeToString(sum[:])
}

// canonical returns the encoding that ComputeHash documents.
func (e Event) canonical() []byte {
	b := make([]byte, 0, 256)
	put := func(s string) {
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, ':')
		b = append(b, s...)
		b = append(b, ',')
	}
	put(hashDomain)
	put(strconv.FormatInt(e.Seq, 10))
	put(e.Time.UTC().Format(time.RFC3339Nano))
	put(e.Actor)
	put(e.Action)
	put(e.Subject)
	put(e.Reason)
	put(e.Outcome)
	put(strconv.Itoa(len(e.Data)))
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		put(k)
		put(e.Data[k])
	}
	put(e.PrevHash)
	return b
}

// ChainError says where and how an audit chain is broken.
type ChainError struct {
	// Seq is the sequence number at which the chain first breaks: the
	// event that should carry it is missing, out of place or altered.
	Seq int64
	// Reason says what is wrong there.
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit chain broken at seq %d: %s", e.Seq, e.Reason)
}

// Verify checks that events, in ascending Seq order, form an unbroken chain:
// Seq goes up by one from event to event, each PrevHash is the Hash of the
// event before, and each Hash is what ComputeHash returns. The chain may
// start anywhere; when it starts at Seq 1, that event's PrevHash must be "".
// Verify returns nil or a *ChainError for the first break it finds.
func Verify(events []Event) error {
	for i, e := range events {
		if i == 0 {
			if e.Seq < 1 {
				return &ChainError{Seq: e.Seq, Reason: "seq must be 1 or more"}
			}
			if e.Seq == 1 && e.PrevHash != "" {
				return &ChainError{Seq: 1, Reason: fmt.Sprintf("first event has prev_hash %q, want none", e.PrevHash)}
			}
		} else {
			prev := events[i-1]
			want := prev.Seq + 1
			if e.Seq != want {
				return &ChainError{Seq: want, Reason: fmt.Sprintf("event after seq %d has seq %d, want %d", prev.Seq, e.Seq, want)}
			}
			if e.PrevHash != prev.Hash {
				return &ChainError{Seq: e.Seq, Reason: fmt.Sprintf("prev_hash %q does not match hash %q of seq %d", e.PrevHash, prev.Hash, prev.Seq)}
			}
		}
		if got := e.ComputeHash(); e.Hash != got {
			return &ChainError{Seq: e.Seq, Reason: fmt.Sprintf("hash %q does not match its contents, which hash to %q", e.Hash, got)}
		}
	}
	return nil
}
