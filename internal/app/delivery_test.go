package app_test

import (
	"html"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/sms/smstest"
)

// overdue opens a visit for Jane and moves the clock to its OVERDUE alert.
func (e *env) overdue(d *daemon) {
	e.t.Helper()
	e.sms(d, janePhone, "VISIT 45 14 Elm Road")
	e.advance(35*time.Minute, d)
	e.waitFor(1) // the reminder
	e.advance(15*time.Minute, d)
}

// postStatus posts a signed status callback.
func (e *env) postStatus(d *daemon, form map[string][]string) {
	e.t.Helper()
	res := smstest.PostSigned(e.t, nil, d.base, publicURL, "/twilio/status", smstest.DefaultAuthToken, form)
	res.Body.Close()
	if res.StatusCode >= 300 {
		e.t.Fatalf("status callback: %s", res.Status)
	}
}

var gatherAction = regexp.MustCompile(`action="([^"]+)"`)

// press posts a keypress on call c, as Twilio posts to the call's <Gather> action,
// and returns what the call says back.
func (e *env) press(d *daemon, c smstest.CallRecord, digits string) string {
	e.t.Helper()
	m := gatherAction.FindStringSubmatch(c.TwiML)
	if m == nil {
		e.t.Fatalf("call TwiML has no gather action:\n%s", c.TwiML)
	}
	action := html.UnescapeString(m[1])
	path := strings.TrimPrefix(action, publicURL)
	res := smstest.PostSigned(e.t, nil, d.base, publicURL, path, smstest.DefaultAuthToken, e.twilio.Gather(c, digits))
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		e.t.Fatalf("gather: %s %s", res.Status, b)
	}
	return string(b)
}

// The first office contact's number refuses SMS (opted out, 21610): the alert still
// reaches the other office contact, and the first is called instead.
func TestRefusedSMSBecomesACall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.twilio.FailNumber(officePhone, 400, 21610)
	d := e.startDaemon()
	e.overdue(d)
	e.waitFor(2) // the reminder, and the alert to the second office contact
	if got := e.sentTo(office2Phone); len(got) != 1 || !strings.Contains(got[0], "OVERDUE") {
		t.Fatalf("second office contact got %q", got)
	}
	calls := e.twilio.WaitCalls(10*time.Second, smstest.AtLeast[smstest.CallRecord](1))
	if calls[0].To != officePhone || !strings.Contains(calls[0].TwiML, "Jane Doe has not checked in") || !strings.Contains(calls[0].TwiML, "Press 1") {
		t.Errorf("call = %+v, want the office told of Jane and asked to press 1", calls[0])
	}
	if calls[0].StatusCallback != publicURL+"/twilio/status" {
		t.Errorf("call StatusCallback %q", calls[0].StatusCallback)
	}
}

// The office's number is a landline: Twilio refuses its SMS for good (21614,
// not a mobile). The office is called in the first round, called again at the
// repeat without another SMS that would fail, and told ALL CLEAR by call.
func TestLandlineIsCalledNotTextedEachRound(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.twilio.FailNumber(officePhone, 400, 21614)
	d := e.startDaemon()
	e.overdue(d)
	callsTo := func(n int) func([]smstest.CallRecord) bool {
		return func(cs []smstest.CallRecord) bool {
			k := 0
			for _, c := range cs {
				if c.To == officePhone {
					k++
				}
			}
			return k >= n
		}
	}
	e.twilio.WaitCalls(10*time.Second, callsTo(1))
	if !e.waitSettled(d) {
		t.Fatal("vigil did not settle")
	}
	e.advance(5*time.Minute, d) // the repeat
	e.twilio.WaitCalls(10*time.Second, callsTo(2))
	contains(t, "IN reply", e.sms(d, janePhone, "IN"), "Checked in")
	calls := e.twilio.WaitCalls(10*time.Second, callsTo(3))
	if !e.waitSettled(d) {
		t.Fatal("vigil did not settle")
	}
	smsAttempts := 0
	for _, a := range e.twilio.Attempts() {
		if a.To == officePhone && a.Resource == "Messages" {
			smsAttempts++
		}
	}
	if smsAttempts != 1 {
		t.Errorf("%d SMS tried to the landline, want 1 (the first round's)", smsAttempts)
	}
	last := calls[len(calls)-1]
	if last.To != officePhone || !strings.Contains(last.TwiML, "ALL CLEAR") {
		t.Errorf("last call %+v, want the ALL CLEAR to the office", last)
	}
}

