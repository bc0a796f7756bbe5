package store

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"

	"github.com/vigil-safety/vigil/internal/visit"
)

// ms is t0 plus d, to the millisecond (what the storage encoding keeps).
func ms(d time.Duration) time.Time { return t0.Add(d) }

// ulidAt is a ULID made at t, as the service makes IDs.
func ulidAt(t time.Time) string {
	return ulid.MustNew(ulid.Timestamp(t), ulid.DefaultEntropy()).String()
}

// codecVisits are visits of every shape: as a VISIT by SMS opens one (decided by the
// domain), one with every field set, and the edge cases of the encoding's rules.
func codecVisits(t *testing.T) []*visit.Visit {
	t.Helper()
	school := &visit.School{ID: "s1", Name: "School"}
	o := &visit.Officer{ID: "jdoe", Name: "Jane Doe", School: "s1", Phone: "+447700900101"}
	now := ms(1234 * time.Millisecond)
	r, err := visit.OfficerCommand(visit.State{School: school, Loc: time.UTC, Officer: o, LastText: "VISIT 45 14 Elm Road"}, visit.Input{
		Cmd: visit.Command{Verb: visit.VerbVisit, Duration: 45 * time.Minute, Destination: "14 Elm Road"}, Source: visit.SourceSMS,
		By: o.Phone, Text: "VISIT 45 14 Elm Road", IDs: visit.IDs{Visit: ulidAt(now), Alert: ulidAt(now), Code: "1234"},
	}, now, visit.Policy{DefaultDuration: time.Hour, MaxDuration: 8 * time.Hour, ReminderBefore: 10 * time.Minute, Grace: 5 * time.Minute})
	if err != nil || len(r.Visits) != 1 {
		t.Fatalf("open a visit: %v %v", r.Visits, err)
	}
	opened := r.Visits[0]
	if len(opened.Events) != 1 || !strings.HasPrefix(opened.Events[0].Detail, "to 14 Elm Road, ") {
		t.Fatalf("the opened visit's events are not what the encoding expects: %+v", opened.Events)
	}

	id := ulidAt(ms(0))
	full := &visit.Visit{
		ID: id, School: "s1", Officer: "jdoe", Companions: []string{"asmith", "bjones"}, Destination: "Flat 2, 9 Oak Lane",
		Kind: visit.KindAbsenceCheck, PupilRef: "P-1234", State: visit.StateClosed, Outcome: visit.OutcomeDuress,
		StartedAt: ms(0), DueAt: ms(time.Hour), ClosedAt: ms(90 * time.Minute), AlertID: "01ALERT00000000000000000000",
		RemindedAt: ms(50 * time.Minute),
		Events: []visit.Event{
			{At: ms(0), Type: "opened", By: "+447700900101", Detail: "to Flat 2, 9 Oak Lane, due 10:00", Visit: id},
			{At: ms(time.Minute), Type: "extended", By: "office-pc", Detail: "due 10:15", Visit: id},
			{At: ms(2 * time.Minute), Type: "note", By: "x", Detail: "to Flat 2, 9 Oak Lane, ", Visit: id}, // nothing after the prefix
			{At: ms(-time.Second), Type: "odd", By: "", Visit: "another", Alert: "01ALERT00000000000000000000"},
			{At: ms(90 * time.Minute), Type: "duress", By: "+447700900101", Detail: "alert 4321", Visit: id, Alert: "01ALERT00000000000000000000"},
			{At: ms(91 * time.Minute), Type: "closed", By: "vigil", Detail: "to Flat 2, 9 Oak Lane, elsewhere", Visit: "", Alert: "other"},
		},
	}
	return []*visit.Visit{
		opened,
		full,
		// Not a ULID: the base is written out.
		{ID: "v1", School: "s1", Officer: "o", Companions: []string{}, State: visit.StateActive, StartedAt: ms(0), DueAt: ms(time.Hour)},
		// A ULID of another instant; an empty state (written, not taken for active); a
		// due time equal to the start.
		{ID: ulidAt(ms(time.Second)), School: "s1", Companions: []string{}, State: "", StartedAt: ms(0), DueAt: ms(0)},
		// No start at all, under a ULID.
		{ID: ulidAt(ms(0)), School: "s1", Companions: []string{}, State: visit.StateOverdue,
			Events: []visit.Event{{At: ms(time.Hour), Type: "overdue", By: "vigil"}}},
	}
}

