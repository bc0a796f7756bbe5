package store

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/visit"
)

func newTestStore(t *testing.T) (*Store, context.Context) {
	t.Helper()
	return NewWithClient(redistest.Start(t).Client(), "vigil:", slog.New(slog.DiscardHandler)), t.Context()
}

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func TestTryLockTakesASlotOnce(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	for i, tc := range []struct {
		name string
		want bool
	}{
		{"expiry_check:Europe/London:1774771200", true},  // first taker
		{"expiry_check:Europe/London:1774771200", false}, // second taker of the same slot
		{"expiry_check:Europe/London:1774857600", true},  // the next slot
		{"retention:Europe/London:1774771200", true},     // another duty, same instant
	} {
		got, err := s.TryLock(ctx, tc.name, t0, time.Hour)
		if err != nil || got != tc.want {
			t.Errorf("%d %s: got %v %v, want %v", i, tc.name, got, err, tc.want)
		}
	}
	if ttl := s.rdb.PTTL(ctx, s.k.dutyLock("retention:Europe/London:1774771200")).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("lock TTL %s", ttl)
	}
}

func notice(id string) visit.Message {
	return visit.Message{ID: id, School: "s1", Kind: visit.KindNotice, Channel: visit.ChannelSMS, To: "+447700900201", Body: "b", Priority: visit.PriorityNormal}
}

