package store

import (
	"cmp"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-safety/vigil/internal/visit"
)

// The storage encoding of what the store keeps in Redis about visits, alerts, officer
// states and audit events: JSON with short field names, apart from the domain types'
// JSON (internal/visit), which is the API's and stays as it is. It is about a third
// of the size. The rules:
//
//   - what the key already says is left out: a visit's or alert's id and school;
//   - an instant is Unix milliseconds. A record has one absolute instant, its base
//     (b: a visit's started_at, an alert's raised_at), left out when it is the time
//     of the record's id (made at that instant: ids.go); every other instant in it,
//     its events' included, is milliseconds after the base (negative before it);
//   - zero values and empty lists are left out. A left-out instant is the zero time,
//     except an event's (t), which is the base itself. A visit's companions and an
//     alert's notified come back as empty lists, never null (the API shows []). A
//     visit's state is left out when it is active (s is written, even empty, only
//     when it is not);
//   - an event leaves out its visit and alert when they are its record's own (v and
//     a are written, even empty, only when they differ), and an event's detail that
//     begins "to <the record's destination>, " (the "opened" event) keeps only the
//     rest, in w;
//   - an officer state leaves out last_visit when it is the open visit (l is written,
//     even empty, only when it differs).
//
// A stored value is a tag and that JSON. The tag is "~", or "^" for a visit or alert
// whose base is left out because it is the instant of its short ID (ids.go): the
// versions that wrote only "~" know the base of a ULID only, and would read such a
// record's instants as offsets from 1970. "^" makes them fail to read it (as below)
// instead. Both tags are read alike. Decoding fills all of the above back
// in, so a value read is the value written (to the millisecond, in UTC). A value
// without the tag is in the old format (the domain types' JSON, which earlier
// versions stored and a rolling upgrade leaves behind) and is read as such; writers
// write the new format only. The tag also makes an older replica, which knows only
// the old format, fail to read a new value (a JSON syntax error: the event fails, as
// on a Redis error) rather than read it as an empty visit and act on that. Encoding is
// deterministic (struct fields in a fixed order): equal values give equal bytes. The
// commit script compares stored bytes only with bytes read, never with an encoding.
//
// The purge scripts of retention (duties.go) read a visit's state, outcome and
// alert, and an alert's state, in either format.

// The tags that begin a value in the storage encoding: tagShort when the record's
// base is its short ID's instant, tag otherwise.
const (
	tag      = '~'
	tagShort = '^'
)

// marshal is v's JSON after the tag.
func marshal(v any) ([]byte, error) { return marshalTagged(tag, v) }

func marshalTagged(t byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append([]byte{t}, b...), nil
}

// recordTag is the tag of a record whose b field is b: tagShort when it is left out
// for a short ID.
func recordTag(id string, b *int64) byte {
	if _, short, _ := idTime(id); short && b == nil {
		return tagShort
	}
	return tag
}

// unmarshal decodes raw into rec when it is in the storage encoding; else it decodes
// and returns it as the old format, a T (the domain type's JSON).
func unmarshal[T any](raw []byte, rec any) (old *T, err error) {
	if len(raw) > 0 && (raw[0] == tag || raw[0] == tagShort) {
		return nil, json.Unmarshal(raw[1:], rec)
	}
	old = new(T)
	return old, json.Unmarshal(raw, old)
}

// visitRec is a visit as stored.
type visitRec struct {
	Officer     string     `json:"o,omitempty"`
	Companions  []string   `json:"c,omitempty"`
	Destination string     `json:"d,omitempty"`
	Kind        string     `json:"k,omitempty"`
	PupilRef    string     `json:"p,omitempty"`
	State       *string    `json:"s,omitempty"` // nil: active
	Outcome     string     `json:"oc,omitempty"`
	Started     *int64     `json:"b,omitempty"` // nil: the instant of the id
	Due         *int64     `json:"u,omitempty"`
	Closed      *int64     `json:"cl,omitempty"`
	AlertID     string     `json:"a,omitempty"`
	Reminded    *int64     `json:"r,omitempty"`
	Events      []eventRec `json:"e,omitempty"`
}