// A receipt that reaches Vigil before Twilio's answer to the send (so before the
// send is recorded under its SID) is kept, and handled when the send is
// recorded: an alert SMS reported undelivered that early is still re-routed as
// a call.
func TestUndeliveredReceiptBeforeTheSendIsRecorded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	release := make(chan struct{})
	d := e.startDaemon()
	e.sms(d, janePhone, "VISIT 45 14 Elm Road")
	e.advance(35*time.Minute, d)
	e.waitFor(1) // the reminder
	e.twilio.Hang(officePhone, release)
	e.advance(15*time.Minute, d)
	// The alert reaches the second contact; the office's is held at Twilio.
	e.twilio.WaitSent(10*time.Second, func([]smstest.Message) bool { return len(e.sentTo(office2Phone)) == 1 })
	sid := e.twilio.NextMessageSID()
	e.postStatus(d, e.twilio.MessageStatus(smstest.Message{SID: sid, To: officePhone, From: twilioNumber}, "undelivered", 30003))
	close(release)
	calls := e.twilio.WaitCalls(10*time.Second, smstest.AtLeast[smstest.CallRecord](1))
	if calls[0].To != officePhone {
		t.Fatalf("call went to %s, want the office", calls[0].To)
	}
	if got := e.sentTo(officePhone); len(got) != 1 || e.twilio.SentTo(officePhone)[0].SID != sid {
		t.Fatalf("office SMS %q, want one, under the SID the receipt named (%s)", got, sid)
	}
}

// An SMS whose receipt says undelivered is re-routed as a call; a call answered by
// voicemail (no keypress) is no ACK; pressing 1 is, and the others are told.
func TestUndeliveredThenVoicemailThenKeypress(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.startDaemon()
	e.overdue(d)
	sent := e.waitFor(3)
	var toOffice smstest.Message
	for _, m := range sent {
		if m.To == officePhone {
			toOffice = m
		}
	}
	e.postStatus(d, e.twilio.MessageStatus(toOffice, "undelivered", 30003))
	calls := e.twilio.WaitCalls(10*time.Second, smstest.AtLeast[smstest.CallRecord](1))
	if calls[0].To != officePhone {
		t.Fatalf("call went to %s, want the office", calls[0].To)
	}
	// Voicemail: the call completes without a keypress. Nothing is acknowledged.
	e.postStatus(d, e.twilio.CallStatus(calls[0], "completed"))
	var alerts struct {
		Alerts []struct {
			State   string `json:"state"`
			AckedBy string `json:"acked_by"`
		} `json:"alerts"`
	}
	e.api(d, "GET", "/api/v1/alerts?state=open", officeToken, "", &alerts)
	if len(alerts.Alerts) != 1 || alerts.Alerts[0].State != "open" {
		t.Fatalf("after voicemail, alerts = %+v, want one still open", alerts.Alerts)
	}
	// A person answers and presses 1.
	said := e.press(d, calls[0], "1")
	if !strings.Contains(said, "taken charge") {
		t.Errorf("keypress answer: %s", said)
	}
	e.api(d, "GET", "/api/v1/alerts?state=open", officeToken, "", &alerts)
	if len(alerts.Alerts) != 1 || alerts.Alerts[0].State != "acked" || !strings.Contains(alerts.Alerts[0].AckedBy, "School office") {
		t.Fatalf("after the keypress, alerts = %+v, want acked by the school office", alerts.Alerts)
	}
	// The office gets the briefing by SMS; the other contact is told who took it.
	e.twilio.WaitSent(10*time.Second, func(ms []smstest.Message) bool {
		return len(e.sentTo(office2Phone)) >= 2 && len(e.sentTo(officePhone)) >= 2
	})
	got := e.sentTo(office2Phone)
	contains(t, "took charge", got[len(got)-1], "School office", "took charge")
	toOfficeNow := e.sentTo(officePhone)
	contains(t, "briefing", toOfficeNow[len(toOfficeNow)-1], "You have taken charge")
}

