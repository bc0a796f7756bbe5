package visit

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func callPhones(ms []sentMsg) []string {
	var out []string
	for _, m := range ms {
		if !slices.Contains(out, m.To) {
			out = append(out, m.To)
		}
	}
	slices.Sort(out)
	return out
}

// When calls go with an alert's SMS.
func TestAlertCalls(t *testing.T) {
	t.Parallel()
	// A panic calls every contact at once, alongside the SMS.
	w := newWorld(t)
	w.mustSMS(janePhone, "PANIC")
	if got, want := callPhones(w.calls), []string{officePhone, headPhone, deputyPhone, policePhone}; !slices.Equal(got, want) {
		t.Errorf("panic called %v, want %v", got, want)
	}
	for _, c := range w.calls {
		if c.Priority != PriorityPanic || !strings.Contains(c.Body, "Jane Doe pressed panic") || !strings.Contains(c.Body, "A B 1 2 C D E") {
			t.Errorf("panic call %+v", c.Message)
		}
	}

	// An overdue alert: SMS only at first; a call to those not answering when it
	// comes round again; the police level is called at once.
	w = newWorld(t)
	w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
	w.runTo(at("14:50"))
	if len(w.calls) != 0 {
		t.Fatalf("first round called %v; it goes by SMS", callPhones(w.calls))
	}
	w.runTo(at("14:55"))
	if got := callPhones(w.calls); !slices.Equal(got, []string{officePhone}) {
		t.Errorf("repeat at 14:55 called %v, want the office (no one ACKed)", got)
	}
	w.calls = nil
	w.mustSMS(headPhone, "ACK")
	w.runTo(at("15:09")) // ACKed at 14:55: the hold ends at 15:10
	if len(w.calls) != 0 {
		t.Errorf("calls during the ACK's hold: %v", callPhones(w.calls))
	}
	w.runTo(at("15:10"))
	if got := callPhones(w.calls); !slices.Equal(got, []string{policePhone}) {
		t.Errorf("at hold end called %v, want only the police level (someone has taken charge)", got)
	}
}

// A failed alert SMS becomes a call to the same contact; when every contact of a
// level fails by call too, the next level hears at once.
func TestDeliveryFailureReroutes(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
	w.runTo(at("14:49")) // the reminder
	first := w.runTo(at("14:50"))
	if len(first) != 1 || first[0].To != officePhone {
		t.Fatalf("first round %v, want the office", timeline(first))
	}
	a := w.onlyAlert()
	st := State{School: w.school, Loc: london, Officer: w.officers["jdoe"], Officers: w.officers, Alerts: []*Alert{a}, Visit: w.visits[a.VisitID]}

	// The office's SMS is refused (opted out): call the office.
	r, _ := w.decide(st, func(st State) (Result, error) {
		return DeliveryFailed(st, first[0].Message, "opted_out", w.now, w.p), nil
	})
	if got := callPhones(w.calls); !slices.Equal(got, []string{officePhone}) || len(r.Messages) != 0 {
		t.Fatalf("after the SMS failed: calls %v, texts %v; want a call to the office", got, phones(r.Messages, ""))
	}
	call := w.calls[0].Message
	// 14:53: the call is not answered: the office level is unreachable, managers
	// now. That round, to the managers alone, leaves the repeat to everyone due
	// at 14:55, five minutes after the last round to all.
	w.now = at("14:53")
	a = w.alerts[a.ID]
	st.Alerts = []*Alert{a}
	r, _ = w.decide(st, func(st State) (Result, error) { return DeliveryFailed(st, call, "no-answer", w.now, w.p), nil })
	if got := phones(r.Messages, KindAlert); !slices.Equal(got, []string{headPhone, deputyPhone}) {
		t.Errorf("after the call failed, texts went to %v, want the managers at once", got)
	}
	if a = w.alerts[a.ID]; a.Level != 1 || !slices.Contains(a.Unreachable, officePhone) {
		t.Errorf("alert level %d unreachable %v, want level 1 with the office unreachable", a.Level, a.Unreachable)
	}
	if wake := w.p.AlertWake(a); !wake.Equal(at("14:55")) {
		t.Errorf("next round at %s, want the repeat at 14:55 (the managers' own round must not put it off)", wake.In(london).Format("15:04"))
	}
	// A failed reminder re-routes nothing (one an opted-out phone refused goes
	// again as a call: ReminderRefused); nor does an ALL CLEAR of an open alert.
	for _, m := range []Message{{Kind: KindAllClear, Channel: ChannelSMS, To: officePhone}, {Kind: KindReminder, Channel: ChannelSMS, To: janePhone}} {
		if r := DeliveryFailed(st, m, "unreachable", w.now, w.p); !r.Empty() {
			t.Errorf("failed %s re-routed: %+v", m.Kind, r)
		}
	}
}

