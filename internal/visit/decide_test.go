package visit

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/London on machines without a zoneinfo database
)

// The test school. t0 is 13:00 UTC in June: 14:00 in London (BST), so a message that
// forgot the school's zone would say 13:00.
var (
	london = mustLoad("Europe/London")
	t0     = time.Date(2026, 6, 15, 13, 0, 0, 0, time.UTC)
)

const (
	officePhone = "+441332000001"
	headPhone   = "+447700900201"
	deputyPhone = "+447700900202"
	policePhone = "+447700900301"
	chairPhone  = "+447700900401"
	janePhone   = "+447700900101"
	alanPhone   = "+447700900102"
	pupilRef    = "PUPILREF-ZQX-7731"
)

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// at is the instant of a London wall-clock time on the test day ("14:50").
func at(hhmm string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", "2026-06-15 "+hhmm, london)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func testPolicy() Policy {
	return Policy{
		DefaultDuration: time.Hour,
		MaxDuration:     8 * time.Hour,
		ReminderBefore:  10 * time.Minute,
		Grace:           5 * time.Minute,
		Levels: []Level{
			{Name: ListOffice, After: 0, RepeatEvery: 5 * time.Minute},
			{Name: ListManagers, After: 10 * time.Minute, RepeatEvery: 5 * time.Minute},
			{Name: ListPolice, After: 20 * time.Minute, RepeatEvery: 10 * time.Minute},
		},
		PanicLevels:    []string{ListOffice, ListManagers, ListPolice},
		AckHold:        15 * time.Minute,
		ValidityPeriod: 10 * time.Minute,
	}
}

func testSchool() *School {
	return &School{
		ID:   "bishop-lonsdale",
		Name: "Bishop Lonsdale CE Primary School",
		Contacts: map[string][]Contact{
			ListOffice:      {{Name: "School office", Phone: officePhone}},
			ListManagers:    {{Name: "Head of School", Phone: headPhone}, {Name: "Deputy Head", Phone: deputyPhone}},
			ListPolice:      {{Name: "Safer Schools Officer", Phone: policePhone}},
			ListHeadteacher: {{Name: "Head of School", Phone: headPhone}, {Name: "Chair of Governors", Phone: chairPhone}},
		},
	}
}

func testOfficers() map[string]*Officer {
	return map[string]*Officer{
		"jdoe": {
			ID: "jdoe", Name: "Jane Doe", Phone: janePhone, School: "bishop-lonsdale", DuressCode: "4321",
			Vehicle: &Vehicle{Make: "Ford", Model: "Fiesta", Colour: "Blue", Registration: "AB12 CDE", InsuranceExpires: "2027-03-01"},
		},
		"asmith": {ID: "asmith", Name: "Alan Smith", Phone: alanPhone, School: "bishop-lonsdale"},
	}
}

// sentMsg is a message the world queued, and when.
type sentMsg struct {
	At time.Time
	Message
}

// world is a hand-written stand-in for the store and the scheduler: it keeps the
// entities, builds each event's State as the service does, applies results and fires
// timers in order. Every decision it makes is checked for purity (its State is not
// changed), determinism (the same input decides the same), unique message IDs and
// timers that are never due before the decision that set them.
type world struct {
	t        *testing.T
	now      time.Time
	p        Policy
	school   *School
	officers map[string]*Officer
	visits   map[string]*Visit
	alerts   map[string]*Alert
	states   map[string]OfficerState
	seq      int
	sent     []sentMsg
	calls    []sentMsg // voice calls queued, apart from the SMS in sent
	ids      map[string]bool
	// pupilRef is given to every visit an officer opens; replies collects every
	// reply and refusal the world sent back.
	pupilRef string
	replies  []string
	// late, when set, is how late the timer due at an instant fires (a busy
	// scheduler, a lease taken over).
	late func(due time.Time) time.Duration
}

func newWorld(t *testing.T) *world {
	t.Helper()
	return &world{
		t: t, now: t0, p: testPolicy(), school: testSchool(), officers: testOfficers(),
		visits: map[string]*Visit{}, alerts: map[string]*Alert{}, states: map[string]OfficerState{},
		ids: map[string]bool{},
	}
}

func (w *world) newIDs() IDs {
	w.seq++
	return IDs{Visit: fmt.Sprintf("v%d", w.seq), Alert: fmt.Sprintf("a%d", w.seq), Code: fmt.Sprintf("%d", 100+w.seq)}
}

func (w *world) officerByPhone(phone string) *Officer {
	for _, o := range w.officers {
		if o.Phone == phone {
			return o
		}
	}
	return nil
}

func (w *world) contactByPhone(phone string) *Contact {
	for _, l := range w.school.Contacts {
		for _, c := range l {
			if c.Phone == phone {
				return &c
			}
		}
	}
	return nil
}

// officerState is what the service loads for an officer's command.
func (w *world) officerState(o *Officer) State {
	os := w.states[o.ID]
	st := State{School: w.school, Loc: london, Officer: o, Officers: w.officers, Visit: w.visits[os.OpenVisit], LastText: os.LastText}
	if os.OpenVisit == "" {
		st.LastVisit = w.visits[os.LastVisit]
	}
	for _, id := range os.Alerts {
		st.Alerts = append(st.Alerts, w.alerts[id])
	}
	return st
}

func (w *world) openAlerts() []*Alert {
	var out []*Alert
	for _, id := range slices.Sorted(maps.Keys(w.alerts)) {
		if a := w.alerts[id]; a.Open() {
			out = append(out, a)
		}
	}
	return out
}

// sms delivers one text as the service would, and applies what was decided.
func (w *world) sms(from, text string) (Result, error) {
	w.t.Helper()
	cmd := Parse(text)
	if o := w.officerByPhone(from); o != nil {
		st := w.officerState(o)
		st.LastText = text
		in := Input{Cmd: cmd, Source: SourceSMS, By: from, Text: text, IDs: w.newIDs(), PupilRef: w.pupilRef}
		r, err := w.decide(st, func(st State) (Result, error) { return OfficerCommand(st, in, w.now, w.p) })
		os := w.states[o.ID]
		os.LastText = text
		w.states[o.ID] = os
		return r, err
	}
	c := w.contactByPhone(from)
	if c == nil {
		w.t.Fatalf("sms from %s: no such officer or contact", from)
	}
	st := State{School: w.school, Loc: london, Officers: w.officers, Contact: c, Alerts: w.openAlerts()}
	var meant []*Alert
	for _, a := range st.Alerts {
		if cmd.Code == "" || a.Code == cmd.Code {
			meant = append(meant, a)
		}
	}
	if len(meant) == 1 {
		st.Visit = w.visits[meant[0].VisitID]
	}
	in := Input{Cmd: cmd, Source: SourceSMS, By: from, Text: text}
	return w.decide(st, func(st State) (Result, error) { return ContactCommand(st, in, w.now, w.p) })
}

// decide runs f twice on st, checks the decision, and applies it.
func (w *world) decide(st State, f func(State) (Result, error)) (Result, error) {
	w.t.Helper()
	before := snapshot(w.t, st)
	r, err := f(st)
	r2, err2 := f(st)
	w.replies = append(w.replies, r.Reply)
	if err != nil {
		w.replies = append(w.replies, err.Error())
	}
	if after := snapshot(w.t, st); after != before {
		w.t.Fatalf("the decision changed its input State:\nbefore %s\nafter  %s", before, after)
	}
	if a, b := snapshot(w.t, r), snapshot(w.t, r2); a != b || fmt.Sprint(err) != fmt.Sprint(err2) {
		w.t.Fatalf("the same input decided differently:\n%s %v\n%s %v", a, err, b, err2)
	}
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			w.t.Fatalf("decision failed with %T %v, want a *visit.Error", err, err)
		}
		if !r.Empty() {
			w.t.Fatalf("a refused decision changed something: %+v", r)
		}
		return r, err
	}
	// Voice calls are kept apart (w.calls) so the SMS timelines read as before;
	// delivery_test.go asserts the calls.
	var texts []Message
	for _, m := range r.Messages {
		if w.ids[m.ID] {
			w.t.Fatalf("message ID %q used twice (the outbox would drop the second)", m.ID)
		}
		w.ids[m.ID] = true
		if m.Channel == ChannelCall {
			w.calls = append(w.calls, sentMsg{At: w.now, Message: m})
			continue
		}
		texts = append(texts, m)
		w.sent = append(w.sent, sentMsg{At: w.now, Message: m})
	}
	r.Messages = texts
	for _, v := range r.Visits {
		w.visits[v.ID] = v
		if wake := w.p.VisitWake(v); !wake.IsZero() && wake.Before(w.now) {
			w.t.Fatalf("visit %s wakes at %s, before now %s", v.ID, wake, w.now)
		}
	}
	for _, a := range r.Alerts {
		w.alerts[a.ID] = a
		if wake := w.p.AlertWake(a); !wake.IsZero() && wake.Before(w.now) {
			w.t.Fatalf("alert %s wakes at %s, before now %s", a.ID, wake, w.now)
		}
	}
	for id, os := range w.states {
		w.states[id] = os.Apply(id, r)
	}
	for id := range w.officers {
		if _, ok := w.states[id]; !ok {
			w.states[id] = OfficerState{}.Apply(id, r)
		}
	}
	return r, nil
}

