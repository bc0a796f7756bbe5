package app_test

import (
	"net/http"
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
}