func codecAlerts() []*visit.Alert {
	id := ulidAt(ms(0))
	full := &visit.Alert{
		ID: id, Code: "4321", School: "s1", Officer: "jdoe", VisitID: "01VISIT00000000000000000000", Reason: visit.ReasonOverdue,
		State: visit.AlertResolved, RaisedAt: ms(0), Level: 2,
		Notified: []visit.Recipient{
			{Name: "School office", Phone: "+441332000001", List: "office", Level: 0},
			{Name: "Head", Phone: "+447700900201", List: "managers", Level: 1},
		},
		AckedBy: "Head (+447700900201)", AckedAt: ms(3 * time.Minute), HoldUntil: ms(18 * time.Minute), LastSentAt: ms(2 * time.Minute),
		Unreachable: []string{"+447700900301"}, NoSMS: []string{"+441332000001"}, ResolvedAt: ms(time.Hour), Resolution: "found safe",
		Destination: "14 Elm Road", StartedAt: ms(-time.Hour), DueAt: ms(-5 * time.Minute), LastMessage: "VISIT 45 14 Elm Road",
		Events: []visit.Event{
			{At: ms(0), Type: "raised", By: "vigil", Detail: "overdue", Visit: "01VISIT00000000000000000000", Alert: id},
			{At: ms(time.Second), Type: "notified", By: "vigil", Detail: "level 0", Visit: "01VISIT00000000000000000000", Alert: id},
			{At: ms(time.Minute), Type: "odd", By: "x", Detail: "to 14 Elm Road, somewhere", Visit: "", Alert: ""},
		},
	}
	return []*visit.Alert{
		full,
		{ID: ulidAt(ms(0)), Code: "1111", School: "s1", Officer: "o", Reason: visit.ReasonPanic, State: visit.AlertOpen, RaisedAt: ms(0), Notified: []visit.Recipient{}},
		{ID: "a1", Code: "2222", School: "s1", Officer: "o", Reason: visit.ReasonDuress, State: visit.AlertAcked, RaisedAt: ms(0), Notified: []visit.Recipient{},
			AckedAt: ms(0)}, // an instant equal to the base is still written
	}
}

func codecStates() []visit.OfficerState {
	return []visit.OfficerState{
		{},
		{OpenVisit: "v1", LastVisit: "v1", LastText: "VISIT 5 Load ref-0000506"},
		{OpenVisit: "v2", LastVisit: "v1", Alerts: []string{"a1", "a2"}, OptedOut: true},
		{OpenVisit: "v2", LastVisit: ""}, // last visit forgotten while one is open
		{LastVisit: "v1", LastText: "IN"},
		{OptedOut: true},
	}
}

func codecEvents() []visit.Event {
	return []visit.Event{
		{At: ms(0), Type: "opened", By: "+447700900101", Detail: "to 14 Elm Road, due 10:00", Visit: "v1"},
		{At: ms(time.Second), Type: "acked", By: "Head", Detail: "Head", Visit: "v1", Alert: "a1"},
		{At: ms(0), Type: "officer_deleted", By: "sbm", Detail: "Jane Doe (jdoe)"},
	}
}