// A contact Twilio refuses an alert SMS for good (a landline office: not a
// mobile) is called in that round and in every later one without another SMS
// that would fail the same way, and gets the ALL CLEAR by call. A failure that
// may pass (a handset switched off) leaves the next round's SMS as it was.
func TestNoSMSToAPhoneThatCannotTakeOne(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		reason string
		noSMS  bool
	}{{"not_mobile", true}, {"invalid_number", true}, {"unreachable", false}} {
		t.Run(tc.reason, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
			w.runTo(at("14:49")) // the reminder
			first := w.runTo(at("14:50"))
			a := w.onlyAlert()
			st := State{School: w.school, Loc: london, Officer: w.officers["jdoe"], Officers: w.officers, Alerts: []*Alert{a}, Visit: w.visits[a.VisitID]}
			w.decide(st, func(st State) (Result, error) {
				return DeliveryFailed(st, first[0].Message, tc.reason, w.now, w.p), nil
			})
			if got := callPhones(w.calls); !slices.Equal(got, []string{officePhone}) {
				t.Fatalf("after the SMS failed: calls %v, want the office", got)
			}
			repeat := w.runTo(at("14:55"))
			texted := slices.ContainsFunc(repeat, func(m sentMsg) bool { return m.To == officePhone })
			called := len(w.calls) == 2 && w.calls[1].To == officePhone && w.calls[1].Kind == KindAlert
			if texted == tc.noSMS || !called {
				t.Errorf("14:55 repeat: texted the office %v, called it %v; want texted %v and called", texted, called, !tc.noSMS)
			}
			w.mustSMS(janePhone, "IN")
			last := w.calls[len(w.calls)-1]
			clearByCall := last.Kind == KindAllClear && last.To == officePhone
			clearByText := slices.ContainsFunc(w.sent, func(m sentMsg) bool { return m.Kind == KindAllClear && m.To == officePhone })
			if clearByCall != tc.noSMS || clearByText == tc.noSMS {
				t.Errorf("ALL CLEAR to the office: by call %v, by SMS %v; want by call %v", clearByCall, clearByText, tc.noSMS)
			}
		})
	}
}

// An officer whose phone opted out is reported to the office and reminded by call.
func TestOfficerOptedOut(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	st := State{School: w.school, Loc: london, Officer: w.officers["jdoe"]}
	r := OfficerOptedOut(st, w.now, w.p)
	if got := phones(r.Messages, KindNotice); !slices.Equal(got, []string{officePhone}) {
		t.Fatalf("opt-out notice went to %v, want the office", got)
	}
	if b := r.Messages[0].Body; !strings.Contains(b, "Jane Doe") || !strings.Contains(b, janePhone) || !strings.Contains(b, "phone them") || GSM(b) != b {
		t.Errorf("opt-out notice %q", b)
	}
	w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
	os := w.states["jdoe"]
	os.OptedOut = true
	w.states["jdoe"] = os
	v := w.openVisit("jdoe")
	st = State{School: w.school, Loc: london, Officer: w.officers["jdoe"], Officers: w.officers, Visit: v, OptedOut: true}
	w.now = at("14:35")
	r, _ = w.decide(st, func(st State) (Result, error) { return VisitTimer(st, w.now, w.p, w.newIDs()), nil })
	if len(w.calls) != 1 || w.calls[0].To != janePhone || w.calls[0].Kind != KindReminder || !strings.Contains(w.calls[0].Body, "due back") {
		t.Errorf("reminder to an opted-out officer: calls %+v, texts %v; want one call", w.calls, phones(r.Messages, ""))
	}
}