func TestQueueMessagesQueuesEachIDOnce(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	if err := s.QueueMessages(ctx, "s1", []visit.Message{notice("a"), notice("b")}, t0); err != nil {
		t.Fatal(err)
	}
	// Send "a", as the dispatcher would: it leaves the outbox.
	got, err := s.ClaimMessages(ctx, "s1", t0, time.Minute, 1)
	if err != nil || len(got) != 1 {
		t.Fatalf("claim: %v %v", got, err)
	}
	if _, err := s.RecordSent(ctx, got[0], "", t0); err != nil {
		t.Fatal(err)
	}
	// Queue both again (a duty run twice), and a new one.
	if err := s.QueueMessages(ctx, "s1", []visit.Message{notice("a"), notice("b"), notice("c")}, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	z := s.rdb.ZRangeWithScores(ctx, s.k.outbox("s1", visit.PriorityNormal), 0, -1).Val()
	want := map[string]int64{"b": t0.UnixMilli(), "c": t0.Add(time.Hour).UnixMilli()}
	if len(z) != len(want) {
		t.Fatalf("outbox %v, want %v", z, want)
	}
	for _, m := range z {
		if want[m.Member.(string)] != int64(m.Score) {
			t.Errorf("outbox %v, want %v", z, want)
		}
	}
	if st := s.rdb.HGet(ctx, s.k.message("s1", "a"), "state").Val(); st != "sent" {
		t.Errorf("the sent message was re-queued: state %q", st)
	}
	// A message of another school is refused.
	other := notice("d")
	other.School = "s2"
	if err := s.QueueMessages(ctx, "s1", []visit.Message{other}, t0); err == nil {
		t.Error("queued another school's message")
	}
}

func TestPurgeVisitOnlyClosedAndUnchanged(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	put := func(v *visit.Visit) {
		if err := s.Begin("s1").Commit(ctx, Change{Result: visit.Result{Visits: []*visit.Visit{v}}, Now: t0}); err != nil {
			t.Fatal(err)
		}
	}
	put(&visit.Visit{ID: "closed", School: "s1", Officer: "o", State: visit.StateClosed, Outcome: visit.OutcomeSafe, ClosedAt: t0})
	put(&visit.Visit{ID: "alerted", School: "s1", Officer: "o", State: visit.StateClosed, Outcome: visit.OutcomeDuress, ClosedAt: t0, AlertID: "a1"})
	put(&visit.Visit{ID: "open", School: "s1", Officer: "o", State: visit.StateActive})
	s.rdb.ZAdd(ctx, s.k.closedVisits("s1"), redis.Z{Member: "ghost", Score: 1})
	for _, tc := range []struct {
		id, alert string
		want      bool
	}{
		{"open", "", false},     // open visits are never purged
		{"alerted", "", false},  // it names an alert the caller did not see
		{"alerted", "a1", true}, // as seen
		{"closed", "", true},    // no alert
		{"closed", "", false},   // already gone
		{"ghost", "", false},    // only its index entry was left
	} {
		got, err := s.PurgeVisit(ctx, "s1", tc.id, tc.alert, "2026-03")
		if err != nil || got != tc.want {
			t.Errorf("purge %s (alert %q): %v %v, want %v", tc.id, tc.alert, got, err, tc.want)
		}
	}
	if n := s.rdb.ZCard(ctx, s.k.closedVisits("s1")).Val(); n != 0 {
		t.Errorf("%d closed-visit index entries left", n)
	}
	if s.rdb.Exists(ctx, s.k.visit("s1", "open")).Val() != 1 {
		t.Error("the open visit is gone")
	}
	tally, err := s.MonthTally(ctx, "s1", "2026-03")
	if err != nil || tally.Visits != 2 || tally.Outcomes["safe"] != 1 || tally.Outcomes["duress"] != 1 {
		t.Errorf("tally %+v %v", tally, err)
	}
}

func TestPurgeAlertOnlyResolved(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	for _, id := range []string{"open", "resolved"} {
		a := &visit.Alert{ID: id, School: "s1", Officer: "o", Reason: visit.ReasonOverdue, State: visit.AlertOpen, RaisedAt: t0, Notified: []visit.Recipient{}}
		if err := s.Begin("s1").Commit(ctx, Change{Result: visit.Result{Alerts: []*visit.Alert{a}}, Now: t0}); err != nil {
			t.Fatal(err)
		}
	}
	sn := s.Begin("s1")
	a, err := sn.Alert(ctx, "resolved")
	if err != nil {
		t.Fatal(err)
	}
	a.State, a.ResolvedAt = visit.AlertResolved, t0
	if err := sn.Commit(ctx, Change{Result: visit.Result{Alerts: []*visit.Alert{a}}, Now: t0}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"open", false},     // never while unresolved
		{"resolved", true},  // resolved
		{"resolved", false}, // already gone
	} {
		got, err := s.PurgeAlert(ctx, "s1", tc.id)
		if err != nil || got != tc.want {
			t.Errorf("purge %s: %v %v, want %v", tc.id, got, err, tc.want)
		}
	}
	if ids := s.rdb.ZRange(ctx, s.k.alerts("s1"), 0, -1).Val(); len(ids) != 1 || ids[0] != "open" {
		t.Errorf("alert index %v, want [open]", ids)
	}
}

