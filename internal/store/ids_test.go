package store

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/visit"
)

// A new ID is 12 characters of the ULID alphabet that say when it was made; a ULID
// still says when it was made; nothing else is read as an instant.
func TestIDTime(t *testing.T) {
	t.Parallel()
	at := ms(1234 * time.Millisecond)
	for i := range 100 {
		id := NewID(at)
		if len(id) != 12 || strings.Trim(id, crockford) != "" {
			t.Fatalf("NewID = %q: want 12 characters of %s", id, crockford)
		}
		got, short, ok := idTime(id)
		if !ok || !short || got != at.UnixMilli() {
			t.Fatalf("%d: idTime(%s) = %d %v %v, want %d", i, id, got, short, ok, at.UnixMilli())
		}
	}
	for _, tc := range []struct {
		id    string
		ms    int64
		short bool
		ok    bool
	}{
		{newID(0, 0), 0, true, true},                                 // the first instant
		{newID(1<<45-1, 1<<15-1), 1<<45 - 1, true, true},             // the last (year 3084), every random bit set
		{newID(t0.UnixMilli(), 1<<16|7), t0.UnixMilli(), true, true}, // random bits beyond 15 are dropped
		{ulidAt(t0), t0.UnixMilli(), false, true},                    // a ULID of an earlier version
		{"01HZZZZZZZZ", 0, false, false},                             // 11 characters
		{"01HZZZZZZZZI", 0, false, false},                            // I is not in the alphabet
		{"01hzzzzzzzzz", 0, false, false},                            // nor lower case: IDs are matched exactly
		{"test-" + ulidAt(t0), 0, false, false},                      // the console's test visits
		{"v1", 0, false, false},                                      // tests' IDs
	} {
		ms, short, ok := idTime(tc.id)
		if ms != tc.ms || short != tc.short || ok != tc.ok {
			t.Errorf("idTime(%q) = %d %v %v, want %d %v %v", tc.id, ms, short, ok, tc.ms, tc.short, tc.ok)
		}
	}
	// IDs sort as their instants, as ULIDs do.
	if a, b := newID(1000, 1<<15-1), newID(1001, 0); a >= b {
		t.Errorf("%s (1000 ms) sorts after %s (1001 ms)", a, b)
	}
}

// A record with a short ID leaves its base out and carries the tag "^", which the
// versions that knew only ULIDs fail to read (they would take its instants as
// offsets from 1970); one with a ULID keeps "~", which they read as before. Both
// read back as written.
func TestShortIDRecords(t *testing.T) {
	t.Parallel()
	start := ms(1234 * time.Millisecond)
	for _, tc := range []struct {
		id   string
		tag  byte
		base bool // b written
	}{
		{NewID(start), '^', false},                 // a new visit
		{ulidAt(start), '~', false},                // a visit of an earlier version
		{NewID(start.Add(time.Second)), '~', true}, // an ID of another instant: the base is written, the tag is the old one
		{"v1", '~', true},                          // not an ID of either kind
	} {
		v := &visit.Visit{ID: tc.id, School: "s1", Officer: "jdoe", Companions: []string{}, Destination: "14 Elm Road",
			State: visit.StateActive, StartedAt: start, DueAt: start.Add(45 * time.Minute),
			Events: []visit.Event{{At: start, Type: "opened", By: "+447700900101", Detail: "to 14 Elm Road, due 09:45", Visit: tc.id}}}
		raw, err := encodeVisit(v)
		if err != nil {
			t.Fatal(err)
		}
		if raw[0] != tc.tag || strings.Contains(string(raw), `"b":`) != tc.base {
			t.Errorf("visit %s stored as %s: want the tag %c, base written %v", tc.id, raw, tc.tag, tc.base)
		}
		if got, err := decodeVisit("s1", tc.id, raw); err != nil || !reflect.DeepEqual(got, v) {
			t.Errorf("visit %s read back as %+v %v, want %+v", tc.id, got, err, v)
		}
		var old visit.Visit // what an earlier version does with it: read "~", refuse "^"
		if err := oldRead(raw, &old); (err != nil) != (tc.tag == '^') {
			t.Errorf("an earlier version reading %s: %v", raw, err)
		}

		a := &visit.Alert{ID: tc.id, Code: "1234", School: "s1", Officer: "jdoe", VisitID: "v9", Reason: visit.ReasonOverdue,
			State: visit.AlertOpen, RaisedAt: start, Notified: []visit.Recipient{}, LastSentAt: start}
		raw, err = encodeAlert(a)
		if err != nil {
			t.Fatal(err)
		}
		if raw[0] != tc.tag {
			t.Errorf("alert %s stored as %s: want the tag %c", tc.id, raw, tc.tag)
		}
		if got, err := decodeAlert("s1", tc.id, raw); err != nil || !reflect.DeepEqual(got, a) {
			t.Errorf("alert %s read back as %+v %v, want %+v", tc.id, got, err, a)
		}
	}
}