// snapshot is a deep, comparable picture of v (every exported field, followed
// through pointers).
func snapshot(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return string(b)
}

// nextTimer is the earliest timer of the world, and what firing it decides.
func (w *world) nextTimer() (time.Time, func() Result) {
	var when time.Time
	var fire func() Result
	consider := func(at time.Time, f func() Result) {
		if !at.IsZero() && (when.IsZero() || at.Before(when)) {
			when, fire = at, f
		}
	}
	for _, id := range slices.Sorted(maps.Keys(w.visits)) {
		v := w.visits[id]
		consider(w.p.VisitWake(v), func() Result {
			o := w.officers[v.Officer]
			st := State{School: w.school, Loc: london, Officer: o, Officers: w.officers, Visit: v, LastText: w.states[o.ID].LastText}
			if a := w.alerts[v.AlertID]; a != nil {
				st.Alerts = []*Alert{a}
			}
			ids := w.newIDs()
			r, _ := w.decide(st, func(st State) (Result, error) { return VisitTimer(st, w.now, w.p, ids), nil })
			return r
		})
	}
	for _, id := range slices.Sorted(maps.Keys(w.alerts)) {
		a := w.alerts[id]
		consider(w.p.AlertWake(a), func() Result {
			o := w.officers[a.Officer]
			st := State{School: w.school, Loc: london, Officer: o, Officers: w.officers, Alerts: []*Alert{a}, Visit: w.visits[a.VisitID], LastText: w.states[o.ID].LastText}
			r, _ := w.decide(st, func(st State) (Result, error) { return AlertTimer(st, w.now, w.p), nil })
			return r
		})
	}
	return when, fire
}

// runTo moves the clock to to, firing every timer that falls due on the way, in order,
// and returns the messages they queued.
func (w *world) runTo(to time.Time) []sentMsg {
	w.t.Helper()
	from := len(w.sent)
	for i := 0; ; i++ {
		when, fire := w.nextTimer()
		if fire == nil || when.After(to) {
			break
		}
		if i > 1000 {
			w.t.Fatalf("timers spin at %s", when)
		}
		if w.late != nil {
			when = when.Add(w.late(when))
		}
		if when.After(w.now) {
			w.now = when
		}
		if r := fire(); r.Empty() {
			if again, _ := w.nextTimer(); again.Equal(when) {
				w.t.Fatalf("a timer due at %s decides nothing and stays due: the scheduler would spin", when)
			}
		}
	}
	if to.After(w.now) {
		w.now = to
	}
	return w.sent[from:]
}

// timeline writes messages as "HH:MM kind phone" lines, the phones of one instant sorted.
func timeline(ms []sentMsg) []string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%s %s %s", m.At.In(london).Format("15:04"), m.Kind, m.To))
	}
	slices.Sort(out)
	return out
}

// phones are the distinct recipients of the messages of a kind ("" for any), sorted.
func phones(ms []Message, kind string) []string {
	var out []string
	for _, m := range ms {
		if (kind == "" || m.Kind == kind) && !slices.Contains(out, m.To) {
			out = append(out, m.To)
		}
	}
	slices.Sort(out)
	return out
}

func errKind(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// mustSMS delivers a text that must be accepted.
func (w *world) mustSMS(from, text string) Result {
	w.t.Helper()
	r, err := w.sms(from, text)
	if err != nil {
		w.t.Fatalf("%s %q: %v", from, text, err)
	}
	return r
}

func (w *world) openVisit(officer string) *Visit {
	return w.visits[w.states[officer].OpenVisit]
}

// onlyAlert is the world's one alert.
func (w *world) onlyAlert() *Alert {
	w.t.Helper()
	if len(w.alerts) != 1 {
		w.t.Fatalf("%d alerts, want 1", len(w.alerts))
	}
	for _, a := range w.alerts {
		return a
	}
	return nil
}

func sentOnly(ms []sentMsg) []Message {
	var out []Message
	for _, m := range ms {
		out = append(out, m.Message)
	}
	return out
}

func TestVisitOpens(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
	v := w.openVisit("jdoe")
	got := fmt.Sprintf("%s %s %s %s %s %d", v.State, v.Destination, v.StartedAt.Format(time.RFC3339), v.DueAt.Format(time.RFC3339), v.Officer, len(r.Messages))
	want := "active 14 Elm Road 2026-06-15T13:00:00Z 2026-06-15T13:45:00Z jdoe 0"
	if got != want {
		t.Errorf("visit = %s, want %s", got, want)
	}
	for _, s := range []string{"14 Elm Road", "14:45", "IN", "EXTEND", "PANIC"} {
		if !strings.Contains(r.Reply, s) {
			t.Errorf("reply %q does not say %q", r.Reply, s)
		}
	}
	if got, want := w.p.VisitWake(v), at("14:35"); !got.Equal(want) {
		t.Errorf("VisitWake = %s, want the reminder at %s", got, want)
	}
}

func TestOfficerRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		before   []string
		text     string
		kind     ErrorKind
		contains []string
	}{
		// A second VISIT names the open one and offers NEXT.
		{"visit while open", []string{"VISIT 45 14 Elm Road"}, "VISIT 30 22 Oak Lane", Conflict, []string{"14 Elm Road", "14:45", "NEXT"}},
		// A visit longer than max_duration.
		{"visit too long", nil, "VISIT 9h 14 Elm Road", Invalid, []string{"8h"}},
		// A visit with a time and no place.
		{"visit no place", nil, "VISIT 45", Invalid, []string{"place"}},
		// EXTEND with nothing open.
		{"extend nothing", nil, "EXTEND 15", NotFound, []string{"No open visit"}},
		// EXTEND with no time.
		{"extend no time", []string{"VISIT 45 14 Elm Road"}, "EXTEND", Invalid, []string{"EXTEND 15"}},
		// ABORT with nothing open.
		{"abort nothing", nil, "ABORT dog loose", NotFound, []string{"No open visit"}},
		// ABORT with no reason.
		{"abort no reason", []string{"VISIT 45 14 Elm Road"}, "ABORT", Invalid, []string{"reason"}},
		// ACK and RESOLVE are a contact's words: from an officer they change nothing, and say so.
		{"ack from officer", []string{"VISIT 45 14 Elm Road"}, "ACK 1234", Invalid, []string{"contacts", "Nothing changed"}},
		{"resolve from officer", nil, "RESOLVE 1234 found", Invalid, []string{"contacts", "Nothing changed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			for _, s := range tt.before {
				w.mustSMS(janePhone, s)
			}
			_, err := w.sms(janePhone, tt.text)
			if errKind(err) != tt.kind {
				t.Fatalf("%q: error %v (kind %d), want kind %d", tt.text, err, errKind(err), tt.kind)
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q: refusal %q does not say %q", tt.text, err, s)
				}
			}
			if msg := err.Error(); GSM(msg) != msg || Septets(msg) > 160 {
				t.Errorf("%q: refusal %q is not one GSM-7 segment", tt.text, msg)
			}
		})
	}
}

