package app_test

// End-to-end timelines of the SMS language and the escalation ladder (issue 3):
// each test is a story told step by step on the fake clock, and asserts what the
// people in it would notice — who got which SMS saying what, the replies, and the
// API's view of visits and alerts.

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/sms/smstest"
	"github.com/vigil-safety/vigil/internal/visit"
)

// Names of the test directory's contacts, as messages write them.
const (
	officeName = "School office"
	office2Nm  = "Office manager"
	headName   = "Head of School"
	policeName = "Safer Schools Officer"
	school     = "Bishop Lonsdale CE Primary School"
	vehicle    = "Blue Ford Fiesta AB12 CDE"
	// headWho is how the head of school is named once they have taken charge.
	headWho = headName + " (" + headPhone + ")"
)

// everyContact is every phone an alert reaches once it is at the top of the ladder
// (or a panic): both office contacts, the head of school, the police contact.
var everyContact = []string{officePhone, office2Phone, headPhone, policePhone}

// timeline is one test's story: the env, the daemon, and how many messages the
// fake Twilio had accepted before the current step, so each step sees only what it
// caused.
type timeline struct {
	*env
	d    *daemon
	seen int
}

func newTimeline(e *env) *timeline { return &timeline{env: e, d: e.startDaemon()} }

// after moves the clock on by d and wakes the daemon.
func (x *timeline) after(d time.Duration) { x.advance(d, x.d) }

// sms sends an inbound SMS to the daemon and returns its reply.
func (x *timeline) sms(from, body string) string {
	x.t.Helper()
	return x.env.sms(x.d, from, body)
}

// expect waits until exactly n more messages were sent and nothing more is on its
// way, and returns them by phone, in order.
func (x *timeline) expect(n int) map[string][]string {
	x.t.Helper()
	x.waitFor(x.seen + n)
	x.quiet()
	all := x.twilio.Sent()
	if len(all) != x.seen+n {
		x.t.Fatalf("%d messages sent in this step, want %d:\n%s", len(all)-x.seen, n, dumpMessages(all[x.seen:]))
	}
	out := map[string][]string{}
	for _, m := range all[x.seen:] {
		out[m.To] = append(out[m.To], m.Body)
	}
	x.seen = len(all)
	return out
}

// nothing asserts that the step sent nothing at all.
func (x *timeline) nothing(step string) {
	x.t.Helper()
	x.quiet()
	if all := x.twilio.Sent(); len(all) != x.seen {
		x.t.Fatalf("%s: %d messages sent, want none:\n%s", step, len(all)-x.seen, dumpMessages(all[x.seen:]))
	}
}

// quiet waits until the daemon has nothing left to send before the clock moves.
func (x *timeline) quiet() {
	x.t.Helper()
	if !x.waitSettled(x.d) {
		x.t.Fatalf("the daemon did not settle")
	}
}

func dumpMessages(ms []smstest.Message) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "  to %s: %q\n", m.To, m.Body)
	}
	return b.String()
}

// oneEach asserts that a step sent exactly one message to each phone given and
// nothing to anyone else, and returns the bodies by phone.
func oneEach(t *testing.T, step string, got map[string][]string, phones ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, ph := range phones {
		if len(got[ph]) != 1 {
			t.Errorf("%s: %s got %d messages, want 1: %q", step, ph, len(got[ph]), got[ph])
			continue
		}
		out[ph] = got[ph][0]
	}
	for ph, bodies := range got {
		if !slices.Contains(phones, ph) {
			t.Errorf("%s: %s should get nothing, got %q", step, ph, bodies)
		}
	}
	return out
}

// eachSays asserts that every body says every one of subs.
func eachSays(t *testing.T, what string, bodies map[string]string, subs ...string) {
	t.Helper()
	for ph, b := range bodies {
		contains(t, what+" to "+ph, b, subs...)
	}
}

func notContains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			t.Errorf("%s should not say %q:\n%s", what, sub, s)
		}
	}
}

// ---- the API, as the office sees it ----

func (x *timeline) alerts(state string) []visit.Alert {
	x.t.Helper()
	var out struct {
		Alerts []visit.Alert `json:"alerts"`
	}
	if code := x.api(x.d, "GET", "/api/v1/alerts?state="+state, officeToken, "", &out); code != http.StatusOK {
		x.t.Fatalf("GET alerts?state=%s: %d", state, code)
	}
	return out.Alerts
}

// onlyOpenAlert is the one open alert, failing the test unless there is exactly one.
func (x *timeline) onlyOpenAlert() visit.Alert {
	x.t.Helper()
	as := x.alerts("open")
	if len(as) != 1 {
		x.t.Fatalf("open alerts = %+v, want exactly one", as)
	}
	return as[0]
}

func (x *timeline) alert(id string) visit.Alert {
	x.t.Helper()
	for _, a := range x.alerts("") {
		if a.ID == id {
			return a
		}
	}
	x.t.Fatalf("alert %s is not listed", id)
	return visit.Alert{}
}

func (x *timeline) visits(state string) []visit.Visit {
	x.t.Helper()
	var out struct {
		Visits []visit.Visit `json:"visits"`
	}
	if code := x.api(x.d, "GET", "/api/v1/visits?state="+state, officeToken, "", &out); code != http.StatusOK {
		x.t.Fatalf("GET visits?state=%s: %d", state, code)
	}
	return out.Visits
}

func (x *timeline) visit(id string) visit.Visit {
	x.t.Helper()
	var v visit.Visit
	if code := x.api(x.d, "GET", "/api/v1/visits/"+id, officeToken, "", &v); code != http.StatusOK {
		x.t.Fatalf("GET visits/%s: %d", id, code)
	}
	return v
}

