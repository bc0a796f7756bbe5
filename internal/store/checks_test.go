package store

import (
	"errors"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/visit"
)

// An alert message sent under a SID is listed for a receipt check a minute on; a
// reminder is not. A final status handled takes the check off; "sent" (a carrier
// took it, a failure may follow) does not, and neither does a failure whose
// handling has not finished.
func TestReceiptCheckListedUntilAFinalStatusIsHandled(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	reminder := sendMsg("reminder")
	reminder.Kind = visit.KindReminder
	ch := Change{Result: visit.Result{Messages: []visit.Message{sendMsg("alert"), reminder, sendMsg("failing")}}, Now: t0, ClaimFor: time.Minute}
	if err := s.Begin("s1").Commit(ctx, ch); err != nil {
		t.Fatal(err)
	}
	for i, o := range ch.Claimed("s1") {
		if _, err := s.RecordSent(ctx, o, "SM"+o.Msg.ID, t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	checks, err := s.ReceiptChecks(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{"alert": t0.Add(DefaultReceiptCheck), "failing": t0.Add(2*time.Second + DefaultReceiptCheck)}
	if len(checks) != 2 || !checks["alert"].Equal(want["alert"]) || !checks["failing"].Equal(want["failing"]) {
		t.Fatalf("checks after the sends = %v, want %v", checks, want)
	}

	record := func(id, status string, settled bool) {
		t.Helper()
		if _, _, err := s.RecordDelivery(ctx, "s1", id, status, 0, settled, "test", t0); err != nil {
			t.Fatal(err)
		}
	}
	record("alert", "sent", true)
	record("failing", "undelivered", false)
	if checks, _ = s.ReceiptChecks(ctx, "s1"); len(checks) != 2 {
		t.Fatalf("checks after sent and an unhandled failure = %v, want both still listed", checks)
	}
	record("alert", "delivered", true)
	if err := s.DeliveryHandled(ctx, "s1", "failing", "undelivered"); err != nil {
		t.Fatal(err)
	}
	if checks, _ = s.ReceiptChecks(ctx, "s1"); len(checks) != 0 {
		t.Fatalf("checks after both were settled = %v, want none", checks)
	}
}

// A claimed check is held for its lease: another claim does not take it, and once
// the lease has run out and another replica has claimed it, the first can
// neither end nor defer it.
func TestReceiptCheckClaimIsFenced(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	s.CheckReceiptsAfter(time.Second)
	ch := Change{Result: visit.Result{Messages: []visit.Message{sendMsg("alert")}}, Now: t0, ClaimFor: time.Minute}
	if err := s.Begin("s1").Commit(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordSent(ctx, ch.Claimed("s1")[0], "SMalert", t0); err != nil {
		t.Fatal(err)
	}
	schools := []string{"s1"}
	if got, err := s.ClaimReceiptChecks(ctx, schools, t0.Add(999*time.Millisecond), time.Minute, 10); err != nil || len(got) != 0 {
		t.Fatalf("claim before the check is due: %v, %v; want nothing", got, err)
	}
	first, err := s.ClaimReceiptChecks(ctx, schools, t0.Add(time.Second), time.Minute, 10)
	if err != nil || len(first) != 1 || first[0].Member != "alert" {
		t.Fatalf("claim when due: %+v, %v; want the alert's check", first, err)
	}
	m, err := s.SentMessageFor(ctx, first[0])
	if err != nil || m.SID != "SMalert" || !m.SentAt.Equal(t0) || m.Delivery != "" || m.Msg.ID != "alert" {
		t.Fatalf("SentMessageFor = %+v, %v", m, err)
	}
	if got, _ := s.ClaimReceiptChecks(ctx, schools, t0.Add(30*time.Second), time.Minute, 10); len(got) != 0 {
		t.Fatalf("a second claim inside the lease took %+v", got)
	}
	second, err := s.ClaimReceiptChecks(ctx, schools, t0.Add(61*time.Second), time.Minute, 10)
	if err != nil || len(second) != 1 {
		t.Fatalf("claim after the lease ran out: %+v, %v; want the check again", second, err)
	}
	if err := s.EndReceiptCheck(ctx, first[0]); !errors.Is(err, ErrFenced) {
		t.Fatalf("end through a lost claim: %v, want ErrFenced", err)
	}
	if err := s.DeferReceiptCheck(ctx, first[0], t0.Add(time.Hour)); !errors.Is(err, ErrFenced) {
		t.Fatalf("defer through a lost claim: %v, want ErrFenced", err)
	}
	later := t0.Add(5 * time.Minute)
	if err := s.DeferReceiptCheck(ctx, second[0], later); err != nil {
		t.Fatal(err)
	}
	if checks, _ := s.ReceiptChecks(ctx, "s1"); !checks["alert"].Equal(later) {
		t.Fatalf("deferred check due %v, want %v", checks["alert"], later)
	}
	third, _ := s.ClaimReceiptChecks(ctx, schools, later, time.Minute, 10)
	if len(third) != 1 {
		t.Fatalf("claim of the deferred check: %+v", third)
	}
	if err := s.EndReceiptCheck(ctx, third[0]); err != nil {
		t.Fatal(err)
	}
	if checks, _ := s.ReceiptChecks(ctx, "s1"); len(checks) != 0 {
		t.Fatalf("checks after the end = %v, want none", checks)
	}
}

// A failure recorded and not yet handled is held by the handler that recorded it:
// another copy of the receipt arriving meanwhile leaves it alone (it is handled
// once), the same handler's next try takes it up again, and anyone does once the
// hold has lapsed (its handler died). Once handled, no one handles it again.
func TestDeliveryHandlingIsHeldByOneHandler(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	ch := Change{Result: visit.Result{Messages: []visit.Message{sendMsg("alert")}}, Now: t0, ClaimFor: time.Minute}
	if err := s.Begin("s1").Commit(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordSent(ctx, ch.Claimed("s1")[0], "SMalert", t0); err != nil {
		t.Fatal(err)
	}
	record := func(by string, at time.Time) (isNew, pending bool) {
		t.Helper()
		isNew, pending, err := s.RecordDelivery(ctx, "s1", "alert", "undelivered", 30003, false, by, at)
		if err != nil {
			t.Fatal(err)
		}
		return isNew, pending
	}
	if isNew, pending := record("webhook-1", t0); !isNew || !pending {
		t.Fatalf("first receipt: new %v, pending %v; want both", isNew, pending)
	}
	if isNew, pending := record("webhook-2", t0.Add(time.Second)); isNew || pending {
		t.Fatalf("a second copy while the first is handled: new %v, pending %v; want neither", isNew, pending)
	}
	if _, pending := record("webhook-1", t0.Add(2*time.Second)); !pending {
		t.Fatal("the first handler's next try did not take its handling up again")
	}
	if _, pending := record("check", t0.Add(2*time.Second+HandleFor-time.Millisecond)); pending {
		t.Fatal("another handler took the handling before the hold lapsed")
	}
	if _, pending := record("check", t0.Add(2*time.Second+HandleFor)); !pending {
		t.Fatal("the handling was not taken over once the hold had lapsed")
	}
	if err := s.DeliveryHandled(ctx, "s1", "alert", "undelivered"); err != nil {
		t.Fatal(err)
	}
	if isNew, pending := record("webhook-3", t0.Add(time.Hour)); isNew || pending {
		t.Fatalf("a repeat once handled: new %v, pending %v; want neither", isNew, pending)
	}
	if checks, _ := s.ReceiptChecks(ctx, "s1"); len(checks) != 0 {
		t.Fatalf("checks = %v after the failure was handled, want none", checks)
	}
}

// Twilio's callbacks can come out of order, clocks can disagree, and retention
// deletes messages: a late "sent" does not hide an "undelivered" still to handle;
// a hold that ends further ahead than one made now (its writer's clock was ahead)
// counts as lapsed; a message that is gone is not made again; and a status marked
// handled after another has replaced it changes nothing.
func TestDeliveryRecordAgainstDisorder(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	ch := Change{Result: visit.Result{Messages: []visit.Message{sendMsg("a"), sendMsg("b")}}, Now: t0, ClaimFor: time.Minute}
	if err := s.Begin("s1").Commit(ctx, ch); err != nil {
		t.Fatal(err)
	}
	for _, o := range ch.Claimed("s1") {
		if _, err := s.RecordSent(ctx, o, "SM"+o.Msg.ID, t0); err != nil {
			t.Fatal(err)
		}
	}
	record := func(id, status string, settled bool, by string, at time.Time) (isNew, pending bool) {
		t.Helper()
		isNew, pending, err := s.RecordDelivery(ctx, "s1", id, status, 0, settled, by, at)
		if err != nil {
			t.Fatal(err)
		}
		return isNew, pending
	}
	// A replica whose clock is an hour ahead records the failure, and dies.
	if isNew, pending := record("a", "undelivered", false, "fast-clock", t0.Add(time.Hour)); !isNew || !pending {
		t.Fatal("the failure was not recorded")
	}
	if isNew, pending := record("a", "sent", true, "late-sent", t0.Add(time.Second)); isNew || pending {
		t.Fatalf("a late 'sent': new %v, pending %v; want it ignored", isNew, pending)
	}
	if _, pending := record("a", "undelivered", false, "check", t0.Add(time.Minute)); !pending {
		t.Fatal("a hold ending an hour ahead kept the failure from being handled")
	}
	// Another handler finishes with a status the message no longer has: the
	// failure stays to handle, and its receipt check stays listed.
	if err := s.DeliveryHandled(ctx, "s1", "a", "delivered"); err != nil {
		t.Fatal(err)
	}
	if checks, _ := s.ReceiptChecks(ctx, "s1"); checks["a"].IsZero() {
		t.Fatal("marking a status the message no longer has handled ended its receipt check")
	}
	if _, pending := record("a", "undelivered", false, "check", t0.Add(time.Minute)); !pending {
		t.Fatal("marking a status the message no longer has handled marked the failure handled")
	}

	if err := s.rdb.Del(ctx, s.k.message("s1", "b")).Err(); err != nil {
		t.Fatal(err)
	}
	if isNew, pending := record("b", "undelivered", false, "webhook", t0); isNew || pending {
		t.Fatalf("a receipt for a deleted message: new %v, pending %v; want nothing", isNew, pending)
	}
	if n, _ := s.rdb.Exists(ctx, s.k.message("s1", "b")).Result(); n != 0 {
		t.Fatal("a receipt made a deleted message again")
	}
}
