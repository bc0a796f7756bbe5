package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/vigil-safety/vigil/internal/visit"
)

func sendMsg(id string) visit.Message {
	return visit.Message{ID: id, School: "s1", Kind: visit.KindAlert, Channel: visit.ChannelSMS, To: "+447700900201", Body: "OVERDUE " + id, Priority: visit.PriorityAlert}
}

// Messages a commit queues claimed for this replica (ClaimFor) are held by it:
// no other replica's look finds them ready, or claims them, until the claim runs
// out; then any replica does — a replica that dies between its commit and the
// send loses nothing. The one this replica begins is its own to the end.
func TestMessagesCommittedClaimed(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	ch := Change{Result: visit.Result{Messages: []visit.Message{sendMsg("sent"), sendMsg("orphan")}}, Now: t0, ClaimFor: 4 * time.Second}
	if err := s.Begin("s1").Commit(ctx, ch); err != nil {
		t.Fatal(err)
	}
	mine := ch.Claimed("s1")
	if len(mine) != 2 || mine[0].Lease != t0.Add(4*time.Second).UnixMilli() || mine[0].School != "s1" || mine[0].State != "queued" {
		t.Fatalf("Claimed = %+v, want both, claimed until t0+4s", mine)
	}
	look, err := s.LookOutbox(ctx, []string{"s1"}, t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if n := look.Ready[0][visit.PriorityAlert]; n != 0 || !look.Next.Equal(t0.Add(4*time.Second)) {
		t.Fatalf("another replica's look: %d ready, next %v; want none, next at t0+4s", n, look.Next)
	}
	quota := []Quota{{School: "s1", Priority: visit.PriorityAlert, Max: 10}}
	if got, _ := s.ClaimQuotas(ctx, quota, t0.Add(time.Second), 4*time.Second); len(got) != 0 {
		t.Fatalf("another replica claimed %d of them while they were held", len(got))
	}
	// This replica begins one; the other it never gets to (it died).
	if _, err := s.StartSend(ctx, mine[0], t0.Add(time.Second), 4*time.Second); err != nil {
		t.Fatalf("begin the send of a message committed claimed: %v", err)
	}
	got, err := s.ClaimQuotas(ctx, quota, t0.Add(4*time.Second), 4*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Msg.ID != "orphan" || got[0].State != "queued" || got[0].Attempts != 0 {
		t.Fatalf("claimed when the claims ran out: %+v, want only the orphan, never begun", got)
	}
}

// One turn under the send limit and the start of the send are one step, sharing
// the limit with replicas that still use Wait: a refused turn changes nothing,
// and a lost claim takes no turn.
func TestLimitedStartSend(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	l := s.NewSendLimiter(1)
	// One send an hour, and no burst beyond it: the test's pace cannot refill it.
	l.limit = redis_rate.Limit{Rate: 1, Period: time.Hour, Burst: 1}
	ch := Change{Result: visit.Result{Messages: []visit.Message{sendMsg("a"), sendMsg("b")}}, Now: t0, ClaimFor: time.Minute}
	if err := s.Begin("s1").Commit(ctx, ch); err != nil {
		t.Fatal(err)
	}
	claimed := ch.Claimed("s1")
	a, b := claimed[0], claimed[1]

	stale := a
	stale.Lease--
	if _, _, err := l.StartSend(ctx, stale, t0, time.Minute); !errors.Is(err, ErrFenced) {
		t.Fatalf("start through a lost claim: %v, want ErrFenced", err)
	}
	begun, wait, err := l.StartSend(ctx, a, t0.Add(time.Second), time.Minute)
	if err != nil || wait != 0 {
		t.Fatalf("first start: wait %v, err %v; want begun (the lost claim took no turn)", wait, err)
	}
	if want := t0.Add(time.Second + time.Minute).UnixMilli(); begun.Lease != want {
		t.Errorf("begun with lease %d, want renewed to %d", begun.Lease, want)
	}
	h := s.rdb.HGetAll(ctx, s.k.message("s1", "a")).Val()
	if h["state"] != "sending" || h["attempts"] != "1" {
		t.Errorf("begun message = %v, want sending after 1 attempt", h)
	}

	_, wait, err = l.StartSend(ctx, b, t0.Add(time.Second), time.Minute)
	if err != nil || wait < 59*time.Minute {
		t.Fatalf("second start: wait %v, err %v; want told to wait about an hour", wait, err)
	}
	h = s.rdb.HGetAll(ctx, s.k.message("s1", "b")).Val()
	score := s.rdb.ZScore(ctx, s.k.outbox("s1", visit.PriorityAlert), "b").Val()
	if h["state"] != "queued" || h["attempts"] != "0" || int64(score) != b.Lease {
		t.Errorf("refused message = %v, score %v; want it as it was (queued, 0 attempts, lease %d)", h, score, b.Lease)
	}
	// A replica on Wait sees the turn taken: with no time to wait, it is refused.
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.Wait(done); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait after the only turn was taken: %v, want it to have to wait", err)
	}
}

// A delivery receipt that came before its send was recorded is handed over by
// the record, once: a second taker gets nothing. One kept by an older build
// (a hash) is handed over too. (The first record on this fresh Redis is sent
// twice, its script not loaded yet: the receipt the first try took is kept.)
func TestRecordSentTakesAnEarlyReceipt(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	ch := Change{Result: visit.Result{Messages: []visit.Message{sendMsg("a"), sendMsg("b"), sendMsg("c")}}, Now: t0, ClaimFor: time.Minute}
	if err := s.Begin("s1").Commit(ctx, ch); err != nil {
		t.Fatal(err)
	}
	claimed := ch.Claimed("s1")
	if err := s.KeepPendingReceipt(ctx, "SMa", "undelivered", 30003); err != nil {
		t.Fatal(err)
	}
	early, err := s.RecordSent(ctx, claimed[0], "SMa", t0)
	if err != nil || early == nil || *early != (EarlyReceipt{Status: "undelivered", Code: 30003}) {
		t.Fatalf("RecordSent = %+v, %v; want the early receipt", early, err)
	}
	if again, err := s.TakePendingReceipt(ctx, "SMa"); err != nil || again != nil {
		t.Fatalf("taken again: %+v, %v; want nothing", again, err)
	}
	if early, err := s.RecordSent(ctx, claimed[1], "SMb", t0); err != nil || early != nil {
		t.Fatalf("RecordSent without a receipt = %+v, %v", early, err)
	}
	// The older build's form.
	if err := s.rdb.HSet(ctx, s.k.pendingReceipt("SMc"), "status", "failed", "code", 30006).Err(); err != nil {
		t.Fatal(err)
	}
	early, err = s.RecordSent(ctx, claimed[2], "SMc", t0)
	if err != nil || early == nil || *early != (EarlyReceipt{Status: "failed", Code: 30006}) {
		t.Fatalf("RecordSent with an old-form receipt = %+v, %v", early, err)
	}
	if n := s.rdb.Exists(ctx, s.k.pendingReceipt("SMc")).Val(); n != 0 {
		t.Errorf("old-form receipt left behind")
	}
}

// A receipt the record took is handed back even when the rest of the record
// failed: it is gone from Redis, and dropping it would leave an undelivered
// alert SMS never re-routed. (Redis out of memory refuses the record's writes
// but not the GETDEL that takes the receipt.)
func TestRecordSentHandsBackTheReceiptItTookWhenItFails(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	ch := Change{Result: visit.Result{Messages: []visit.Message{sendMsg("a")}}, Now: t0, ClaimFor: time.Minute}
	if err := s.Begin("s1").Commit(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if err := s.KeepPendingReceipt(ctx, "SMa", "undelivered", 30003); err != nil {
		t.Fatal(err)
	}
	if err := messageScript.Load(ctx, s.rdb).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.rdb.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	early, err := s.RecordSent(ctx, ch.Claimed("s1")[0], "SMa", t0)
	if err := s.rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err == nil {
		t.Fatal("RecordSent succeeded with Redis out of memory: the test does not test what it says")
	}
	if early == nil || *early != (EarlyReceipt{Status: "undelivered", Code: 30003}) {
		t.Fatalf("RecordSent = %+v, %v; want the receipt it took handed back with the error", early, err)
	}
}

// The first school pinned for an inbound message is the one every repeat gets.
func TestPinInboundSchool(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	for _, tt := range []struct{ chose, want string }{{"s1", "s1"}, {"s2", "s1"}, {"s1", "s1"}} {
		got, err := s.PinInboundSchool(ctx, "SM1", tt.chose)
		if err != nil || got != tt.want {
			t.Fatalf("pin %s: %q, %v; want %q", tt.chose, got, err, tt.want)
		}
	}
	if got, _ := s.PinInboundSchool(ctx, "SM2", "s2"); got != "s2" {
		t.Errorf("another message pinned to %q, want its own choice s2", got)
	}
}
