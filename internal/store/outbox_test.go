package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// The dispatcher's look counts what is ready in each queue of each school and
// finds the next instant; claims take what the quotas ask, whole, and hold it
// for the lease; a message handed back is ready again at once.
func TestLookAndClaimQuotas(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := store.NewWithClient(srv.Client(), "vigil:", quiet())
	ctx := t.Context()
	msg := func(id, school string, prio int) visit.Message {
		return visit.Message{ID: id, School: school, Kind: visit.KindAlert, Channel: visit.ChannelSMS, To: "+447700900201", Body: "body " + id, Priority: prio}
	}
	for _, m := range []visit.Message{msg("p1", "a", visit.PriorityPanic), msg("x1", "a", visit.PriorityAlert), msg("x2", "a", visit.PriorityAlert), msg("r1", "b", visit.PriorityNormal)} {
		if err := s.QueueMessage(ctx, m, t0); err != nil {
			t.Fatal(err)
		}
	}
	// Not ready until t0+1m.
	if err := s.QueueMessage(ctx, msg("later", "b", visit.PriorityAlert), t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	schools := []string{"a", "b", "none"}
	look, err := s.LookOutbox(ctx, schools, t0)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int64{{1, 2, 0}, {0, 0, 1}, {0, 0, 0}}
	for i := range want {
		for p := range want[i] {
			if look.Ready[i][p] != want[i][p] {
				t.Fatalf("ready = %v, want %v", look.Ready, want)
			}
		}
	}
	if !look.Next.Equal(t0) {
		t.Errorf("next = %v, want %v (messages ready now)", look.Next, t0)
	}

	lease := 4 * time.Second
	got, err := s.ClaimQuotas(ctx, []store.Quota{{School: "a", Priority: visit.PriorityPanic, Max: 5}, {School: "a", Priority: visit.PriorityAlert, Max: 1}}, t0, lease)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Member != "p1" || got[0].Msg.Body != "body p1" || got[0].State != "queued" || got[1].Member != "x1" ||
		got[0].Lease != t0.Add(lease).UnixMilli() {
		t.Fatalf("claimed %+v, want p1 then x1, whole, leased to t0+4s", got)
	}
	// Claimed messages are held for the lease: a second look sees only x2 and r1.
	look, _ = s.LookOutbox(ctx, schools, t0)
	if look.Ready[0][visit.PriorityPanic] != 0 || look.Ready[0][visit.PriorityAlert] != 1 {
		t.Errorf("after the claim ready = %v, want p1 and x1 held", look.Ready)
	}
	if again, _ := s.ClaimQuotas(ctx, []store.Quota{{School: "a", Priority: visit.PriorityPanic, Max: 5}}, t0.Add(time.Second), lease); len(again) != 0 {
		t.Errorf("a held panic was claimed again: %+v", again)
	}
	// A claim leaves alone what the claimer names as its own (held or being
	// sent), even when its lease has run out.
	late := t0.Add(time.Hour)
	mineLeft, err := s.ClaimQuotas(ctx, []store.Quota{{School: "a", Priority: visit.PriorityAlert, Max: 5, Skip: []string{"x1"}}}, late, lease)
	if err != nil || len(mineLeft) != 1 || mineLeft[0].Member != "x2" {
		t.Fatalf("claim skipping x1: %+v, %v; want x2 only", mineLeft, err)
	}
	if sc := srv.Client().ZScore(ctx, "vigil:{a}:outbox:1", "x1").Val(); sc != float64(t0.Add(lease).UnixMilli()) {
		t.Errorf("x1 re-scored to %v though skipped", sc)
	}
	// Handed back, the panic is ready at once.
	if err := s.ReleaseMessages(ctx, got[:1], t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	again, err := s.ClaimQuotas(ctx, []store.Quota{{School: "a", Priority: visit.PriorityPanic, Max: 5}}, t0.Add(time.Second), lease)
	if err != nil || len(again) != 1 || again[0].Member != "p1" {
		t.Fatalf("after the hand-back: %+v, %v, want p1", again, err)
	}
	// A message whose hash is gone cannot be sent: it is dropped, not claimed
	// again and again.
	if err := srv.Client().Del(ctx, "vigil:{b}:msg:r1").Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ClaimQuotas(ctx, []store.Quota{{School: "b", Priority: visit.PriorityNormal, Max: 5}}, t0, lease); err != nil || len(got) != 0 {
		t.Fatalf("claimed %+v, %v; want the unreadable message dropped", got, err)
	}
	if n := srv.Client().ZCard(ctx, "vigil:{b}:outbox:2").Val(); n != 0 {
		t.Errorf("the unreadable message is still queued (%d)", n)
	}
}

// A claim that fails in one queue (on a Cluster, a master down) keeps what the
// others took: those messages are sent now, not when their leases run out. The
// same for timers.
func TestPartialClaimsKeepWhatTheyTook(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := store.NewWithClient(srv.Client(), "vigil:", quiet())
	ctx := t.Context()
	m := visit.Message{ID: "ok1", School: "good", Kind: visit.KindAlert, Channel: visit.ChannelSMS, To: "+447700900201", Body: "b", Priority: visit.PriorityAlert}
	if err := s.QueueMessage(ctx, m, t0); err != nil {
		t.Fatal(err)
	}
	// A key of the wrong type makes that school's claim fail.
	for _, k := range []string{"vigil:{bad}:outbox:1", "vigil:{bad}:timers"} {
		if err := srv.Client().Set(ctx, k, "not a sorted set", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ClaimQuotas(ctx, []store.Quota{{School: "bad", Priority: visit.PriorityAlert, Max: 5}, {School: "good", Priority: visit.PriorityAlert, Max: 5}}, t0, 4*time.Second)
	if err == nil || len(got) != 1 || got[0].Member != "ok1" {
		t.Fatalf("ClaimQuotas = %+v, %v; want ok1 and an error", got, err)
	}
	if err := s.Begin("good").Commit(ctx, store.Change{Timers: map[string]time.Time{"v:x": t0}, Now: t0}); err != nil {
		t.Fatal(err)
	}
	due, next, err := s.ClaimDueTimers(ctx, []string{"bad", "good"}, t0, 3*time.Second, 10)
	if err == nil || len(due[1]) != 1 || due[1][0].Member != "v:x" || !next[0].Equal(t0) {
		t.Fatalf("ClaimDueTimers = %+v, %v, %v; want v:x claimed, the failed school still due, and an error", due, next, err)
	}
}

// ClaimDueTimers reads the visit or alert each claimed timer names, and the worker's
// snapshot (BeginClaimed) reads it from there. That read may be stale by the time
// the worker commits, so the commit checks it even when the change does not write
// it: a decision made on it (here only moving the timer) is refused as a conflict.
func TestClaimedTimerReadIsCheckedAtCommit(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := store.NewWithClient(srv.Client(), "vigil:", quiet())
	ctx := t.Context()
	v := openVisit("v1")
	a := &visit.Alert{ID: "a1", School: "s1", Officer: "jdoe", Reason: visit.ReasonPanic, State: visit.AlertOpen, RaisedAt: t0}
	timers := map[string]time.Time{store.VisitTimer("v1"): t0, store.AlertTimer("a1"): t0, store.VisitTimer("gone"): t0}
	if err := s.Begin("s1").Commit(ctx, store.Change{Result: visit.Result{Visits: []*visit.Visit{v}, Alerts: []*visit.Alert{a}}, Timers: timers, Now: t0}); err != nil {
		t.Fatal(err)
	}
	due, _, err := s.ClaimDueTimers(ctx, []string{"s1"}, t0, 3*time.Second, 10)
	if err != nil || len(due[0]) != 3 {
		t.Fatalf("ClaimDueTimers = %+v, %v; want the three timers", due, err)
	}
	byMember := map[string]store.Due{}
	for _, d := range due[0] {
		byMember[d.Member] = d
	}

	// The officer checks in after the claim: the visit changes, its timer does not.
	closed := *v
	closed.State, closed.Outcome, closed.ClosedAt = visit.StateClosed, visit.OutcomeSafe, t0.Add(time.Second)
	sn := s.Begin("s1")
	if _, err := sn.Visit(ctx, "v1"); err != nil {
		t.Fatal(err)
	}
	if err := sn.Commit(ctx, store.Change{Result: visit.Result{Visits: []*visit.Visit{&closed}}, Now: t0}); err != nil {
		t.Fatal(err)
	}

	// The worker reads what the claim read, without asking Redis.
	vsn := s.BeginClaimed(byMember[store.VisitTimer("v1")])
	got, err := vsn.Visit(ctx, "v1")
	if err != nil || got == nil || got.State != visit.StateActive {
		t.Fatalf("claimed read of v1 = %+v, %v; want the active visit the claim saw", got, err)
	}
	d := byMember[store.VisitTimer("v1")]
	move := store.Change{Timers: map[string]time.Time{d.Member: t0.Add(time.Hour)}, Fence: &d.Claim, Now: t0}
	if err := vsn.Commit(ctx, move); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("commit on the stale claimed read: %v, want ErrConflict", err)
	}
	// Read afresh, the same change goes through.
	fresh := s.Begin("s1")
	if got, _ := fresh.Visit(ctx, "v1"); got == nil || got.State != visit.StateClosed {
		t.Fatalf("fresh read of v1 = %+v, want it closed", got)
	}
	if err := fresh.Commit(ctx, move); err != nil {
		t.Fatalf("commit on the fresh read: %v", err)
	}

	// An alert timer carries its alert; a timer whose visit is gone carries none.
	if got, err := s.BeginClaimed(byMember[store.AlertTimer("a1")]).Alert(ctx, "a1"); err != nil || got == nil || got.ID != "a1" {
		t.Fatalf("claimed read of a1 = %+v, %v", got, err)
	}
	if err := srv.Client().Set(ctx, "vigil:{s1}:visit:gone", "appeared later", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.BeginClaimed(byMember[store.VisitTimer("gone")]).Visit(ctx, "gone"); err != nil || got != nil {
		t.Fatalf("claimed read of a missing visit = %+v, %v; want none, as the claim saw", got, err)
	}
}

// A claim that takes more than 16 timers of a school reads none of them (in a storm
// the claim is what every replica waits on): their workers read Redis, as before.
func TestStormClaimReadsNothing(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := store.NewWithClient(srv.Client(), "vigil:", quiet())
	ctx := t.Context()
	var visits []*visit.Visit
	timers := map[string]time.Time{}
	for i := range 20 {
		id := fmt.Sprintf("v%02d", i)
		visits = append(visits, openVisit(id))
		timers[store.VisitTimer(id)] = t0 // equal scores: claimed in member order
	}
	if err := s.Begin("s1").Commit(ctx, store.Change{Result: visit.Result{Visits: visits}, Timers: timers, Now: t0}); err != nil {
		t.Fatal(err)
	}
	due, _, err := s.ClaimDueTimers(ctx, []string{"s1"}, t0, 3*time.Second, 100)
	if err != nil || len(due[0]) != 20 {
		t.Fatalf("ClaimDueTimers = %d timers, %v; want 20", len(due[0]), err)
	}
	for _, v := range visits { // gone from Redis after the claim
		if err := srv.Client().Del(ctx, "vigil:{s1}:visit:"+v.ID).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range due[0] {
		_, id, _ := store.TimerTarget(d.Member)
		got, err := s.BeginClaimed(d).Visit(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got != nil {
			t.Errorf("timer %s: worker read the visit the claim saw, want a fresh read (none: deleted)", d.Member)
		}
	}
}