func TestNextClosesAndOpens(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
	w.now = at("14:20")
	r := w.mustSMS(janePhone, "NEXT 30 22 Oak Lane")
	if len(r.Visits) != 2 {
		t.Fatalf("NEXT saved %d visits, want 2", len(r.Visits))
	}
	prev, next := r.Visits[0], r.Visits[1]
	if got, want := fmt.Sprintf("%s %s %s %s", prev.Destination, prev.State, prev.Outcome, prev.ClosedAt.In(london).Format("15:04")), "14 Elm Road closed safe 14:20"; got != want {
		t.Errorf("previous visit = %s, want %s", got, want)
	}
	if got, want := fmt.Sprintf("%s %s %s", next.Destination, next.State, next.DueAt.In(london).Format("15:04")), "22 Oak Lane active 14:50"; got != want {
		t.Errorf("next visit = %s, want %s", got, want)
	}
	if got := w.openVisit("jdoe"); got == nil || got.ID != next.ID {
		t.Errorf("open visit = %+v, want %s", got, next.ID)
	}
	for _, s := range []string{"14:20", "22 Oak Lane", "14:50"} {
		if !strings.Contains(r.Reply, s) {
			t.Errorf("reply %q does not say %q", r.Reply, s)
		}
	}
}

func TestCheckIn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		before    []string
		text      string
		wantReply string
		wantEmpty bool
	}{
		// IN closes the open visit as safe.
		{"in", []string{"VISIT 45 14 Elm Road"}, "IN", "Checked in at 14:20. Visit to 14 Elm Road closed. Thank you.", false},
		// CHECK IN, with a word that is not the duress code.
		{"check in with a word", []string{"VISIT 45 14 Elm Road"}, "check in thanks", "Checked in at 14:20. Visit to 14 Elm Road closed. Thank you.", false},
		// IN with no open visit changes nothing.
		{"no visit", nil, "IN", "Checked in at 14:20. You had no open visit.", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			for _, s := range tt.before {
				w.mustSMS(janePhone, s)
			}
			w.now = at("14:20")
			r := w.mustSMS(janePhone, tt.text)
			if r.Reply != tt.wantReply {
				t.Errorf("reply = %q, want %q", r.Reply, tt.wantReply)
			}
			if r.Empty() != tt.wantEmpty {
				t.Errorf("Empty() = %v, want %v (%+v)", r.Empty(), tt.wantEmpty, r)
			}
			if len(r.Messages) != 0 {
				t.Errorf("queued %d messages, want none", len(r.Messages))
			}
			if w.openVisit("jdoe") != nil {
				t.Errorf("a visit is still open")
			}
			for _, v := range r.Visits {
				if v.State != StateClosed || v.Outcome != OutcomeSafe || !v.ClosedAt.Equal(at("14:20")) {
					t.Errorf("visit = %s/%s closed %s, want closed/safe at 14:20", v.State, v.Outcome, v.ClosedAt)
				}
			}
		})
	}
}

func TestExtend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		visit     string
		extendAt  string
		text      string
		wantDue   string
		wantReply []string
		wantClear []string // phones that get ALL CLEAR
	}{
		// Before the due time: due + duration.
		{"on time", "VISIT 45 14 Elm Road", "14:30", "EXTEND 15", "15:00", []string{"15:00"}, nil},
		// MORE is EXTEND.
		{"more", "VISIT 45 14 Elm Road", "14:30", "more 1h", "15:45", []string{"15:45"}, nil},
		// Past the due time, before the alert: now + duration.
		{"late", "VISIT 45 14 Elm Road", "14:48", "EXTEND 15", "15:03", []string{"15:03"}, nil},
		// Overdue with an alert out: now + duration, and the alert is over.
		{"overdue", "VISIT 45 14 Elm Road", "14:56", "EXTEND 15", "15:11", []string{"15:11"}, []string{officePhone}},
		// Capped at started_at + max_duration, and the reply says so.
		{"capped", "VISIT 7h 14 Elm Road", "20:30", "EXTEND 2h", "22:00", []string{"22:00", "longest"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.mustSMS(janePhone, tt.visit)
			w.runTo(at(tt.extendAt))
			r := w.mustSMS(janePhone, tt.text)
			v := w.openVisit("jdoe")
			if got := v.DueAt.In(london).Format("15:04"); got != tt.wantDue || v.State != StateActive {
				t.Errorf("visit %s due %s, want active due %s", v.State, got, tt.wantDue)
			}
			for _, s := range tt.wantReply {
				if !strings.Contains(r.Reply, s) {
					t.Errorf("reply %q does not say %q", r.Reply, s)
				}
			}
			if got := phones(r.Messages, KindAllClear); !slices.Equal(got, tt.wantClear) {
				t.Errorf("ALL CLEAR to %v, want %v", got, tt.wantClear)
			}
			for _, a := range w.alerts {
				if a.Open() {
					t.Errorf("alert %s still open after EXTEND", a.Code)
				}
			}
		})
	}
}

func TestExtendAtTheLimit(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.mustSMS(janePhone, "VISIT 8h 14 Elm Road")
	w.now = at("22:01")
	_, err := w.sms(janePhone, "EXTEND 15")
	if errKind(err) != Invalid || !strings.Contains(err.Error(), "8h") {
		t.Errorf("EXTEND past the limit: %v, want Invalid naming 8h", err)
	}
}

func TestPanic(t *testing.T) {
	t.Parallel()
	everyone := []string{officePhone, headPhone, deputyPhone, policePhone}
	tests := []struct {
		name     string
		before   []string
		runTo    string
		text     string
		wantDest string // destination named in the alert
		wantTo   []string
	}{
		// With an open visit.
		{"open visit", []string{"VISIT 45 14 Elm Road"}, "14:10", "PANIC", "14 Elm Road", everyone},
		// Without one: the last visit is named.
		{"last visit", []string{"VISIT 45 14 Elm Road", "IN"}, "14:10", "SOS", "14 Elm Road", everyone},
		// With no visit ever: nothing to name.
		{"no visit ever", nil, "14:10", "999", "", everyone},
		// A bare HELP.
		{"help", []string{"VISIT 45 14 Elm Road"}, "14:10", "help", "14 Elm Road", everyone},
		// An overdue alert already at the office becomes a panic to every level.
		{"overdue", []string{"VISIT 45 14 Elm Road"}, "14:52", "PANIC", "14 Elm Road", everyone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			for _, s := range tt.before {
				w.mustSMS(janePhone, s)
			}
			w.runTo(at(tt.runTo))
			r := w.mustSMS(janePhone, tt.text)
			a := w.onlyAlert()
			if a.Reason != ReasonPanic || a.State != AlertOpen || a.Destination != tt.wantDest {
				t.Errorf("alert %s/%s at %q, want open panic at %q", a.Reason, a.State, a.Destination, tt.wantDest)
			}
			if got := phones(r.Messages, KindAlert); !slices.Equal(got, tt.wantTo) {
				t.Errorf("PANIC sent to %v, want %v at once", got, tt.wantTo)
			}
			for _, m := range r.Messages {
				if m.Priority != PriorityPanic || m.Validity != w.p.ValidityPeriod || m.To == janePhone {
					t.Errorf("message %+v: want panic priority, validity %s, never to the officer", m, w.p.ValidityPeriod)
				}
				if !strings.Contains(m.Body, "pressed PANIC at "+tt.runTo) {
					t.Errorf("alert %q does not say PANIC was pressed at %s", m.Body, tt.runTo)
				}
				if tt.wantDest != "" && !strings.Contains(m.Body, tt.wantDest) {
					t.Errorf("alert %q does not name %q", m.Body, tt.wantDest)
				}
			}
			for _, s := range []string{"School office", "Head of School", "Deputy Head", "Safer Schools Officer"} {
				if !strings.Contains(r.Reply, s) {
					t.Errorf("reply %q does not say %q is alerted", r.Reply, s)
				}
			}
			// A second PANIC sends it again to every level at once, quoting the
			// latest text.
			w.now = w.now.Add(time.Minute)
			r = w.mustSMS(janePhone, "SOS")
			if got := phones(r.Messages, KindAlert); !slices.Equal(got, everyone) {
				t.Errorf("second PANIC sent to %v, want %v", got, everyone)
			}
			for _, m := range r.Messages {
				if m.Kind == KindAlert && !strings.Contains(m.Body, `Last text: "SOS"`) {
					t.Errorf("second PANIC's alert does not quote the latest text: %q", m.Body)
				}
			}
			if len(w.alerts) != 1 {
				t.Errorf("second PANIC made %d alerts, want 1", len(w.alerts))
			}
		})
	}
}

