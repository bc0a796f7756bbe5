package jobs

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-safety/vigil/internal/visit"
)

func TestRetentionPurgesWhatThePolicyAllows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.school()
	loc := london(t)
	// Audit entries carry Redis' own clock, so retention runs at the real now here.
	now := time.Now()
	day := 24 * time.Hour
	policy := Retention{VisitDays: 30, AlertDays: 400}
	audit := "vigil:{" + school + "}:audit"

	// Audit entries from before the visits below, as the commits wrote them.
	for _, age := range []time.Duration{500 * day, 40 * day, 31 * day, 29 * day, 10 * day} {
		id := strconv.FormatInt(now.Add(-age).UnixMilli(), 10) + "-0"
		if err := e.rdb.XAdd(e.ctx, &redis.XAddArgs{Stream: audit, ID: id, Values: []any{"e", `{"type":"opened","visit":"x"}`}}).Err(); err != nil {
			t.Fatal(err)
		}
	}

	// v-old: no alert, closed 40 days ago; its reminder and the officer's last text
	// name its destination. Everything about it goes.
	old := e.closedVisit("v-old", visit.OutcomeSafe, now.Add(-40*day), "")
	e.commit(now.Add(-40*day), visit.Result{}, map[string]visit.OfficerState{"jdoe": {LastVisit: "v-old", LastText: "VISIT 45 " + old.Destination}})
	reminder := visit.Message{ID: "v-old:remind:1:+447700900101", School: school, Kind: visit.KindReminder, Channel: visit.ChannelSMS,
		To: "+447700900101", Body: "Vigil: you are due back from " + old.Destination, VisitID: "v-old", Priority: visit.PriorityNormal}
	e.sent(reminder, now.Add(-40*day))
	// v-recent: no alert, closed 10 days ago: kept.
	e.closedVisit("v-recent", visit.OutcomeSafe, now.Add(-10*day), "")
	// v-alerted: closed 40 days ago with an alert resolved then: both kept (alert_days).
	e.closedVisit("v-alerted", visit.OutcomeSafe, now.Add(-40*day), "a-recent")
	e.alert("a-recent", visit.ReasonOverdue, "v-alerted", now.Add(-40*day-time.Hour), time.Minute, now.Add(-40*day), "officer checked in")
	// v-ancient: closed 500 days ago with an alert resolved then: both go, with the
	// alert's messages.
	e.closedVisit("v-ancient", visit.OutcomeSafe, now.Add(-500*day), "a-ancient")
	e.alert("a-ancient", visit.ReasonOverdue, "v-ancient", now.Add(-500*day-time.Hour), 2*time.Minute, now.Add(-500*day), "officer checked in")
	e.sent(visit.Message{ID: "a-ancient:0:+441332000001", School: school, Kind: visit.KindAlert, Channel: visit.ChannelSMS,
		To: "+441332000001", Body: "OVERDUE ALERT 14 Elm Road v-ancient", AlertID: "a-ancient", VisitID: "v-ancient", Priority: visit.PriorityAlert}, now.Add(-500*day))
	// a-unresolved: raised 500 days ago and never resolved (its visit still open):
	// never purged.
	open := &visit.Visit{ID: "v-open", School: school, Officer: "jdoe", Companions: []string{}, Destination: "Open Road",
		State: visit.StateOverdue, StartedAt: now.Add(-500 * day), DueAt: now.Add(-500 * day), AlertID: "a-unresolved"}
	e.commit(now.Add(-500*day), visit.Result{Visits: []*visit.Visit{open}}, nil)
	e.alert("a-unresolved", visit.ReasonOverdue, "v-open", now.Add(-500*day), 0, time.Time{}, "")
	// Duty messages: one 40 days old goes, one 5 days old stays; one still queued
	// (never sent) stays whatever its age.
	e.sent(visit.Message{ID: "duty:expiry:old", School: school, Kind: visit.KindNotice, Channel: visit.ChannelSMS, To: "+447700900201", Body: "Jane Doe: no vehicle details.", Priority: visit.PriorityNormal}, now.Add(-40*day))
	e.sent(visit.Message{ID: "duty:expiry:new", School: school, Kind: visit.KindNotice, Channel: visit.ChannelSMS, To: "+447700900201", Body: "x", Priority: visit.PriorityNormal}, now.Add(-5*day))
	if err := e.st.QueueMessages(e.ctx, school, []visit.Message{{ID: "duty:queued", School: school, Kind: visit.KindNotice, Channel: visit.ChannelSMS, To: "+447700900201", Body: "x", Priority: visit.PriorityNormal}}, now.Add(-60*day)); err != nil {
		t.Fatal(err)
	}

	p, err := Retain(e.ctx, e.st, school, loc, now, policy)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Purged{Visits: 2, Alerts: 1, Messages: 3, Audit: 3}); p != want {
		t.Errorf("purged %+v, want %+v", p, want)
	}

	for _, tc := range []struct {
		needle string
		gone   bool
	}{
		{"v-old", true},             // visit, index entry, reminder
		{"14 Elm Road v-old", true}, // its destination, anywhere (last text included)
		{"UPN-v-old", true},         // its pupil reference
		{"v-ancient", true},         // visit with an alert past alert_days
		{"a-ancient", true},         // the alert, its index entry and its messages
		{"duty:expiry:old", true},   // an old duty message
		{"v-recent", false},         // inside visit_days
		{"v-alerted", false},        // kept with its alert
		{"a-recent", false},         // inside alert_days
		{"a-unresolved", false},     // never purged while unresolved
		{"v-open", false},           // never purged while open
		{"duty:expiry:new", false},  // recent
		{"duty:queued", false},      // never sent
	} {
		hits := e.grep(tc.needle)
		if tc.gone && len(hits) > 0 {
			t.Errorf("%q is still in Redis: %v", tc.needle, hits)
		}
		if !tc.gone && len(hits) == 0 {
			t.Errorf("%q was purged", tc.needle)
		}
	}

	// The audit stream keeps visit_days and no more: every entry left is younger,
	// and the young ones are all there.
	cut := now.Add(-time.Duration(policy.VisitDays) * day).UnixMilli()
	entries, err := e.rdb.XRange(e.ctx, audit, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	young := 0
	for _, x := range entries {
		ms, _ := strconv.ParseInt(strings.Split(x.ID, "-")[0], 10, 64)
		if ms < cut {
			t.Errorf("audit entry %s is older than visit_days", x.ID)
		}
		young++
	}
	if young != 2 {
		t.Errorf("%d audit entries left, want the 2 younger than visit_days", young)
	}

	// A second run has nothing left to do.
	p, err = Retain(e.ctx, e.st, school, loc, now, policy)
	if err != nil || p != (Purged{}) {
		t.Errorf("second run purged %+v, %v", p, err)
	}
}

// sent queues a message at when and records it sent then, as the dispatcher would.
func (e *env) sent(m visit.Message, when time.Time) {
	e.t.Helper()
	if err := e.st.QueueMessages(e.ctx, school, []visit.Message{m}, when); err != nil {
		e.t.Fatal(err)
	}
	got, err := e.st.ClaimMessages(e.ctx, school, when, time.Minute, 10)
	if err != nil || len(got) != 1 {
		e.t.Fatalf("claim %s: %v %v", m.ID, got, err)
	}
	if err := e.st.RecordAttempt(e.ctx, got[0], when); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.RecordSent(e.ctx, got[0], "", when); err != nil {
		e.t.Fatal(err)
	}
}