// Every value decodes to what was encoded (to the millisecond, in UTC), its
// encoding is deterministic, and what the key says is not in it.
func TestCodecRoundTrip(t *testing.T) {
	t.Parallel()
	for _, v := range codecVisits(t) {
		raw := roundTrip(t, v, encodeVisit, func(raw []byte) (*visit.Visit, error) { return decodeVisit(v.School, v.ID, raw) })
		if strings.Contains(string(raw), v.ID) {
			t.Errorf("the visit's id is stored in its value: %s", raw)
		}
	}
	for _, a := range codecAlerts() {
		raw := roundTrip(t, a, encodeAlert, func(raw []byte) (*visit.Alert, error) { return decodeAlert(a.School, a.ID, raw) })
		if strings.Contains(string(raw), a.ID) {
			t.Errorf("the alert's id is stored in its value: %s", raw)
		}
	}
	for _, st := range codecStates() {
		roundTrip(t, st, encodeOfficerState, decodeOfficerState)
	}
	for _, e := range codecEvents() {
		roundTrip(t, e, encodeAuditEvent, decodeAuditEvent)
	}
}

// roundTrip checks that x decodes as it was encoded, and that encoding what was
// decoded gives the same bytes. It returns the encoding.
func roundTrip[T any](t *testing.T, x T, encode func(T) ([]byte, error), decode func([]byte) (T, error)) []byte {
	t.Helper()
	raw, err := encode(x)
	if err != nil {
		t.Fatalf("encode %+v: %v", x, err)
	}
	got, err := decode(raw)
	if err != nil || !reflect.DeepEqual(got, x) {
		t.Errorf("%T %s:\n got %+v %v\nwant %+v", x, raw, got, err, x)
		return raw
	}
	if again, _ := encode(got); string(again) != string(raw) {
		t.Errorf("encoding is not deterministic:\n%s\n%s", raw, again)
	}
	return raw
}

// Instants keep the millisecond, come back in UTC, and so does the API's JSON.
func TestCodecKeepsMilliseconds(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 10, 0, 0, 123_456_789, time.FixedZone("BST", 3600))
	v := &visit.Visit{ID: ulidAt(at), School: "s1", Companions: []string{}, State: visit.StateActive, StartedAt: at, DueAt: at.Add(time.Hour)}
	raw, _ := encodeVisit(v)
	got, err := decodeVisit("s1", v.ID, raw)
	if err != nil {
		t.Fatal(err)
	}
	want := at.Truncate(time.Millisecond).UTC()
	if got.StartedAt != want || got.DueAt != want.Add(time.Hour) {
		t.Errorf("times %s, %s; want %s and an hour later", got.StartedAt, got.DueAt, want)
	}
}

// A value in the old format (the domain types' JSON, written before this encoding)
// still reads as it was: a rolling upgrade has both.
func TestCodecReadsTheOldFormat(t *testing.T) {
	t.Parallel()
	for _, v := range codecVisits(t) {
		readsOld(t, v, func(raw []byte) (*visit.Visit, error) { return decodeVisit(v.School, v.ID, raw) })
	}
	for _, a := range codecAlerts() {
		readsOld(t, a, func(raw []byte) (*visit.Alert, error) { return decodeAlert(a.School, a.ID, raw) })
	}
	for _, st := range codecStates() {
		readsOld(t, st, decodeOfficerState)
	}
	for _, e := range codecEvents() {
		readsOld(t, e, decodeAuditEvent)
	}
	// Written by hand, as a real old value is: the times in another zone.
	old := `{"id":"v9","school":"s1","officer":"jdoe","companions":[],"destination":"14 Elm Road","state":"active",` +
		`"started_at":"2026-03-01T10:00:00.5+01:00","due_at":"2026-03-01T11:00:00+01:00",` +
		`"events":[{"at":"2026-03-01T10:00:00.5+01:00","type":"opened","by":"+447700900101","detail":"to 14 Elm Road, due 11:00","visit":"v9"}]}`
	got, err := decodeVisit("s1", "v9", []byte(old))
	if err != nil || got.ID != "v9" || got.State != visit.StateActive || !got.StartedAt.Equal(ms(500*time.Millisecond)) ||
		len(got.Events) != 1 || got.Events[0].Detail != "to 14 Elm Road, due 11:00" || got.Companions == nil {
		t.Errorf("hand-written old visit: %+v %v", got, err)
	}
}

