package store_test

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// ct0 is when the console storage tests happen.
var ct0 = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

// consoleStore is a store on its own redis-server for the console's storage tests.
func consoleStore(t *testing.T) (*store.Store, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	return store.NewWithClient(srv.Client(), "vigil:", slog.New(slog.DiscardHandler)), srv
}

// Users: added once, found whatever the case of the name, listed, and deleted with
// their sessions.
func TestUsers(t *testing.T) {
	t.Parallel()
	s, _ := consoleStore(t)
	ctx := t.Context()
	u := store.User{Name: "Sam Office", Role: "office", School: "s1", Hash: "h1"}
	if err := s.AddUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser(ctx, store.User{Name: "sam office", Role: "admin"}); !errors.Is(err, store.ErrExists) {
		t.Errorf("second add of the same name (other case): %v, want ErrExists", err)
	}
	got, err := s.User(ctx, "SAM OFFICE")
	if err != nil || got.Name != "Sam Office" || got.Hash != "h1" {
		t.Fatalf("User = %+v, %v", got, err)
	}
	if _, err := s.User(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown user: %v, want ErrNotFound", err)
	}
	if err := s.PutUser(ctx, store.User{Name: "ann", Role: "trust-admin", Hash: "h2"}); err != nil {
		t.Fatal(err)
	}
	all, err := s.Users(ctx)
	if err != nil || len(all) != 2 || all[0].Name != "ann" || all[1].Name != "Sam Office" {
		t.Fatalf("Users = %+v, %v", all, err)
	}
	if err := s.PutSession(ctx, "sess1", store.Session{User: "Sam Office", CreatedAt: ct0, SeenAt: ct0}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "sam office"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.User(ctx, "Sam Office"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted user still there: %v", err)
	}
	if _, err := s.Session(ctx, "sess1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a deleted user's session survived: %v", err)
	}
}

// Sessions expire by themselves after their idle time.
func TestSessionsExpire(t *testing.T) {
	t.Parallel()
	s, srv := consoleStore(t)
	ctx := t.Context()
	if err := s.PutSession(ctx, "a", store.Session{User: "u", CreatedAt: ct0, SeenAt: ct0}, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	got, err := s.Session(ctx, "a")
	if err != nil || got.User != "u" || !got.SeenAt.Equal(ct0) {
		t.Fatalf("Session = %+v, %v", got, err)
	}
	ttl := srv.Client().PTTL(ctx, "vigil:session:a").Val()
	if ttl <= 0 || ttl > 300*time.Millisecond {
		t.Errorf("session TTL = %s, want the idle timeout", ttl)
	}
	if err := s.DeleteSession(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted session: %v", err)
	}
}

// Sign-in failures count in a window that opens at the first one, and reset.
func TestLoginFailures(t *testing.T) {
	t.Parallel()
	s, _ := consoleStore(t)
	ctx := t.Context()
	for i := 1; i <= 3; i++ {
		n, err := s.AddLoginFailure(ctx, "user", "Sam", time.Minute)
		if err != nil || n != int64(i) {
			t.Fatalf("failure %d counted as %d, %v", i, n, err)
		}
	}
	n, ttl, err := s.LoginFailures(ctx, "user", "sam")
	if err != nil || n != 3 || ttl <= 0 || ttl > time.Minute {
		t.Errorf("LoginFailures = %d, %s, %v; want 3 within a minute", n, ttl, err)
	}
	if n, _, _ := s.LoginFailures(ctx, "ip", "127.0.0.1"); n != 0 {
		t.Errorf("another counter = %d, want 0", n)
	}
	if err := s.ResetLoginFailures(ctx, "user", "SAM"); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := s.LoginFailures(ctx, "user", "sam"); n != 0 {
		t.Errorf("after reset = %d", n)
	}
}

// Directory changes are audited in the school's stream, newest first.
func TestAppendAudit(t *testing.T) {
	t.Parallel()
	s, _ := consoleStore(t)
	ctx := t.Context()
	for i, typ := range []string{"officer_created", "officer_updated"} {
		if err := s.AppendAudit(ctx, "s1", visit.Event{At: ct0.Add(time.Duration(i) * time.Minute), Type: typ, By: "bm"}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := s.AuditEvents(ctx, "s1", 10)
	if err != nil || len(evs) != 2 || evs[0].Type != "officer_updated" || evs[1].By != "bm" {
		t.Fatalf("AuditEvents = %+v, %v", evs, err)
	}
}

// A hand-queued message goes on the outbox once, however often it is queued.
func TestQueueMessage(t *testing.T) {
	t.Parallel()
	s, _ := consoleStore(t)
	ctx := t.Context()
	m := visit.Message{ID: "test-1", School: "s1", Kind: visit.KindNotice, Channel: visit.ChannelSMS, To: "+447700900101", Body: "test", Priority: visit.PriorityNormal}
	for range 2 {
		if err := s.QueueMessage(ctx, m, ct0); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ClaimMessages(ctx, "s1", ct0, time.Minute, 10)
	if err != nil || len(got) != 1 || got[0].Msg.Body != "test" {
		t.Fatalf("claimed %+v, %v; want the message once", got, err)
	}
	if err := s.QueueMessage(ctx, visit.Message{ID: "x"}, ct0); err == nil {
		t.Errorf("a message without a school was queued")
	}
}

// History reads are bounded by dates; the phone index follows a school's lists.
func TestHistoryAndReindex(t *testing.T) {
	t.Parallel()
	s, _ := consoleStore(t)
	ctx := t.Context()
	closed := func(id string, at time.Time) *visit.Visit {
		return &visit.Visit{ID: id, School: "s1", Officer: "jdoe", State: visit.StateClosed, Outcome: visit.OutcomeSafe, StartedAt: at.Add(-time.Hour), DueAt: at, ClosedAt: at}
	}
	err := s.Begin("s1").Commit(ctx, store.Change{Result: visit.Result{Visits: []*visit.Visit{closed("v1", ct0), closed("v2", ct0.Add(48*time.Hour))}}, Now: ct0})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := s.HistoryVisits(ctx, "s1", ct0.Add(-time.Hour), ct0.Add(time.Hour), 10)
	if err != nil || len(vs) != 1 || vs[0].ID != "v1" {
		t.Errorf("HistoryVisits in a window = %+v, %v", vs, err)
	}
	vs, _ = s.HistoryVisits(ctx, "s1", time.Time{}, time.Time{}, 10)
	if len(vs) != 2 || vs[0].ID != "v2" {
		t.Errorf("HistoryVisits open-ended = %d visits, want 2 newest first", len(vs))
	}
	if _, err := s.HistoryAlert(ctx, "s1", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("HistoryAlert of nothing: %v", err)
	}

	sc := visit.School{ID: "s1", Name: "S1", Contacts: map[string][]visit.Contact{"office": {{Name: "Office", Phone: "+441632960001"}}}}
	if err := s.PutSchool(ctx, sc); err != nil {
		t.Fatal(err)
	}
	if err := s.ReindexPhones(ctx); err != nil {
		t.Fatal(err)
	}
	roles, err := s.PhoneRoles(ctx, "+441632960001")
	if err != nil || len(roles) != 1 || roles[0].List != "office" {
		t.Errorf("PhoneRoles after reindex = %+v, %v", roles, err)
	}
}