// onlyOpenVisit is the one open visit, failing the test unless there is exactly one.
func (x *timeline) onlyOpenVisit() visit.Visit {
	x.t.Helper()
	vs := x.visits("")
	if len(vs) != 1 {
		x.t.Fatalf("open visits = %+v, want exactly one", vs)
	}
	return vs[0]
}

// raw calls this timeline's daemon.
func (x *timeline) raw(method, path, token, body string) (int, []byte) {
	x.t.Helper()
	return x.env.raw(x.d, method, path, token, body)
}

// refused asserts that an API call is answered with status and {"error": ...}
// saying each of subs.
func (x *timeline) refused(method, path, token, body string, status int, subs ...string) {
	x.t.Helper()
	var out map[string]any
	code := x.api(x.d, method, path, token, body, &out)
	what := fmt.Sprintf("%s %s %s", method, path, body)
	if code != status {
		x.t.Errorf("%s: status %d, want %d (%v)", what, code, status, out)
	}
	msg, ok := out["error"].(string)
	if !ok || msg == "" || len(out) != 1 {
		x.t.Errorf(`%s: body %v, want {"error": "..."}`, what, out)
	}
	contains(x.t, what+" error", msg, subs...)
}

// The whole ladder with an ACK in the middle: office, repeat, managers, ACK, a
// hold with no repeats and no police, then every level due at once when the hold
// ends, the ladder going on, and ALL CLEAR to everyone reached.
func TestLadderAckHoldAndResume(t *testing.T) {
	t.Parallel()
	x := newTimeline(newEnv(t))

	// 10:00 Jane sets off for a 30-minute visit.
	contains(t, "VISIT reply", x.sms(janePhone, "VISIT 30 14 Elm Road"), "14 Elm Road", "10:30")

	// 10:20 The reminder, to Jane only.
	x.after(20 * time.Minute)
	rem := oneEach(t, "10:20 reminder", x.expect(1), janePhone)
	contains(t, "reminder", rem[janePhone], "14 Elm Road", "10:30", "IN", "EXTEND")

	// 10:35 Due + grace, no check-in: the office list is alerted.
	x.after(15 * time.Minute)
	got := oneEach(t, "10:35 overdue", x.expect(2), officePhone, office2Phone)
	eachSays(t, "OVERDUE", got, "OVERDUE ALERT", school, "Jane Doe", janePhone, "14 Elm Road",
		"began 10:00", "due 10:30", vehicle, "ACK ")
	a := x.onlyOpenAlert()
	if a.Reason != visit.ReasonOverdue || a.State != visit.AlertOpen || a.Level != 0 || a.Code == "" {
		t.Fatalf("alert at 10:35 = %+v, want an open overdue alert at level 0", a)
	}
	ack := "ACK " + a.Code
	eachSays(t, "OVERDUE", got, ack)

	// 10:40 Nobody answered: the office hears again (repeat_every 5m).
	x.after(5 * time.Minute)
	got = oneEach(t, "10:40 repeat", x.expect(2), officePhone, office2Phone)
	eachSays(t, "repeat", got, "OVERDUE ALERT", "Jane Doe", ack)

	// 10:45 Ten minutes after the alert: the managers too, told who was alerted
	// already and that no one has taken charge; the office hears again with them.
	x.after(5 * time.Minute)
	got = oneEach(t, "10:45 managers", x.expect(3), officePhone, office2Phone, headPhone)
	contains(t, "managers alert", got[headPhone], "OVERDUE ALERT", "Jane Doe", janePhone, "14 Elm Road", vehicle,
		"15 min overdue", "Already alerted: "+officeName+", "+office2Nm+".", "No one has taken charge yet.", ack)
	if a = x.alert(a.ID); a.Level != 1 {
		t.Errorf("alert level after 10:45 = %d, want 1 (managers)", a.Level)
	}

	// 10:46 The head of school (a managers contact) takes charge. Their reply is
	// the briefing; everyone else notified is told who took it, and when they will
	// hear again.
	x.after(time.Minute)
	brief := x.sms(headPhone, "ack")
	contains(t, "ACKer's briefing", brief, "taken charge of alert "+a.Code, "OVERDUE ALERT", "Jane Doe", janePhone,
		"14 Elm Road", "began 10:00", "due 10:30", vehicle, "Taken charge: "+headWho+" at 10:46", "RESOLVE "+a.Code)
	got = oneEach(t, "10:46 took charge", x.expect(2), officePhone, office2Phone)
	eachSays(t, "took charge", got, a.Code, "Jane Doe", headWho+" took charge at 10:46", "11:01")
	if a = x.alert(a.ID); a.State != visit.AlertAcked || a.AckedBy != headWho {
		t.Errorf("alert after the ACK = state %q acked_by %q, want acked by %s", a.State, a.AckedBy, headWho)
	}

	// 10:50 The hold (15 minutes from the ACK): no repeat where one was due.
	x.after(4 * time.Minute)
	x.nothing("10:50 during the hold")

	// 10:55 The police's 20 minutes have passed, but the hold keeps them out.
	x.after(5 * time.Minute)
	x.nothing("10:55 during the hold")

	// 11:00 Still held.
	x.after(5 * time.Minute)
	x.nothing("11:00 during the hold")

	// 11:01 The hold ends with Jane not found: every level whose time has come —
	// office, managers, police — hears at once, saying who took charge.
	x.after(time.Minute)
	got = oneEach(t, "11:01 hold over", x.expect(4), everyContact...)
	eachSays(t, "after the hold", got, "OVERDUE ALERT", "Jane Doe", "Taken charge: "+headWho+" at 10:46", ack)
	contains(t, "police alert", got[policePhone], school, janePhone, "14 Elm Road", "began 10:00", "due 10:30",
		vehicle, "31 min overdue", "Already alerted: "+officeName+", "+office2Nm+", "+headName+".")
	if a = x.alert(a.ID); a.Level != 2 {
		t.Errorf("alert level after the hold = %d, want 2 (police)", a.Level)
	}

	// 11:11 The ladder goes on: every level reached hears again (repeat_every of
	// the police level, 10m).
	x.after(10 * time.Minute)
	got = oneEach(t, "11:11 repeat", x.expect(4), everyContact...)
	eachSays(t, "repeat after the hold", got, "OVERDUE ALERT", "Taken charge: "+headWho, ack)

	// 11:12 Jane checks in: ALL CLEAR to every phone the alert reached, once each.
	x.after(time.Minute)
	contains(t, "IN reply", x.sms(janePhone, "IN"), "Checked in at 11:12")
	got = oneEach(t, "11:12 all clear", x.expect(4), everyContact...)
	eachSays(t, "ALL CLEAR", got, "ALL CLEAR", "Jane Doe", janePhone, "is safe", "11:12", "checked in")

	// Jane heard nothing of the alert about her; nothing is left to send.
	if got := x.sentTo(janePhone); len(got) != 1 {
		t.Errorf("Jane got %q, want only her reminder", got)
	}
	x.after(time.Hour)
	x.nothing("an hour after the ALL CLEAR")
	a = x.alert(a.ID)
	if a.State != visit.AlertResolved || a.Level != 2 || len(a.Notified) != 4 || a.AckedBy != headWho {
		t.Errorf("resolved alert = %+v", a)
	}
	if v := x.visits("closed"); len(v) != 1 || v[0].Outcome != visit.OutcomeSafe || v[0].AlertID != a.ID {
		t.Errorf("closed visits = %+v, want Jane's, safe, with the alert", v)
	}
}