// alertRec is an alert as stored.
type alertRec struct {
	Code        string         `json:"c,omitempty"`
	Officer     string         `json:"o,omitempty"`
	VisitID     string         `json:"v,omitempty"`
	Reason      string         `json:"r,omitempty"`
	State       string         `json:"s,omitempty"`
	Raised      *int64         `json:"b,omitempty"` // nil: the instant of the id
	Level       int            `json:"l,omitempty"`
	Notified    []recipientRec `json:"n,omitempty"`
	AckedBy     string         `json:"ab,omitempty"`
	Acked       *int64         `json:"at,omitempty"`
	HoldUntil   *int64         `json:"h,omitempty"`
	LastSent    *int64         `json:"ls,omitempty"`
	Unreachable []string       `json:"un,omitempty"`
	NoSMS       []string       `json:"ns,omitempty"`
	Resolved    *int64         `json:"rt,omitempty"`
	Resolution  string         `json:"rs,omitempty"`
	Destination string         `json:"d,omitempty"`
	Started     *int64         `json:"vb,omitempty"`
	Due         *int64         `json:"vd,omitempty"`
	LastMessage string         `json:"m,omitempty"`
	Events      []eventRec     `json:"e,omitempty"`
}

type recipientRec struct {
	Name  string `json:"n,omitempty"`
	Phone string `json:"p,omitempty"`
	List  string `json:"l,omitempty"`
	Level int    `json:"v,omitempty"`
}

// eventRec is an event as stored, in a record or (with base 0 and no defaults) in the
// audit stream.
type eventRec struct {
	At     int64   `json:"t,omitempty"`
	Type   string  `json:"k,omitempty"`
	By     string  `json:"y,omitempty"`
	Detail string  `json:"x,omitempty"`
	Rest   string  `json:"w,omitempty"` // the detail after "to <destination>, "
	Visit  *string `json:"v,omitempty"`
	Alert  *string `json:"a,omitempty"`
}

// stateRec is an officer state as stored.
type stateRec struct {
	OpenVisit string   `json:"v,omitempty"`
	Alerts    []string `json:"al,omitempty"`
	LastVisit *string  `json:"l,omitempty"`
	LastText  string   `json:"t,omitempty"`
	OptedOut  bool     `json:"oo,omitempty"`
}

// base is a record's base instant: offsets of its other instants are from it.
type base int64

func baseOf(t time.Time) base {
	if t.IsZero() {
		return 0
	}
	return base(t.UnixMilli())
}

// recordBase is the base of the record with this id, and its b field: nil when t is
// the time of the id (made at t, as the service makes them: ids.go), else t in Unix
// ms (0 for the zero time).
func recordBase(id string, t time.Time) (base, *int64) {
	b := baseOf(t)
	if ms, _, ok := idTime(id); ok && b != 0 && ms == int64(b) {
		return b, nil
	}
	ms := int64(b)
	return b, &ms
}

// readBase is the base of the record with this id from its b field.
func readBase(id string, b *int64) base {
	if b != nil {
		return base(*b)
	}
	ms, _, _ := idTime(id)
	return base(ms)
}

// off is t as milliseconds after the base; nil for the zero time.
func (b base) off(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	d := t.UnixMilli() - int64(b)
	return &d
}

// at is the instant off milliseconds after the base; the zero time for nil.
func (b base) at(off *int64) time.Time {
	if off == nil {
		return time.Time{}
	}
	return msTime(int64(b) + *off)
}