func TestPanicWithNoContacts(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.school.Contacts = map[string][]Contact{}
	r := w.mustSMS(janePhone, "PANIC")
	if !strings.Contains(r.Reply, "999") || strings.Contains(r.Reply, "Alerting no one") {
		t.Errorf("reply %q: with no contacts on file the officer must be told to call 999", r.Reply)
	}
}

// The duress check-in must look exactly like a normal one from the officer's phone,
// however the code is typed after the check-in word.
func TestDuressLooksLikeCheckIn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		before []string
		runTo  string
		in     string
		duress string
	}{
		// With an open visit.
		{"open visit", []string{"VISIT 45 14 Elm Road"}, "14:20", "IN", "IN 4321"},
		// With an overdue visit whose alert is out.
		{"overdue", []string{"VISIT 45 14 Elm Road"}, "14:56", "IN", "IN 4321"},
		// With no open visit.
		{"no visit", nil, "14:20", "IN", "IN 4321"},
		// With another check-in word.
		{"check in", []string{"VISIT 45 14 Elm Road"}, "14:20", "check in", "check in 4321"},
		// After a PANIC.
		{"after panic", []string{"VISIT 45 14 Elm Road", "PANIC"}, "14:20", "SAFE", "SAFE 4321"},
		// A comma in place of the space, as a person under threat may type it.
		{"comma", []string{"VISIT 45 14 Elm Road"}, "14:20", "in", "in,4321"},
		// A comma and a space, then a word.
		{"comma space", []string{"VISIT 45 14 Elm Road"}, "14:20", "ok", "ok, 4321, thanks"},
		// No space at all.
		{"glued", []string{"VISIT 45 14 Elm Road"}, "14:20", "IN", "IN4321"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var replies []string
			for _, text := range []string{tt.in, tt.duress} {
				w := newWorld(t)
				for _, s := range tt.before {
					w.mustSMS(janePhone, s)
				}
				w.runTo(at(tt.runTo))
				r := w.mustSMS(janePhone, text)
				replies = append(replies, r.Reply)
				for _, m := range r.Messages {
					if m.To == janePhone {
						t.Errorf("%q queued a message to the officer's phone: %q", text, m.Body)
					}
				}
				raised := false
				for _, a := range w.alerts {
					raised = raised || (a.Reason == ReasonDuress && a.Open())
				}
				if want := text == tt.duress; raised != want {
					t.Errorf("%q: duress alert open %v, want %v", text, raised, want)
				}
			}
			if replies[0] != replies[1] || replies[0] == "" {
				t.Errorf("duress reply differs from a normal check-in:\nnormal %q\nduress %q", replies[0], replies[1])
			}
		})
	}
}

func TestDuress(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
	w.runTo(at("14:56")) // overdue alert out to the office
	overdue := w.onlyAlert()
	r := w.mustSMS(janePhone, "in 4321")
	var duress *Alert
	for _, a := range w.alerts {
		if a.Reason == ReasonDuress {
			duress = a
		}
	}
	if duress == nil || duress.State != AlertOpen {
		t.Fatalf("no open duress alert: %+v", w.alerts)
	}
	v := w.visits[overdue.VisitID]
	if v.State != StateClosed || v.Outcome != OutcomeDuress || v.AlertID != duress.ID {
		t.Errorf("visit %s/%s alert %s, want closed/duress with alert %s", v.State, v.Outcome, v.AlertID, duress.ID)
	}
	if got := w.alerts[overdue.ID]; got.Open() {
		t.Errorf("the overdue alert is still open beside the duress alert")
	}
	if got, want := phones(r.Messages, KindAlert), []string{officePhone, headPhone, deputyPhone, policePhone}; !slices.Equal(got, want) {
		t.Errorf("duress alert sent to %v, want every panic level %v", got, want)
	}
	for _, m := range r.Messages {
		if m.Kind == KindAllClear {
			t.Errorf("ALL CLEAR sent to %s on a duress check-in: %q", m.To, m.Body)
		}
		if m.To == janePhone {
			t.Errorf("message to the officer's phone: %q", m.Body)
		}
		if m.Kind == KindAlert && (!strings.Contains(m.Body, "DURESS") || strings.Contains(m.Body, "4321") || m.Priority != PriorityPanic) {
			t.Errorf("duress alert %q: want DURESS, panic priority, and never the code", m.Body)
		}
	}
	if w.p.VisitWake(v) != (time.Time{}) {
		t.Errorf("the closed visit still has a timer: no reminder may reach the officer")
	}
	// The officer's later IN does not resolve the duress alert.
	w.now = at("15:00")
	r = w.mustSMS(janePhone, "IN")
	if !w.alerts[duress.ID].Open() || len(r.Messages) != 0 {
		t.Errorf("a later IN resolved the duress alert or sent %d messages", len(r.Messages))
	}
	// An ACK never stops it: it keeps going to every panic level.
	w.mustSMS(headPhone, "ACK")
	ms := w.runTo(at("15:06"))
	if got, want := phones(sentOnly(ms), KindAlert), []string{officePhone, headPhone, deputyPhone, policePhone}; !slices.Equal(got, want) {
		t.Errorf("duress repeat after ACK to %v, want %v", got, want)
	}
	// A RESOLVE that does not say how the officer was found changes nothing, as
	// in the API: the record must say it.
	for _, text := range []string{"RESOLVE", "RESOLVE " + duress.Code, "resolve " + duress.Code + " ."} {
		_, err := w.sms(headPhone, text)
		if want := "Say how the officer was found, e.g. RESOLVE " + duress.Code + " found safe at home. Nothing changed."; errKind(err) != Invalid || err.Error() != want || !w.alerts[duress.ID].Open() {
			t.Errorf("%q: %v, alert open %v; want Invalid %q and the alert open", text, err, w.alerts[duress.ID].Open(), want)
		}
	}
	// A contact resolves it.
	r = w.mustSMS(headPhone, "RESOLVE found safe at the house")
	if w.alerts[duress.ID].Open() {
		t.Errorf("RESOLVE left the duress alert open")
	}
	if got, want := phones(r.Messages, KindAllClear), []string{deputyPhone, officePhone, policePhone, headPhone}; !slices.Equal(got, sorted(want)) {
		t.Errorf("ALL CLEAR to %v, want %v", got, sorted(want))
	}
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

func TestAbort(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	// The head is on the headteacher list twice: one copy.
	w.school.Contacts[ListHeadteacher] = append(w.school.Contacts[ListHeadteacher], Contact{Name: "Head (mobile)", Phone: headPhone})
	w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
	w.now = at("14:10")
	r := w.mustSMS(janePhone, "ABORT dog loose in the garden")
	v := r.Visits[0]
	if v.State != StateClosed || v.Outcome != OutcomeCancelled {
		t.Errorf("visit %s/%s, want closed/cancelled", v.State, v.Outcome)
	}
	if got, want := phones(r.Messages, KindNotice), []string{headPhone, chairPhone}; !slices.Equal(got, sorted(want)) || len(r.Messages) != 2 {
		t.Errorf("notice to %v (%d messages), want one each to %v", got, len(r.Messages), want)
	}
	var kept bool
	for _, e := range v.Events {
		if e.Type == "notice" && e.Detail == r.Messages[0].Body {
			kept = true
		}
	}
	if !kept {
		t.Errorf("the notice is not kept in the visit's events: %+v", v.Events)
	}
	for _, m := range r.Messages {
		for _, s := range []string{"Jane Doe", janePhone, "14 Elm Road", "14:10", "dog loose in the garden", "Bishop Lonsdale"} {
			if !strings.Contains(m.Body, s) {
				t.Errorf("notice %q does not say %q", m.Body, s)
			}
		}
	}
	if !strings.Contains(r.Reply, "notice") {
		t.Errorf("reply %q does not say the notice was sent", r.Reply)
	}
}

func TestStatusAndUnknownChangeNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		before   []string
		text     string
		contains []string
	}{
		// STATUS with an open visit.
		{"status", []string{"VISIT 45 14 Elm Road"}, "STATUS", []string{"14 Elm Road", "14:45"}},
		// STATUS with none.
		{"status no visit", nil, "status", []string{"No open visit"}},
		// Anything else gets the commands.
		{"unknown", []string{"VISIT 45 14 Elm Road"}, "where do I park", []string{"VISIT", "IN", "EXTEND", "PANIC"}},
		// A bare CANCEL is not ours.
		{"bare cancel", []string{"VISIT 45 14 Elm Road"}, "CANCEL", []string{"VISIT", "IN"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			for _, s := range tt.before {
				w.mustSMS(janePhone, s)
			}
			before := snapshot(t, w.visits)
			w.now = at("14:20")
			r := w.mustSMS(janePhone, tt.text)
			if !r.Empty() || len(r.Audit) != 0 {
				t.Errorf("%q changed something: %+v", tt.text, r)
			}
			if snapshot(t, w.visits) != before {
				t.Errorf("%q changed the visits", tt.text)
			}
			for _, s := range tt.contains {
				if !strings.Contains(r.Reply, s) {
					t.Errorf("reply %q does not say %q", r.Reply, s)
				}
			}
		})
	}
}