// A storm of 429s from Twilio delays the alert but loses nothing.
func TestRateLimitStormLosesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.startDaemon()
	e.sms(d, janePhone, "VISIT 45 14 Elm Road")
	e.advance(36*time.Minute, d)
	e.waitFor(1) // the reminder
	e.twilio.FailNext(6, 429, 20429)
	e.advance(14*time.Minute, d)
	// Retries come back after a backoff of seconds: move the fake clock along
	// until both office contacts have the alert. Each step is well inside the
	// dispatcher's 4 s lease, so a send under way keeps its claim.
	deadline := time.Now().Add(20 * time.Second)
	for len(e.sentTo(officePhone)) == 0 || len(e.sentTo(office2Phone)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("alert lost in the 429 storm: attempts %+v", e.twilio.Attempts())
		}
		n := len(e.twilio.Attempts())
		e.advance(1500*time.Millisecond, d)
		// The dispatcher records each retry just after Twilio answers, so the
		// clock may have moved before the retry was scheduled: if no new attempt
		// comes soon, move it again.
		pollUntil(200*time.Millisecond, func() bool { return len(e.twilio.Attempts()) > n })
	}
	for _, ph := range []string{officePhone, office2Phone} {
		if n := len(e.sentTo(ph)); n != 1 {
			t.Errorf("%s got %d alerts, want exactly 1", ph, n)
		}
	}
}

// pollUntil checks cond every few milliseconds until it holds or d has passed, and
// reports whether it held. It is for conditions no event announces.
func pollUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// An alert SMS whose "undelivered" receipt never reaches Vigil (Twilio sends a
// status callback once; Vigil was down, or Redis out for longer than the webhook
// waits) is still re-routed as a call: a minute after the send, with no final
// receipt in, Vigil asks Twilio for the status. The other contact's SMS, which
// Twilio reports delivered, is recorded so and not re-routed.
func TestLostUndeliveredReceiptFoundByAskingTwilio(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.startDaemon()
	e.overdue(d)
	e.twilio.WaitSent(10*time.Second, func([]smstest.Message) bool {
		return len(e.sentTo(officePhone)) == 1 && len(e.sentTo(office2Phone)) == 1
	})
	toOffice, toOffice2 := e.twilio.SentTo(officePhone)[0], e.twilio.SentTo(office2Phone)[0]
	e.twilio.SetMessageStatus(toOffice.SID, "undelivered", 30003)
	// Both sends are recorded (so their checks listed) before the clock moves.
	if !pollUntil(10*time.Second, func() bool {
		checks, err := d.Store().ReceiptChecks(t.Context(), "bishop-lonsdale")
		return err == nil && len(checks) == 2
	}) {
		t.Fatal("the alert SMS were not recorded sent")
	}

	// The office SMS's SID index is gone too, as a failed write to its master
	// would leave it on a Cluster (it lives apart from the school's keys): the
	// check goes by the school and the message, not by the SID.
	if err := d.Store().Client().Del(t.Context(), "vigil:sid:"+toOffice.SID).Err(); err != nil {
		t.Fatal(err)
	}

	e.advance(time.Minute, d)
	calls := e.twilio.WaitCalls(10*time.Second, smstest.AtLeast[smstest.CallRecord](1))
	if calls[0].To != officePhone || !strings.Contains(calls[0].TwiML, "Jane Doe has not checked in") {
		t.Fatalf("call = %+v, want the office called about Jane", calls[0])
	}
	// A check's end is announced by nothing but the metric: poll it.
	const final = `vigil_receipt_checks_total{result="final"}`
	if !pollUntil(10*time.Second, func() bool { return metricLine(t, d, final) == final+" 2" }) {
		t.Fatalf("metric: %q, want both checks counted final", metricLine(t, d, final))
	}
	if _, _, state, err := d.Store().MessageBySID(t.Context(), toOffice2.SID); err != nil || state != "delivered" {
		t.Fatalf("the second contact's SMS is recorded %q (%v), want delivered", state, err)
	}
	if !e.waitSettled(d) {
		t.Fatal("vigil did not settle")
	}
	for _, c := range e.twilio.Calls() {
		if c.To == office2Phone {
			t.Errorf("the contact whose SMS was delivered was called: %+v", c)
		}
	}
}