// PANIC with no visit open: every panic level at once, the alert naming the last
// known destination; an ACK does not stop the repeats; a second PANIC sends again;
// IN ends it.
func TestPanicWithoutOpenVisit(t *testing.T) {
	t.Parallel()
	x := newTimeline(newEnv(t))

	// 10:00 A visit, closed safely at 10:10.
	x.sms(janePhone, "VISIT 30 14 Elm Road")
	x.after(10 * time.Minute)
	contains(t, "IN reply", x.sms(janePhone, "IN"), "Checked in at 10:10")

	// 10:30 Nothing was due: the visit is closed.
	x.after(20 * time.Minute)
	x.nothing("after the visit closed")

	// 10:30 Jane texts PANIC, no visit open. Her reply names who is alerted; every
	// panic level hears at once, told the last visit Jane declared.
	reply := x.sms(janePhone, "PANIC")
	contains(t, "PANIC reply", reply, "10:30", officeName, office2Nm, headName, policeName)
	got := oneEach(t, "10:30 panic", x.expect(4), everyContact...)
	eachSays(t, "PANIC", got, "PANIC ALERT", school, "Jane Doe", janePhone, "pressed PANIC at 10:30",
		"Last visit: 14 Elm Road, began 10:00, due 10:30", vehicle,
		"Alerted: "+officeName+", "+office2Nm+", "+headName+", "+policeName+".", "No one has taken charge yet.")
	a := x.onlyOpenAlert()
	if a.Reason != visit.ReasonPanic || a.VisitID != "" {
		t.Fatalf("alert = %+v, want a panic with no visit", a)
	}
	eachSays(t, "PANIC", got, "ACK "+a.Code)

	// 10:31 The office takes charge: briefing to it, the others are told.
	x.after(time.Minute)
	contains(t, "ACKer's briefing", x.sms(officePhone, "ACK "+a.Code), "taken charge of alert "+a.Code, "PANIC ALERT", "Jane Doe")
	got = oneEach(t, "10:31 took charge", x.expect(3), office2Phone, headPhone, policePhone)
	eachSays(t, "took charge", got, "PANIC ALERT "+a.Code, officeName+" ("+officePhone+") took charge at 10:31")

	// 10:35 The ACK did not stop the repeats: everyone hears again, and that the
	// office has it.
	x.after(4 * time.Minute)
	got = oneEach(t, "10:35 repeat", x.expect(4), everyContact...)
	eachSays(t, "panic repeat", got, "PANIC ALERT", "Taken charge: "+officeName+" ("+officePhone+") at 10:31")

	// 10:37 Jane presses PANIC again: everyone at once, again.
	x.after(2 * time.Minute)
	contains(t, "second PANIC reply", x.sms(janePhone, "sos"), "10:37", officeName, policeName)
	got = oneEach(t, "10:37 second panic", x.expect(4), everyContact...)
	eachSays(t, "second PANIC", got, "PANIC ALERT", "pressed PANIC at 10:37", "ACK "+a.Code)
	if as := x.alerts("open"); len(as) != 1 || as[0].ID != a.ID {
		t.Errorf("open alerts after the second PANIC = %+v, want the same one", as)
	}

	// 10:38 Jane checks in: ALL CLEAR to all, once each; no more repeats.
	x.after(time.Minute)
	contains(t, "IN reply", x.sms(janePhone, "IN"), "Checked in at 10:38")
	got = oneEach(t, "10:38 all clear", x.expect(4), everyContact...)
	eachSays(t, "ALL CLEAR", got, "ALL CLEAR", "Jane Doe", "is safe", "PANIC alert "+a.Code, "10:38", "checked in")
	x.after(30 * time.Minute)
	x.nothing("after the ALL CLEAR")
	if got := x.sentTo(janePhone); len(got) != 0 {
		t.Errorf("Jane was sent %q, want nothing (replies only)", got)
	}
	if a = x.alert(a.ID); a.State != visit.AlertResolved {
		t.Errorf("alert after IN = %+v, want resolved", a)
	}
}