// oldRead is how the versions before short IDs read a stored value.
func oldRead(raw []byte, old any) error {
	if raw[0] == '~' {
		var rec map[string]any
		return json.Unmarshal(raw[1:], &rec)
	}
	return json.Unmarshal(raw, old)
}

// A new visit or alert whose ID a record of the school has already is refused (the
// service then decides again with new IDs): it never overwrites the other.
func TestCommitNeverOverwritesAnIDInUse(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	id := newID(t0.UnixMilli(), 42)
	mk := func(officer string) *visit.Visit {
		return &visit.Visit{ID: id, School: "s1", Officer: officer, Companions: []string{}, Destination: "to " + officer,
			State: visit.StateActive, StartedAt: t0, DueAt: t0.Add(time.Hour)}
	}
	first := mk("jdoe")
	if err := s.Begin("s1").Commit(ctx, Change{Result: visit.Result{Visits: []*visit.Visit{first}}, Now: t0}); err != nil {
		t.Fatal(err)
	}
	second := mk("asmith")
	err := s.Begin("s1").Commit(ctx, Change{Result: visit.Result{Visits: []*visit.Visit{second}}, Now: t0,
		Timers: map[string]time.Time{VisitTimer(id): t0.Add(time.Hour)}})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("a second visit with the ID in use: %v, want ErrConflict", err)
	}
	if got, err := s.VisitByID(ctx, "s1", id); err != nil || !reflect.DeepEqual(got, first) {
		t.Errorf("the first visit is now %+v %v", got, err)
	}
	a := &visit.Alert{ID: id, Code: "1234", School: "s1", Officer: "jdoe", Reason: visit.ReasonPanic, State: visit.AlertOpen, RaisedAt: t0, Notified: []visit.Recipient{}}
	if err := s.Begin("s1").Commit(ctx, Change{Result: visit.Result{Alerts: []*visit.Alert{a}}, Now: t0}); err != nil {
		t.Fatalf("an alert may share a visit's ID (their keys differ): %v", err)
	}
	b := *a
	b.Code, b.Officer = "5678", "asmith"
	if err := s.Begin("s1").Commit(ctx, Change{Result: visit.Result{Alerts: []*visit.Alert{&b}}, Now: t0}); !errors.Is(err, ErrConflict) {
		t.Fatalf("a second alert with the ID in use: %v, want ErrConflict", err)
	}
	if got, err := s.AlertByID(ctx, "s1", id); err != nil || got.Officer != "jdoe" {
		t.Errorf("the first alert is now %+v %v", got, err)
	}
}

// An ID that records of two schools have is refused by the lookups across schools,
// never resolved to one of them.
func TestFindAmbiguousID(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	id := newID(t0.UnixMilli(), 7)
	for _, sc := range []string{"s1", "s2"} {
		v := &visit.Visit{ID: id, School: sc, Officer: "o-" + sc, Companions: []string{}, State: visit.StateActive, StartedAt: t0, DueAt: t0.Add(time.Hour)}
		if err := s.Begin(sc).Commit(ctx, Change{Result: visit.Result{Visits: []*visit.Visit{v}}, Now: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.FindVisit(ctx, []string{"s1", "s3"}, id); err != nil || got != "s1" {
		t.Errorf("FindVisit in s1 and s3: %q %v, want s1", got, err)
	}
	if got, err := s.FindVisit(ctx, []string{"s1", "s2", "s3"}, id); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("FindVisit in s1, s2 and s3: %q %v, want ErrAmbiguous", got, err)
	}
	if got, err := s.FindAlert(ctx, []string{"s1", "s2"}, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("FindAlert: %q %v, want ErrNotFound", got, err)
	}
}