// The reminder whose refusal shows that the officer opted out (21610) is itself
// re-sent as a call, once: with the ID an opted-out officer's reminder call has,
// so the outbox keeps one if both happen. A stale reminder is not re-sent.
func TestRefusedReminderBecomesACall(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
	sent := w.runTo(at("14:35"))
	if len(sent) != 1 || sent[0].Kind != KindReminder || sent[0].To != janePhone {
		t.Fatalf("at 14:35 sent %v, want Jane's reminder", timeline(sent))
	}
	reminder := sent[0].Message
	jane := w.officers["jdoe"]
	st := State{School: w.school, Loc: london, Officer: jane, Officers: w.officers, Visit: w.openVisit("jdoe")}
	r, _ := w.decide(st, func(st State) (Result, error) { return ReminderRefused(st, reminder, "opted out", w.now, w.p), nil })
	if len(r.Messages) != 0 || len(w.calls) != 1 {
		t.Fatalf("after the refusal: texts %v, calls %+v; want one call", phones(r.Messages, ""), w.calls)
	}
	call := w.calls[0].Message
	if call.To != janePhone || call.Kind != KindReminder || !strings.Contains(call.Body, "due back from 14 Elm Road at 14:45") {
		t.Errorf("call %+v, want Jane reminded she is due back at 14:45", call)
	}
	// The call an opted-out officer's reminder would have been.
	v := *st.Visit
	v.RemindedAt = time.Time{}
	optedOut := VisitTimer(State{School: w.school, Loc: london, Officer: jane, Officers: w.officers, Visit: &v, OptedOut: true}, w.now, w.p, IDs{})
	if len(optedOut.Messages) != 1 || optedOut.Messages[0].ID != call.ID {
		t.Errorf("re-sent call %q; the opted-out reminder call is %+v: the IDs must match", call.ID, optedOut.Messages)
	}

	// A reminder for a due time the visit no longer has, or of a closed visit,
	// is not re-sent; nor is anything but a reminder SMS.
	w.mustSMS(janePhone, "EXTEND 30")
	st.Visit = w.openVisit("jdoe")
	call.Channel = ChannelCall
	for _, m := range []Message{reminder, call, {Kind: KindAlert, Channel: ChannelSMS, To: janePhone, ID: reminder.ID}} {
		if r := ReminderRefused(st, m, "opted out", w.now, w.p); !r.Empty() || len(r.Audit) != 0 {
			t.Errorf("refused %s %s %s after EXTEND re-sent: %+v", m.Kind, m.Channel, m.ID, r)
		}
	}
	w.mustSMS(janePhone, "IN")
	st.Visit = w.visits[st.Visit.ID]
	fresh := reminder
	fresh.ID = fmt.Sprintf("%s:remind:%d:%s", st.Visit.ID, st.Visit.DueAt.UnixMilli(), janePhone)
	if r := ReminderRefused(st, fresh, "opted out", w.now, w.p); !r.Empty() {
		t.Errorf("refused reminder of a closed visit re-sent: %+v", r)
	}
}

// An ALL CLEAR whose SMS fails for good reaches the contact by call, once: a
// contact who had the alert (perhaps only by call) must learn the officer is safe.
func TestFailedAllClearBecomesACall(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
	w.runTo(at("14:50"))
	w.now = at("14:52")
	w.mustSMS(janePhone, "EXTEND 30")
	var clear Message
	for _, m := range w.sent {
		if m.Kind == KindAllClear {
			clear = m.Message
		}
	}
	if clear.To != officePhone {
		t.Fatalf("ALL CLEAR %+v, want one to the office", clear)
	}
	a := w.onlyAlert()
	st := State{School: w.school, Loc: london, Officer: w.officers["jdoe"], Officers: w.officers, Alerts: []*Alert{a}, Visit: w.visits[a.VisitID]}
	r, _ := w.decide(st, func(st State) (Result, error) { return DeliveryFailed(st, clear, "invalid_number", w.now, w.p), nil })
	if len(r.Messages) != 0 || len(w.calls) != 1 {
		t.Fatalf("after the ALL CLEAR SMS failed: texts %v, calls %+v; want one call", phones(r.Messages, ""), w.calls)
	}
	call := w.calls[0].Message
	if call.To != officePhone || call.Kind != KindAllClear || call.AlertID != a.ID || call.ID != clear.ID+":call" {
		t.Errorf("call %+v, want the office's ALL CLEAR", call)
	}
	contains := func(s string, subs ...string) {
		for _, sub := range subs {
			if !strings.Contains(s, sub) {
				t.Errorf("spoken ALL CLEAR %q lacks %q", s, sub)
			}
		}
	}
	contains(call.Body, "ALL CLEAR", "Bishop Lonsdale", "Jane Doe is safe", "closed at 14:52", "extended the visit to 15:22")
	if GSM(call.Body) != call.Body {
		t.Errorf("spoken ALL CLEAR is not GSM-7: %q", call.Body)
	}
	if a = w.alerts[a.ID]; a.Open() || a.Events[len(a.Events)-1].Type != "delivery_failed" {
		t.Errorf("alert %s, last event %+v: want it resolved, with the failure on its trail", a.State, a.Events[len(a.Events)-1])
	}
	// The call failing too is the end of it.
	st.Alerts = []*Alert{a}
	if r := DeliveryFailed(st, call, "no-answer", w.now, w.p); !r.Empty() {
		t.Errorf("failed ALL CLEAR call re-routed: %+v", r)
	}
}