// A duress check-in: the same reply as a normal one, a silent DURESS alert to every
// panic level, never a word to the officer's phone, and only the API (or a contact)
// resolves it.
func TestDuressCheckIn(t *testing.T) {
	t.Parallel()
	x := newTimeline(newEnv(t))
	twin := newTimeline(newEnv(t)) // the same story with a normal check-in

	// 10:00 Jane sets off, in both worlds.
	first := x.sms(janePhone, "VISIT 30 14 Elm Road")
	if r := twin.sms(janePhone, "VISIT 30 14 Elm Road"); r != first {
		t.Fatalf("the two worlds differ already: %q vs %q", first, r)
	}

	// 10:10 Jane checks in with the duress code; her twin checks in normally. Whoever
	// holds the phone sees byte for byte the same reply.
	x.after(10 * time.Minute)
	twin.after(10 * time.Minute)
	duressReply := x.sms(janePhone, "IN 4321")
	normalReply := twin.sms(janePhone, "IN")
	if duressReply != normalReply {
		t.Errorf("duress reply %q differs from a normal check-in's %q", duressReply, normalReply)
	}
	contains(t, "duress reply", duressReply, "Checked in at 10:10")
	twin.nothing("a normal check-in")

	// 10:10 The DURESS alert goes to every panic level at once, and not to Jane.
	got := oneEach(t, "10:10 duress", x.expect(4), everyContact...)
	eachSays(t, "DURESS", got, "DURESS ALERT", school, "Jane Doe", janePhone, "duress code", "10:10",
		"Do not call or text the officer's phone", "14 Elm Road", "began 10:00", "due 10:30", vehicle, "ACK ")
	for ph, b := range got {
		notContains(t, "DURESS to "+ph, b, "4321", "Last text")
	}
	a := x.onlyOpenAlert()
	if a.Reason != visit.ReasonDuress {
		t.Fatalf("alert = %+v, want duress", a)
	}
	// As far as the phone can tell, the visit is closed; the office sees why.
	if vs := x.visits("closed"); len(vs) != 1 || vs[0].Outcome != visit.OutcomeDuress || vs[0].AlertID != a.ID {
		t.Errorf("closed visits = %+v, want one with outcome duress and the alert", vs)
	}

	// 10:15 The alert repeats to the contacts; still nothing to Jane.
	x.after(5 * time.Minute)
	oneEach(t, "10:15 duress repeat", x.expect(4), everyContact...)

	// 10:35 Past the old due time and grace: no reminder, no OVERDUE, nothing to
	// Jane; one more repeat to the contacts.
	x.after(20 * time.Minute)
	got = oneEach(t, "10:35 duress repeat", x.expect(4), everyContact...)
	eachSays(t, "repeat", got, "DURESS ALERT")

	// 10:36 The head takes charge; the others are told.
	x.after(time.Minute)
	contains(t, "ACK briefing", x.sms(headPhone, "ACK"), "taken charge of alert "+a.Code, "DURESS ALERT")
	oneEach(t, "10:36 took charge", x.expect(3), officePhone, office2Phone, policePhone)

	// 10:37 Someone texts IN from Jane's phone: it does not end the duress alert.
	x.after(time.Minute)
	contains(t, "later IN reply", x.sms(janePhone, "IN"), "Checked in at 10:37")
	x.nothing("a later IN")
	if b := x.alert(a.ID); !b.Open() {
		t.Errorf("the officer's IN resolved the duress alert: %+v", b)
	}

	// 10:38 The office resolves it through the API, with a note (a note is required).
	x.after(time.Minute)
	path := "/api/v1/alerts/" + a.ID + "/resolve"
	x.refused("POST", path, officeToken, `{"note": " "}`, http.StatusBadRequest, "note")
	x.nothing("a refused resolve")
	var res visit.Alert
	if code := x.api(x.d, "POST", path, officeToken, `{"note": "found safe by PCSO"}`, &res); code != http.StatusOK {
		t.Fatalf("resolve: %d %+v", code, res)
	}
	if res.State != visit.AlertResolved || !strings.Contains(res.Resolution, "found safe by PCSO") {
		t.Errorf("resolved alert = %+v", res)
	}
	got = oneEach(t, "10:38 all clear", x.expect(4), everyContact...)
	eachSays(t, "ALL CLEAR", got, "ALL CLEAR", "Jane Doe", "is safe", "DURESS alert "+a.Code, "10:38",
		"office-pc", "found safe by PCSO")

	// Never, from the duress code on, was anything sent to Jane's phone.
	x.after(time.Hour)
	x.nothing("an hour later")
	if got := x.sentTo(janePhone); len(got) != 0 {
		t.Errorf("Jane's phone was sent %q, want nothing", got)
	}
}

// ABORT with a reason: the visit is cancelled, the headteacher gets the written
// notice, and the visit keeps it.
func TestAbortSendsHeadteacherNotice(t *testing.T) {
	t.Parallel()
	x := newTimeline(newEnv(t))

	// 10:00 Jane sets off.
	x.sms(janePhone, "VISIT 45 14 Elm Road")
	id := x.onlyOpenVisit().ID

	// 10:10 She calls it off; her reply says the notice went.
	x.after(10 * time.Minute)
	contains(t, "ABORT reply", x.sms(janePhone, "ABORT dog loose in the front garden"),
		"14 Elm Road", "cancelled", "notice sent to the headteacher")
	got := oneEach(t, "10:10 notice", x.expect(1), headPhone)
	notice := got[headPhone]
	contains(t, "notice", notice, "VISIT CALLED OFF", school, "Jane Doe", janePhone, "14 Elm Road", "begun 10:00",
		"at 10:10", "Reason: dog loose in the front garden")

	// The API shows the visit cancelled, and the notice, word for word, in its events.
	v := x.visit(id)
	if v.State != visit.StateClosed || v.Outcome != visit.OutcomeCancelled {
		t.Errorf("aborted visit = %+v, want closed, cancelled", v)
	}
	var kept bool
	for _, ev := range v.Events {
		kept = kept || (ev.Type == "notice" && ev.Detail == notice)
	}
	if !kept {
		t.Errorf("visit events %+v do not hold the notice %q", v.Events, notice)
	}

	// 10:11 CANCEL with a reason is the same command.
	x.after(time.Minute)
	x.sms(janePhone, "VISIT 30 9 Oak Street")
	contains(t, "CANCEL reply", x.sms(janePhone, "cancel car will not start"), "9 Oak Street", "cancelled")
	got = oneEach(t, "10:11 second notice", x.expect(1), headPhone)
	contains(t, "second notice", got[headPhone], "9 Oak Street", "Reason: car will not start")

	// Neither visit reminds or alerts anyone later.
	x.after(2 * time.Hour)
	x.nothing("after both visits were called off")
}