func (b base) time() time.Time {
	if b == 0 {
		return time.Time{}
	}
	return msTime(int64(b))
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// eventScope is what an event's record implies: the base of its instants, its own
// visit and alert, and its destination.
type eventScope struct {
	base         base
	visit, alert string
	destination  string
}

func (sc eventScope) prefix() string {
	if sc.destination == "" {
		return ""
	}
	return "to " + sc.destination + ", "
}

func unlessEqual(s, def string) *string {
	if s == def {
		return nil
	}
	return &s
}

func orDefault(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}

func (sc eventScope) encode(e visit.Event) eventRec {
	r := eventRec{Type: e.Type, By: e.By, Detail: e.Detail,
		Visit: unlessEqual(e.Visit, sc.visit), Alert: unlessEqual(e.Alert, sc.alert)}
	if !e.At.IsZero() || sc.base != 0 {
		r.At = e.At.UnixMilli() - int64(sc.base)
	}
	if p := sc.prefix(); p != "" && len(e.Detail) > len(p) && strings.HasPrefix(e.Detail, p) {
		r.Detail, r.Rest = "", e.Detail[len(p):]
	}
	return r
}

func (sc eventScope) decode(r eventRec) visit.Event {
	e := visit.Event{Type: r.Type, By: r.By, Detail: r.Detail,
		Visit: orDefault(r.Visit, sc.visit), Alert: orDefault(r.Alert, sc.alert)}
	if r.At != 0 || sc.base != 0 {
		e.At = msTime(int64(sc.base) + r.At)
	}
	if r.Rest != "" {
		e.Detail = sc.prefix() + r.Rest
	}
	return e
}

func (sc eventScope) encodeAll(es []visit.Event) []eventRec {
	if len(es) == 0 {
		return nil
	}
	out := make([]eventRec, len(es))
	for i, e := range es {
		out[i] = sc.encode(e)
	}
	return out
}

func (sc eventScope) decodeAll(rs []eventRec) []visit.Event {
	if len(rs) == 0 {
		return nil
	}
	out := make([]visit.Event, len(rs))
	for i, r := range rs {
		out[i] = sc.decode(r)
	}
	return out
}

// encodeVisit is a visit's stored value.
func encodeVisit(v *visit.Visit) ([]byte, error) {
	b, started := recordBase(v.ID, v.StartedAt)
	sc := eventScope{base: b, visit: v.ID, alert: v.AlertID, destination: v.Destination}
	return marshalTagged(recordTag(v.ID, started), visitRec{
		Officer: v.Officer, Companions: v.Companions, Destination: v.Destination, Kind: v.Kind,
		PupilRef: v.PupilRef, State: unlessEqual(v.State, visit.StateActive), Outcome: v.Outcome, Started: started,
		Due: b.off(v.DueAt), Closed: b.off(v.ClosedAt), AlertID: v.AlertID, Reminded: b.off(v.RemindedAt),
		Events: sc.encodeAll(v.Events),
	})
}

// decodeVisit reads the visit stored under the key of school and id.
func decodeVisit(school, id string, raw []byte) (*visit.Visit, error) {
	var r visitRec
	old, err := unmarshal[visit.Visit](raw, &r)
	if err != nil {
		return nil, fmt.Errorf("decode visit %s: %w", id, err)
	}
	if old != nil {
		old.ID, old.School = cmp.Or(old.ID, id), cmp.Or(old.School, school)
		return old, nil
	}
	b := readBase(id, r.Started)
	sc := eventScope{base: b, visit: id, alert: r.AlertID, destination: r.Destination}
	v := &visit.Visit{
		ID: id, School: school, Officer: r.Officer, Companions: r.Companions, Destination: r.Destination,
		Kind: r.Kind, PupilRef: r.PupilRef, State: orDefault(r.State, visit.StateActive), Outcome: r.Outcome, StartedAt: b.time(),
		DueAt: b.at(r.Due), ClosedAt: b.at(r.Closed), AlertID: r.AlertID, RemindedAt: b.at(r.Reminded),
		Events: sc.decodeAll(r.Events),
	}
	if v.Companions == nil {
		v.Companions = []string{}
	}
	return v, nil
}

// encodeAlert is an alert's stored value.
func encodeAlert(a *visit.Alert) ([]byte, error) {
	b, raised := recordBase(a.ID, a.RaisedAt)
	sc := eventScope{base: b, visit: a.VisitID, alert: a.ID, destination: a.Destination}
	r := alertRec{
		Code: a.Code, Officer: a.Officer, VisitID: a.VisitID, Reason: a.Reason, State: a.State,
		Raised: raised, Level: a.Level, AckedBy: a.AckedBy, Acked: b.off(a.AckedAt),
		HoldUntil: b.off(a.HoldUntil), LastSent: b.off(a.LastSentAt), Unreachable: a.Unreachable, NoSMS: a.NoSMS,
		Resolved: b.off(a.ResolvedAt), Resolution: a.Resolution, Destination: a.Destination,
		Started: b.off(a.StartedAt), Due: b.off(a.DueAt), LastMessage: a.LastMessage,
		Events: sc.encodeAll(a.Events),
	}
	for _, n := range a.Notified {
		r.Notified = append(r.Notified, recipientRec(n))
	}
	return marshalTagged(recordTag(a.ID, raised), r)
}

// decodeAlert reads the alert stored under the key of school and id.
func decodeAlert(school, id string, raw []byte) (*visit.Alert, error) {
	var r alertRec
	old, err := unmarshal[visit.Alert](raw, &r)
	if err != nil {
		return nil, fmt.Errorf("decode alert %s: %w", id, err)
	}
	if old != nil {
		old.ID, old.School = cmp.Or(old.ID, id), cmp.Or(old.School, school)
		return old, nil
	}
	b := readBase(id, r.Raised)
	sc := eventScope{base: b, visit: r.VisitID, alert: id, destination: r.Destination}
	a := &visit.Alert{
		ID: id, Code: r.Code, School: school, Officer: r.Officer, VisitID: r.VisitID, Reason: r.Reason,
		State: r.State, RaisedAt: b.time(), Level: r.Level, Notified: make([]visit.Recipient, 0, len(r.Notified)),
		AckedBy: r.AckedBy, AckedAt: b.at(r.Acked), HoldUntil: b.at(r.HoldUntil), LastSentAt: b.at(r.LastSent),
		Unreachable: r.Unreachable, NoSMS: r.NoSMS, ResolvedAt: b.at(r.Resolved), Resolution: r.Resolution,
		Destination: r.Destination, StartedAt: b.at(r.Started), DueAt: b.at(r.Due), LastMessage: r.LastMessage,
		Events: sc.decodeAll(r.Events),
	}
	for _, n := range r.Notified {
		a.Notified = append(a.Notified, visit.Recipient(n))
	}
	return a, nil
}

// encodeOfficerState is an officer state's stored value.
func encodeOfficerState(st visit.OfficerState) ([]byte, error) {
	return marshal(stateRec{OpenVisit: st.OpenVisit, Alerts: st.Alerts,
		LastVisit: unlessEqual(st.LastVisit, st.OpenVisit), LastText: st.LastText, OptedOut: st.OptedOut})
}

// decodeOfficerState reads an officer state in either format.
func decodeOfficerState(raw []byte) (visit.OfficerState, error) {
	var r stateRec
	old, err := unmarshal[visit.OfficerState](raw, &r)
	if err != nil {
		return visit.OfficerState{}, fmt.Errorf("decode officer state: %w", err)
	}
	if old != nil {
		return *old, nil
	}
	return visit.OfficerState{OpenVisit: r.OpenVisit, Alerts: r.Alerts, LastVisit: orDefault(r.LastVisit, r.OpenVisit),
		LastText: r.LastText, OptedOut: r.OptedOut}, nil
}

// encodeAuditEvent is an audit stream entry's value (field "e"): an event with
// absolute times and its visit and alert written out.
func encodeAuditEvent(e visit.Event) ([]byte, error) {
	return marshal(eventScope{}.encode(e))
}

// decodeAuditEvent reads an audit stream entry in either format.
func decodeAuditEvent(raw []byte) (visit.Event, error) {
	var r eventRec
	old, err := unmarshal[visit.Event](raw, &r)
	if err != nil {
		return visit.Event{}, fmt.Errorf("decode audit event: %w", err)
	}
	if old != nil {
		return *old, nil
	}
	return eventScope{}.decode(r), nil
}
