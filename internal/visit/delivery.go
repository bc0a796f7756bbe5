package visit

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Twilio's code for a number that opted out of SMS (texted STOP).
const CodeOptedOut = 21610

// finalStatus holds the statuses after which Twilio reports nothing more of a
// message (delivered, undelivered, failed, canceled, read) or of a call (completed,
// busy, no-answer, failed, canceled).
var finalStatus = map[string]bool{
	"delivered": true, "undelivered": true, "failed": true, "canceled": true, "read": true,
	"completed": true, "busy": true, "no-answer": true,
}

// FinalStatus reports whether status is the last one Twilio gives a message or
// call. Others (queued, sending, sent, ringing, in-progress, ...) may still be
// followed by a failure: "sent" only means a carrier took the SMS.
func FinalStatus(status string) bool { return finalStatus[status] }

// FinalStatuses lists the final statuses, sorted (for code outside Go, such as a
// Lua script, that must know them too).
func FinalStatuses() []string { return slices.Sorted(maps.Keys(finalStatus)) }

// callsToo reports whether an alert message to r also goes as a voice call: panic
// and duress alerts and the police level always do; other levels are called when
// the alert comes round again and nobody has taken charge.
func (d *decision) callsToo(a *Alert, r Recipient, prio int, repeat bool) bool {
	return prio == PriorityPanic || r.List == ListPolice || (repeat && a.State == AlertOpen)
}

// callFor is the voice call that goes with (or replaces) the alert SMS m.
func (d *decision) callFor(m Message, a *Alert, o *Officer) Message {
	m.ID += ":call"
	m.Channel = ChannelCall
	m.Body = d.w.Spoken(a, o)
	m.Validity = 0
	return m
}

// noSMSReasons are the failure reasons (sms.CodeReason) that say a phone cannot
// take SMS at all: sending the next round's text there would fail the same way.
// Not "unreachable" (a handset switched off may take the next one).
var noSMSReasons = map[string]bool{
	"not_mobile": true, "invalid_number": true, "opted_out": true, "blocked": true, "region_disabled": true,
}

// DeliveryFailed decides what to do when an alert message or an ALL CLEAR could
// not be delivered (Twilio refused it, or its receipt said undelivered or
// failed). An SMS is re-routed as a voice call to the same contact; a call that failed (busy, no
// answer, failed) marks the contact unreachable, and when every contact of the
// level is unreachable the next level is notified at once. Contacts of a level are
// all notified together, so "the next contact on the same list" has already been
// tried by then. st.Alerts[0] is the message's alert.
func DeliveryFailed(st State, m Message, reason string, now time.Time, p Policy) Result {
	r, _ := finish(st)(deliveryFailed(st, m, reason, now, p), nil)
	return r
}

func deliveryFailed(st State, m Message, reason string, now time.Time, p Policy) Result {
	d := newDecision(st, p, now)
	if m.Kind == KindAllClear && len(st.Alerts) > 0 {
		d.allClearFailed(st.Alerts[0], m, reason)
		return d.r
	}
	if m.Kind != KindAlert || len(st.Alerts) == 0 || !st.Alerts[0].Open() {
		return d.r
	}
	a := clone(st.Alerts[0])
	o := d.officerOf(a)
	switch m.Channel {
	case ChannelSMS:
		later := ""
		if noSMSReasons[reason] && !slices.Contains(a.NoSMS, m.To) {
			a.NoSMS = append(a.NoSMS, m.To)
			later = "; later rounds call them without an SMS"
		}
		d.alertEvent(a, "delivery_failed", "twilio", fmt.Sprintf("SMS to %s (%s) failed: %s; they get this round's call instead (one call a round; a repeat's call counts against the per-contact call limit)%s", m.Name, m.To, reason, later))
		// The call has the ID of the round's own call to this phone, so when the
		// round already called them (police, panic, repeats) no second call goes.
		d.queue(d.callFor(m, a, o))
	case ChannelCall:
		if !slices.Contains(a.Unreachable, m.To) {
			a.Unreachable = append(a.Unreachable, m.To)
		}
		d.alertEvent(a, "delivery_failed", "twilio", fmt.Sprintf("call to %s (%s) failed: %s", m.Name, m.To, reason))
		if a.Reason == ReasonOverdue && a.Level == m.Level && a.Level+1 < len(p.Levels) && d.levelUnreachable(a, m.Level) {
			from := a.Level + 1
			a.Level = d.cascade(a, from)
			d.alertEvent(a, "rerouted", "vigil", fmt.Sprintf("nobody at level %d could be reached", m.Level))
			d.sendNewLevels(a, from, a.Level)
		}
	}
	return d.r
}