// NEXT checks in from the open visit and opens the next: the old visit's timers
// are gone, the new one's reminder comes.
func TestNextChecksInAndOpensTheNext(t *testing.T) {
	t.Parallel()
	x := newTimeline(newEnv(t))

	// 10:00 First visit, due 10:30 (reminder would be 10:20).
	x.sms(janePhone, "VISIT 30 14 Elm Road")
	first := x.onlyOpenVisit().ID

	// 10:15 NEXT: the reply says both the check-in and the new visit.
	x.after(15 * time.Minute)
	contains(t, "NEXT reply", x.sms(janePhone, "NEXT 20 22 Oak Street"), "Checked in at 10:15", "22 Oak Street", "10:35")

	// 10:20 The first visit's reminder does not come.
	x.after(5 * time.Minute)
	x.nothing("10:20 (the first visit's reminder time)")

	// 10:25 The second visit's does.
	x.after(5 * time.Minute)
	got := oneEach(t, "10:25 reminder", x.expect(1), janePhone)
	contains(t, "reminder", got[janePhone], "22 Oak Street", "10:35")
	notContains(t, "reminder", got[janePhone], "Elm")

	// The API: the first closed as safe, the second open.
	if v := x.visit(first); v.Outcome != visit.OutcomeSafe {
		t.Errorf("first visit = %+v, want closed as safe", v)
	}
	if v := x.onlyOpenVisit(); v.Destination != "22 Oak Street" || v.State != visit.StateActive {
		t.Errorf("open visit = %+v, want 22 Oak Street", v)
	}

	// 10:26 IN closes the second; nothing more is due.
	x.after(time.Minute)
	contains(t, "IN reply", x.sms(janePhone, "IN"), "22 Oak Street")
	x.after(time.Hour)
	x.nothing("after IN")
}

// A visit opened through the API with a companion: both are reminded, the alert
// names both, and the companion's IN closes it.
func TestCompanionsByAPI(t *testing.T) {
	t.Parallel()
	x := newTimeline(newEnv(t))

	// 10:00 The office logs Jane's visit with Alex.
	var v visit.Visit
	code := x.api(x.d, "POST", "/api/v1/visits", officeToken,
		`{"officer": "jdoe", "destination": "14 Elm Road", "duration": "30m", "kind": "safe_and_well", "companions": ["asmith"]}`, &v)
	if code != http.StatusCreated || v.ID == "" || !slices.Equal(v.Companions, []string{"asmith"}) || v.Kind != visit.KindSafeAndWell {
		t.Fatalf("POST /api/v1/visits: %d %+v", code, v)
	}
	if !v.DueAt.Equal(start.Add(30 * time.Minute)) {
		t.Errorf("due_at = %s, want 10:30", v.DueAt)
	}

	// 10:20 The reminder goes to both officers.
	x.after(20 * time.Minute)
	got := oneEach(t, "10:20 reminders", x.expect(2), janePhone, alexPhone)
	eachSays(t, "reminder", got, "14 Elm Road", "10:30")

	// 10:35 OVERDUE to the office names both.
	x.after(15 * time.Minute)
	got = oneEach(t, "10:35 overdue", x.expect(2), officePhone, office2Phone)
	eachSays(t, "OVERDUE", got, "OVERDUE ALERT", "Jane Doe", janePhone, "Alex Smith", alexPhone, "14 Elm Road")

	// 10:36 Alex checks in: the visit closes and the office hears ALL CLEAR.
	x.after(time.Minute)
	contains(t, "Alex's IN reply", x.sms(alexPhone, "IN"), "Checked in at 10:36", "14 Elm Road")
	got = oneEach(t, "10:36 all clear", x.expect(2), officePhone, office2Phone)
	eachSays(t, "ALL CLEAR", got, "ALL CLEAR", "is safe", "10:36", "checked in by Alex Smith ("+alexPhone+"), who was with them")
	for _, body := range got {
		if strings.Contains(body, "officer checked in") {
			t.Errorf("ALL CLEAR says the officer checked in, though Alex did: %q", body)
		}
	}

	if got := x.visit(v.ID); got.State != visit.StateClosed || got.Outcome != visit.OutcomeSafe {
		t.Errorf("visit after Alex's IN = %+v, want closed as safe", got)
	}
	// Neither has an open visit any more.
	for _, ph := range []string{janePhone, alexPhone} {
		contains(t, "STATUS from "+ph, x.sms(ph, "STATUS"), "No open visit")
	}
	x.after(time.Hour)
	x.nothing("after the companion checked in")
}