// Only a repeat of an overdue alert may be held back by the per-contact limit:
// not the round of a newly reached level, though it goes to a phone the alert
// reached on a lower list (a manager who is on the police list too), nor
// reminders, notices, ALL CLEARs, panics or first notifications.
func TestOnlyRepeatsAreThrottled(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.school.Contacts[ListPolice] = append(w.school.Contacts[ListPolice], Contact{Name: "Head of School", Phone: headPhone})
	w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
	w.runTo(at("14:35"))
	w.now = at("14:40")
	w.mustSMS(janePhone, "ABORT flat tyre")
	w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
	for _, m := range w.sent {
		if Throttled(m.Message) {
			t.Errorf("%s %s to %s may be held back", m.At.In(london).Format("15:04"), m.Kind, m.To)
		}
	}
	w.runTo(at("15:44")) // overdue 15:30, managers 15:40
	a := w.openAlerts()[0]
	st := State{School: w.school, Loc: london, Officer: w.officers["jdoe"], Officers: w.officers, Alerts: []*Alert{a}, Visit: w.visits[a.VisitID]}
	// 15:45: a plain repeat, held back if need be.
	repeat := AlertTimer(st, at("15:45"), w.p)
	if len(repeat.Messages) == 0 {
		t.Fatal("no repeat at 15:45")
	}
	for _, m := range repeat.Messages {
		if !Throttled(m) {
			t.Errorf("repeat to %s (%s) never held back", m.To, m.Channel)
		}
	}
	// 15:50: the police level: its round, to the head too, is never held back.
	police := AlertTimer(st, at("15:50"), w.p)
	if !slices.ContainsFunc(police.Messages, func(m Message) bool { return m.To == headPhone }) {
		t.Fatal("no police-level round to the head at 15:50")
	}
	for _, m := range police.Messages {
		if m.Kind == KindAlert && Throttled(m) {
			t.Errorf("police-level round to %s (%s) may be held back", m.To, m.Channel)
		}
	}
	for _, m := range []Message{{Kind: KindAlert, Priority: PriorityPanic}, {Kind: KindAllClear, Priority: PriorityAlert},
		{Kind: KindNotice, Priority: PriorityAlert}, {Kind: KindReminder, Priority: PriorityNormal}} {
		if Throttled(m) {
			t.Errorf("%s (priority %d) may be held back", m.Kind, m.Priority)
		}
	}
}

// What a voice reads: "an overdue alert", "a panic alert", and a destination
// without the *** of a redacted pupil reference (read aloud as "star star star").
func TestSpokenTexts(t *testing.T) {
	t.Parallel()
	w := Writer{School: testSchool(), Loc: london}
	o := testOfficers()["jdoe"]
	a := &Alert{ID: "a1", Code: "1234", Reason: ReasonOverdue, VisitID: "v1", Officer: o.ID,
		Destination: "12 Pupil Close re ***", StartedAt: at("14:00"), DueAt: at("14:45"), RaisedAt: at("14:50")}
	got := w.Spoken(a, o)
	for _, want := range []string{"This is Vigil, with an overdue alert for", "The visit was to 12 Pupil Close re, from 14:00"} {
		if !strings.Contains(got, want) {
			t.Errorf("spoken overdue alert %q, want %q", got, want)
		}
	}
	if strings.Contains(got, "*") {
		t.Errorf("spoken alert reads a redaction aloud: %q", got)
	}
	// An overdue alert that became a panic at 15:02 says when the officer pressed
	// it, as the SMS does, not when the alert was raised (14:50).
	a.Reason = ReasonPanic
	a.Events = append(a.Events, Event{At: at("15:02"), Type: "panic", By: janePhone})
	if got := w.Spoken(a, o); !strings.Contains(got, "with a panic alert for") || !strings.Contains(got, "pressed panic at 15:02") {
		t.Errorf("spoken panic alert %q, want it pressed at 15:02", got)
	}
	v := &Visit{ID: "v1", Destination: "*** 14 Elm Road", DueAt: at("14:45")}
	if got := w.SpokenReminder(v); !strings.Contains(got, "due back from 14 Elm Road at 14:45") {
		t.Errorf("spoken reminder %q", got)
	}
}