// allClearFailed re-sends an ALL CLEAR whose SMS failed for good as a voice call
// to the same contact: everyone the alert reached must learn the officer is safe
// (SPEC §1), and a contact whose SMS fails (an invalid or landline number, an
// opted-out phone) may have had the alert only by call. A failed ALL CLEAR call
// is the end of it: the alert is over, and there is no level to move on to.
func (d *decision) allClearFailed(a *Alert, m Message, reason string) {
	if m.Channel != ChannelSMS || a.Open() {
		return
	}
	a = clone(a)
	d.alertEvent(a, "delivery_failed", "twilio", fmt.Sprintf("ALL CLEAR SMS to %s (%s) failed: %s; calling instead", m.Name, m.To, reason))
	d.queue(d.allClearCall(a, m))
}

// allClearCall is the voice call that replaces the ALL CLEAR SMS m: one ID,
// whether it is queued after the SMS failed or instead of it (Alert.NoSMS).
func (d *decision) allClearCall(a *Alert, m Message) Message {
	m.ID += ":call"
	m.Channel = ChannelCall
	m.Body = d.w.SpokenAllClear(a, d.officerOf(a))
	return m
}

// Throttled reports whether the per-contact limit may hold m back: only a repeat
// of an overdue alert, a round that says again what the phone has had. Never a
// panic or duress alert, an alert's first message to a contact or to a newly
// reached level (First), a reminder, a notice or an ALL CLEAR: each of those is
// either the first word of something or of use only when it comes at once.
func Throttled(m Message) bool {
	return m.Kind == KindAlert && m.Priority == PriorityAlert && !m.First
}

// markFirst marks the alert messages of a round that is not a plain repeat.
func markFirst(ms []Message) {
	for i := range ms {
		if ms[i].Kind == KindAlert {
			ms[i].First = true
		}
	}
}

// levelUnreachable reports whether every contact a reached at level lvl has failed.
func (d *decision) levelUnreachable(a *Alert, lvl int) bool {
	any := false
	for _, r := range a.Notified {
		if r.Level != lvl {
			continue
		}
		any = true
		if !slices.Contains(a.Unreachable, r.Phone) {
			return false
		}
	}
	return any
}

// OfficerOptedOut tells the school office that an officer's phone refuses SMS (they
// texted STOP, CANCEL, END, QUIT or UNSUBSCRIBE, so Twilio answers 21610), and that
// Vigil phones them instead. The caller records OfficerState.OptedOut.
func OfficerOptedOut(st State, now time.Time, p Policy) Result {
	d := newDecision(st, p, now)
	body := d.w.OptedOutNotice(st.Officer)
	for _, c := range uniqueContacts(st.School.Contacts[ListOffice]) {
		d.queue(Message{ID: fmt.Sprintf("optout:%s:%d:%s", st.Officer.ID, now.UnixMilli(), c.Phone), Kind: KindNotice,
			To: c.Phone, Name: c.Name, Body: body, Priority: PriorityAlert})
	}
	d.r.Audit = append(d.r.Audit, Event{At: now, Type: "officer_opted_out", By: "twilio", Detail: st.Officer.ID})
	return d.r
}

