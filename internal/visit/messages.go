package visit

import (
	"fmt"
	"strings"
	"time"
)

// Message kinds (the `kind` label of vigil_notifications_total).
const (
	KindReminder = "reminder"
	KindAlert    = "alert"
	KindAllClear = "all_clear"
	KindNotice   = "notice"
	KindReply    = "reply"
)

// Channels a message can go by.
const (
	ChannelSMS  = "sms"
	ChannelCall = "call"
)

// Priorities of outgoing messages: lower goes first when sends are throttled.
const (
	PriorityPanic  = 0 // panic and duress alerts
	PriorityAlert  = 1 // overdue alerts, ALL CLEARs, take-charge notices
	PriorityNormal = 2 // reminders and written notices
)

// Message is one notification for the outbox. Its ID is deterministic (what, round,
// recipient), so deciding the same event twice queues it once.
type Message struct {
	ID       string        `json:"id"`
	School   string        `json:"school"`
	Kind     string        `json:"kind"`
	Channel  string        `json:"channel"`
	To       string        `json:"to"`
	Name     string        `json:"name,omitempty"`
	Body     string        `json:"body"`
	VisitID  string        `json:"visit_id,omitempty"`
	AlertID  string        `json:"alert_id,omitempty"`
	Level    int           `json:"level"`
	Priority int           `json:"priority"`
	Validity time.Duration `json:"validity,omitempty"` // Twilio ValidityPeriod; alerts only
	// First marks an alert message that is not a plain repeat: the alert's first
	// notification to this contact, or a round that reaches a new level or ends an
	// ACK's hold. Per-contact throttles never hold it back (Throttled).
	First bool `json:"first,omitempty"`
}

// clock writes t as 24-hour HH:MM in loc.
func clock(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format("15:04")
}

// Writer renders every message text of one school. Text is GSM-7 (see GSM).
type Writer struct {
	School *School
	Loc    *time.Location
}

func (w Writer) loc() *time.Location {
	if w.Loc == nil {
		return time.UTC
	}
	return w.Loc
}

func (w Writer) at(t time.Time) string { return clock(t, w.Loc) }

func (w Writer) schoolName() string {
	if w.School == nil {
		return ""
	}
	if w.School.Name != "" {
		return w.School.Name
	}
	return w.School.ID
}

// Reminder is the SMS an officer gets before the due time. One segment.
func (w Writer) Reminder(v *Visit) string {
	return fit("Vigil: you are due back from ", v.Destination,
		fmt.Sprintf(" at %s. Reply IN when safe, or EXTEND 15 for more time.", w.at(v.DueAt)))
}

// VisitOpened is the reply to VISIT. One segment.
func (w Writer) VisitOpened(v *Visit) string {
	return fit("Visit to ", v.Destination,
		fmt.Sprintf(" logged, due back %s. Reply IN when safe, EXTEND 15 for more time, PANIC if in danger.", w.at(v.DueAt)))
}

// NextOpened is the reply to NEXT: the check-in and the new visit. One segment.
func (w Writer) NextOpened(prev, v *Visit, now time.Time) string {
	head := fmt.Sprintf("Checked in at %s. Next visit to ", w.at(now))
	if prev == nil {
		head = "No visit was open. Next visit to "
	}
	return fit(head, v.Destination, fmt.Sprintf(" logged, due back %s. Reply IN when safe, EXTEND 15 for more time.", w.at(v.DueAt)))
}

// CheckedIn is the reply to a check-in; a duress check-in gets exactly this too.
func (w Writer) CheckedIn(v *Visit, now time.Time) string {
	if v == nil {
		return GSM(fmt.Sprintf("Checked in at %s. You had no open visit.", w.at(now)))
	}
	return fit(fmt.Sprintf("Checked in at %s. Visit to ", w.at(now)), v.Destination, " closed. Thank you.")
}

// Extended is the reply to EXTEND. One segment.
func (w Writer) Extended(v *Visit, capped bool) string {
	s := fmt.Sprintf("Extended: now due back %s.", w.at(v.DueAt))
	if capped {
		s = fmt.Sprintf("Extended to %s only: that is the longest a visit may last.", w.at(v.DueAt))
	}
	return fit("", s, " Reply IN when safe.")
}

// Status is the reply to STATUS. One segment. A visit past its due time is
// OVERDUE beside the due time, not "since" it: the alert goes only after the grace.
// EXTEND is suggested only while it can still add time.
func (w Writer) Status(v *Visit, now time.Time, extendable bool) string {
	if v == nil {
		return "No open visit. To start one: VISIT 45 14 Elm Road"
	}
	state := fmt.Sprintf(", due back %s.", w.at(v.DueAt))
	if v.State == StateOverdue || now.After(v.DueAt) {
		state = fmt.Sprintf(", due back %s, OVERDUE.", w.at(v.DueAt))
	}
	tail := " Reply IN when safe or EXTEND 15."
	if !extendable {
		tail = " It cannot be extended: reply IN when safe."
	}
	return fit("Open visit: ", v.Destination, state+tail)
}

