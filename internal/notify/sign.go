package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Headers of every delivery.
const (
	HeaderEventID   = "X-Shipgate-Event-Id"
	HeaderEventType = "X-Shipgate-Event-Type"
	HeaderTimestamp = "X-Shipgate-Timestamp"
	HeaderSignature = "X-Shipgate-Signature"
)

// Sign returns the signature header value of body sent at ts with secret:
// "v1=" and the hex HMAC-SHA256 of "<unix seconds>.<body>". Binding the
// timestamp lets a receiver refuse replays of old deliveries.
func Sign(secret []byte, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a delivery's timestamp and signature headers against
// body, refusing a timestamp further than tolerance from now. Receivers
// written in Go may use it; docs/notifications.md shows the same in words.
func Verify(secret []byte, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return errors.New("bad " + HeaderTimestamp)
	}
	ts := time.Unix(sec, 0)
	if d := now.Sub(ts); d > tolerance || d < -tolerance {
		return errors.New("timestamp too far from now: a replay?")
	}
	want := Sign(secret, ts, body)
	for _, s := range strings.Split(signature, ",") {
		if hmac.Equal([]byte(strings.TrimSpace(s)), []byte(want)) {
			return nil
		}
	}
	return errors.New("signature does not match")
}
