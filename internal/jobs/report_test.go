package jobs

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// seedMarch writes a month of activity for the school, with neighbours just outside
// March 2026 in London (which starts BST on the 29th).
func seedMarch(e *env) {
	loc := london(e.t)
	at := func(m time.Month, d, h, min int) time.Time { return time.Date(2026, m, d, h, min, 0, 0, loc) }
	e.school()
	// Visits, by closing time.
	e.closedVisit("v-feb", visit.OutcomeSafe, at(2, 28, 23, 30), "") // February
	e.closedVisit("v1", visit.OutcomeSafe, at(3, 1, 0, 10), "")      // first minutes of March
	e.closedVisit("v2", visit.OutcomeSafe, at(3, 15, 12, 0), "a3")   // its alert was a3
	e.closedVisit("v3", visit.OutcomeSafe, at(3, 30, 10, 0), "")     // after the clocks changed
	e.closedVisit("v4", visit.OutcomeCancelled, at(3, 20, 9, 0), "") //
	e.closedVisit("v5", visit.OutcomeDuress, at(3, 21, 11, 0), "a5") //
	e.closedVisit("v6", visit.OutcomeSafe, at(3, 31, 23, 30), "")    // 22:30 UTC: still March in London
	e.closedVisit("v-apr", visit.OutcomeSafe, at(4, 1, 0, 30), "")   // 23:30 UTC on the 31st: April in London
	// Alerts, by raising time.
	e.alert("a-feb", visit.ReasonOverdue, "", at(2, 27, 10, 0), time.Minute, at(2, 27, 11, 0), "officer checked in")
	e.alert("a1", visit.ReasonOverdue, "", at(3, 10, 10, 0), 2*time.Minute, at(3, 10, 10, 20), "officer checked in")
	e.alert("a2", visit.ReasonOverdue, "", at(3, 11, 10, 0), 0, at(3, 11, 10, 3), "officer extended the visit to 11:00")
	e.alert("a3", visit.ReasonOverdue, "v2", at(3, 15, 11, 0), 10*time.Minute, at(3, 15, 12, 0), "resolved by Head of School: found safe")
	e.alert("a4", visit.ReasonPanic, "", at(3, 13, 14, 0), time.Minute, at(3, 13, 14, 30), "officer checked in")
	e.alert("a5", visit.ReasonDuress, "v5", at(3, 21, 11, 0), 4*time.Minute, at(3, 21, 12, 0), "resolved by Head of School: police attended")
	e.alert("a6", visit.ReasonOverdue, "", at(3, 31, 16, 0), 0, time.Time{}, "")
	e.alert("a-apr", visit.ReasonPanic, "", at(4, 1, 0, 30), 0, time.Time{}, "")
	// Notifications, through the dispatcher's own records.
	send := func(id string, when time.Time, final func(o store.Outgoing, when time.Time)) {
		m := visit.Message{ID: id, School: school, Kind: visit.KindReminder, Channel: visit.ChannelSMS, To: "+447700900101", Body: "x", Priority: visit.PriorityNormal}
		if err := e.st.QueueMessages(e.ctx, school, []visit.Message{m}, when); err != nil {
			e.t.Fatal(err)
		}
		got, err := e.st.ClaimMessages(e.ctx, school, when, time.Minute, 10)
		if err != nil || len(got) != 1 {
			e.t.Fatalf("claim %s: %v %v", id, got, err)
		}
		if err := e.st.RecordAttempt(e.ctx, got[0], when); err != nil {
			e.t.Fatal(err)
		}
		final(got[0], when)
	}
	failed := func(o store.Outgoing, _ time.Time) {
		if err := e.st.RecordFailed(e.ctx, o, "invalid_number"); err != nil {
			e.t.Fatal(err)
		}
	}
	delivery := func(status string) func(o store.Outgoing, when time.Time) {
		return func(o store.Outgoing, when time.Time) {
			if _, err := e.st.RecordSent(e.ctx, o, "SM"+o.Msg.ID, when); err != nil {
				e.t.Fatal(err)
			}
			if _, _, err := e.st.RecordDelivery(e.ctx, school, o.Msg.ID, status, 30003, status == "delivered", "test", when); err != nil {
				e.t.Fatal(err)
			}
		}
	}
	send("m-failed", at(3, 1, 12, 0), failed)                       // refused
	send("m-undelivered", at(3, 18, 9, 0), delivery("undelivered")) // accepted, then lost
	send("m-delivered", at(3, 18, 9, 5), delivery("delivered"))     // fine
	send("m-april", at(4, 2, 9, 0), failed)                         // another month
}

