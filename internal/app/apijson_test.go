package app_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/sms/smstest"
)

// The fields SPEC §4 lists for every visit and alert are in the API's JSON from the
// start, null until they have a value: a client may read alert["acked_by"] of an
// alert nobody has taken yet.
func TestAPIFieldsPresentBeforeTheyHaveAValue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.startDaemon()
	e.overdue(d)
	e.twilio.WaitSent(10*time.Second, func([]smstest.Message) bool { return len(e.sentTo(officePhone)) == 1 })
	var alerts struct{ Alerts []map[string]any }
	if code := e.api(d, "GET", "/api/v1/alerts", officeToken, "", &alerts); code != http.StatusOK || len(alerts.Alerts) != 1 {
		t.Fatalf("GET /api/v1/alerts: %d, %d alerts", code, len(alerts.Alerts))
	}
	a := alerts.Alerts[0]
	for _, k := range []string{"acked_by", "acked_at", "resolved_at", "resolution"} {
		if v, ok := a[k]; !ok || v != nil {
			t.Errorf("open alert: %s = %v (present %v), want null", k, v, ok)
		}
	}
	var v map[string]any
	if code := e.api(d, "GET", "/api/v1/visits/"+a["visit_id"].(string), officeToken, "", &v); code != http.StatusOK {
		t.Fatalf("GET visit: %d", code)
	}
	if c, ok := v["closed_at"]; !ok || c != nil {
		t.Errorf("overdue visit: closed_at = %v (present %v), want null", c, ok)
	}
	var acked map[string]any
	if code := e.api(d, "POST", "/api/v1/alerts/"+a["id"].(string)+"/ack", officeToken, "", &acked); code != http.StatusOK {
		t.Fatalf("ack: %d %v", code, acked)
	}
	if by, _ := acked["acked_by"].(string); by == "" || acked["acked_at"] == nil || acked["resolved_at"] != nil {
		t.Errorf("acked alert: acked_by %v, acked_at %v, resolved_at %v", acked["acked_by"], acked["acked_at"], acked["resolved_at"])
	}
	// A PANIC with no visit open: its alert's visit_id is there, null.
	contains(t, "PANIC reply", e.sms(d, alexPhone, "PANIC"), "School office")
	if code := e.api(d, "GET", "/api/v1/alerts?state=open", officeToken, "", &alerts); code != http.StatusOK || len(alerts.Alerts) != 2 {
		t.Fatalf("GET /api/v1/alerts?state=open: %d, %d alerts, want 2", code, len(alerts.Alerts))
	}
	for _, x := range alerts.Alerts {
		if x["reason"] != "panic" {
			continue
		}
		if v, ok := x["visit_id"]; !ok || v != nil {
			t.Errorf("panic alert without a visit: visit_id = %v (present %v), want null", v, ok)
		}
	}
}

// A visit the office opens through the API goes overdue: its alert does not quote
// the officer's last text, which was about an earlier visit ("IN" would read as
// if they had checked in).
func TestAlertOfAnAPIVisitDoesNotQuoteAnEarlierText(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.startDaemon()
	e.sms(d, janePhone, "VISIT 45 14 Elm Road")
	e.sms(d, janePhone, "IN")
	var v map[string]any
	if code := e.api(d, "POST", "/api/v1/visits", officeToken, `{"officer":"jdoe","destination":"9 Oak Road","duration":"45m"}`, &v); code != http.StatusCreated {
		t.Fatalf("POST /api/v1/visits: %d %v", code, v)
	}
	e.advance(35*time.Minute, d)
	e.waitFor(1) // the reminder
	e.advance(15*time.Minute, d)
	e.twilio.WaitSent(10*time.Second, func([]smstest.Message) bool { return len(e.sentTo(officePhone)) == 1 })
	alert := e.sentTo(officePhone)[0]
	if !strings.Contains(alert, "9 Oak Road") || strings.Contains(alert, "Last text") {
		t.Errorf("alert %q: want the API visit's alert, quoting no earlier text", alert)
	}
}