// Help is the reply to anything not understood.
func (w Writer) Help() string {
	return "Vigil commands: VISIT 45 14 Elm Road | IN | EXTEND 15 | STATUS | NEXT 30 place | ABORT reason | PANIC"
}

// ContactHelp is the reply to a contact's message that is not understood.
func (w Writer) ContactHelp() string {
	return "Vigil: reply ACK or ACK <code> to take charge of an alert, RESOLVE <code> <how> when the officer is found."
}

// PanicReply tells the officer who is being alerted. One segment.
func (w Writer) PanicReply(who []Recipient, now time.Time) string {
	if len(who) == 0 {
		return GSM(fmt.Sprintf("PANIC received %s, but no contacts are on file to alert. Call 999 now.", w.at(now)))
	}
	return fit(fmt.Sprintf("PANIC received %s. Alerting ", w.at(now)), recipientNames(who), " now. Get to safety; call 999 if you can.")
}

// AbortReply tells the officer the notice went. One segment.
func (w Writer) AbortReply(v *Visit, sent int) string {
	if sent == 0 {
		return fit("Visit to ", v.Destination, " cancelled. No headteacher number is on file: tell the office why.")
	}
	return fit("Visit to ", v.Destination, " cancelled. Written notice sent to the headteacher.")
}

// AbortNotice is the written notice to the headteacher list.
func (w Writer) AbortNotice(o *Officer, v *Visit, by, reason string, now time.Time) string {
	if by != "" {
		// Called off by the office (API or console), not by the officer.
		return GSM(fmt.Sprintf("VISIT CALLED OFF - %s: %s (office) called off the visit of %s (%s) to %s (begun %s) at %s. Reason: %s",
			w.schoolName(), by, o.Name, o.Phone, v.Destination, w.at(v.StartedAt), w.at(now), reason))
	}
	return GSM(fmt.Sprintf("VISIT CALLED OFF - %s: %s (%s) called off the visit to %s (begun %s) at %s. Reason: %s",
		w.schoolName(), o.Name, o.Phone, v.Destination, w.at(v.StartedAt), w.at(now), reason))
}

// Alert is the alert text for level lvl (SPEC §6): reason, school, officer and phone,
// destination, times, vehicle, who was alerted before and who took charge, ACK code.
func (w Writer) Alert(a *Alert, o *Officer, companions []*Officer, lvl int, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s ALERT - %s\n%s (%s)", strings.ToUpper(a.Reason), w.schoolName(), o.Name, o.Phone)
	switch a.Reason {
	case ReasonOverdue:
		b.WriteString(" has not checked in.")
	case ReasonPanic:
		fmt.Fprintf(&b, " pressed PANIC at %s.", w.at(pressedAt(a)))
	case ReasonDuress:
		fmt.Fprintf(&b, " checked in with the duress code at %s: may be under threat. Do not call or text the officer's phone.", w.at(a.RaisedAt))
	}
	if len(companions) > 0 {
		b.WriteString(" With:")
		for i, c := range companions {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, " %s (%s)", c.Name, c.Phone)
		}
		b.WriteString(".")
	}
	switch {
	case a.Destination == "":
		b.WriteString("\nNo visit on record.")
	default:
		// A panic with no open visit names the last one, and says so.
		label := "Visit"
		if a.VisitID == "" {
			label = "Last visit"
		}
		fmt.Fprintf(&b, "\n%s: %s, began %s, due %s", label, a.Destination, w.at(a.StartedAt), w.at(a.DueAt))
		if late := now.Sub(a.DueAt); a.VisitID != "" && late >= time.Minute {
			fmt.Fprintf(&b, " (%d min overdue)", int(late.Round(time.Minute).Minutes()))
		}
		b.WriteString(".")
	}
	if v := o.Vehicle.Describe(); v != "" {
		fmt.Fprintf(&b, "\nVehicle: %s.", v)
	}
	if a.LastMessage != "" {
		fmt.Fprintf(&b, "\nLast text: \"%s\"", clip(a.LastMessage, 60))
	}
	escalation := lvl > 0 || a.AckedBy != ""
	switch {
	case a.Reason != ReasonOverdue:
		// Every panic level hears at once: each is told who else was.
		fmt.Fprintf(&b, "\nAlerted: %s.", recipientNames(a.Notified))
		escalation = true
	case lvl > 0:
		if before := recipientsBelow(a.Notified, lvl); len(before) > 0 {
			fmt.Fprintf(&b, "\nAlready alerted: %s.", recipientNames(before))
		}
	}
	if escalation {
		if a.AckedBy != "" {
			fmt.Fprintf(&b, "\nTaken charge: %s at %s.", a.AckedBy, w.at(a.AckedAt))
		} else {
			b.WriteString("\nNo one has taken charge yet.")
		}
	}
	fmt.Fprintf(&b, "\nReply ACK %s to take charge.", a.Code)
	return GSM(b.String())
}