// STATUS through a visit's life: OVERDUE is said beside the due time (the alert
// went at due + grace, not at the due time), and EXTEND is offered only while it
// can add time.
func TestStatusThroughAVisit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		visit  string
		extend string // sent at 14:10, when set
		at     string
		want   string
	}{
		// Before the due time.
		{"active", "VISIT 45 14 Elm Road", "", "14:20", "Open visit: 14 Elm Road, due back 14:45. Reply IN when safe or EXTEND 15."},
		// Past the due time, within the grace: late, not yet alerted.
		{"grace", "VISIT 45 14 Elm Road", "", "14:47", "Open visit: 14 Elm Road, due back 14:45, OVERDUE. Reply IN when safe or EXTEND 15."},
		// Overdue, the alert out since 14:50.
		{"overdue", "VISIT 45 14 Elm Road", "", "14:56", "Open visit: 14 Elm Road, due back 14:45, OVERDUE. Reply IN when safe or EXTEND 15."},
		// Extended to the longest a visit may last (8h from 14:00).
		{"at the cap", "VISIT 45 14 Elm Road", "EXTEND 9h", "20:00", "Open visit: 14 Elm Road, due back 22:00. It cannot be extended: reply IN when safe."},
		// Overdue past the cap: EXTEND would be refused.
		{"past the cap", "VISIT 8h 14 Elm Road", "", "22:30", "Open visit: 14 Elm Road, due back 22:00, OVERDUE. It cannot be extended: reply IN when safe."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.mustSMS(janePhone, tt.visit)
			if tt.extend != "" {
				w.now = at("14:10")
				w.mustSMS(janePhone, tt.extend)
			}
			w.runTo(at(tt.at))
			if got := w.mustSMS(janePhone, "STATUS").Reply; got != tt.want {
				t.Errorf("STATUS at %s = %q, want %q", tt.at, got, tt.want)
			}
		})
	}
}