// The office API: roles, visit commands, filters, and bad requests refused with
// {"error": ...} and no change.
func TestVisitAndAlertAPI(t *testing.T) {
	t.Parallel()
	const readonlyToken = "readonly-token-for-tests-01"
	x := newTimeline(newEnvWith(t, func(cfg string) string {
		return replaceOnce(t, cfg, "api:\n  tokens:\n",
			"api:\n  tokens:\n    - { name: wallboard, role: readonly, token: \""+readonlyToken+"\" }\n")
	}))

	// Roles: no token or a wrong one is 401; readonly reads but may not write.
	for _, tok := range []string{"", "not-a-token-at-all-000"} {
		x.refused("GET", "/api/v1/visits", tok, "", http.StatusUnauthorized)
	}
	if code := x.api(x.d, "GET", "/api/v1/visits", readonlyToken, "", nil); code != http.StatusOK {
		t.Errorf("readonly GET visits: %d, want 200", code)
	}
	if code := x.api(x.d, "GET", "/api/v1/alerts?state=open", readonlyToken, "", nil); code != http.StatusOK {
		t.Errorf("readonly GET alerts: %d, want 200", code)
	}
	x.refused("POST", "/api/v1/visits", readonlyToken, `{"officer": "jdoe", "destination": "x"}`, http.StatusForbidden)
	t.Run("office token on admin routes", func(t *testing.T) {
		if code, _ := x.raw("GET", "/api/v1/officers", adminToken, ""); code != http.StatusOK {
			t.Fatalf("admin GET /api/v1/officers: %d, want 200", code)
		}
		x.refused("GET", "/api/v1/officers", officeToken, "", http.StatusForbidden)
		x.refused("GET", "/api/v1/schools", officeToken, "", http.StatusForbidden)
	})

	// 10:00 The office opens a visit for Jane.
	var v visit.Visit
	if code := x.api(x.d, "POST", "/api/v1/visits", officeToken,
		`{"officer": "jdoe", "destination": "14 Elm Road", "duration": "45m"}`, &v); code != http.StatusCreated {
		t.Fatalf("open visit: %d %+v", code, v)
	}
	if v.State != visit.StateActive || !v.DueAt.Equal(start.Add(45*time.Minute)) || v.Officer != "jdoe" {
		t.Errorf("opened visit = %+v", v)
	}

	// Bad requests: each refused with {"error": ...}, and nothing changes.
	before := x.visits("")
	post := func(body string, status int, subs ...string) {
		t.Helper()
		x.refused("POST", "/api/v1/visits", officeToken, body, status, subs...)
	}
	post(`{"officer": "nobody", "destination": "1 Ash Lane", "duration": "45m"}`, 400, "nobody")
	post(`{"officer": "asmith", "destination": "1 Ash Lane", "duration": "soon"}`, 400, "duration")
	post(`{"officer": "asmith", "destination": "1 Ash Lane", "duration": "9h"}`, 400, "8h")
	post(`{"officer": "asmith", "destination": "1 Ash Lane", "due_at": "`+start.Add(-time.Hour).Format(time.RFC3339)+`"}`, 400, "past")
	post(`{"officer": "asmith", "destination": "1 Ash Lane", "duration": "45m", "colour": "red"}`, 400, "colour")
	post(`{"officer": "asmith", "destination": "1 Ash Lane", "duration": "45m", "companions": ["nobody"]}`, 400, "nobody")
	post(`{"officer": "asmith", "destination": "1 Ash Lane", "kind": "party"}`, 400, "kind")
	post(`{"officer": "asmith", "duration": "45m"}`, 400, "destination")
	post(`{"officer": "asmith"`, 400)
	post(`{"officer": "jdoe", "destination": "1 Ash Lane", "duration": "30m"}`, 409, v.ID, "14 Elm Road")
	x.refused("GET", "/api/v1/visits/NOSUCHVISIT", officeToken, "", 404)
	x.refused("POST", "/api/v1/visits/NOSUCHVISIT/extend", officeToken, `{"duration": "15m"}`, 404)
	x.refused("POST", "/api/v1/visits/"+v.ID+"/extend", officeToken, `{"duration": "later"}`, 400, "duration")
	x.refused("POST", "/api/v1/visits/"+v.ID+"/abort", officeToken, `{"reason": ""}`, 400, "reason")
	x.refused("GET", "/api/v1/visits?state=sideways", officeToken, "", 400, "state")
	x.refused("GET", "/api/v1/alerts?state=sideways", officeToken, "", 400, "state")
	if after := x.visits(""); len(after) != len(before) || after[0].ID != v.ID || !after[0].DueAt.Equal(v.DueAt) {
		t.Errorf("open visits after refused requests = %+v, want only %+v unchanged", after, before)
	}
	x.nothing("refused requests")

	// 10:05 Extend by 15 minutes: due 11:00 (45m from 10:00, then 15 more).
	x.after(5 * time.Minute)
	var ext visit.Visit
	if code := x.api(x.d, "POST", "/api/v1/visits/"+v.ID+"/extend", officeToken, `{"duration": "15m"}`, &ext); code != 200 {
		t.Fatalf("extend: %d", code)
	}
	if !ext.DueAt.Equal(start.Add(time.Hour)) {
		t.Errorf("due after extend = %s, want 11:00 London", ext.DueAt)
	}
	// An extension past max_duration is capped at started_at + 8h.
	x.api(x.d, "POST", "/api/v1/visits/"+v.ID+"/extend", officeToken, `{"duration": "9h"}`, &ext)
	if !ext.DueAt.Equal(start.Add(8 * time.Hour)) {
		t.Errorf("due after a 9h extend = %s, want started_at + 8h", ext.DueAt)
	}

	// 10:06 Alex logs a 5-minute visit by SMS, which falls overdue at 10:16.
	x.after(time.Minute)
	x.sms(alexPhone, "VISIT 5 3 Birch Close")
	x.after(10 * time.Minute)
	oneEach(t, "10:16 Alex overdue", x.expect(2), officePhone, office2Phone)

	// The filters: active is Jane's, overdue is Alex's, open is both.
	ids := func(vs []visit.Visit) []string {
		var out []string
		for _, v := range vs {
			out = append(out, v.Officer)
		}
		slices.Sort(out)
		return out
	}
	for state, want := range map[string][]string{"active": {"jdoe"}, "overdue": {"asmith"}, "open": {"asmith", "jdoe"}, "": {"asmith", "jdoe"}} {
		if got := ids(x.visits(state)); !slices.Equal(got, want) {
			t.Errorf("visits?state=%s = %v, want %v", state, got, want)
		}
	}
	a := x.onlyOpenAlert()
	if a.Officer != "asmith" || a.Reason != visit.ReasonOverdue {
		t.Fatalf("open alert = %+v, want Alex's overdue", a)
	}

	// 10:17 The office ACKs Alex's alert through the API: every contact reached
	// is told who took charge.
	x.after(time.Minute)
	var acked visit.Alert
	if code := x.api(x.d, "POST", "/api/v1/alerts/"+a.ID+"/ack", officeToken, "", &acked); code != 200 {
		t.Fatalf("ack: %d", code)
	}
	if acked.State != visit.AlertAcked || acked.AckedBy != "office-pc" {
		t.Errorf("acked alert = %+v, want acked by office-pc", acked)
	}
	got := oneEach(t, "10:17 API ack", x.expect(2), officePhone, office2Phone)
	eachSays(t, "took charge", got, "office-pc took charge at 10:17")
	if as := x.alerts("acked"); len(as) != 1 || as[0].ID != a.ID {
		t.Errorf("alerts?state=acked = %+v", as)
	}
	x.refused("POST", "/api/v1/alerts/"+a.ID+"/ack", officeToken, "", 409, "already")

	// 10:18 Alex is found: the office checks the visit in through the API.
	x.after(time.Minute)
	alexVisit := x.visits("overdue")[0].ID
	var in visit.Visit
	if code := x.api(x.d, "POST", "/api/v1/visits/"+alexVisit+"/checkin", officeToken, "", &in); code != 200 {
		t.Fatalf("checkin: %d", code)
	}
	if in.State != visit.StateClosed || in.Outcome != visit.OutcomeSafe {
		t.Errorf("checked-in visit = %+v", in)
	}
	got = oneEach(t, "10:18 all clear", x.expect(2), officePhone, office2Phone)
	eachSays(t, "ALL CLEAR", got, "ALL CLEAR", "Alex Smith", "checked in by office-pc")
	x.refused("POST", "/api/v1/visits/"+alexVisit+"/checkin", officeToken, "", 409, "closed")
	x.refused("POST", "/api/v1/alerts/"+a.ID+"/resolve", officeToken, `{"note": "again"}`, 409)
	if as := x.alerts("open"); len(as) != 0 {
		t.Errorf("open alerts after the check-in = %+v", as)
	}

	// 10:19 Jane's visit is aborted through the API: cancelled, with the notice.
	x.after(time.Minute)
	var ab visit.Visit
	if code := x.api(x.d, "POST", "/api/v1/visits/"+v.ID+"/abort", officeToken, `{"reason": "family moved away"}`, &ab); code != 200 {
		t.Fatalf("abort: %d", code)
	}
	if ab.Outcome != visit.OutcomeCancelled {
		t.Errorf("aborted visit = %+v", ab)
	}
	got = oneEach(t, "10:19 notice", x.expect(1), headPhone)
	contains(t, "notice", got[headPhone], "VISIT CALLED OFF", "office-pc (office) called off the visit of Jane Doe", "14 Elm Road", "Reason: family moved away")

	if got := ids(x.visits("closed")); !slices.Equal(got, []string{"asmith", "jdoe"}) {
		t.Errorf("visits?state=closed = %v, want both", got)
	}
	if vs := x.visits(""); len(vs) != 0 {
		t.Errorf("open visits at the end = %+v", vs)
	}
	x.after(9 * time.Hour)
	x.nothing("after everything was closed")
}

