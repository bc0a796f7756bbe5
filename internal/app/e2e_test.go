package app_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/sms/smstest"
	"github.com/vigil-safety/vigil/internal/visit"
)

func contains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not say %q:\n%s", what, sub, s)
		}
	}
}

// The walking skeleton's timeline: VISIT -> reminder -> OVERDUE to every office
// contact -> IN -> ALL CLEAR to whoever was alerted.
func TestVisitReminderOverdueCheckIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.startDaemon()

	reply := e.sms(d, janePhone, "VISIT 45 14 Elm Road")
	contains(t, "VISIT reply", reply, "14 Elm Road", "10:45") // 09:00Z is 10:00 in London in June

	// The reminder comes 10 minutes before the due time, to the officer only.
	e.advance(35*time.Minute, d)
	e.waitFor(1)
	rem := e.sentTo(janePhone)
	if len(rem) != 1 {
		t.Fatalf("officer got %d messages, want the reminder: %q", len(rem), rem)
	}
	contains(t, "reminder", rem[0], "14 Elm Road", "10:45", "IN", "EXTEND")

	// At due + grace the office list is alerted, each contact once.
	e.advance(15*time.Minute, d)
	e.waitFor(3)
	for _, ph := range []string{officePhone, office2Phone} {
		got := e.sentTo(ph)
		if len(got) != 1 {
			t.Fatalf("%s got %d messages, want 1 OVERDUE: %q", ph, len(got), got)
		}
		contains(t, "alert", got[0], "OVERDUE", "Jane Doe", janePhone, "Bishop Lonsdale CE Primary School",
			"14 Elm Road", "10:00", "10:45", "Blue Ford Fiesta AB12 CDE", "ACK ")
	}
	if got := e.sentTo(headPhone); len(got) != 0 {
		t.Errorf("managers alerted before their level: %q", got)
	}
	for _, m := range e.twilio.Sent() {
		if m.StatusCallback != publicURL+"/twilio/status" {
			t.Errorf("message to %s has StatusCallback %q", m.To, m.StatusCallback)
		}
		if strings.Contains(m.Body, "OVERDUE") && m.ValidityPeriod != 10*time.Minute {
			t.Errorf("alert to %s has ValidityPeriod %s, want 10m", m.To, m.ValidityPeriod)
		}
	}

	// IN closes the visit and sends ALL CLEAR to everyone the alert reached.
	reply = e.sms(d, janePhone, "in")
	contains(t, "IN reply", reply, "Checked in at 10:50")
	e.waitFor(5)
	for _, ph := range []string{officePhone, office2Phone} {
		got := e.sentTo(ph)
		if len(got) != 2 {
			t.Fatalf("%s got %q, want OVERDUE then ALL CLEAR", ph, got)
		}
		contains(t, "all clear", got[1], "ALL CLEAR", "Jane Doe", "safe", "10:50", "checked in")
	}

	var v struct {
		Visits []visit.Visit `json:"visits"`
	}
	if code := e.api(d, "GET", "/api/v1/visits?state=closed", officeToken, "", &v); code != 200 || len(v.Visits) != 1 {
		t.Fatalf("closed visits: %d %+v", code, v)
	}
	if got := v.Visits[0]; got.Outcome != visit.OutcomeSafe || got.AlertID == "" {
		t.Errorf("closed visit = %+v, want outcome safe with its alert", got)
	}
	var full visit.Visit
	e.api(d, "GET", "/api/v1/visits/"+v.Visits[0].ID, officeToken, "", &full)
	var types []string
	for _, ev := range full.Events {
		types = append(types, ev.Type)
	}
	if want := "opened reminded overdue checked_in"; strings.Join(types, " ") != want {
		t.Errorf("visit events = %v, want %s", types, want)
	}
	if !e.waitSettled(d) {
		t.Errorf("work left after the visit closed")
	}
}

// A webhook with a bad or missing signature gets 403 and changes nothing.
func TestBadSignatureChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.startDaemon()
	form := e.twilio.InboundSMS(janePhone, twilioNumber, "VISIT 45 14 Elm Road")
	for _, sig := range []string{"", "bm90IGEgc2lnbmF0dXJl"} {
		res := smstest.PostUnsigned(t, nil, d.base, "/twilio/sms", sig, form)
		res.Body.Close()
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("signature %q: status %d, want 403", sig, res.StatusCode)
		}
	}
	// Signed over another URL (a replayed request to a different endpoint).
	res := smstest.PostSigned(t, nil, d.base, "https://evil.test", "/twilio/sms", smstest.DefaultAuthToken, form)
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("signed for another URL: status %d, want 403", res.StatusCode)
	}
	var v struct {
		Visits []visit.Visit `json:"visits"`
	}
	e.api(d, "GET", "/api/v1/visits", officeToken, "", &v)
	if len(v.Visits) != 0 {
		t.Errorf("a forged webhook opened a visit: %+v", v.Visits)
	}
	// The same form, properly signed, works: the refusal was the signature's doing.
	contains(t, "signed VISIT reply", e.smsForm(d, form), "14 Elm Road")
}

// Twilio retries a webhook with the same MessageSid: one effect, the same reply.
func TestRepeatedMessageSidHasOneEffect(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.startDaemon()
	form := e.twilio.InboundSMS(janePhone, twilioNumber, "VISIT 45 14 Elm Road")
	first := e.smsForm(d, form)
	second := e.smsForm(d, form)
	if first != second {
		t.Errorf("retry got %q, first got %q", second, first)
	}
	// A second, new VISIT is refused because the first one is open: exactly one.
	contains(t, "second VISIT", e.sms(d, janePhone, "VISIT 30 Other Road"), "already have a visit open", "NEXT")
	var v struct {
		Visits []visit.Visit `json:"visits"`
	}
	e.api(d, "GET", "/api/v1/visits", officeToken, "", &v)
	if len(v.Visits) != 1 {
		t.Errorf("open visits = %d, want 1", len(v.Visits))
	}
}

// A daemon stopped with a visit open, and started again on the same Redis after
// the visit fell overdue, still sends the OVERDUE alert — once.
func TestRestartStillAlertsOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d1 := e.startDaemon()
	contains(t, "VISIT reply", e.sms(d1, janePhone, "VISIT 20 14 Elm Road"), "10:20")
	d1.stop(t)

	e.advance(26 * time.Minute) // past due + grace while no daemon runs
	d2 := e.startDaemon()
	d2.Wake()
	e.waitFor(2)
	for _, ph := range []string{officePhone, office2Phone} {
		got := e.sentTo(ph)
		if len(got) != 1 || !strings.Contains(got[0], "OVERDUE") {
			t.Fatalf("%s got %q, want one OVERDUE", ph, got)
		}
	}
	if !e.waitSettled(d2) {
		t.Errorf("work left after the alert went out")
	}
	if n := len(e.twilio.Sent()); n != 2 {
		t.Errorf("%d messages sent, want 2 (one per office contact)", n)
	}
}

// An unknown number changes nothing and gets at most one reply a day.
func TestUnknownNumber(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.startDaemon()
	first := e.sms(d, "+447700900999", "VISIT 45 14 Elm Road")
	contains(t, "first reply", first, "not registered")
	if second := e.sms(d, "+447700900999", "hello?"); second != "" {
		t.Errorf("second reply the same day: %q", second)
	}
	var v struct {
		Visits []visit.Visit `json:"visits"`
	}
	e.api(d, "GET", "/api/v1/visits", officeToken, "", &v)
	if len(v.Visits) != 0 {
		t.Errorf("an unknown number opened a visit")
	}
}
