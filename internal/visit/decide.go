package visit

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Sources of an event, for the audit trail and for the wording of a resolution.
const (
	SourceSMS   = "sms"
	SourceAPI   = "api"
	SourceTimer = "timer"
)

// IDs are fresh identifiers the caller made for whatever an event may create, so that
// deciding stays pure. Code is a short numeric ACK code not used by another open
// alert of the school.
type IDs struct {
	Visit string
	Alert string
	Code  string
}

// OfficerState is what Vigil remembers of an officer between events: the open visit,
// the open alerts, and the last visit and text (for a PANIC with no open visit).
type OfficerState struct {
	OpenVisit string   `json:"open_visit,omitempty"`
	Alerts    []string `json:"alerts,omitempty"`
	LastVisit string   `json:"last_visit,omitempty"`
	LastText  string   `json:"last_text,omitempty"`
	// OptedOut is set when Twilio refused an SMS to the officer with 21610 (they
	// texted STOP): Vigil phones them instead until they text START.
	OptedOut bool `json:"opted_out,omitempty"`
}

// State is everything one event may read.
type State struct {
	School  *School
	Loc     *time.Location
	Officer *Officer
	// Officers holds the officers named by the alerts and visits in this state
	// (companions, and for an ACK the officer of every open alert), by ID.
	Officers map[string]*Officer
	// Visit is the officer's open visit (officer events) or the timer's visit.
	Visit *Visit
	// Alerts are the officer's open alerts (officer events), the timer's alert, or the
	// school's open alerts (a contact's ACK).
	Alerts []*Alert
	// LastVisit is the officer's most recent visit when none is open.
	LastVisit *Visit
	// Contact is the sender of a contact's message.
	Contact *Contact
	// LastText is the officer's last SMS (this event's, for an SMS), quoted in alerts.
	LastText string
	// OptedOut says the officer's phone no longer takes SMS: reach them by call.
	OptedOut bool
}

// Input is one event: a command, who sent it, and the IDs it may use.
type Input struct {
	Cmd    Command
	Source string
	By     string // a phone number, or an API token's name
	Text   string // the SMS as received
	IDs    IDs
	// For visits opened through the API.
	DueAt      time.Time
	Kind       string
	PupilRef   string
	Companions []string
}

// Result is what an event decided: the entities to save, the messages to queue, the
// audit trail, and the reply to the sender.
type Result struct {
	Visits   []*Visit
	Alerts   []*Alert
	Messages []Message
	Audit    []Event
	Reply    string
	// Raised are the alerts this event raised, AckedAfter how long the alert it
	// acknowledged waited (zero when none): for metrics.
	Raised     []*Alert
	AckedAfter time.Duration
}

// Empty reports whether the event changed nothing.
func (r *Result) Empty() bool {
	return len(r.Visits) == 0 && len(r.Alerts) == 0 && len(r.Messages) == 0
}

// ErrorKind says what went wrong with a request, so the edge can pick a status.
type ErrorKind int

// The kinds of Error.
const (
	Invalid  ErrorKind = iota + 1 // the request makes no sense: 400
	Conflict                      // the state forbids it (an open visit): 409
	NotFound                      // nothing to act on: 404
)

