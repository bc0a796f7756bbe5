package app_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/sms/smstest"
)

// On the real clock, with second-long timings, a visit's reminder and OVERDUE
// alert fire and reach Twilio, and each timer's lateness is recorded. The figures
// are logged (go test -v -run RealClock): timing goals live in benchmarks, not in
// pass/fail tests.
func TestRealClockTimersFire(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	fake := smstest.NewServer(t, accountSID)
	yaml := testConfig(srv.URL(), fake.URL())
	yaml = strings.Replace(yaml, "visits: { default_duration: 60m, max_duration: 8h, reminder_before: 10m, grace: 5m }",
		"visits: { default_duration: 60m, max_duration: 8h, reminder_before: 1s, grace: 1s }", 1)
	d := runApp(t, yaml)
	e := &env{t: t, twilio: fake}

	opened := time.Now()
	contains(t, "VISIT reply", e.sms(d, janePhone, "VISIT 3s 14 Elm Road"), "14 Elm Road")
	sent := fake.WaitSent(15*time.Second, smstest.AtLeast[smstest.Message](3)) // reminder + 2 office alerts
	for _, m := range sent {
		at := m.At.Sub(opened)
		switch {
		case m.To == janePhone && at < 2*time.Second:
			t.Errorf("reminder reached Twilio %s after VISIT, before it was due (2 s)", at)
		case m.To != janePhone && at < 4*time.Second:
			t.Errorf("alert reached Twilio %s after VISIT, before it was due (4 s)", at)
		}
		t.Logf("to %s at +%s", m.To, at.Round(time.Millisecond))
	}
	mfs, err := d.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "vigil_timer_lateness_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() < 2 {
				t.Errorf("lateness recorded for %d timers, want 2", h.GetSampleCount())
			}
			t.Logf("timer lateness: %d timers, mean %.2f ms, %s", h.GetSampleCount(), 1000*h.GetSampleSum()/float64(h.GetSampleCount()), buckets(h))
		}
	}
}

func buckets(h *dto.Histogram) string {
	var b strings.Builder
	for _, bk := range h.GetBucket() {
		if bk.GetCumulativeCount() > 0 {
			fmt.Fprintf(&b, "<=%gs:%d ", bk.GetUpperBound(), bk.GetCumulativeCount())
		}
	}
	return b.String()
}
