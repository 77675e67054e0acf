package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/api"
)

// TestFlagsAPI_ExpiresInThePastRefused is item 15 of issue 10: a flag
// created with --expires in the past was accepted, and was debt from its
// first second. Today is accepted (a date means its last second).
func TestFlagsAPI_ExpiresInThePastRefused(t *testing.T) {
	e := startFlagAPI(t)
	// A date is a day in UTC (flags.ParseTime): the machine's own zone
	// would name another day for some hours of every day.
	yesterday := time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly)
	_, err := e.admin.CreateFlag(t.Context(), api.CreateFlagRequest{Key: "old-checkout", Owner: "payments", Expires: yesterday})
	ae := apiError(t, err)
	if ae.Status != http.StatusBadRequest || ae.Field != "expires" || !strings.Contains(ae.Message, "in the past") {
		t.Fatalf("expires %s: %+v, want a 400 on expires saying it is in the past", yesterday, ae)
	}
	if _, err := e.admin.GetFlag(t.Context(), "old-checkout"); err == nil {
		t.Fatal("the refused flag was created")
	}
	today := time.Now().UTC().Format(time.DateOnly)
	if _, err := e.admin.CreateFlag(t.Context(), api.CreateFlagRequest{Key: "new-checkout", Owner: "payments", Expires: today}); err != nil {
		t.Fatalf("expires today: %v", err)
	}
}