// Error is a refusal, worded for the person who asked (SMS or API).
type Error struct {
	Kind ErrorKind
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

func refuse(k ErrorKind, format string, args ...any) *Error {
	return &Error{Kind: k, Msg: GSM(fmt.Sprintf(format, args...))}
}

// decision accumulates a Result; its methods keep entities, messages and the audit
// trail in step.
type decision struct {
	st  State
	p   Policy
	now time.Time
	w   Writer
	r   Result
}

func newDecision(st State, p Policy, now time.Time) *decision {
	return &decision{st: st, p: p, now: now, w: Writer{School: st.School, Loc: st.Loc}}
}

func (d *decision) saveVisit(v *Visit) {
	for i, x := range d.r.Visits {
		if x.ID == v.ID {
			d.r.Visits[i] = v
			return
		}
	}
	d.r.Visits = append(d.r.Visits, v)
}

func (d *decision) saveAlert(a *Alert) {
	for i, x := range d.r.Alerts {
		if x.ID == a.ID {
			d.r.Alerts[i] = a
			return
		}
	}
	d.r.Alerts = append(d.r.Alerts, a)
}

func (d *decision) visitEvent(v *Visit, typ, by, detail string) {
	e := Event{At: d.now, Type: typ, By: by, Detail: detail, Visit: v.ID, Alert: v.AlertID}
	v.Events = append(v.Events, e)
	d.r.Audit = append(d.r.Audit, e)
	d.saveVisit(v)
}

func (d *decision) alertEvent(a *Alert, typ, by, detail string) {
	e := Event{At: d.now, Type: typ, By: by, Detail: detail, Visit: a.VisitID, Alert: a.ID}
	a.Events = append(a.Events, e)
	d.r.Audit = append(d.r.Audit, e)
	d.saveAlert(a)
}

func (d *decision) queue(m Message) {
	m.School = d.st.School.ID
	m.Body = GSM(m.Body)
	if m.Channel == "" {
		m.Channel = ChannelSMS
	}
	d.r.Messages = append(d.r.Messages, m)
}

// Decide is the one entry point of the domain: it routes an event to the rule that
// handles it. Timer events name what fell due through st: a Visit for a visit's
// timer, Alerts[0] (and no Visit) for an alert's. A scheduler that loads an alert's
// visit too (for its companions) cannot be told apart from a visit's timer by state
// alone, and must call VisitTimer or AlertTimer itself.
func Decide(st State, in Input, now time.Time, p Policy) (Result, error) {
	switch {
	case in.Source == SourceTimer && st.Visit != nil:
		return VisitTimer(st, now, p, in.IDs), nil
	case in.Source == SourceTimer && len(st.Alerts) > 0:
		return AlertTimer(st, now, p), nil
	case st.Contact != nil:
		return ContactCommand(st, in, now, p)
	default:
		return OfficerCommand(st, in, now, p)
	}
}

// OfficerCommand decides a command from an officer (by SMS, or the API on their behalf).
func OfficerCommand(st State, in Input, now time.Time, p Policy) (Result, error) {
	return finish(st)(officerCommand(st, in, now, p))
}

func officerCommand(st State, in Input, now time.Time, p Policy) (Result, error) {
	d := newDecision(st, p, now)
	if in.Cmd.Problem != "" {
		return Result{}, refuse(Invalid, "%s", in.Cmd.Problem)
	}
	switch in.Cmd.Verb {
	case VerbVisit:
		if st.Visit.Open() {
			return Result{}, refuse(Conflict, "%s", fit("You already have a visit open to ", st.Visit.Destination,
				fmt.Sprintf(", due %s. Text IN first, or NEXT 30 <place> to check in and start the next.", d.w.at(st.Visit.DueAt))))
		}
		v, err := d.openVisit(in)
		if err != nil {
			return Result{}, err
		}
		d.r.Reply = d.w.VisitOpened(v)
		if warn := st.Officer.InsuranceWarning(now.In(d.w.loc())); warn != "" {
			d.r.Reply = d.w.VisitOpenedWarning(v, warn)
		}
	case VerbNext:
		prev := st.Visit
		if prev.Open() {
			d.checkIn(prev, in)
		} else {
			prev = nil
		}
		v, err := d.openVisit(in)
		if err != nil {
			return Result{}, err
		}
		d.r.Reply = d.w.NextOpened(prev, v, now)
	case VerbIn:
		// The reply is written before anything else is decided, so a duress check-in
		// cannot reply differently from a normal one.
		d.r.Reply = d.w.CheckedIn(openOrNil(st.Visit), now)
		if st.Officer.DuressCode != "" && strings.EqualFold(in.Cmd.Code, st.Officer.DuressCode) {
			d.duress(in)
			break
		}
		if st.Visit.Open() {
			d.checkIn(st.Visit, in)
		}
		// The officer says they are safe: every other alert about them is over too (a
		// PANIC with no visit, or one whose visit was called off), except a duress
		// alert, which only a contact or the API resolves.
		for _, a := range st.Alerts {
			if a.Open() && a.Reason != ReasonDuress && !d.decided(a.ID) {
				d.resolve(clone(a), in.By, d.checkinResolution(in))
			}
		}
	case VerbExtend:
		if !st.Visit.Open() {
			return Result{}, refuse(NotFound, "No open visit to extend. To start one: VISIT 45 14 Elm Road")
		}
		if in.Cmd.Duration <= 0 {
			return Result{}, refuse(Invalid, "EXTEND needs a time, e.g. EXTEND 15 or EXTEND 1h.")
		}
		v := clone(st.Visit)
		due := v.DueAt
		if now.After(due) {
			due = now
		}
		due = due.Add(in.Cmd.Duration)
		limit := v.StartedAt.Add(p.MaxDuration)
		capped := due.After(limit)
		if capped {
			due = limit
		}
		if !due.After(now) {
			return Result{}, refuse(Invalid, "This visit has reached the longest a visit may last (%s). Text IN, or start a new one with NEXT.", shortDuration(p.MaxDuration))
		}
		v.DueAt, v.RemindedAt, v.State = due, time.Time{}, StateActive
		if at := p.reminderAt(v); !at.IsZero() && !at.After(now) {
			// The officer has just answered: a reminder whose time has already passed
			// would only arrive at once, on top of this reply.
			v.RemindedAt = now
		}
		d.visitEvent(v, "extended", in.By, "due "+d.w.at(due))
		// The officer is answering: an overdue alert for this visit is over.
		if a := d.alertOf(v); a != nil && a.Reason == ReasonOverdue {
			d.resolve(a, in.By, "officer extended the visit to "+d.w.at(due))
		}
		d.r.Reply = d.w.Extended(v, capped)
	case VerbPanic:
		d.panic(in)
	case VerbAbort:
		if !st.Visit.Open() {
			return Result{}, refuse(NotFound, "No open visit to call off.")
		}
		d.abort(st.Visit, in)
	case VerbStatus:
		v := openOrNil(st.Visit)
		d.r.Reply = d.w.Status(v, now, v != nil && p.extendable(v, now))
	case VerbAck, VerbResolve:
		// Only a contact takes charge of an alert (the service routes a contact's ACK
		// elsewhere): an officer's ACK, perhaps mistyped or from a borrowed phone, must
		// say it did nothing rather than answer with the officer's commands.
		return Result{}, refuse(Invalid, "%s is for the school's contacts, and this is an officer's phone. Nothing changed.",
			strings.ToUpper(string(in.Cmd.Verb)))
	default:
		d.r.Reply = d.w.Help()
	}
	return d.r, nil
}

func openOrNil(v *Visit) *Visit {
	if v.Open() {
		return v
	}
	return nil
}

func (d *decision) checkinResolution(in Input) string {
	if in.Source == SourceAPI {
		return "checked in by " + in.By
	}
	return "officer checked in"
}

// openVisit creates the officer's visit from in.
func (d *decision) openVisit(in Input) (*Visit, error) {
	dest := strings.TrimSpace(in.Cmd.Destination)
	if dest == "" {
		return nil, refuse(Invalid, "Say where you are going, e.g. VISIT 45 14 Elm Road.")
	}
	if len([]rune(dest)) > 200 {
		return nil, refuse(Invalid, "The destination is too long (200 characters at most).")
	}
	due := d.now.Add(d.p.DefaultDuration)
	switch {
	case !in.DueAt.IsZero():
		if !in.DueAt.After(d.now) {
			return nil, refuse(Invalid, "The due time %s is in the past.", in.DueAt.Format(time.RFC3339))
		}
		due = in.DueAt
	case in.Cmd.Duration > 0:
		due = d.now.Add(in.Cmd.Duration)
	}
	if due.Sub(d.now) > d.p.MaxDuration {
		return nil, refuse(Invalid, "A visit may last %s at most.", shortDuration(d.p.MaxDuration))
	}
	if !ValidKind(in.Kind) {
		return nil, refuse(Invalid, "Unknown visit kind %q.", in.Kind)
	}
	v := &Visit{
		ID: d.st.idOr(in.IDs.Visit), School: d.st.School.ID, Officer: d.st.Officer.ID,
		Companions: slices.Clone(in.Companions), Destination: dest, Kind: in.Kind, PupilRef: in.PupilRef,
		State: StateActive, StartedAt: d.now, DueAt: due,
	}
	if v.Companions == nil {
		v.Companions = []string{}
	}
	d.visitEvent(v, "opened", in.By, fmt.Sprintf("to %s, due %s", dest, d.w.at(due)))
	return v, nil
}

func (st State) idOr(id string) string {
	if id == "" {
		panic("visit: an event that creates an entity needs IDs from its caller")
	}
	return id
}

// checkIn closes v as safe and resolves its alert (unless it is a duress alert, which
// only a contact or the API resolves).
func (d *decision) checkIn(v *Visit, in Input) {
	v = clone(v)
	v.State, v.Outcome, v.ClosedAt = StateClosed, OutcomeSafe, d.now
	d.visitEvent(v, "checked_in", in.By, in.Source)
	if a := d.alertOf(v); a != nil && a.Reason != ReasonDuress {
		how := d.checkinResolution(in)
		if o := d.st.Officer; in.Source != SourceAPI && o != nil && o.ID != v.Officer {
			// A companion checked the visit in: say so, not that the officer did.
			how = fmt.Sprintf("checked in by %s (%s), who was with them", o.Name, o.Phone)
		}
		d.resolve(a, in.By, how)
	}
}

// decided reports whether this decision already saved the alert with that ID.
func (d *decision) decided(id string) bool {
	return slices.ContainsFunc(d.r.Alerts, func(a *Alert) bool { return a.ID == id })
}

// alertOf finds the open alert of v among the state's alerts (or the result's).
func (d *decision) alertOf(v *Visit) *Alert {
	if v.AlertID == "" {
		return nil
	}
	for _, a := range d.r.Alerts {
		if a.ID == v.AlertID && a.Open() {
			return a
		}
	}
	for _, a := range d.st.Alerts {
		if a.ID == v.AlertID && a.Open() {
			return clone(a)
		}
	}
	return nil
}

// resolve closes a and sends ALL CLEAR to everyone it reached.
func (d *decision) resolve(a *Alert, by, how string) {
	d.close(a, by, how)
	o := d.officerOf(a)
	body := d.w.AllClear(a, o, d.now)
	for _, r := range uniquePhones(a.Notified) {
		m := Message{ID: a.ID + ":clear:" + r.Phone, Kind: KindAllClear, To: r.Phone, Name: r.Name,
			Body: body, AlertID: a.ID, VisitID: a.VisitID, Level: r.Level, Priority: PriorityAlert}
		if slices.Contains(a.NoSMS, r.Phone) {
			m = d.allClearCall(a, m)
		}
		d.queue(m)
	}
}

// close resolves a without a word to anyone: for an alert another one supersedes.
func (d *decision) close(a *Alert, by, how string) {
	a.State, a.ResolvedAt, a.Resolution, a.HoldUntil = AlertResolved, d.now, how, time.Time{}
	d.alertEvent(a, "resolved", by, how)
}

func (d *decision) officerOf(a *Alert) *Officer {
	if d.st.Officer != nil && d.st.Officer.ID == a.Officer {
		return d.st.Officer
	}
	if o := d.st.Officers[a.Officer]; o != nil {
		return o
	}
	return &Officer{ID: a.Officer, Name: a.Officer}
}

func (d *decision) companionsOf(a *Alert) []*Officer {
	v := d.st.Visit
	if v == nil || v.ID != a.VisitID {
		return nil
	}
	var out []*Officer
	for _, id := range v.Companions {
		if o := d.st.Officers[id]; o != nil {
			out = append(out, o)
		}
	}
	return out
}

// raise opens a new alert about the state's officer.
// The alert quotes the officer's last text, unless it is a duress alert (whose last
// text holds the duress code).
func (d *decision) raise(reason string, v *Visit, in Input) *Alert {
	a := &Alert{
		ID: d.st.idOr(in.IDs.Alert), Code: in.IDs.Code, School: d.st.School.ID, Officer: d.st.Officer.ID,
		Reason: reason, State: AlertOpen, RaisedAt: d.now, Notified: []Recipient{}, LastMessage: d.st.LastText,
	}
	if reason == ReasonDuress {
		a.LastMessage = ""
	}
	src := v
	if src == nil {
		src = d.st.LastVisit
	}
	if src != nil {
		// The alert is written without its visit at hand (an ACK among several alerts
		// loads none), so it never holds the pupil reference in the first place.
		a.Destination, a.StartedAt, a.DueAt = redact(src.Destination, src.PupilRef), src.StartedAt, src.DueAt
		a.LastMessage = redact(a.LastMessage, src.PupilRef)
	}
	if v != nil {
		a.VisitID = v.ID
	}
	d.alertEvent(a, "raised", in.By, reason)
	d.r.Raised = append(d.r.Raised, a)
	return a
}

// panic raises a panic alert at once, or sends the open one again to every level.
func (d *decision) panic(in Input) {
	v := openOrNil(d.st.Visit)
	var a *Alert
	for _, x := range d.st.Alerts {
		if x.Open() && x.Reason != ReasonDuress {
			a = clone(x)
			break
		}
	}
	switch {
	case a == nil:
		a = d.raise(ReasonPanic, v, in)
		if v != nil {
			v = clone(v)
			v.AlertID = a.ID
			d.visitEvent(v, "panic", in.By, "alert "+a.Code)
		}
	case a.Reason == ReasonOverdue:
		// An overdue alert becomes a panic: every panic level now, and no ACK stops it.
		a.Reason, a.HoldUntil = ReasonPanic, time.Time{}
		d.alertEvent(a, "panic", in.By, "overdue alert became a panic")
		d.r.Raised = append(d.r.Raised, a)
	default:
		d.alertEvent(a, "panic_again", in.By, "")
	}
	if d.st.LastText != "" {
		// The alert quotes the officer's latest text, not the first PANIC's.
		a.LastMessage = d.st.LastText
	}
	d.sendPanic(a)
	d.r.Reply = d.w.PanicReply(a.Notified, d.now)
}

// duress closes the open visit as the officer sees it and raises a silent alert.
func (d *decision) duress(in Input) {
	v := openOrNil(d.st.Visit)
	a := d.raise(ReasonDuress, v, in)
	var also []Recipient
	if v != nil {
		// Any overdue or panic alert of the visit is superseded by the duress alert.
		// It must not end with an ALL CLEAR (the officer is not safe): it closes
		// silently, and everyone it reached gets the duress alert instead.
		if old := d.alertOf(v); old != nil {
			d.close(old, in.By, "superseded by DURESS alert "+a.Code)
			also = old.Notified
		}
		v = clone(v)
		v.State, v.Outcome, v.ClosedAt, v.AlertID = StateClosed, OutcomeDuress, d.now, a.ID
		// The trail is for staff only (the API), so it says what really happened.
		d.visitEvent(v, "duress", in.By, "alert "+a.Code)
	}
	d.sendPanic(a, also...)
}

// sendPanic sends a panic or duress alert to every panic level at once, and to the
// extra recipients given (those an alert it supersedes had reached).
func (d *decision) sendPanic(a *Alert, also ...Recipient) {
	var lists []listAt
	for _, name := range d.p.PanicLevels {
		lists = append(lists, listAt{name: name, level: d.p.levelIndex(name)})
	}
	a.Level = 0
	for _, l := range lists {
		a.Level = max(a.Level, l.level)
	}
	d.sendTo(a, append(d.recipients(lists), also...), PriorityPanic)
}

type listAt struct {
	name  string
	level int
}

func (p Policy) levelIndex(name string) int {
	for i, l := range p.Levels {
		if l.Name == name {
			return i
		}
	}
	return 0
}

func (p Policy) ladder(from, to int) []listAt {
	var out []listAt
	for i := from; i <= to && i < len(p.Levels); i++ {
		out = append(out, listAt{name: p.Levels[i].Name, level: i})
	}
	return out
}

// recipients are the contacts of the given lists, in order.
func (d *decision) recipients(lists []listAt) []Recipient {
	var out []Recipient
	for _, l := range lists {
		for _, c := range d.st.School.Contacts[l.name] {
			out = append(out, Recipient{Name: c.Name, Phone: c.Phone, List: l.name, Level: l.level})
		}
	}
	return out
}

// send queues one round of a to every contact of the given lists.
func (d *decision) send(a *Alert, lists []listAt, prio int) {
	d.sendTo(a, d.recipients(lists), prio)
}

// sendNewLevels sends a to the levels from..to alone, newly reached: news, never
// held back as a repeat, and a round that leaves the repeat to every level reached
// when it was due (LastSentAt is the last round that went to all of them).
func (d *decision) sendNewLevels(a *Alert, from, to int) {
	last, n := a.LastSentAt, len(d.r.Messages)
	d.send(a, d.p.ladder(from, to), PriorityAlert)
	markFirst(d.r.Messages[n:])
	a.LastSentAt = last
}

// reminderID is the ID of the reminder of v, at its due time, to phone: one per
// phone and due time, so an EXTEND brings a new one and a repeat of the same
// decision does not.
func reminderID(v *Visit, phone string) string {
	return fmt.Sprintf("%s:remind:%d:%s", v.ID, v.DueAt.UnixMilli(), phone)
}

// sendTo queues one round of a: one copy per phone, never to the officer (who is
// missing, or whose phone someone else may hold). Every recipient is recorded before
// any text is written, so all of a round's texts name the same people.
func (d *decision) sendTo(a *Alert, rs []Recipient, prio int) {
	o := d.officerOf(a)
	comp := d.companionsOf(a)
	a.LastSentAt = d.now
	round := len(a.Events) // grows with every event, so each round has its own IDs
	var to []Recipient
	seen := map[string]bool{o.Phone: true}
	repeat := map[string]bool{} // recipients this alert reached before this round
	for _, r := range rs {
		if seen[r.Phone] {
			continue
		}
		seen[r.Phone] = true
		to = append(to, r)
		repeat[r.Phone] = slices.ContainsFunc(a.Notified, func(x Recipient) bool { return x.Phone == r.Phone })
		if !slices.ContainsFunc(a.Notified, func(x Recipient) bool { return x.Phone == r.Phone }) {
			a.Notified = append(a.Notified, r)
		}
	}
	for _, r := range to {
		m := Message{
			ID: fmt.Sprintf("%s:%d:%s", a.ID, round, r.Phone), Kind: KindAlert, To: r.Phone, Name: r.Name,
			Body: d.w.Alert(a, o, comp, r.Level, d.now), AlertID: a.ID, VisitID: a.VisitID,
			Level: r.Level, Priority: prio, Validity: d.p.ValidityPeriod, First: !repeat[r.Phone],
		}
		if slices.Contains(a.NoSMS, r.Phone) {
			// Twilio refused this phone an SMS of this alert for good: call it.
			d.queue(d.callFor(m, a, o))
			continue
		}
		d.queue(m)
		if d.callsToo(a, r, prio, repeat[r.Phone]) {
			d.queue(d.callFor(m, a, o))
		}
	}
	d.alertEvent(a, "notified", "vigil", d.levelsNotified(a))
}

// levelsNotified is the detail of a round's audit event: the highest level
// reached, and for an overdue alert the lists of the levels reached that have
// nobody on them, so that the trail does not say a level was told when no one
// on it was (a school with no one on its police list).
func (d *decision) levelsNotified(a *Alert) string {
	detail := fmt.Sprintf("level %d", a.Level)
	if a.Reason != ReasonOverdue {
		return detail
	}
	var empty []string
	for i := 0; i <= a.Level && i < len(d.p.Levels); i++ {
		if name := d.p.Levels[i].Name; !d.hasContacts(name, a) {
			empty = append(empty, name)
		}
	}
	if len(empty) > 0 {
		detail += "; no one on " + strings.Join(empty, ", ")
	}
	return detail
}

// abort closes v as cancelled and sends the written notice to the headteacher list.
func (d *decision) abort(v *Visit, in Input) {
	v = clone(v)
	reason := strings.TrimSpace(in.Cmd.Reason)
	v.State, v.Outcome, v.ClosedAt = StateClosed, OutcomeCancelled, d.now
	by := "" // the officer (or a companion) by SMS
	if in.Source == SourceAPI {
		by = in.By
	}
	notice := d.w.AbortNotice(d.st.Officer, v, by, reason, d.now)
	d.visitEvent(v, "cancelled", in.By, reason)
	d.visitEvent(v, "notice", "vigil", notice)
	heads := uniqueContacts(d.st.School.Contacts[ListHeadteacher])
	for _, c := range heads {
		d.queue(Message{ID: v.ID + ":notice:" + c.Phone, Kind: KindNotice, To: c.Phone, Name: c.Name,
			Body: notice, VisitID: v.ID, Priority: PriorityNormal})
	}
	if a := d.alertOf(v); a != nil && a.Reason == ReasonOverdue {
		d.resolve(a, in.By, "officer called off the visit: "+reason)
	}
	d.r.Reply = d.w.AbortReply(v, len(heads))
}

// VisitTimer decides what is due for st.Visit at now: the reminder, or the overdue
// alert. A stale timer (the visit moved on) decides nothing.
func VisitTimer(st State, now time.Time, p Policy, ids IDs) Result {
	r, _ := finish(st)(visitTimer(st, now, p, ids), nil)
	return r
}

func visitTimer(st State, now time.Time, p Policy, ids IDs) Result {
	d := newDecision(st, p, now)
	v := st.Visit
	if v == nil || v.State != StateActive {
		return d.r
	}
	v = clone(v)
	switch {
	case !now.Before(p.overdueAt(v)):
		v.State = StateOverdue
		if a := d.alertOf(v); a != nil {
			// A panic is already open for this visit: it carries on.
			d.visitEvent(v, "overdue", "vigil", "alert "+a.Code+" already open")
			return d.r
		}
		a := d.raise(ReasonOverdue, v, Input{IDs: ids, By: "vigil"})
		v.AlertID = a.ID
		d.visitEvent(v, "overdue", "vigil", "alert "+a.Code)
		a.Level = d.cascade(a, 0)
		d.send(a, p.ladder(0, a.Level), PriorityAlert)
	case v.RemindedAt.IsZero() && !p.reminderAt(v).IsZero() && !now.Before(p.reminderAt(v)):
		v.RemindedAt = now
		d.visitEvent(v, "reminded", "vigil", "")
		for _, o := range d.visitPhones(v) {
			m := Message{ID: reminderID(v, o.Phone), Kind: KindReminder,
				To: o.Phone, Name: o.Name, Body: d.w.Reminder(v), VisitID: v.ID, Priority: PriorityNormal}
			if st.OptedOut && o.ID == st.Officer.ID {
				// The officer's phone refuses SMS since they texted STOP: phone them.
				m.Channel, m.ID, m.Body = ChannelCall, m.ID+":call", d.w.SpokenReminder(v)
			}
			d.queue(m)
		}
	}
	return d.r
}

// visitPhones are the officer and the companions of v.
func (d *decision) visitPhones(v *Visit) []*Officer {
	out := []*Officer{d.st.Officer}
	for _, id := range v.Companions {
		if o := d.st.Officers[id]; o != nil {
			out = append(out, o)
		}
	}
	return out
}

// cascade moves past levels with nobody on them: an alert that reaches no one is a
// missed alert, so an empty level hands over to the next one at once.
func (d *decision) cascade(a *Alert, lvl int) int {
	reached := false
	for i := 0; i <= lvl && i < len(d.p.Levels); i++ {
		if d.hasContacts(d.p.Levels[i].Name, a) {
			reached = true
		}
	}
	for !reached && lvl+1 < len(d.p.Levels) {
		lvl++
		reached = d.hasContacts(d.p.Levels[lvl].Name, a)
	}
	return lvl
}

func (d *decision) hasContacts(list string, a *Alert) bool {
	o := d.officerOf(a)
	for _, c := range d.st.School.Contacts[list] {
		if c.Phone != o.Phone {
			return true
		}
	}
	return false
}

// AlertTimer decides what is due for st.Alerts[0] at now: the next level, a repeat,
// or the end of an ACK's hold. A stale timer decides nothing.
func AlertTimer(st State, now time.Time, p Policy) Result {
	r, _ := finish(st)(alertTimer(st, now, p), nil)
	return r
}

func alertTimer(st State, now time.Time, p Policy) Result {
	d := newDecision(st, p, now)
	if len(st.Alerts) == 0 || !st.Alerts[0].Open() {
		return d.r
	}
	a := clone(st.Alerts[0])
	if a.Reason != ReasonOverdue {
		if r := p.repeatEvery(a); r > 0 && !now.Before(a.LastSentAt.Add(r)) {
			d.sendPanic(a)
		}
		return d.r
	}
	target := d.cascade(a, p.levelReachedBy(a, now))
	switch {
	case !a.HoldUntil.IsZero():
		if now.Before(a.HoldUntil) {
			return d.r
		}
		// The hold is over and nobody found the officer: every level whose time has
		// come hears of it now, saying who took charge, and the ladder goes on.
		a.HoldUntil = time.Time{}
		a.Level = max(a.Level, target)
		d.alertEvent(a, "hold_ended", "vigil", fmt.Sprintf("no check-in since %s took charge at %s; alerting levels 0-%d", a.AckedBy, d.w.at(a.AckedAt), a.Level))
		n := len(d.r.Messages)
		d.send(a, p.ladder(0, a.Level), PriorityAlert)
		markFirst(d.r.Messages[n:]) // news (who took charge), not a repeat
	case target > a.Level:
		// The new levels hear of it. The levels already reached hear it in the same
		// round when their repeat is due by now or soon: the repeat must not be
		// skipped because its timer fired a moment after this level's, and a round
		// of its own so soon after this one would say the same twice. Otherwise the
		// round goes to the new levels alone and the repeat stays when it was due:
		// a new level's round never puts off the others' next message.
		r := d.p.repeatEvery(a)
		last, reached := a.LastSentAt, a.Level
		a.Level = target
		if rn := d.p.repeatEvery(a); r <= 0 || (rn > 0 && rn < r) {
			r = rn
		}
		if a.repeating() && r > 0 && !d.now.Add(r/4).Before(last.Add(r)) {
			// Either way the round is a new level's, never held back as a
			// repeat (to a phone on a lower list too, such as a manager also on
			// the police list).
			n := len(d.r.Messages)
			d.send(a, p.ladder(0, target), PriorityAlert)
			markFirst(d.r.Messages[n:])
			break
		}
		d.sendNewLevels(a, reached+1, target)
	case d.repeatDue(a):
		d.send(a, p.ladder(0, a.Level), PriorityAlert)
	}
	return d.r
}

// repeatDue reports whether a is due to be sent again to the levels it reached.
func (d *decision) repeatDue(a *Alert) bool {
	r := d.p.repeatEvery(a)
	return a.repeating() && r > 0 && !d.now.Before(a.LastSentAt.Add(r))
}

// ContactCommand decides a message from a contact: ACK takes charge, RESOLVE closes.
func ContactCommand(st State, in Input, now time.Time, p Policy) (Result, error) {
	return finish(st)(contactCommand(st, in, now, p))
}

func contactCommand(st State, in Input, now time.Time, p Policy) (Result, error) {
	d := newDecision(st, p, now)
	switch in.Cmd.Verb {
	case VerbAck:
		a, err := d.pick(in.Cmd.Code, "ACK")
		if err != nil {
			return Result{}, err
		}
		who := fmt.Sprintf("%s (%s)", st.Contact.Name, st.Contact.Phone)
		return d.ack(a, who, in.By)
	case VerbResolve:
		a, err := d.pick(in.Cmd.Code, "RESOLVE")
		if err != nil {
			return Result{}, err
		}
		note := strings.TrimSpace(in.Cmd.Reason)
		if note == "" {
			// As the API and the console: the record says how the officer was
			// found, or the alert stays open.
			return Result{}, refuse(Invalid, "Say how the officer was found, e.g. RESOLVE %s found safe at home. Nothing changed.", a.Code)
		}
		d.resolveWithVisit(a, in.By, fmt.Sprintf("resolved by %s: %s", st.Contact.Name, note))
		d.r.Reply = GSM(fmt.Sprintf("Alert %s resolved. ALL CLEAR sent.", a.Code))
		return d.r, nil
	}
	d.r.Reply = d.w.ContactHelp()
	return d.r, nil
}

// pick chooses the open alert a contact means: by code, or the only one.
func (d *decision) pick(code, verb string) (*Alert, error) {
	var open []*Alert
	for _, a := range d.st.Alerts {
		if a.Open() {
			open = append(open, a)
		}
	}
	if code != "" {
		for _, a := range open {
			if a.Code == code {
				return clone(a), nil
			}
		}
		if len(open) > 0 {
			// The alert meant may have been replaced (a duress alert supersedes
			// the overdue one): say what is open, so nobody thinks it is over.
			return nil, refuse(NotFound, "No open alert %s. Open now: %s. Nothing changed.", code, d.choices(verb, open))
		}
		return nil, refuse(NotFound, "No open alert %s. Nothing changed.", code)
	}
	switch len(open) {
	case 0:
		return nil, refuse(NotFound, "No open alert. Nothing changed.")
	case 1:
		return clone(open[0]), nil
	}
	return nil, refuse(Conflict, "Several alerts are open: %s. Nothing changed.", d.choices(verb, open))
}

// choices names the alerts for a contact to pick from: "ACK 1234 (Jane Doe), ...".
func (d *decision) choices(verb string, alerts []*Alert) string {
	return AlertChoices(verb, alerts, func(a *Alert) string { return d.officerOf(a).Name })
}

// AlertChoices names alerts for a contact to pick from, each as the command that
// picks it and the officer it is about: "ACK 1234 (Jane Doe), ACK 5678 (Bob Roe)".
func AlertChoices(verb string, alerts []*Alert, officer func(*Alert) string) string {
	opts := make([]string, 0, len(alerts))
	for _, a := range alerts {
		opts = append(opts, fmt.Sprintf("%s %s (%s)", verb, a.Code, officer(a)))
	}
	return strings.Join(opts, ", ")
}

// AckAlert takes charge of st.Alerts[0] for an API caller.
func AckAlert(st State, who string, now time.Time, p Policy) (Result, error) {
	return finish(st)(ackAlert(st, who, now, p))
}

func ackAlert(st State, who string, now time.Time, p Policy) (Result, error) {
	d := newDecision(st, p, now)
	if len(st.Alerts) == 0 || !st.Alerts[0].Open() {
		return Result{}, refuse(Conflict, "That alert is closed. Nothing changed.")
	}
	return d.ack(clone(st.Alerts[0]), who, who)
}

func (d *decision) ack(a *Alert, who, by string) (Result, error) {
	if a.State == AlertAcked && (a.Reason != ReasonOverdue || !a.HoldUntil.IsZero()) {
		if d.tookIt(a, who) {
			return Result{}, refuse(Conflict, "You already took charge of alert %s at %s. Nothing changed.", a.Code, d.w.at(a.AckedAt))
		}
		return Result{}, refuse(Conflict, "Alert %s was already taken by %s at %s. Nothing changed.", a.Code, a.AckedBy, d.w.at(a.AckedAt))
	}
	if a.AckedAt.IsZero() {
		d.r.AckedAfter = d.now.Sub(a.RaisedAt)
	}
	a.State, a.AckedBy, a.AckedAt = AlertAcked, who, d.now
	if a.Reason == ReasonOverdue {
		a.HoldUntil = d.now.Add(d.p.AckHold)
	}
	d.alertEvent(a, "acked", by, who)
	o := d.officerOf(a)
	note := d.w.TookCharge(a, o)
	for _, r := range uniquePhones(a.Notified) {
		if d.st.Contact != nil && r.Phone == d.st.Contact.Phone {
			continue
		}
		d.queue(Message{ID: fmt.Sprintf("%s:ack:%d:%s", a.ID, a.AckedAt.UnixMilli(), r.Phone), Kind: KindNotice,
			To: r.Phone, Name: r.Name, Body: note, AlertID: a.ID, VisitID: a.VisitID, Level: r.Level, Priority: PriorityAlert,
			Validity: d.p.ValidityPeriod})
	}
	d.r.Reply = d.w.Briefing(a, o, d.companionsOf(a), d.now)
	return d.r, nil
}

// tookIt reports whether who, now asking to take charge of a, is the one who did. A
// contact is known by phone: AckedBy is "Name (phone)", and the name on file may
// have changed since.
func (d *decision) tookIt(a *Alert, who string) bool {
	if c := d.st.Contact; c != nil && c.Phone != "" {
		return strings.HasSuffix(a.AckedBy, " ("+c.Phone+")")
	}
	return a.AckedBy == who
}

// ResolveAlert closes st.Alerts[0] with a note, for an API caller or a contact. An
// overdue or panic alert's open visit closes as safe: someone found the officer.
func ResolveAlert(st State, by, note string, now time.Time, p Policy) (Result, error) {
	return finish(st)(resolveAlert(st, by, note, now, p))
}

func resolveAlert(st State, by, note string, now time.Time, p Policy) (Result, error) {
	d := newDecision(st, p, now)
	if len(st.Alerts) == 0 || !st.Alerts[0].Open() {
		return Result{}, refuse(Conflict, "That alert is already resolved. Nothing changed.")
	}
	if strings.TrimSpace(note) == "" {
		return Result{}, refuse(Invalid, "A resolution needs a note saying how the officer was found.")
	}
	d.resolveWithVisit(clone(st.Alerts[0]), by, fmt.Sprintf("resolved by %s: %s", by, note))
	return d.r, nil
}

func (d *decision) resolveWithVisit(a *Alert, by, how string) {
	if v := d.st.Visit; v.Open() && v.ID == a.VisitID {
		v = clone(v)
		v.State, v.Outcome, v.ClosedAt = StateClosed, OutcomeSafe, d.now
		d.visitEvent(v, "closed", by, how)
	}
	d.resolve(a, by, how)
}

// finish is the last step of every rule: no text leaves with the pupil reference of
// a visit in it (SPEC §6: no message carries a pupil's name), whatever the officer or
// the API wrote in a destination or a text. The audit trail, for staff only, keeps
// everything.
func finish(st State) func(Result, error) (Result, error) {
	return func(r Result, err error) (Result, error) {
		var refs []string
		for _, v := range append([]*Visit{st.Visit, st.LastVisit}, r.Visits...) {
			if v != nil && v.PupilRef != "" {
				refs = append(refs, v.PupilRef)
			}
		}
		if len(refs) == 0 {
			return r, err
		}
		scrub := func(s string) string {
			for _, ref := range refs {
				s = redact(s, ref)
			}
			return s
		}
		r.Reply = scrub(r.Reply)
		for i := range r.Messages {
			r.Messages[i].Body = scrub(r.Messages[i].Body)
		}
		var e *Error
		if errors.As(err, &e) {
			err = &Error{Kind: e.Kind, Msg: scrub(e.Msg)}
		}
		return r, err
	}
}

// redact blanks out every occurrence of a pupil reference in s, in any case.
func redact(s, ref string) string {
	ref = strings.TrimSpace(ref)
	// A reference of one or two characters would blank out ordinary words.
	if utf8.RuneCountInString(ref) < 3 {
		return s
	}
	return regexp.MustCompile("(?i)"+regexp.QuoteMeta(ref)).ReplaceAllLiteralString(s, "***")
}

// Apply returns the officer's state after r. A companion on a visit has it as
// their open visit too, so either may check it in.
func (s OfficerState) Apply(officer string, r Result) OfficerState {
	s.Alerts = slices.Clone(s.Alerts)
	for _, v := range r.Visits {
		if v.Officer != officer && !slices.Contains(v.Companions, officer) {
			continue
		}
		switch {
		case v.Open():
			s.OpenVisit = v.ID
		case s.OpenVisit == v.ID:
			s.OpenVisit = ""
		}
		s.LastVisit = v.ID
	}
	for _, a := range r.Alerts {
		if a.Officer != officer {
			continue
		}
		i := slices.Index(s.Alerts, a.ID)
		switch {
		case a.Open() && i < 0:
			s.Alerts = append(s.Alerts, a.ID)
		case !a.Open() && i >= 0:
			s.Alerts = slices.Delete(s.Alerts, i, i+1)
		}
	}
	return s
}

func uniqueContacts(cs []Contact) []Contact {
	seen := map[string]bool{}
	var out []Contact
	for _, c := range cs {
		if !seen[c.Phone] {
			seen[c.Phone] = true
			out = append(out, c)
		}
	}
	return out
}

func uniquePhones(rs []Recipient) []Recipient {
	seen := map[string]bool{}
	var out []Recipient
	for _, r := range rs {
		if !seen[r.Phone] {
			seen[r.Phone] = true
			out = append(out, r)
		}
	}
	return out
}

// shortDuration writes d as "8h", "90m", "1h30m".
func shortDuration(d time.Duration) string {
	if d <= 0 {
		return "0m"
	}
	if d%time.Minute != 0 {
		return d.String()
	}
	s := ""
	if h := d / time.Hour; h > 0 {
		s = fmt.Sprintf("%dh", h)
	}
	if m := (d % time.Hour) / time.Minute; m > 0 {
		s += fmt.Sprintf("%dm", m)
	}
	return s
}

// clone copies an entity, slices included, so a decision never changes what it
// was given.
func clone[T Visit | Alert](p *T) *T {
	if p == nil {
		return nil
	}
	c := *p
	switch x := any(&c).(type) {
	case *Visit:
		x.Events, x.Companions = slices.Clone(x.Events), slices.Clone(x.Companions)
	case *Alert:
		x.Events, x.Notified, x.Unreachable = slices.Clone(x.Events), slices.Clone(x.Notified), slices.Clone(x.Unreachable)
		x.NoSMS = slices.Clone(x.NoSMS)
	}
	return &c
}