// An officer's phone that opted out (21610) shows it by refusing the reminder:
// the office is told, and that reminder itself reaches the officer by call,
// once.
func TestOptedOutOfficersRefusedReminderComesByCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.twilio.FailNumber(janePhone, 400, 21610)
	d := e.startDaemon()
	e.sms(d, janePhone, "VISIT 45 14 Elm Road")
	e.advance(35*time.Minute, d)
	calls := e.twilio.WaitCalls(10*time.Second, smstest.AtLeast[smstest.CallRecord](1))
	if calls[0].To != janePhone || !strings.Contains(calls[0].TwiML, "due back from 14 Elm Road at 10:45") {
		t.Fatalf("call = %+v, want Jane reminded she is due back at 10:45", calls[0])
	}
	e.twilio.WaitSent(10*time.Second, func([]smstest.Message) bool {
		return len(e.sentTo(officePhone)) == 1 && len(e.sentTo(office2Phone)) == 1
	})
	contains(t, "opt-out notice", e.sentTo(officePhone)[0], "Jane Doe", "phone them")
	if !e.waitSettled(d) {
		t.Fatal("vigil did not settle")
	}
	if n := len(e.twilio.Calls()); n != 1 {
		t.Errorf("%d calls, want the one reminder call: %+v", n, e.twilio.Calls())
	}
}

// A contact whose SMS is refused for good (21211, an invalid number) had the
// alert by call; when the officer ends the alert, the ALL CLEAR SMS is refused
// too, and the ALL CLEAR reaches that contact by call, once.
func TestRefusedAllClearBecomesACall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.twilio.FailNumber(officePhone, 400, 21211)
	d := e.startDaemon()
	e.overdue(d)
	calls := e.twilio.WaitCalls(10*time.Second, smstest.AtLeast[smstest.CallRecord](1))
	if calls[0].To != officePhone || !strings.Contains(calls[0].TwiML, "has not checked in") {
		t.Fatalf("call = %+v, want the office called with the alert", calls[0])
	}
	if !e.waitSettled(d) {
		t.Fatal("vigil did not settle")
	}
	e.sms(d, janePhone, "EXTEND 30")
	calls = e.twilio.WaitCalls(10*time.Second, smstest.AtLeast[smstest.CallRecord](2))
	if calls[1].To != officePhone || !strings.Contains(calls[1].TwiML, "ALL CLEAR") || !strings.Contains(calls[1].TwiML, "Jane Doe is safe") {
		t.Fatalf("second call = %+v, want the office told ALL CLEAR", calls[1])
	}
	e.twilio.WaitSent(10*time.Second, func([]smstest.Message) bool { return len(e.sentTo(office2Phone)) == 2 })
	contains(t, "ALL CLEAR by SMS", e.sentTo(office2Phone)[1], "ALL CLEAR", "Jane Doe")
	if !e.waitSettled(d) {
		t.Fatal("vigil did not settle")
	}
	if n := len(e.twilio.Calls()); n != 2 {
		t.Errorf("%d calls, want the alert's and the ALL CLEAR's: %+v", n, e.twilio.Calls())
	}
}

// An ALL CLEAR whose undelivered receipt never reached Vigil is found by asking
// Twilio a minute after the send, and becomes a call, as its receipt would have
// made it.
func TestLostUndeliveredAllClearReceiptFoundByAskingTwilio(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.startDaemon()
	e.overdue(d)
	e.twilio.WaitSent(10*time.Second, func([]smstest.Message) bool {
		return len(e.sentTo(officePhone)) == 1 && len(e.sentTo(office2Phone)) == 1
	})
	e.sms(d, janePhone, "IN")
	e.twilio.WaitSent(10*time.Second, func([]smstest.Message) bool {
		return len(e.sentTo(officePhone)) == 2 && len(e.sentTo(office2Phone)) == 2
	})
	clear := e.twilio.SentTo(officePhone)[1]
	if !strings.Contains(clear.Body, "ALL CLEAR") {
		t.Fatalf("second SMS to the office %q, want the ALL CLEAR", clear.Body)
	}
	e.twilio.SetMessageStatus(clear.SID, "undelivered", 30003)
	// The alerts' and ALL CLEARs' sends are recorded (their checks listed)
	// before the clock moves.
	if !pollUntil(10*time.Second, func() bool {
		checks, err := d.Store().ReceiptChecks(t.Context(), "bishop-lonsdale")
		return err == nil && len(checks) == 4
	}) {
		t.Fatal("the alert and ALL CLEAR SMS were not recorded sent")
	}
	if n := len(e.twilio.Calls()); n != 0 {
		t.Fatalf("%d calls before the checks, want none", n)
	}
	e.advance(time.Minute, d)
	calls := e.twilio.WaitCalls(10*time.Second, smstest.AtLeast[smstest.CallRecord](1))
	if calls[0].To != officePhone || !strings.Contains(calls[0].TwiML, "ALL CLEAR") || !strings.Contains(calls[0].TwiML, "Jane Doe is safe") {
		t.Fatalf("call = %+v, want the office told ALL CLEAR", calls[0])
	}
	if !e.waitSettled(d) {
		t.Fatal("vigil did not settle")
	}
	if n := len(e.twilio.Calls()); n != 1 {
		t.Errorf("%d calls, want the one ALL CLEAR call: %+v", n, e.twilio.Calls())
	}
}