// ACK from no contact, for a closed alert, and with a code among two open alerts.
func TestAckEdgeCases(t *testing.T) {
	t.Parallel()
	x := newTimeline(newEnv(t))

	// 10:00 Jane and Alex both set off; 10:35 both are overdue.
	x.sms(janePhone, "VISIT 30 14 Elm Road")
	x.sms(alexPhone, "VISIT 30 3 Birch Close")
	x.after(20 * time.Minute)
	oneEach(t, "10:20 reminders", x.expect(2), janePhone, alexPhone)
	x.after(15 * time.Minute)
	got := x.expect(4)
	if len(got[officePhone]) != 2 || len(got[office2Phone]) != 2 || len(got) != 2 {
		t.Fatalf("10:35: want two alerts to each office contact, got %q", got)
	}
	var jane, alex visit.Alert
	for _, a := range x.alerts("open") {
		switch a.Officer {
		case "jdoe":
			jane = a
		case "asmith":
			alex = a
		}
	}
	if jane.ID == "" || alex.ID == "" || jane.Code == alex.Code {
		t.Fatalf("open alerts: jane %+v, alex %+v", jane, alex)
	}

	// 10:36 A number that is no contact texts ACK: nothing changes, and it is told.
	x.after(time.Minute)
	contains(t, "ACK from an unknown number", x.sms("+447700900999", "ACK "+jane.Code), "not registered")
	// An officer is no contact either.
	reply := x.sms(alexPhone, "ACK "+jane.Code)
	contains(t, "ACK from an officer", strings.ToLower(reply), "nothing changed")
	x.nothing("ACKs from no contact")
	for _, a := range x.alerts("open") {
		if a.State != visit.AlertOpen || a.AckedBy != "" {
			t.Errorf("alert %s changed: %+v", a.Code, a)
		}
	}

	// 10:36 A bare ACK with two alerts open: the reply lists both codes.
	reply = x.sms(officePhone, "ACK")
	contains(t, "bare ACK", reply, "ACK "+jane.Code, "Jane Doe", "ACK "+alex.Code, "Alex Smith")
	x.nothing("an ambiguous ACK")

	// 10:36 ACK with Alex's code takes Alex's alert only.
	brief := x.sms(officePhone, "ack "+alex.Code+".")
	contains(t, "briefing", brief, "taken charge of alert "+alex.Code, "Alex Smith")
	notContains(t, "briefing", brief, "Jane Doe")
	took := oneEach(t, "10:36 took charge", x.expect(1), office2Phone)
	contains(t, "took charge", took[office2Phone], alex.Code, "Alex Smith", officeName+" ("+officePhone+") took charge")
	if a := x.alert(alex.ID); a.State != visit.AlertAcked {
		t.Errorf("Alex's alert = %+v, want acked", a)
	}
	if a := x.alert(jane.ID); a.State != visit.AlertOpen || a.AckedBy != "" {
		t.Errorf("Jane's alert = %+v, want still open", a)
	}
	// A second ACK of Alex's alert says who has it, and changes nothing.
	contains(t, "second ACK", x.sms(office2Phone, "ACK "+alex.Code), "already", officeName)
	x.nothing("a second ACK")

	// 10:37 Jane checks in; an ACK of her closed alert says so and changes nothing.
	x.after(time.Minute)
	x.sms(janePhone, "IN")
	oneEach(t, "10:37 all clear", x.expect(2), officePhone, office2Phone)
	contains(t, "ACK of a closed alert", x.sms(headPhone, "ACK "+jane.Code), "No open alert "+jane.Code, "Nothing changed")
	x.nothing("ACK of a closed alert")
	if a := x.alert(jane.ID); a.State != visit.AlertResolved || a.AckedBy != "" {
		t.Errorf("Jane's alert after a late ACK = %+v", a)
	}
	// Alex checks in; with no alert open at all, a bare ACK says so too.
	x.sms(alexPhone, "IN")
	oneEach(t, "10:37 Alex's all clear", x.expect(2), officePhone, office2Phone)
	contains(t, "ACK with nothing open", x.sms(policePhone, "ACK"), "No open alert", "Nothing changed")
	x.nothing("a bare ACK with nothing open")
}