// pressedAt is when the officer last pressed PANIC (an overdue alert may have become
// a panic long after it was raised).
func pressedAt(a *Alert) time.Time {
	for i := len(a.Events) - 1; i >= 0; i-- {
		if e := a.Events[i]; e.Type == "panic" || e.Type == "panic_again" {
			return e.At
		}
	}
	return a.RaisedAt
}

// Briefing is what the contact who ACKed gets: the whole alert, that they have it,
// and how to close it.
func (w Writer) Briefing(a *Alert, o *Officer, companions []*Officer, now time.Time) string {
	// Written as for the level above the highest reached, so that "Already
	// alerted" names everyone the alert reached: the one in charge must know the
	// police were told, if they were.
	s := w.Alert(a, o, companions, a.Level+1, now)
	s = strings.TrimSuffix(s, GSM(fmt.Sprintf("\nReply ACK %s to take charge.", a.Code)))
	return GSM(fmt.Sprintf("You have taken charge of alert %s.\n%s\nWhen the officer is found, reply RESOLVE %s and how.", a.Code, s, a.Code))
}

// TookCharge tells the others notified who took an alert.
func (w Writer) TookCharge(a *Alert, o *Officer) string {
	s := fmt.Sprintf("%s ALERT %s for %s: %s took charge at %s.", strings.ToUpper(a.Reason), a.Code, o.Name, a.AckedBy, w.at(a.AckedAt))
	if !a.HoldUntil.IsZero() {
		s += fmt.Sprintf(" If the officer is not found, you will hear again at %s.", w.at(a.HoldUntil))
	}
	return GSM(s)
}

// AllClear tells everyone an alert reached that the officer is safe.
func (w Writer) AllClear(a *Alert, o *Officer, now time.Time) string {
	return GSM(fmt.Sprintf("ALL CLEAR - %s: %s (%s) is safe. %s alert %s closed at %s, %s.",
		w.schoolName(), o.Name, o.Phone, strings.ToUpper(a.Reason), a.Code, w.at(now), strings.TrimSuffix(a.Resolution, ".")))
}

// fit joins head, middle and tail as GSM-7 in one segment (160 septets), shortening
// the middle (a destination, a list of names) when it would not fit.
func fit(head, middle, tail string) string {
	head, middle, tail = GSM(head), GSM(middle), GSM(tail)
	room := 160 - Septets(head) - Septets(tail)
	return head + clipSeptets(middle, max(room, 0)) + tail
}

// clipSeptets shortens s to at most n septets, marking the cut with "..".
func clipSeptets(s string, n int) string {
	if Septets(s) <= n {
		return s
	}
	if n < 2 {
		return ""
	}
	r := []rune(s)
	for len(r) > 0 && Septets(string(r))+2 > n {
		r = r[:len(r)-1]
	}
	return strings.TrimSpace(string(r)) + ".."
}

func recipientNames(rs []Recipient) string {
	seen := map[string]bool{}
	var names []string
	for _, r := range rs {
		if seen[r.Phone] {
			continue
		}
		seen[r.Phone] = true
		names = append(names, r.Name)
	}
	if len(names) == 0 {
		return "no one (no contacts on file)"
	}
	if len(names) > 4 {
		return strings.Join(names[:4], ", ") + fmt.Sprintf(" and %d more", len(names)-4)
	}
	return strings.Join(names, ", ")
}

func recipientsBelow(rs []Recipient, lvl int) []Recipient {
	var out []Recipient
	for _, r := range rs {
		if r.Level < lvl {
			out = append(out, r)
		}
	}
	return out
}

// SpokenAllClear is an ALL CLEAR as a voice call says it: to a contact whose ALL
// CLEAR SMS could not be delivered.
func (w Writer) SpokenAllClear(a *Alert, o *Officer) string {
	return GSM(fmt.Sprintf("This is Vigil, with an ALL CLEAR for %s. %s is safe. The %s alert about %s was closed at %s: %s. No action is needed.",
		w.schoolName(), o.Name, strings.ToLower(a.Reason), o.Name, w.at(a.ResolvedAt), strings.TrimSuffix(a.Resolution, ".")))
}