func wantMarch(loc *time.Location) Report {
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, loc)
	return Report{
		School: school, Month: "2026-03", From: from, To: from.AddDate(0, 1, 0),
		Visits: 6, Outcomes: map[string]int{"safe": 4, "cancelled": 1, "duress": 1},
		Alerts: 6, Overdue: 4, Panic: 1, Duress: 1, FalseAlarms: 2,
		Acked: 4, NotAcked: 2, MedianAck: 3 * time.Minute, WorstAck: 10 * time.Minute,
		NotificationsFailed: 2,
	}
}

func TestMonthlyReportCountsTheMonth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedMarch(e)
	loc := london(t)
	got, err := MonthlyReport(e.ctx, e.st, school, time.Date(2026, 3, 17, 0, 0, 0, 0, loc))
	if err != nil {
		t.Fatal(err)
	}
	want := wantMarch(loc)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("report\n got %+v\nwant %+v", got, want)
	}
	golden(t, "report.golden", got.Text("Bishop Lonsdale CE Primary School"))

	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"median_ack_seconds":180`, `"worst_ack_seconds":600`, `"false_alarms":2`, `"month":"2026-03"`} {
		if !strings.Contains(string(b), s) {
			t.Errorf("JSON %s lacks %s", b, s)
		}
	}

	// The API's entry point parses the month in the school's zone.
	r := e.runner()
	api, err := r.MonthlyReport(e.ctx, school, "2026-03")
	if err != nil || !reflect.DeepEqual(api, want) {
		t.Errorf("Runner.MonthlyReport: %+v, %v", api, err)
	}
	for _, tc := range []struct {
		school, month string
		kind          visit.ErrorKind
	}{
		{school, "March", visit.Invalid},       // not YYYY-MM
		{school, "2026-13", visit.Invalid},     // no such month
		{"nowhere", "2026-03", visit.NotFound}, // unknown school
	} {
		_, err := r.MonthlyReport(e.ctx, tc.school, tc.month)
		var ve *visit.Error
		if !errors.As(err, &ve) || ve.Kind != tc.kind {
			t.Errorf("%s %s: err %v, want kind %d", tc.school, tc.month, err, tc.kind)
		}
	}
}

// Retention deletes the visits and messages of the month's first days before the
// report runs on the 1st; the report still counts them.
func TestMonthlyReportCountsWhatRetentionDeleted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedMarch(e)
	loc := london(t)
	p, err := Retain(e.ctx, e.st, school, loc, time.Date(2026, 4, 1, 3, 30, 0, 0, loc), Retention{VisitDays: 30, AlertDays: 400})
	if err != nil {
		t.Fatal(err)
	}
	if p.Visits != 2 || p.Messages != 1 { // v-feb and v1; m-failed
		t.Fatalf("retention purged %+v, want 2 visits and 1 message", p)
	}
	got, err := MonthlyReport(e.ctx, e.st, school, time.Date(2026, 3, 1, 0, 0, 0, 0, loc))
	if err != nil {
		t.Fatal(err)
	}
	if want := wantMarch(loc); !reflect.DeepEqual(got, want) {
		t.Fatalf("report after retention\n got %+v\nwant %+v", got, want)
	}
	feb, err := MonthlyReport(e.ctx, e.st, school, time.Date(2026, 2, 1, 0, 0, 0, 0, loc))
	if err != nil || feb.Visits != 1 || feb.Outcomes["safe"] != 1 {
		t.Errorf("February after retention: %+v, %v", feb, err)
	}
}

// The monthly duty on 1 April sends March's report to the managers.
func TestMonthlyDutySendsLastMonth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedMarch(e)
	loc := london(t)
	r := e.runner()
	if ran, err := r.RunSlot(e.ctx, MonthlyReportDuty, time.Date(2026, 4, 1, 7, 0, 0, 0, loc)); !ran || err != nil {
		t.Fatalf("ran %v, err %v", ran, err)
	}
	var reports []visit.Message
	for _, m := range e.outbox() {
		if strings.HasPrefix(m.ID, "duty:report:") {
			reports = append(reports, m)
		}
	}
	want := wantMarch(loc).Text("Bishop Lonsdale CE Primary School")
	if len(reports) != 2 {
		t.Fatalf("%d reports queued, want 2", len(reports))
	}
	for _, m := range reports {
		if m.ID != "duty:report:"+school+":2026-03:"+m.To || m.Body != want {
			t.Errorf("report message %+v", m)
		}
	}
}

func TestMedian(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},                          // none
		{[]time.Duration{5}, 5},           // one
		{[]time.Duration{9, 1, 5}, 5},     // odd: the middle one
		{[]time.Duration{10, 1, 4, 2}, 3}, // even: the mean of the middle two
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