// readsOld checks that x in the domain types' JSON (the old format) decodes as x.
func readsOld[T any](t *testing.T, x T, decode func([]byte) (T, error)) {
	t.Helper()
	old, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decode(old); err != nil || !reflect.DeepEqual(got, x) {
		t.Errorf("old %T %s:\n got %+v %v\nwant %+v", x, old, got, err, x)
	}
}

// An older replica reads values as the domain types' JSON: a value in the storage
// encoding must fail there, not read as an empty visit it would then act on.
func TestCodecIsRefusedByOldReaders(t *testing.T) {
	t.Parallel()
	refused := func(raw []byte, old any) {
		t.Helper()
		if err := json.Unmarshal(raw, old); err == nil {
			t.Errorf("an old reader took %s as %+v", raw, old)
		}
	}
	for _, v := range codecVisits(t) {
		raw, _ := encodeVisit(v)
		refused(raw, &visit.Visit{})
	}
	for _, a := range codecAlerts() {
		raw, _ := encodeAlert(a)
		refused(raw, &visit.Alert{})
	}
	for _, st := range codecStates() {
		raw, _ := encodeOfficerState(st)
		refused(raw, &visit.OfficerState{})
	}
	for _, e := range codecEvents() {
		raw, _ := encodeAuditEvent(e)
		refused(raw, &visit.Event{})
	}
}