// A phone on several lists gets one copy of each message.
func TestOnePhoneOnSeveralLists(t *testing.T) {
	t.Parallel()

	// The head of school is on managers and headteacher; here headteacher is a
	// panic level too, so a PANIC reaches that phone through both lists.
	t.Run("panic", func(t *testing.T) {
		t.Parallel()
		x := newTimeline(newEnvWith(t, func(cfg string) string {
			return replaceOnce(t, cfg, "panic_levels: [office, managers, police]", "panic_levels: [office, managers, police, headteacher]")
		}))
		// 10:00 PANIC: one copy each, the head's name once in the list.
		contains(t, "PANIC reply", x.sms(janePhone, "PANIC"), headName)
		got := oneEach(t, "panic", x.expect(4), everyContact...)
		if n := strings.Count(got[officePhone], headName); n != 1 {
			t.Errorf("the alert names the head %d times:\n%s", n, got[officePhone])
		}
		// 10:01 The police contact takes charge: the head is told once.
		x.after(time.Minute)
		x.sms(policePhone, "ACK")
		oneEach(t, "took charge", x.expect(3), officePhone, office2Phone, headPhone)
		// 10:05 The repeat: once each.
		x.after(4 * time.Minute)
		oneEach(t, "repeat", x.expect(4), everyContact...)
		// 10:06 IN: one ALL CLEAR each.
		x.after(time.Minute)
		x.sms(janePhone, "IN")
		got = oneEach(t, "all clear", x.expect(4), everyContact...)
		eachSays(t, "ALL CLEAR", got, "ALL CLEAR")
	})

	// The head of school is on managers and police: the ladder reaches the phone
	// through both from 20 minutes on.
	t.Run("ladder", func(t *testing.T) {
		t.Parallel()
		x := newTimeline(newEnvWith(t, func(cfg string) string {
			return replaceOnce(t, cfg, `police:      [{ name: "Safer Schools Officer", phone: "`+policePhone+`" }]`,
				`police:      [{ name: "Safer Schools Officer", phone: "`+policePhone+`" }, { name: "Head of School", phone: "`+headPhone+`" }]`)
		}))
		// 10:00 A 30-minute visit; 10:20 reminder; 10:35 office.
		x.sms(janePhone, "VISIT 30 14 Elm Road")
		x.after(20 * time.Minute)
		x.expect(1)
		x.after(15 * time.Minute)
		oneEach(t, "10:35", x.expect(2), officePhone, office2Phone)
		// 10:40 repeat; 10:45 managers; 10:50 repeat.
		x.after(5 * time.Minute)
		oneEach(t, "10:40", x.expect(2), officePhone, office2Phone)
		x.after(5 * time.Minute)
		oneEach(t, "10:45", x.expect(3), officePhone, office2Phone, headPhone)
		x.after(5 * time.Minute)
		oneEach(t, "10:50", x.expect(3), officePhone, office2Phone, headPhone)
		// 10:55 Police level: the head, on both lists, gets one copy.
		x.after(5 * time.Minute)
		got := oneEach(t, "10:55", x.expect(4), everyContact...)
		if n := strings.Count(got[policePhone], headName); n != 1 {
			t.Errorf("the police alert names the head %d times:\n%s", n, got[policePhone])
		}
		// 10:56 The office takes charge: everyone else told once.
		x.after(time.Minute)
		x.sms(officePhone, "ACK")
		oneEach(t, "10:56 took charge", x.expect(3), office2Phone, headPhone, policePhone)
		// 10:57 IN: one ALL CLEAR each.
		x.after(time.Minute)
		x.sms(janePhone, "IN")
		oneEach(t, "10:57 all clear", x.expect(4), everyContact...)
	})
}