// A reminder SMS refused for good for another reason than an opt-out (here
// 21614, not a mobile number: a landline takes calls) reaches the officer by
// call, once; the office is not told of an opt-out.
func TestRefusedReminderComesByCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.twilio.FailNumber(janePhone, 400, 21614)
	d := e.startDaemon()
	e.sms(d, janePhone, "VISIT 45 14 Elm Road")
	e.advance(35*time.Minute, d)
	calls := e.twilio.WaitCalls(10*time.Second, smstest.AtLeast[smstest.CallRecord](1))
	if calls[0].To != janePhone || !strings.Contains(calls[0].TwiML, "due back from 14 Elm Road at 10:45") {
		t.Fatalf("call = %+v, want Jane reminded she is due back at 10:45", calls[0])
	}
	if !e.waitSettled(d) {
		t.Fatal("vigil did not settle")
	}
	if n := len(e.twilio.Calls()); n != 1 {
		t.Errorf("%d calls, want the one reminder call: %+v", n, e.twilio.Calls())
	}
	if got := e.sentTo(officePhone); len(got) != 0 {
		t.Errorf("the office was texted %q; a refused reminder is not an opt-out", got)
	}
}

// Twilio refuses the office's texts for a while (503s) as Jane's visit falls
// overdue, and she checks in before it takes them again: the office gets the ALL
// CLEAR, and not the OVERDUE alert after it asking for help no one needs.
func TestRefusedAlertIsNotRetriedAfterItsAllClear(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.startDaemon()
	e.twilio.FailNumber(officePhone, 503, 0)
	e.overdue(d)
	refusedTo := func(kind string) func([]smstest.Attempt) bool {
		return func(as []smstest.Attempt) bool {
			for _, a := range as {
				if a.To == officePhone && a.HTTPStatus == 503 && strings.Contains(a.Form.Get("Body"), kind) {
					return true
				}
			}
			return false
		}
	}
	e.twilio.WaitAttempts(10*time.Second, refusedTo("OVERDUE"))
	contains(t, "IN reply", e.sms(d, janePhone, "IN"), "Checked in")
	e.twilio.WaitAttempts(10*time.Second, refusedTo("ALL CLEAR"))
	e.twilio.FailNumber(officePhone, 0, 0)
	// The retries are due a backoff of seconds after each refusal: move the clock
	// on until the office has its ALL CLEAR, then let whatever else is due go.
	deadline := time.Now().Add(20 * time.Second)
	for len(e.sentTo(officePhone)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the office never got the ALL CLEAR: attempts %+v", e.twilio.Attempts())
		}
		n := len(e.twilio.Attempts())
		e.advance(1500*time.Millisecond, d)
		pollUntil(200*time.Millisecond, func() bool { return len(e.twilio.Attempts()) > n })
	}
	e.advance(time.Minute, d)
	if !e.waitSettled(d) {
		t.Fatal("vigil did not settle")
	}
	got := e.sentTo(officePhone)
	if len(got) != 1 {
		t.Fatalf("office got %q, want only the ALL CLEAR", got)
	}
	contains(t, "office's message", got[0], "ALL CLEAR", "Jane Doe")
	contains(t, "office2's alert", strings.Join(e.sentTo(office2Phone), "\n"), "OVERDUE", "ALL CLEAR")
}