// ReminderRefused re-sends as a voice call a reminder SMS that failed for good
// (reason says why): a phone that opted out (Twilio 21610) is reached by call
// (SPEC §5), the reminder whose refusal revealed the opt-out included, and a
// landline or a filtered number may take a call. st.Visit is the reminder's visit. A reminder whose visit has closed, or that was
// for a due time the visit no longer has (after EXTEND a new reminder comes, by
// call), is not re-sent. The call has the ID the reminder's call would have had had
// the opt-out been known when it was queued, so it is queued once whichever way.
func ReminderRefused(st State, m Message, reason string, now time.Time, p Policy) Result {
	r, _ := finish(st)(reminderRefused(st, m, reason, now, p), nil)
	return r
}

func reminderRefused(st State, m Message, reason string, now time.Time, p Policy) Result {
	d := newDecision(st, p, now)
	v := st.Visit
	if m.Kind != KindReminder || m.Channel != ChannelSMS || !v.Open() ||
		m.ID != reminderID(v, m.To) {
		return d.r
	}
	d.queue(Message{ID: m.ID + ":call", Kind: KindReminder, Channel: ChannelCall, To: m.To, Name: m.Name,
		Body: d.w.SpokenReminder(v), VisitID: v.ID, Priority: m.Priority})
	d.r.Audit = append(d.r.Audit, Event{At: now, Type: "reminder_by_call", By: "vigil", Visit: v.ID,
		Detail: fmt.Sprintf("reminder SMS to %s (%s) failed (%s); calling instead", m.Name, m.To, reason)})
	return d.r
}

// OptedOutNotice tells the office an officer can no longer be texted.
func (w Writer) OptedOutNotice(o *Officer) string {
	return GSM(fmt.Sprintf("Vigil can no longer text %s (%s): the phone opted out of SMS (STOP). Vigil will phone them instead. Ask them to text START to the Vigil number.",
		o.Name, o.Phone))
}

// Spoken is an alert as a voice call says it: short sentences, the registration
// spelt out, and how to take charge.
func (w Writer) Spoken(a *Alert, o *Officer) string {
	var b strings.Builder
	article := "a"
	if a.Reason == ReasonOverdue {
		article = "an"
	}
	fmt.Fprintf(&b, "This is Vigil, with %s %s alert for %s. ", article, strings.ToLower(a.Reason), w.schoolName())
	switch a.Reason {
	case ReasonOverdue:
		fmt.Fprintf(&b, "%s has not checked in. ", o.Name)
	case ReasonPanic:
		fmt.Fprintf(&b, "%s pressed panic at %s. ", o.Name, w.at(pressedAt(a)))
	case ReasonDuress:
		fmt.Fprintf(&b, "%s checked in with the duress code at %s, and may be under threat. Do not call their phone. ", o.Name, w.at(a.RaisedAt))
	}
	if a.Destination != "" {
		fmt.Fprintf(&b, "The visit was to %s, from %s, due back at %s. ", speakable(a.Destination), w.at(a.StartedAt), w.at(a.DueAt))
	}
	if v := o.Vehicle; v != nil && v.Describe() != "" {
		fmt.Fprintf(&b, "Vehicle: %s %s %s, registration %s. ", v.Colour, v.Make, v.Model, spell(v.Registration))
	}
	fmt.Fprintf(&b, "Their phone is %s. ", spell(strings.TrimPrefix(o.Phone, "+")))
	return GSM(b.String())
}

// SpokenReminder is a reminder as a voice call says it.
func (w Writer) SpokenReminder(v *Visit) string {
	return GSM(fmt.Sprintf("This is Vigil. You are due back from %s at %s. Text IN when you are safe.", speakable(v.Destination), w.at(v.DueAt)))
}

// speakable is a destination as a voice should read it: without the *** that
// stands for a pupil reference redacted from it (read aloud as "star star star").
func speakable(dest string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(dest, "***", "")), " ")
}

// spell writes s one character at a time, so a voice reads "A B 1 2" not "ab twelve".
func spell(s string) string {
	var parts []string
	for _, r := range s {
		if r != ' ' {
			parts = append(parts, string(r))
		}
	}
	return strings.Join(parts, " ")
}