// Through Redis: values left in the old format by an older replica are read,
// checked by a commit (raw bytes) and replaced in the new format, purged by
// retention and forgotten; old and new audit entries are both listed.
func TestOldFormatValuesInRedis(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	vs, as := codecVisits(t), codecAlerts()
	open, closed := vs[0], vs[1] // an open visit; a closed one with an alert
	resolved, unresolved := as[0], as[1]
	state := visit.OfficerState{OpenVisit: open.ID, LastVisit: open.ID, LastText: "VISIT 45 14 Elm Road"}
	setOld := func(key string, v any) {
		raw, _ := json.Marshal(v)
		if err := s.rdb.Set(ctx, key, raw, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	setOld(s.k.visit("s1", open.ID), open)
	setOld(s.k.visit("s1", closed.ID), closed)
	setOld(s.k.alert("s1", resolved.ID), resolved)
	setOld(s.k.alert("s1", unresolved.ID), unresolved)
	setOld(s.k.officerState("s1", "jdoe"), state)
	oldEvent, _ := json.Marshal(codecEvents()[1])
	s.rdb.XAdd(ctx, &redis.XAddArgs{Stream: s.k.audit("s1"), Values: []any{"e", string(oldEvent)}})

	// Read and commit on top of the old values.
	sn, rival := s.Begin("s1"), s.Begin("s1")
	v, err := sn.Visit(ctx, open.ID)
	if err != nil || !reflect.DeepEqual(v, open) {
		t.Fatalf("old visit read as %+v %v", v, err)
	}
	st, err := sn.OfficerState(ctx, "jdoe")
	if err != nil || !reflect.DeepEqual(st, state) {
		t.Fatalf("old officer state read as %+v %v", st, err)
	}
	if _, err := rival.Visit(ctx, open.ID); err != nil {
		t.Fatal(err)
	}
	v.State, v.Outcome, v.ClosedAt = visit.StateClosed, visit.OutcomeSafe, ms(time.Hour)
	st.OpenVisit = ""
	ch := Change{Result: visit.Result{Visits: []*visit.Visit{v}, Audit: []visit.Event{{At: ms(time.Hour), Type: "closed", By: "x", Visit: v.ID}}},
		OfficerStates: map[string]visit.OfficerState{"jdoe": st}, Now: ms(time.Hour)}
	if err := sn.Commit(ctx, ch); err != nil {
		t.Fatalf("commit over old values: %v", err)
	}
	if err := rival.Commit(ctx, ch); !errors.Is(err, ErrConflict) {
		t.Fatalf("a rival that read the old value: %v, want ErrConflict", err)
	}
	if n := s.rdb.Exists(ctx, s.k.officerState("s1", "jdoe")).Val(); n != 0 {
		t.Errorf("the old officer state's key is left after the commit")
	}
	if raw := s.rdb.HGet(ctx, s.k.officerStates("s1"), "jdoe").Val(); !strings.HasPrefix(raw, "~") {
		t.Errorf("the officer state was written as %q", raw)
	}
	raw := s.rdb.Get(ctx, s.k.visit("s1", open.ID)).Val()
	if !strings.HasPrefix(raw, "~") || strings.Contains(raw, `"state"`) || strings.Contains(raw, open.ID) {
		t.Errorf("the visit was written in the old format: %s", raw)
	}
	again, err := s.VisitByID(ctx, "s1", open.ID)
	if err != nil || !reflect.DeepEqual(again, v) {
		t.Errorf("visit after the commit: %+v %v, want %+v", again, err, v)
	}

	// The API's reads.
	if got, err := s.HistoryAlert(ctx, "s1", resolved.ID); err != nil || !reflect.DeepEqual(got, resolved) {
		t.Errorf("old alert read as %+v %v", got, err)
	}
	events, err := s.AuditEvents(ctx, "s1", 10)
	if err != nil || len(events) != 2 || events[0].Type != "closed" || !reflect.DeepEqual(events[1], codecEvents()[1]) {
		t.Errorf("audit events %+v %v", events, err)
	}

	// Retention, on an old closed visit and old alerts.
	if ok, err := s.PurgeVisit(ctx, "s1", closed.ID, "", "2026-03"); err != nil || ok {
		t.Errorf("purged an old visit whose alert the caller did not see: %v %v", ok, err)
	}
	if ok, err := s.PurgeVisit(ctx, "s1", closed.ID, closed.AlertID, "2026-03"); err != nil || !ok {
		t.Errorf("old closed visit not purged: %v %v", ok, err)
	}
	if ok, err := s.PurgeVisit(ctx, "s1", open.ID, "", "2026-03"); err != nil || !ok {
		t.Errorf("new closed visit not purged: %v %v", ok, err)
	}
	tally, err := s.MonthTally(ctx, "s1", "2026-03")
	if err != nil || tally.Visits != 2 || tally.Outcomes[visit.OutcomeDuress] != 1 || tally.Outcomes[visit.OutcomeSafe] != 1 {
		t.Errorf("tally %+v %v", tally, err)
	}
	if ok, err := s.PurgeAlert(ctx, "s1", unresolved.ID); err != nil || ok {
		t.Errorf("purged an old open alert: %v %v", ok, err)
	}
	if ok, err := s.PurgeAlert(ctx, "s1", resolved.ID); err != nil || !ok {
		t.Errorf("old resolved alert not purged: %v %v", ok, err)
	}

	// An old officer state is forgotten and rewritten in the new format, in the
	// school's hash of officer states, its own key deleted.
	setOld(s.k.officerState("s1", "asmith"), visit.OfficerState{LastVisit: "v7", LastText: "IN", Alerts: []string{"a1"}})
	if err := s.ForgetLastVisit(ctx, "s1", "asmith", "v7"); err != nil {
		t.Fatal(err)
	}
	if raw := s.rdb.HGet(ctx, s.k.officerStates("s1"), "asmith").Val(); raw != `~{"al":["a1"]}` {
		t.Errorf("forgotten officer state stored as %s", raw)
	}
	if n := s.rdb.Exists(ctx, s.k.officerState("s1", "asmith")).Val(); n != 0 {
		t.Errorf("the old officer state's key is left")
	}
}
