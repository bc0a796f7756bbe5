package app_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// Every metric SPEC §7 lists is on /metrics as soon as the daemon is up, before
// any visit, alert, message or inbound SMS: a series that appears only with its
// first event is missing from dashboards, and increase() over it misses that event.
func TestSpecMetricsExportedFromStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.startDaemon()
	res, err := http.Get(d.base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, want := range []string{
		"vigil_visits_open ",
		`vigil_visits_total{outcome="safe"} 0`,
		`vigil_alerts_total{reason="panic"} 0`,
		"vigil_alert_ack_seconds_count 0",
		`vigil_notifications_total{channel="sms",kind="alert",result="sent"} 0`,
		"vigil_timer_lateness_seconds_count ",
		`vigil_inbound_sms_total{command="panic",result="ok"} 0`,
		`vigil_inbound_sms_total{command="unknown",result="unknown_sender"} 0`,
		"vigil_scheduler_last_tick_timestamp_seconds ",
	} {
		if !strings.Contains(string(b), "\n"+want) {
			t.Errorf("/metrics at start has no line starting %q", want)
		}
	}
}
