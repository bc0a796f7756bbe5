package store_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

var t0 = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

func newStore(t *testing.T) *store.Store {
	t.Helper()
	srv := redistest.Start(t)
	return store.NewWithClient(srv.Client(), "vigil:", slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func openVisit(id string) *visit.Visit {
	return &visit.Visit{ID: id, School: "s1", Officer: "jdoe", Destination: "14 Elm Road", State: visit.StateActive, StartedAt: t0, DueAt: t0.Add(time.Hour)}
}

// A commit checks everything it read: a second writer that read the same state
// conflicts and must decide again.
func TestCommitDetectsConcurrentChange(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	if err := s.Begin("s1").Commit(ctx, store.Change{Result: visit.Result{Visits: []*visit.Visit{openVisit("v1")}}, Now: t0}); err != nil {
		t.Fatal(err)
	}
	a, b := s.Begin("s1"), s.Begin("s1")
	va, err := a.Visit(ctx, "v1")
	if err != nil || va == nil {
		t.Fatalf("read v1: %v %v", va, err)
	}
	vb, _ := b.Visit(ctx, "v1")
	va.State = visit.StateClosed
	vb.DueAt = vb.DueAt.Add(time.Hour)
	if err := a.Commit(ctx, store.Change{Result: visit.Result{Visits: []*visit.Visit{va}}, Now: t0}); err != nil {
		t.Fatalf("first writer: %v", err)
	}
	if err := b.Commit(ctx, store.Change{Result: visit.Result{Visits: []*visit.Visit{vb}}, Now: t0}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second writer: %v, want ErrConflict", err)
	}
	got, _ := s.Begin("s1").Visit(ctx, "v1")
	if got.State != visit.StateClosed || !got.DueAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("stored visit = %+v, want the first writer's", got)
	}
}

// Creating an entity that another event created meanwhile conflicts too.
func TestCommitRefusesToOverwriteUnreadKey(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	ch := store.Change{Result: visit.Result{Visits: []*visit.Visit{openVisit("v1")}}, Now: t0}
	if err := s.Begin("s1").Commit(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if err := s.Begin("s1").Commit(ctx, ch); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second create: %v, want ErrConflict", err)
	}
}

// Two alerts may not hold the same ACK code in one school at once.
func TestAlertCodeIsUniqueAmongOpenAlerts(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	alert := func(id string) *visit.Alert {
		return &visit.Alert{ID: id, Code: "1234", School: "s1", Officer: "jdoe", Reason: visit.ReasonPanic, State: visit.AlertOpen, RaisedAt: t0}
	}
	if err := s.Begin("s1").Commit(ctx, store.Change{Result: visit.Result{Alerts: []*visit.Alert{alert("a1")}}, Now: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.Begin("s1").Commit(ctx, store.Change{Result: visit.Result{Alerts: []*visit.Alert{alert("a2")}}, Now: t0}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second alert with the same code: %v, want ErrConflict", err)
	}
}

// A claimed timer is held for its lease; after the lease another replica may take
// it, and the first replica's commit is then refused (fencing).
func TestTimerLeaseAndFencing(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	due := t0.Add(time.Minute)
	if err := s.Begin("s1").Commit(ctx, store.Change{Timers: map[string]time.Time{"v:v1": due, "v:v2": due.Add(time.Hour)}, Now: t0}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ClaimTimers(ctx, "s1", due.Add(-time.Millisecond), 30*time.Second, 10); len(got) != 0 {
		t.Fatalf("claimed %v before it was due", got)
	}
	first, err := s.ClaimTimers(ctx, "s1", due, 30*time.Second, 10)
	if err != nil || len(first) != 1 || first[0].Member != "v:v1" || !first[0].At.Equal(due) {
		t.Fatalf("claim at due time = %+v, %v; want v:v1 due %s", first, err, due)
	}
	if got, _ := s.ClaimTimers(ctx, "s1", due.Add(29*time.Second), 30*time.Second, 10); len(got) != 0 {
		t.Fatalf("claimed again within the lease: %+v", got)
	}
	second, _ := s.ClaimTimers(ctx, "s1", due.Add(31*time.Second), 30*time.Second, 10)
	if len(second) != 1 {
		t.Fatalf("after the lease another replica claims it: got %+v", second)
	}
	// The paused first replica wakes and tries to commit: refused.
	err = s.Begin("s1").Commit(ctx, store.Change{Timers: map[string]time.Time{"v:v1": {}}, Fence: &first[0].Claim, Now: t0})
	if !errors.Is(err, store.ErrFenced) {
		t.Fatalf("stale claim committed: %v, want ErrFenced", err)
	}
	// The current holder commits and the timer is gone.
	if err := s.Begin("s1").Commit(ctx, store.Change{Timers: map[string]time.Time{"v:v1": {}}, Fence: &second[0].Claim, Now: t0}); err != nil {
		t.Fatalf("holder's commit: %v", err)
	}
	next, ok, _ := s.NextTimer(ctx, "s1")
	if !ok || !next.Equal(due.Add(time.Hour)) {
		t.Errorf("next timer = %s %v, want v2's %s", next, ok, due.Add(time.Hour))
	}
}

func msg(id string, prio int) visit.Message {
	return visit.Message{ID: id, School: "s1", Kind: visit.KindAlert, Channel: visit.ChannelSMS, To: "+447700900201", Body: "OVERDUE " + id, Priority: prio}
}

// The same message decided twice is queued once; higher priorities are claimed
// first; a sent message leaves the queue; a retry comes back at its time.
func TestOutbox(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	ch := store.Change{Result: visit.Result{Messages: []visit.Message{msg("rem", visit.PriorityNormal), msg("over", visit.PriorityAlert)}}, Now: t0}
	for range 2 {
		if err := s.Begin("s1").Commit(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	panicCh := store.Change{Result: visit.Result{Messages: []visit.Message{msg("panic", visit.PriorityPanic)}}, Now: t0.Add(time.Second)}
	if err := s.Begin("s1").Commit(ctx, panicCh); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.OutboxDepth(ctx, []string{"s1"}); n != 3 {
		t.Fatalf("outbox depth %d, want 3 (the repeated commit queued nothing)", n)
	}
	got, err := s.ClaimMessages(ctx, "s1", t0.Add(time.Second), time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, o := range got {
		order = append(order, o.Msg.ID)
	}
	if strings.Join(order, " ") != "panic over rem" {
		t.Fatalf("claim order %v, want panic before the overdue alert before the reminder", order)
	}
	now := t0.Add(2 * time.Second)
	for _, o := range got {
		if err := s.RecordAttempt(ctx, o, now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.RecordSent(ctx, got[0], "SM1", now); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordFailed(ctx, got[2], "invalid_number"); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordRetry(ctx, got[1], now.Add(10*time.Second), "rate_limited"); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.ClaimMessages(ctx, "s1", now.Add(9*time.Second), time.Minute, 10); len(again) != 0 {
		t.Fatalf("claimed before its retry time: %+v", again)
	}
	again, _ := s.ClaimMessages(ctx, "s1", now.Add(10*time.Second), time.Minute, 10)
	if len(again) != 1 || again[0].Msg.ID != "over" || again[0].Attempts != 1 || again[0].State != "retry" {
		t.Fatalf("retry claim = %+v, want 'over' after 1 attempt", again)
	}
	// The first claim's lease is stale now: recording through it is refused.
	if _, err := s.RecordSent(ctx, got[1], "SM2", now); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("record through a stale claim: %v, want ErrFenced", err)
	}
	school, m, _, err := s.MessageBySID(ctx, "SM1")
	if err != nil || school != "s1" || m.ID != "panic" {
		t.Fatalf("MessageBySID = %s %+v %v", school, m, err)
	}
}

// A handled MessageSid keeps its reply; handling it again conflicts.
func TestInboundDedup(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	ch := store.Change{InboundSID: "SM42", InboundReply: "Checked in at 10:00.", Now: t0}
	if err := s.Begin("s1").Commit(ctx, ch); err != nil {
		t.Fatal(err)
	}
	r, ok, err := s.InboundReply(ctx, "s1", "SM42")
	if err != nil || !ok || r != ch.InboundReply {
		t.Fatalf("InboundReply = %q %v %v", r, ok, err)
	}
	if err := s.Begin("s1").Commit(ctx, ch); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second handling: %v, want ErrConflict", err)
	}
}

// Every key one school's commit writes carries the school's hash tag, so the Lua
// script's keys share one Cluster slot.
func TestSchoolKeysShareOneSlot(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := store.NewWithClient(srv.Client(), "vigil:", slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := t.Context()
	a := &visit.Alert{ID: "a1", Code: "1234", School: "s1", Officer: "jdoe", Reason: visit.ReasonOverdue, State: visit.AlertOpen, RaisedAt: t0, VisitID: "v1"}
	v := openVisit("v1")
	v.AlertID = "a1"
	ch := store.Change{
		Result:        visit.Result{Visits: []*visit.Visit{v}, Alerts: []*visit.Alert{a}, Messages: []visit.Message{msg("m1", 1)}, Audit: []visit.Event{{At: t0, Type: "raised", By: "vigil"}}},
		Timers:        map[string]time.Time{"a:a1": t0},
		OfficerStates: map[string]visit.OfficerState{"jdoe": {OpenVisit: "v1", Alerts: []string{"a1"}}},
		InboundSID:    "SM1", Now: t0,
	}
	if err := s.Begin("s1").Commit(ctx, ch); err != nil {
		t.Fatal(err)
	}
	keys, err := srv.Client().Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 8 {
		t.Fatalf("only %d keys written: %v", len(keys), keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "vigil:{s1}:") {
			t.Errorf("key %q is outside the school's hash slot", k)
		}
	}
}

// The embedded store starts without a server, loudly.
func TestOpenEmbedded(t *testing.T) {
	t.Parallel()
	var logs strings.Builder
	s, err := store.Open(context.Background(), store.Options{}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Embedded() || !strings.Contains(logs.String(), "NOTHING SURVIVES A RESTART") {
		t.Errorf("embedded store did not warn: %q", logs.String())
	}
}

// A commit wakes the schedulers only for a timer sooner than they already wait
// for; messages wake the dispatchers on their own channel.
func TestCommitAnnouncesOnlySoonerWork(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	for _, tt := range []struct {
		name string
		ch   store.Change
		want bool
	}{
		{"first timer", store.Change{Timers: map[string]time.Time{"v:a": t0.Add(time.Hour)}}, true},      // nothing was due before
		{"later timer", store.Change{Timers: map[string]time.Time{"v:b": t0.Add(2 * time.Hour)}}, false}, // schedulers wake earlier anyway
		{"same instant", store.Change{Timers: map[string]time.Time{"v:c": t0.Add(time.Hour)}}, false},    // they wake then anyway
		{"sooner timer", store.Change{Timers: map[string]time.Time{"v:d": t0.Add(time.Minute)}}, true},   // must wake early
		{"message", store.Change{Result: visit.Result{Messages: []visit.Message{msg("m1", 1)}}}, false},  // the dispatchers' business
	} {
		sn := s.Begin("s1")
		tt.ch.Now = t0
		if err := sn.Commit(ctx, tt.ch); err != nil {
			t.Fatal(err)
		}
		if sn.Announced() != tt.want {
			t.Errorf("%s: announced %v, want %v", tt.name, sn.Announced(), tt.want)
		}
	}
}

// A sync never cuts off work under way: an officer on an open visit stays in the
// directory and in their school though the file dropped or moved them, and so does a
// school with open work or officers left in it; each goes at the first sync after.
func TestSyncDirectoryLeavesWorkUnderWayAlone(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	school := func(id, phone string) visit.School {
		return visit.School{ID: id, Name: id, Provisioned: true,
			Contacts: map[string][]visit.Contact{"office": {{Name: "Office " + id, Phone: phone}}}}
	}
	s1, s2 := school("s1", "+441632960001"), school("s2", "+441632960002")
	jane := visit.Officer{ID: "jdoe", Name: "Jane Doe", Phone: "+447700900101", School: "s1", Provisioned: true}
	alex := visit.Officer{ID: "asmith", Name: "Alex Smith", Phone: "+447700900102", School: "s1", Provisioned: true}
	kim := visit.Officer{ID: "kb", Name: "Kim Brown", Phone: "+447700900103", School: "s2", Provisioned: true}
	if err := s.SyncDirectory(ctx, []visit.School{s1, s2}, []visit.Officer{jane, alex, kim}); err != nil {
		t.Fatal(err)
	}
	// Jane is on a visit in s1; Kim, in s2, has nothing open.
	if err := s.Begin("s1").Commit(ctx, store.Change{Result: visit.Result{Visits: []*visit.Visit{openVisit("v1")}},
		OfficerStates: map[string]visit.OfficerState{"jdoe": {OpenVisit: "v1"}}, Now: t0}); err != nil {
		t.Fatal(err)
	}
	where := func(id string) string {
		t.Helper()
		o, err := s.Officer(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return "gone"
		}
		if err != nil {
			t.Fatal(err)
		}
		return o.School
	}
	hasSchool := func(id string) bool {
		t.Helper()
		_, err := s.School(ctx, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}

	// The file moves Jane and Alex to s2 and drops s1 and Kim.
	janeMoved, alexMoved := jane, alex
	janeMoved.School, alexMoved.School = "s2", "s2"
	if err := s.SyncDirectory(ctx, []visit.School{s2}, []visit.Officer{janeMoved, alexMoved}); err != nil {
		t.Fatal(err)
	}
	if got := where("jdoe"); got != "s1" {
		t.Errorf("Jane, on a visit in s1, is in %s after the file moved her, want s1 until it closes", got)
	}
	if got := where("asmith"); got != "s2" {
		t.Errorf("Alex, with nothing open, is in %s, want s2", got)
	}
	if got := where("kb"); got != "gone" {
		t.Errorf("Kim, with nothing open, is in %s after the file dropped her, want gone", got)
	}
	if !hasSchool("s1") {
		t.Error("s1, with a visit open, was dropped")
	}
	roles, err := s.PhoneRoles(ctx, jane.Phone)
	if err != nil || len(roles) != 1 || roles[0].School != "s1" {
		t.Errorf("Jane's phone = %+v %v, want her in s1", roles, err)
	}

	// The file now drops Jane too, while her visit is still open.
	if err := s.SyncDirectory(ctx, []visit.School{s2}, []visit.Officer{alexMoved}); err != nil {
		t.Fatal(err)
	}
	if got := where("jdoe"); got != "s1" {
		t.Errorf("Jane, on a visit, is %s after the file dropped her, want kept in s1", got)
	}

	// Once the visit is closed, the next sync applies the file.
	closeVisit(t, s, "s1", "v1", "jdoe")
	if err := s.SyncDirectory(ctx, []visit.School{s2}, []visit.Officer{alexMoved}); err != nil {
		t.Fatal(err)
	}
	if got := where("jdoe"); got != "gone" {
		t.Errorf("Jane after her visit closed is %s, want gone", got)
	}
	if hasSchool("s1") {
		t.Error("s1, with nothing open and no officer left, was kept")
	}
}

// An officer renamed in the file while on a visit (a new ID, the same phone) does not
// take the phone from the officer who keeps it for the visit: the officer's IN must
// find that visit. The new ID is added at the first sync after the visit closes.
func TestSyncDirectoryKeepsAPhoneWithItsVisit(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	s1 := visit.School{ID: "s1", Name: "s1", Provisioned: true,
		Contacts: map[string][]visit.Contact{"office": {{Name: "Office", Phone: "+441632960001"}}}}
	jane := visit.Officer{ID: "jdoe", Name: "Jane Doe", Phone: "+447700900101", School: "s1", Provisioned: true}
	if err := s.SyncDirectory(ctx, []visit.School{s1}, []visit.Officer{jane}); err != nil {
		t.Fatal(err)
	}
	if err := s.Begin("s1").Commit(ctx, store.Change{Result: visit.Result{Visits: []*visit.Visit{openVisit("v1")}},
		OfficerStates: map[string]visit.OfficerState{"jdoe": {OpenVisit: "v1"}}, Now: t0}); err != nil {
		t.Fatal(err)
	}
	renamed := jane
	renamed.ID = "jane.doe"
	if err := s.SyncDirectory(ctx, []visit.School{s1}, []visit.Officer{renamed}); err != nil {
		t.Fatal(err)
	}
	roles, err := s.PhoneRoles(ctx, jane.Phone)
	if err != nil || len(roles) != 1 || roles[0].Officer != "jdoe" {
		t.Errorf("Jane's phone = %+v %v, want only jdoe's while her visit is open", roles, err)
	}
	if _, err := s.Officer(ctx, "jane.doe"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the new ID was added while the phone is jdoe's: %v", err)
	}

	closeVisit(t, s, "s1", "v1", "jdoe")
	if err := s.SyncDirectory(ctx, []visit.School{s1}, []visit.Officer{renamed}); err != nil {
		t.Fatal(err)
	}
	roles, err = s.PhoneRoles(ctx, jane.Phone)
	if err != nil || len(roles) != 1 || roles[0].Officer != "jane.doe" {
		t.Errorf("Jane's phone after the visit closed = %+v %v, want jane.doe's", roles, err)
	}
}

// closeVisit closes visit id of officer in school as safe, a minute after t0.
func closeVisit(t *testing.T, s *store.Store, school, id, officer string) {
	t.Helper()
	ctx := t.Context()
	sn := s.Begin(school)
	v, err := sn.Visit(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sn.OfficerState(ctx, officer); err != nil {
		t.Fatal(err)
	}
	v.State, v.Outcome, v.ClosedAt = visit.StateClosed, visit.OutcomeSafe, t0.Add(time.Minute)
	if err := sn.Commit(ctx, store.Change{Result: visit.Result{Visits: []*visit.Visit{v}},
		OfficerStates: map[string]visit.OfficerState{officer: {LastVisit: id}}, Now: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
}