// The whole ladder of an overdue visit nobody answers.
func TestLadder(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
	got := timeline(w.runTo(at("15:31")))
	want := []string{
		"14:35 reminder " + janePhone,
		"14:50 alert " + officePhone,
		"14:55 alert " + officePhone,
		"15:00 alert " + deputyPhone, "15:00 alert " + headPhone, "15:00 alert " + officePhone,
		"15:05 alert " + deputyPhone, "15:05 alert " + headPhone, "15:05 alert " + officePhone,
		"15:10 alert " + deputyPhone, "15:10 alert " + headPhone, "15:10 alert " + officePhone, "15:10 alert " + policePhone,
		"15:20 alert " + deputyPhone, "15:20 alert " + headPhone, "15:20 alert " + officePhone, "15:20 alert " + policePhone,
		"15:30 alert " + deputyPhone, "15:30 alert " + headPhone, "15:30 alert " + officePhone, "15:30 alert " + policePhone,
	}
	if !slices.Equal(got, sorted(want)) {
		t.Errorf("timeline:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(sorted(want), "\n"))
	}
	a := w.onlyAlert()
	if a.Level != 2 || a.Reason != ReasonOverdue || !a.RaisedAt.Equal(at("14:50")) || len(a.Notified) != 4 {
		t.Errorf("alert level %d reason %s raised %s notified %d, want 2 overdue 14:50 4", a.Level, a.Reason, a.RaisedAt, len(a.Notified))
	}
	if v := w.visits[a.VisitID]; v.State != StateOverdue {
		t.Errorf("visit state %s, want overdue", v.State)
	}
	for _, m := range w.sent {
		if m.Kind != KindAlert {
			continue
		}
		switch {
		case m.To == policePhone && m.At.Equal(at("15:10")):
			if !strings.Contains(m.Body, "Already alerted: School office, Head of School, Deputy Head.") || !strings.Contains(m.Body, "No one has taken charge yet.") {
				t.Errorf("police escalation does not say who was alerted before and that no one took charge: %q", m.Body)
			}
		case m.To == headPhone && m.At.Equal(at("15:00")):
			if !strings.Contains(m.Body, "Already alerted: School office.") || !strings.Contains(m.Body, "No one has taken charge yet.") {
				t.Errorf("managers escalation does not say who was alerted before and that no one took charge: %q", m.Body)
			}
		}
		if m.Validity != w.p.ValidityPeriod || m.Priority != PriorityAlert {
			t.Errorf("alert to %s at %s: validity %s priority %d", m.To, m.At, m.Validity, m.Priority)
		}
	}
	// Once the officer checks in, everyone reached hears ALL CLEAR once.
	w.now = at("15:33")
	r := w.mustSMS(janePhone, "IN")
	if got, want := phones(r.Messages, KindAllClear), sorted([]string{officePhone, headPhone, deputyPhone, policePhone}); !slices.Equal(got, want) || len(r.Messages) != 4 {
		t.Errorf("ALL CLEAR to %v (%d messages), want one each to %v", got, len(r.Messages), want)
	}
	if ms := w.runTo(at("17:00")); len(ms) != 0 {
		t.Errorf("messages after ALL CLEAR: %v", timeline(ms))
	}
}

// A repeat whose timer fired a little late is not skipped when the next level
// falls due at the same moment: every level gets that round (README "The
// ladder"). With the 15:05 repeat two seconds late, the 15:10 level timer fired
// before the repeat was due again; the round went to the police alone and put the
// office's and managers' next message off to 15:20.
func TestLadderRoundNotSkippedWhenARepeatWasLate(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.late = func(due time.Time) time.Duration {
		if due.Equal(at("15:05")) {
			return 2 * time.Second
		}
		return 0
	}
	w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
	got := timeline(w.runTo(at("15:21")))
	want := []string{
		"14:35 reminder " + janePhone,
		"14:50 alert " + officePhone,
		"14:55 alert " + officePhone,
		"15:00 alert " + deputyPhone, "15:00 alert " + headPhone, "15:00 alert " + officePhone,
		"15:05 alert " + deputyPhone, "15:05 alert " + headPhone, "15:05 alert " + officePhone,
		"15:10 alert " + deputyPhone, "15:10 alert " + headPhone, "15:10 alert " + officePhone, "15:10 alert " + policePhone,
		"15:20 alert " + deputyPhone, "15:20 alert " + headPhone, "15:20 alert " + officePhone, "15:20 alert " + policePhone,
	}
	if !slices.Equal(got, sorted(want)) {
		t.Errorf("timeline:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(sorted(want), "\n"))
	}
}

// Whatever the timing, a level reached hears the alert again within the repeat of
// the highest level reached (a new level's own round does not put the others'
// repeat off), and no phone gets two rounds within a quarter of that repeat.
// The ladder is the acceptance test's, whose levels do not fall on one grid:
// office at once and every 40 s, managers after 60 s every 40 s, police after
// 100 s every 60 s; every timer fires 0 to 3 s late.
func TestLadderRepeatsHoldWithLateTimers(t *testing.T) {
	t.Parallel()
	for seed := range 50 {
		w := newWorld(t)
		w.p.ReminderBefore = 0
		w.p.Levels = []Level{
			{Name: ListOffice, After: 0, RepeatEvery: 40 * time.Second},
			{Name: ListManagers, After: 60 * time.Second, RepeatEvery: 40 * time.Second},
			{Name: ListPolice, After: 100 * time.Second, RepeatEvery: 60 * time.Second},
		}
		w.late = func(due time.Time) time.Duration {
			return time.Duration((due.UnixMilli()*7919+int64(seed)*104729)%3000) * time.Millisecond
		}
		w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
		ms := w.runTo(at("15:10"))
		a := w.onlyAlert()
		last := map[string]time.Time{}
		for _, m := range ms {
			if m.Kind != KindAlert {
				continue
			}
			// The highest level reached when m went out, and its repeat.
			lvl := w.p.levelReachedBy(a, m.At)
			repeat := w.p.Levels[lvl].RepeatEvery
			if prev, ok := last[m.To]; ok {
				gap := m.At.Sub(prev)
				if gap > repeat+3*time.Second {
					t.Errorf("seed %d: %s heard nothing for %s (from %s to %s); repeat_every of the highest level reached is %s",
						seed, m.To, gap, prev.Format("15:04:05.000"), m.At.Format("15:04:05.000"), repeat)
				}
				if gap < repeat/4 {
					t.Errorf("seed %d: %s got two rounds %s apart (%s, %s)", seed, m.To, gap, prev.Format("15:04:05.000"), m.At.Format("15:04:05.000"))
				}
			}
			last[m.To] = m.At
		}
		// Up to 15:10 every phone reached keeps hearing it.
		for phone, at := range last {
			if w.now.Sub(at) > 63*time.Second {
				t.Errorf("seed %d: %s last heard at %s", seed, phone, at.Format("15:04:05.000"))
			}
		}
	}
}

func TestReminder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		visit  string
		extend map[string]string // London time -> text
		runTo  string
		want   []string
	}{
		// Once, at due - reminder_before.
		{"once", "VISIT 45 14 Elm Road", nil, "14:49", []string{"14:35 reminder " + janePhone}},
		// EXTEND re-arms it for the new due time.
		{"re-armed", "VISIT 45 14 Elm Road", map[string]string{"14:40": "EXTEND 20"}, "15:04", []string{"14:35 reminder " + janePhone, "14:55 reminder " + janePhone}},
		// An EXTEND that leaves less than reminder_before sends no reminder at once.
		{"short extend", "VISIT 45 14 Elm Road", map[string]string{"14:44": "EXTEND 5"}, "14:54", []string{"14:35 reminder " + janePhone}},
		// A visit shorter than reminder_before gets none.
		{"short visit", "VISIT 8 corner shop", nil, "14:12", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.mustSMS(janePhone, tt.visit)
			var ms []sentMsg
			for _, hhmm := range slices.Sorted(maps.Keys(tt.extend)) {
				ms = append(ms, w.runTo(at(hhmm))...)
				w.mustSMS(janePhone, tt.extend[hhmm])
			}
			ms = append(ms, w.runTo(at(tt.runTo))...)
			if got := timeline(ms); !slices.Equal(got, tt.want) {
				t.Errorf("timeline %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAckHold(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
	w.runTo(at("14:52"))
	r := w.mustSMS(officePhone, "ACK")
	a := w.onlyAlert()
	if a.State != AlertAcked || a.AckedBy != "School office ("+officePhone+")" || !a.HoldUntil.Equal(at("15:07")) {
		t.Errorf("alert %s acked by %q hold %s, want acked by School office until 15:07", a.State, a.AckedBy, a.HoldUntil)
	}
	if r.AckedAfter != 2*time.Minute {
		t.Errorf("AckedAfter = %s, want 2m", r.AckedAfter)
	}
	if !strings.Contains(r.Reply, "You have taken charge") {
		t.Errorf("the ACKer's reply is not a briefing: %q", r.Reply)
	}
	// A second ACK while held is refused, saying who took it; the one who did is
	// told so, even after their name on file changed.
	w.now = at("14:55")
	_, err := w.sms(headPhone, "ACK")
	if want := "Alert " + a.Code + " was already taken by School office (" + officePhone + ") at 14:52. Nothing changed."; errKind(err) != Conflict || err.Error() != want {
		t.Errorf("ACK from another contact: %v, want a Conflict %q", err, want)
	}
	w.school.Contacts[ListOffice][0].Name = "Main office"
	for _, text := range []string{"ACK", "ack " + a.Code} {
		_, err = w.sms(officePhone, text)
		if want := "You already took charge of alert " + a.Code + " at 14:52. Nothing changed."; errKind(err) != Conflict || err.Error() != want {
			t.Errorf("%q again from the one who took charge: %v, want a Conflict %q", text, err, want)
		}
	}
	w.school.Contacts[ListOffice][0].Name = "School office"
	// Nothing while held, though managers' time (15:00) passes; at 15:07 every level
	// due hears at once who took charge; then the ladder resumes: the police at
	// their time, and every level reached again at the police's repeat (10 min)
	// after 15:07, the last round to all (the police's own round at 15:10 does not
	// put the others' repeat off to 15:20).
	got := timeline(w.runTo(at("15:21")))
	want := sorted([]string{
		"15:07 alert " + officePhone, "15:07 alert " + headPhone, "15:07 alert " + deputyPhone,
		"15:10 alert " + policePhone,
		"15:17 alert " + officePhone, "15:17 alert " + headPhone, "15:17 alert " + deputyPhone, "15:17 alert " + policePhone,
	})
	if !slices.Equal(got, want) {
		t.Errorf("timeline:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, m := range w.sent {
		if m.At.Equal(at("15:07")) && !strings.Contains(m.Body, "Taken charge: School office ("+officePhone+") at 14:52.") {
			t.Errorf("hold-end alert to %s does not say who took charge: %q", m.To, m.Body)
		}
		// The hold-end round is news, not a repeat: no per-contact limit holds it.
		if m.At.Equal(at("15:07")) && Throttled(m.Message) {
			t.Errorf("hold-end alert to %s may be held back as a repeat", m.To)
		}
	}
	// The trail says why the ladder went on.
	var ended []string
	for _, e := range w.onlyAlert().Events {
		if e.Type == "hold_ended" && e.At.Equal(at("15:07")) {
			ended = append(ended, e.Detail)
		}
	}
	if want := "no check-in since School office (" + officePhone + ") took charge at 14:52; alerting levels 0-1"; len(ended) != 1 || ended[0] != want {
		t.Errorf("hold_ended events %q, want [%q]", ended, want)
	}
	// After the hold, an ACK is taken again.
	if _, err := w.sms(headPhone, "ACK"); err != nil {
		t.Errorf("ACK after the hold: %v", err)
	}
}

func TestAckFromContact(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
	w.runTo(at("15:01"))
	r := w.mustSMS(headPhone, "ack")
	if got, want := phones(r.Messages, ""), sorted([]string{officePhone, deputyPhone}); !slices.Equal(got, want) {
		t.Errorf("took-charge notes to %v, want the others notified %v", got, want)
	}
	for _, m := range r.Messages {
		if !strings.Contains(m.Body, "Head of School") || !strings.Contains(m.Body, "took charge") {
			t.Errorf("note %q does not say who took charge", m.Body)
		}
	}
	for _, s := range []string{"You have taken charge", "Jane Doe", janePhone, "14 Elm Road", "Blue Ford Fiesta AB12 CDE"} {
		if !strings.Contains(r.Reply, s) {
			t.Errorf("briefing %q does not say %q", r.Reply, s)
		}
	}
}

func TestAckPicksAmongSeveral(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
	w.mustSMS(alanPhone, "VISIT 45 22 Oak Lane")
	w.runTo(at("14:51"))
	alerts := w.openAlerts()
	if len(alerts) != 2 {
		t.Fatalf("%d open alerts, want 2", len(alerts))
	}
	// Without a code, ACK and RESOLVE list the alerts and say nothing changed.
	for _, verb := range []string{"ACK", "RESOLVE"} {
		_, err := w.sms(officePhone, verb)
		want := fmt.Sprintf("Several alerts are open: %s %s (%s), %s %s (%s). Nothing changed.",
			verb, alerts[0].Code, w.officers[alerts[0].Officer].Name, verb, alerts[1].Code, w.officers[alerts[1].Officer].Name)
		if errKind(err) != Conflict || err.Error() != want {
			t.Errorf("%s with two open: %v, want a Conflict %q", verb, err, want)
		}
	}
	if len(w.openAlerts()) != 2 || w.alerts[alerts[0].ID].State != AlertOpen || w.alerts[alerts[1].ID].State != AlertOpen {
		t.Fatalf("ACK or RESOLVE with two open changed an alert")
	}
	_, err := w.sms(officePhone, "ACK 999999")
	if errKind(err) != NotFound {
		t.Errorf("ACK with an unknown code: %v, want NotFound", err)
	}
	w.mustSMS(officePhone, "ACK "+alerts[1].Code)
	if w.alerts[alerts[1].ID].State != AlertAcked || w.alerts[alerts[0].ID].State != AlertOpen {
		t.Errorf("ACK %s took the wrong alert", alerts[1].Code)
	}
}

func TestPanicKeepsRepeatingAfterAck(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
	w.now = at("14:10")
	w.mustSMS(janePhone, "PANIC")
	w.now = at("14:11")
	w.mustSMS(deputyPhone, "ACK")
	if _, err := w.sms(headPhone, "ACK"); errKind(err) != Conflict {
		t.Errorf("second ACK of a panic: %v, want Conflict", err)
	}
	got := timeline(w.runTo(at("14:16")))
	want := sorted([]string{"14:15 alert " + officePhone, "14:15 alert " + headPhone, "14:15 alert " + deputyPhone, "14:15 alert " + policePhone})
	if !slices.Equal(got, want) {
		t.Errorf("timeline %v, want %v", got, want)
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	// The head is on the managers' and the police lists: one copy of everything.
	w.school.Contacts[ListPolice] = append(w.school.Contacts[ListPolice], Contact{Name: "Head of School", Phone: headPhone})
	w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
	ms := w.runTo(at("15:11"))
	for _, instant := range []string{"15:10"} {
		var n int
		for _, m := range ms {
			if m.To == headPhone && m.At.Equal(at(instant)) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("the head got %d copies at %s, want 1", n, instant)
		}
	}
	r := w.mustSMS(policePhone, "RESOLVE found safe at a neighbour's")
	a := w.onlyAlert()
	if a.State != AlertResolved || !strings.Contains(a.Resolution, "found safe at a neighbour's") {
		t.Errorf("alert %s resolution %q", a.State, a.Resolution)
	}
	if v := w.visits[a.VisitID]; v.State != StateClosed || v.Outcome != OutcomeSafe {
		t.Errorf("visit %s/%s, want closed/safe", v.State, v.Outcome)
	}
	if got, want := phones(r.Messages, KindAllClear), sorted([]string{officePhone, headPhone, deputyPhone, policePhone}); !slices.Equal(got, want) || len(r.Messages) != len(want) {
		t.Errorf("ALL CLEAR to %v (%d), want one each to %v", got, len(r.Messages), want)
	}
	for _, m := range r.Messages {
		for _, s := range []string{"ALL CLEAR", "Jane Doe", "safe", "15:11", "found safe at a neighbour's"} {
			if !strings.Contains(m.Body, s) {
				t.Errorf("ALL CLEAR %q does not say %q", m.Body, s)
			}
		}
	}
}

func TestAPIAckAndResolve(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
	w.runTo(at("14:51"))
	a := w.onlyAlert()
	st := State{School: w.school, Loc: london, Officer: w.officers["jdoe"], Officers: w.officers, Alerts: []*Alert{a}, Visit: w.visits[a.VisitID]}
	r, err := w.decide(st, func(st State) (Result, error) { return AckAlert(st, "office-pc", w.now, w.p) })
	if err != nil || w.alerts[a.ID].AckedBy != "office-pc" || len(r.Messages) != 1 {
		t.Errorf("AckAlert: %v, acked by %q, %d notes", err, w.alerts[a.ID].AckedBy, len(r.Messages))
	}
	st.Alerts = []*Alert{w.alerts[a.ID]}
	// The same caller again is told it already took charge.
	_, err = w.decide(st, func(st State) (Result, error) { return AckAlert(st, "office-pc", w.now, w.p) })
	if want := "You already took charge of alert " + a.Code + " at 14:51. Nothing changed."; errKind(err) != Conflict || err.Error() != want {
		t.Errorf("AckAlert twice: %v, want a Conflict %q", err, want)
	}
	if _, err := w.decide(st, func(st State) (Result, error) { return ResolveAlert(st, "office-pc", " ", w.now, w.p) }); errKind(err) != Invalid {
		t.Errorf("ResolveAlert with no note: %v, want Invalid", err)
	}
	if _, err := w.decide(st, func(st State) (Result, error) { return ResolveAlert(st, "office-pc", "she rang in", w.now, w.p) }); err != nil {
		t.Errorf("ResolveAlert: %v", err)
	}
	st.Alerts = []*Alert{w.alerts[a.ID]}
	if _, err := w.decide(st, func(st State) (Result, error) { return ResolveAlert(st, "office-pc", "again", w.now, w.p) }); errKind(err) != Conflict {
		t.Errorf("ResolveAlert twice: %v, want Conflict", err)
	}
	if _, err := w.decide(st, func(st State) (Result, error) { return AckAlert(st, "office-pc", w.now, w.p) }); errKind(err) != Conflict {
		t.Errorf("AckAlert of a resolved alert: %v, want Conflict", err)
	}
}

func TestEmptyOfficeCascades(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.school.Contacts[ListOffice] = nil
	w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
	got := timeline(w.runTo(at("14:51")))
	want := sorted([]string{"14:35 reminder " + janePhone, "14:50 alert " + headPhone, "14:50 alert " + deputyPhone})
	if !slices.Equal(got, want) {
		t.Errorf("timeline %v, want %v", got, want)
	}
	if a := w.onlyAlert(); a.Level != 1 {
		t.Errorf("alert level %d, want 1", a.Level)
	}
}

// A level with no one on its list (a school without a police contact) is
// reached when its time comes, but the audit trail says no one on it was told,
// rather than that the level was notified.
func TestAuditSaysWhenALevelReachedNoOne(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.school.Contacts[ListPolice] = nil
	w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
	w.runTo(at("15:11"))
	var details []string
	for _, e := range w.onlyAlert().Events {
		if e.Type == "notified" {
			details = append(details, e.Detail)
		}
	}
	if len(details) == 0 || details[0] != "level 0" || details[len(details)-1] != "level 2; no one on police" {
		t.Errorf("notified events %q, want the first \"level 0\" and the last \"level 2; no one on police\"", details)
	}
}

func TestStaleTimers(t *testing.T) {
	t.Parallel()
	p := testPolicy()
	active := &Visit{ID: "v1", School: "bishop-lonsdale", Officer: "jdoe", Destination: "14 Elm Road", State: StateActive, StartedAt: at("14:00"), DueAt: at("14:45")}
	closed := clone(active)
	closed.State, closed.Outcome, closed.ClosedAt = StateClosed, OutcomeSafe, at("14:20")
	moved := clone(active)
	moved.DueAt = at("15:30")
	overdue := clone(active)
	overdue.State, overdue.AlertID = StateOverdue, "a1"
	alert := &Alert{ID: "a1", Code: "101", School: "bishop-lonsdale", Officer: "jdoe", VisitID: "v1", Reason: ReasonOverdue, State: AlertOpen, RaisedAt: at("14:50"), LastSentAt: at("14:50"), Notified: []Recipient{{Name: "School office", Phone: officePhone, List: ListOffice}}}
	resolved := clone(alert)
	resolved.State, resolved.ResolvedAt = AlertResolved, at("14:52")
	held := clone(alert)
	held.State, held.AckedBy, held.AckedAt, held.HoldUntil = AlertAcked, "School office", at("14:52"), at("15:07")
	tests := []struct {
		name  string
		visit *Visit
		alert *Alert
		now   string
	}{
		// The visit was closed before its overdue timer fired.
		{"visit closed", closed, nil, "14:50"},
		// EXTEND moved the due time: the old overdue instant decides nothing.
		{"due moved", moved, nil, "14:50"},
		// The visit timer of an overdue visit (the alert's timer has the ladder).
		{"visit overdue", overdue, nil, "14:55"},
		// A visit timer that fires early.
		{"early", active, nil, "14:20"},
		// The alert was resolved.
		{"alert resolved", nil, resolved, "14:55"},
		// The alert is held by an ACK.
		{"alert held", nil, held, "15:00"},
		// An alert timer that fires before the next repeat.
		{"alert early", nil, alert, "14:53"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := State{School: testSchool(), Loc: london, Officer: testOfficers()["jdoe"], Visit: tt.visit}
			var r Result
			if tt.alert != nil {
				st.Alerts = []*Alert{tt.alert}
				r = AlertTimer(st, at(tt.now), p)
			} else {
				r = VisitTimer(st, at(tt.now), p, IDs{Visit: "v9", Alert: "a9", Code: "109"})
			}
			if !r.Empty() || len(r.Audit) != 0 {
				t.Errorf("a stale timer decided %+v", r)
			}
		})
	}
}

func TestWakes(t *testing.T) {
	t.Parallel()
	p := testPolicy()
	visit := func(f func(v *Visit)) *Visit {
		v := &Visit{ID: "v1", State: StateActive, StartedAt: at("14:00"), DueAt: at("14:45")}
		f(v)
		return v
	}
	alert := func(f func(a *Alert)) *Alert {
		a := &Alert{ID: "a1", Reason: ReasonOverdue, State: AlertOpen, RaisedAt: at("14:50"), LastSentAt: at("14:50")}
		f(a)
		return a
	}
	tests := []struct {
		name  string
		visit *Visit
		alert *Alert
		want  string // London HH:MM, or "" for none
	}{
		// A new visit: the reminder.
		{"visit new", visit(func(*Visit) {}), nil, "14:35"},
		// Reminded: the overdue instant.
		{"visit reminded", visit(func(v *Visit) { v.RemindedAt = at("14:35") }), nil, "14:50"},
		// Too short for a reminder: the overdue instant.
		{"visit short", visit(func(v *Visit) { v.DueAt = at("14:08") }), nil, "14:13"},
		// Overdue: the alert's timer takes over.
		{"visit overdue", visit(func(v *Visit) { v.State = StateOverdue }), nil, ""},
		// Closed: none.
		{"visit closed", visit(func(v *Visit) { v.State = StateClosed }), nil, ""},
		// A new overdue alert: the office's repeat comes before the managers.
		{"alert new", nil, alert(func(*Alert) {}), "14:55"},
		// After the 14:55 repeat: the managers at 15:00.
		{"alert repeated", nil, alert(func(a *Alert) { a.LastSentAt = at("14:55") }), "15:00"},
		// At the police level: repeat_every of police (10m).
		{"alert top", nil, alert(func(a *Alert) { a.Level, a.LastSentAt = 2, at("15:10") }), "15:20"},
		// Held by an ACK: the end of the hold.
		{"alert held", nil, alert(func(a *Alert) { a.State, a.AckedAt, a.HoldUntil = AlertAcked, at("14:52"), at("15:07") }), "15:07"},
		// Acked, hold over: the ladder again.
		{"alert hold over", nil, alert(func(a *Alert) { a.State, a.AckedAt, a.Level, a.LastSentAt = AlertAcked, at("14:52"), 1, at("15:07") }), "15:10"},
		// A panic: every repeat_every of the panic levels, ACK or not.
		{"panic acked", nil, alert(func(a *Alert) { a.Reason, a.State, a.Level = ReasonPanic, AlertAcked, 2 }), "14:55"},
		// Resolved: none.
		{"alert resolved", nil, alert(func(a *Alert) { a.State = AlertResolved }), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got time.Time
			if tt.visit != nil {
				got = p.VisitWake(tt.visit)
			} else {
				got = p.AlertWake(tt.alert)
			}
			s := ""
			if !got.IsZero() {
				s = got.In(london).Format("15:04")
			}
			if s != tt.want {
				t.Errorf("wake = %q, want %q", s, tt.want)
			}
		})
	}
}

// Decide routes each event to its rule.
func TestDecideRoutes(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	st := w.officerState(w.officers["jdoe"])
	r, err := Decide(st, Input{Cmd: Parse("VISIT 45 14 Elm Road"), Source: SourceSMS, By: janePhone, IDs: w.newIDs()}, t0, w.p)
	if err != nil || len(r.Visits) != 1 {
		t.Fatalf("Decide VISIT: %v %+v", err, r)
	}
	v := r.Visits[0]
	r, _ = Decide(State{School: w.school, Loc: london, Officer: w.officers["jdoe"], Visit: v}, Input{Source: SourceTimer, IDs: w.newIDs()}, at("14:35"), w.p)
	if len(r.Messages) != 1 || r.Messages[0].Kind != KindReminder {
		t.Errorf("Decide visit timer: %+v, want the reminder", r.Messages)
	}
	_, err = Decide(State{School: w.school, Loc: london, Contact: &Contact{Name: "School office", Phone: officePhone}}, Input{Cmd: Parse("ACK"), Source: SourceSMS, By: officePhone}, t0, w.p)
	if errKind(err) != NotFound {
		t.Errorf("Decide contact ACK with nothing open: %v, want NotFound", err)
	}
}

func TestShortDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    time.Duration
		want string
	}{
		// Whole hours.
		{8 * time.Hour, "8h"},
		// Hours and minutes.
		{90 * time.Minute, "1h30m"},
		// Minutes.
		{30 * time.Minute, "30m"},
		// Ten minutes.
		{10 * time.Minute, "10m"},
		// Seconds.
		{30 * time.Second, "30s"},
		// Zero.
		{0, "0m"},
	}
	for _, tt := range tests {
		if got := shortDuration(tt.d); got != tt.want {
			t.Errorf("shortDuration(%s) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

// A state that holds every kind of entity, deep-compared before and after each rule.
func TestDecisionsNeverMutateState(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
	w.mustSMS(janePhone, "IN")
	w.mustSMS(janePhone, "PANIC") // a panic alert with no visit
	w.mustSMS(janePhone, "VISIT 45 22 Oak Lane")
	w.runTo(at("14:51")) // and an overdue alert of the open visit
	st := w.officerState(w.officers["jdoe"])
	st.LastVisit = w.visits[w.states["jdoe"].LastVisit]
	if len(st.Alerts) != 2 || st.Visit == nil {
		t.Fatalf("state has %d alerts and visit %v, want 2 and an open visit", len(st.Alerts), st.Visit)
	}
	for _, text := range []string{"IN", "IN 4321", "NEXT 30 3 Ash Close", "EXTEND 15", "ABORT dog", "PANIC", "STATUS", "nonsense"} {
		before := snapshot(t, st)
		_, _ = OfficerCommand(st, Input{Cmd: Parse(text), Source: SourceSMS, By: janePhone, IDs: IDs{Visit: "vx", Alert: "ax", Code: "999"}}, at("15:02"), w.p)
		if after := snapshot(t, st); after != before {
			t.Errorf("%q changed its State:\nbefore %s\nafter  %s", text, before, after)
		}
	}
	if !reflect.DeepEqual(st.Officer, testOfficers()["jdoe"]) {
		t.Errorf("the officer changed")
	}
}

// An ACK naming an alert that is no longer open, while another is (a duress
// alert replaced the overdue one), says what is open now: the responder must not
// think the matter is over.
func TestAckOfAReplacedAlertSaysWhatIsOpen(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.mustSMS(janePhone, "VISIT 45 14 Elm Road")
	w.runTo(at("14:51"))
	old := w.onlyAlert()
	w.mustSMS(janePhone, "IN 4321")
	open := w.openAlerts()
	if len(open) != 1 || open[0].Reason != ReasonDuress {
		t.Fatalf("open alerts after the duress code: %+v, want the duress alert only", open)
	}
	_, err := w.sms(officePhone, "ACK "+old.Code)
	want := fmt.Sprintf("No open alert %s. Open now: ACK %s (Jane Doe). Nothing changed.", old.Code, open[0].Code)
	if errKind(err) != NotFound || err.Error() != want {
		t.Errorf("ACK %s: %v, want %q", old.Code, err, want)
	}
}