func TestPurgeMessageOnlyFinalAndCountsFailures(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	if err := s.QueueMessages(ctx, "s1", []visit.Message{notice("queued")}, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"sent", "failed", "undelivered", "skipped", "dropped"} {
		if err := s.QueueMessages(ctx, "s1", []visit.Message{notice(id)}, t0); err != nil {
			t.Fatal(err)
		}
		got, err := s.ClaimMessages(ctx, "s1", t0, time.Minute, 1)
		if err != nil || len(got) != 1 {
			t.Fatalf("claim %s: %v %v", id, got, err)
		}
		if err := s.RecordAttempt(ctx, got[0], t0); err != nil {
			t.Fatal(err)
		}
		switch id {
		case "failed":
			err = s.RecordFailed(ctx, got[0], "invalid_number")
		case "skipped":
			// A repeat the per-contact limit skipped: done, but not a failure.
			err = s.RecordFailed(ctx, got[0], SkippedByContactLimit)
		case "dropped":
			// The retry of an alert resolved meanwhile: done, not a failure.
			err = s.RecordFailed(ctx, got[0], SkippedAlertResolved)
		default:
			_, err = s.RecordSent(ctx, got[0], "SM"+id, t0)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.RecordDelivery(ctx, "s1", "undelivered", "undelivered", 30003, false, "test", t0); err != nil {
		t.Fatal(err)
	}
	seen := map[string]MessageRecord{}
	if err := s.ScanMessages(ctx, "s1", func(m MessageRecord) error { seen[m.Msg.ID] = m; return nil }); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string][2]bool{"queued": {false, false}, "sent": {true, false}, "failed": {true, true}, "undelivered": {true, true}, "skipped": {true, false}, "dropped": {true, false}} {
		if m := seen[id]; m.Final() != want[0] || m.Failed() != want[1] || (want[0] && !m.LastTry.Equal(t0)) {
			t.Errorf("%s: final %v failed %v last try %s, want %v", id, m.Final(), m.Failed(), m.LastTry, want)
		}
	}
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"queued", false},     // still to send
		{"sent", true},        // done
		{"failed", true},      // done, counted
		{"undelivered", true}, // done, counted
		{"skipped", true},     // done, not counted
		{"dropped", true},     // done, not counted
		{"sent", false},       // already gone
	} {
		got, err := s.PurgeMessage(ctx, "s1", tc.id, "2026-03")
		if err != nil || got != tc.want {
			t.Errorf("purge %s: %v %v, want %v", tc.id, got, err, tc.want)
		}
	}
	if tally, err := s.MonthTally(ctx, "s1", "2026-03"); err != nil || tally.NotificationsFailed != 2 {
		t.Errorf("tally %+v %v, want 2 failed", tally, err)
	}
}

// A school ID with glob characters scans its own messages only.
func TestScanMessagesEscapesTheSchool(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	for _, sc := range []string{"s*", "s1"} {
		m := notice("m-" + sc)
		m.School = sc
		if err := s.QueueMessages(ctx, sc, []visit.Message{m}, t0); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	if err := s.ScanMessages(ctx, "s*", func(m MessageRecord) error { ids = append(ids, m.Msg.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != "m-s*" {
		t.Errorf("scan of school s* saw %v", ids)
	}
}

func TestForgetLastVisit(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	states := map[string]visit.OfficerState{
		"o1": {LastVisit: "v1", LastText: "VISIT 30 14 Elm Road", Alerts: []string{"a9"}},
		"o2": {LastVisit: "v2", LastText: "VISIT 30 Oak Lane"},
	}
	if err := s.Begin("s1").Commit(ctx, Change{OfficerStates: states, Now: t0}); err != nil {
		t.Fatal(err)
	}
	for _, o := range []string{"o1", "o2", "nobody"} {
		if err := s.ForgetLastVisit(ctx, "s1", o, "v1"); err != nil {
			t.Fatal(err)
		}
	}
	sn := s.Begin("s1")
	for o, want := range map[string]visit.OfficerState{
		"o1": {Alerts: []string{"a9"}},                         // its last visit was v1: forgotten, open alerts kept
		"o2": {LastVisit: "v2", LastText: "VISIT 30 Oak Lane"}, // another visit: untouched
	} {
		got, err := sn.OfficerState(ctx, o)
		if err != nil || got.LastVisit != want.LastVisit || got.LastText != want.LastText || len(got.Alerts) != len(want.Alerts) {
			t.Errorf("%s: %+v %v, want %+v", o, got, err, want)
		}
	}
}

func TestTrimAudit(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	for _, ms := range []int64{1000, 2000, 3000} {
		s.rdb.XAdd(ctx, &redis.XAddArgs{Stream: s.k.audit("s1"), ID: strconv.FormatInt(ms, 10) + "-0", Values: []any{"e", "{}"}})
	}
	n, err := s.TrimAudit(ctx, "s1", time.UnixMilli(2000))
	if err != nil || n != 1 {
		t.Fatalf("trimmed %d, %v; want 1", n, err)
	}
	if xs := s.rdb.XRange(ctx, s.k.audit("s1"), "-", "+").Val(); len(xs) != 2 || xs[0].ID != "2000-0" {
		t.Errorf("left %v", xs)
	}
}
