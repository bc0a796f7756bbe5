package notify_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-safety/vigil/internal/notify"
	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/sms"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// twilioStatuses is a fake of Twilio's message resource: the status it reports
// for each SID, and how often each was asked about.
type twilioStatuses struct {
	mu     sync.Mutex
	status map[string]sms.Status
	fail   map[string]error
	asked  map[string]int
}

func (f *twilioStatuses) FetchStatus(_ context.Context, sid string) (sms.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked[sid]++
	if err := f.fail[sid]; err != nil {
		return sms.Status{}, err
	}
	return f.status[sid], nil
}

func (f *twilioStatuses) set(sid, status string, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status[sid] = sms.Status{MessageSID: sid, Status: status, ErrorCode: code}
}

func (f *twilioStatuses) times(sid string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked[sid]
}

// sent commits alert messages and records each sent at 'at' under "SM"+its ID.
func sent(t *testing.T, st *store.Store, at time.Time, ids ...string) {
	t.Helper()
	var ms []visit.Message
	for _, id := range ids {
		ms = append(ms, visit.Message{ID: id, School: "s1", Kind: visit.KindAlert, Channel: visit.ChannelSMS, To: "+447700900201", Body: "OVERDUE", Priority: visit.PriorityAlert})
	}
	ch := store.Change{Result: visit.Result{Messages: ms}, Now: at, ClaimFor: time.Minute}
	if err := st.Begin("s1").Commit(t.Context(), ch); err != nil {
		t.Fatal(err)
	}
	for _, o := range ch.Claimed("s1") {
		if _, err := st.RecordSent(t.Context(), o, "SM"+o.Msg.ID, at); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.PutSchool(t.Context(), visit.School{ID: "s1"}); err != nil {
		t.Fatal(err)
	}
}

// settle does what the service does with a status (service.HandleMessageStatus),
// at now: records it, and marks it handled if it is this handler's to handle.
func settle(ctx context.Context, st *store.Store, school string, m visit.Message, status string, code int, now time.Time) error {
	failed := status == "undelivered" || status == "failed"
	_, pending, err := st.RecordDelivery(ctx, school, m.ID, status, code, !failed, "checker", now)
	if err != nil || !pending {
		return err
	}
	return st.DeliveryHandled(ctx, school, m.ID, status)
}

type handled struct {
	sid, status string
	code        int
}

// A message whose final receipt has not come is asked about a minute after its
// send, then again after waits that grow with its age; a final status found is
// handled as its receipt would have been, once. A message Twilio never finishes
// is given up after an hour; a Twilio error leaves the check to be done again; a
// status recorded but not handled (a half-finished receipt) is handled without
// asking Twilio.
func TestReceiptChecker(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := store.NewWithClient(srv.Client(), "vigil:", quiet())
	sent(t, st, t0, "late", "never", "flaky", "half")
	if _, _, err := st.RecordDelivery(t.Context(), "s1", "half", "undelivered", 30005, false, "webhook", t0); err != nil {
		t.Fatal(err)
	}
	tw := &twilioStatuses{status: map[string]sms.Status{}, fail: map[string]error{}, asked: map[string]int{}}
	tw.set("SMlate", "sent", 0)
	tw.set("SMnever", "sent", 0)
	tw.fail["SMflaky"] = &sms.Error{HTTPStatus: 503, Retryable: true}
	var got []handled
	now := t0
	metrics := notify.NewReceiptMetrics(prometheus.NewRegistry())
	c := notify.NewReceiptChecker(notify.ReceiptCheckOptions{
		Store: st, Twilio: tw, Log: quiet(), Metrics: metrics, Now: func() time.Time { return now },
		Handle: func(_ context.Context, school string, m visit.Message, status string, code int) error {
			if school != "s1" {
				t.Errorf("handled a message of school %q", school)
			}
			got = append(got, handled{"SM" + m.ID, status, code})
			return settle(t.Context(), st, school, m, status, code, now)
		},
		Parallel: 1,
	})
	sweep := func(at time.Duration) int {
		t.Helper()
		now = t0.Add(at)
		n, _ := c.Sweep(t.Context())
		return n
	}

	if n := sweep(59 * time.Second); n != 0 {
		t.Fatalf("%d checks claimed before the minute was up", n)
	}
	sweep(time.Minute)
	if len(got) != 1 || got[0] != (handled{"SMhalf", "undelivered", 30005}) || tw.times("SMhalf") != 0 {
		t.Fatalf("handled %+v (Twilio asked about it %d times); want the recorded failure of 'half' handled, Twilio not asked", got, tw.times("SMhalf"))
	}
	if tw.times("SMlate") != 1 || tw.times("SMflaky") != 1 {
		t.Fatalf("asked about late %d, flaky %d times; want once each", tw.times("SMlate"), tw.times("SMflaky"))
	}
	checks, _ := st.ReceiptChecks(t.Context(), "s1")
	if !checks["late"].Equal(t0.Add(2*time.Minute)) || !checks["flaky"].Equal(t0.Add(2*time.Minute)) || len(checks) != 3 {
		t.Fatalf("checks = %v; want late and flaky a minute on, never listed, half done", checks)
	}
	// Asked again at 2 minutes: still "sent", so next after another 2.
	delete(tw.fail, "SMflaky")
	tw.set("SMflaky", "delivered", 0)
	sweep(2 * time.Minute)
	if checks, _ = st.ReceiptChecks(t.Context(), "s1"); !checks["late"].Equal(t0.Add(4*time.Minute)) || len(checks) != 2 {
		t.Fatalf("checks = %v; want late due at 4 minutes, flaky done", checks)
	}
	tw.set("SMlate", "undelivered", 30003)
	if sweep(4*time.Minute-time.Millisecond) != 0 || tw.times("SMlate") != 2 {
		t.Fatal("asked about 'late' before its check was due again")
	}
	sweep(4 * time.Minute)
	want := []handled{{"SMhalf", "undelivered", 30005}, {"SMflaky", "delivered", 0}, {"SMlate", "undelivered", 30003}}
	if len(got) != 3 || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("handled %+v, want %+v", got, want)
	}
	// 'never' stays "sent": asked at most every 5 minutes, then given up.
	for at := 5 * time.Minute; at <= 65*time.Minute; at += time.Minute {
		sweep(at)
	}
	if checks, _ = st.ReceiptChecks(t.Context(), "s1"); len(checks) != 0 {
		t.Fatalf("checks past the hour = %v, want none", checks)
	}
	if n := tw.times("SMnever"); n < 12 || n > 16 {
		t.Errorf("asked about 'never' %d times in an hour, want every 1-5 minutes", n)
	}
	if len(got) != 3 {
		t.Errorf("handled %+v: a status that never became final was handled", got)
	}
	for result, want := range map[string]float64{notify.CheckFinal: 2, notify.CheckError: 1, notify.CheckGaveUp: 1} {
		if n := testutil.ToFloat64(metrics.WithLabelValues(result)); n != want {
			t.Errorf("vigil_receipt_checks_total{result=%q} = %v, want %v", result, n, want)
		}
	}
}

// A check whose handling fails stays due and is done again when its lease has run
// out; a replica that lost the claim meanwhile cannot end it.
func TestReceiptCheckRetriedAfterAFailedHandling(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := store.NewWithClient(srv.Client(), "vigil:", quiet())
	sent(t, st, t0, "a")
	tw := &twilioStatuses{status: map[string]sms.Status{}, fail: map[string]error{}, asked: map[string]int{}}
	tw.set("SMa", "failed", 30008)
	fail := errors.New("redis went away")
	var tries int
	now := t0.Add(time.Minute)
	c := notify.NewReceiptChecker(notify.ReceiptCheckOptions{
		Store: st, Twilio: tw, Log: quiet(), Now: func() time.Time { return now }, Lease: 30 * time.Second,
		Handle: func(ctx context.Context, school string, m visit.Message, status string, code int) error {
			tries++
			if fail != nil {
				return fail
			}
			return settle(ctx, st, school, m, status, code, now)
		},
	})
	c.Sweep(t.Context())
	now = now.Add(29 * time.Second)
	c.Sweep(t.Context())
	if tries != 1 {
		t.Fatalf("handled %d times inside the lease, want 1", tries)
	}
	fail = nil
	now = now.Add(time.Second)
	c.Sweep(t.Context())
	if tries != 2 {
		t.Fatalf("handled %d times once the lease ran out, want 2", tries)
	}
	if checks, _ := st.ReceiptChecks(t.Context(), "s1"); len(checks) != 0 {
		t.Fatalf("checks = %v after the handling went through, want none", checks)
	}
}

// A backlog of due checks (receipts lost during an outage) is worked through in
// one go, a batch after another, not a batch per tick.
func TestReceiptCheckBacklogIsDrained(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := store.NewWithClient(srv.Client(), "vigil:", quiet())
	ids := []string{"a", "b", "c", "d", "e"}
	sent(t, st, t0, ids...)
	tw := &twilioStatuses{status: map[string]sms.Status{}, fail: map[string]error{}, asked: map[string]int{}}
	for _, id := range ids {
		tw.set("SM"+id, "undelivered", 30003)
	}
	handledSID := make(chan string, len(ids))
	c := notify.NewReceiptChecker(notify.ReceiptCheckOptions{
		Store: st, Twilio: tw, Log: quiet(), Now: func() time.Time { return t0.Add(time.Hour) },
		Every: time.Hour, Batch: 2,
		Handle: func(ctx context.Context, school string, m visit.Message, status string, code int) error {
			handledSID <- m.ID
			return settle(ctx, st, school, m, status, code, t0.Add(time.Hour))
		},
	})
	run(t, c)
	timeout := time.After(10 * time.Second)
	for range ids {
		select {
		case <-handledSID:
		case <-timeout:
			checks, _ := st.ReceiptChecks(t.Context(), "s1")
			t.Fatalf("backlog not drained: checks left %v", checks)
		}
	}
}

// Twilio's "no such message" ends the check: asking again cannot help.
func TestReceiptCheckEndsWhenTwilioHasNoSuchMessage(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := store.NewWithClient(srv.Client(), "vigil:", quiet())
	sent(t, st, t0, "gone")
	tw := &twilioStatuses{status: map[string]sms.Status{}, fail: map[string]error{}, asked: map[string]int{}}
	tw.fail["SMgone"] = &sms.Error{Code: sms.CodeNotFound, HTTPStatus: 404}
	metrics := notify.NewReceiptMetrics(prometheus.NewRegistry())
	c := notify.NewReceiptChecker(notify.ReceiptCheckOptions{
		Store: st, Twilio: tw, Log: quiet(), Metrics: metrics, Now: func() time.Time { return t0.Add(time.Minute) },
		Handle: func(context.Context, string, visit.Message, string, int) error {
			t.Error("handled a message Twilio does not have")
			return nil
		},
	})
	c.Sweep(t.Context())
	if checks, _ := st.ReceiptChecks(t.Context(), "s1"); len(checks) != 0 || tw.times("SMgone") != 1 {
		t.Fatalf("after Twilio's 404: checks %v, asked %d times; want none left, asked once", checks, tw.times("SMgone"))
	}
	if n := testutil.ToFloat64(metrics.WithLabelValues(notify.CheckGaveUp)); n != 1 {
		t.Errorf("gave_up = %v, want 1", n)
	}
}

// A check whose claim is nearly out when its turn comes (a long backlog) is left
// for the next claim, not done at the risk of another replica doing it too.
func TestReceiptCheckNearlyExpiredClaimIsLeft(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := store.NewWithClient(srv.Client(), "vigil:", quiet())
	sent(t, st, t0, "late")
	tw := &twilioStatuses{status: map[string]sms.Status{}, fail: map[string]error{}, asked: map[string]int{}}
	tw.set("SMlate", "undelivered", 30003)
	var mu sync.Mutex
	calls := 0
	claimAt := t0.Add(time.Minute)
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			return claimAt // the claim
		}
		return claimAt.Add(50 * time.Second) // its turn: 10 s of a 1 min claim left
	}
	handledN := 0
	c := notify.NewReceiptChecker(notify.ReceiptCheckOptions{
		Store: st, Twilio: tw, Log: quiet(), Now: now,
		Handle: func(ctx context.Context, school string, m visit.Message, status string, code int) error {
			handledN++
			return settle(ctx, st, school, m, status, code, claimAt)
		},
	})
	if n, _ := c.Sweep(t.Context()); n != 1 || tw.times("SMlate") != 0 || handledN != 0 {
		t.Fatalf("claimed %d, asked %d, handled %d; want the check claimed and left", n, tw.times("SMlate"), handledN)
	}
	checks, _ := st.ReceiptChecks(t.Context(), "s1")
	if !checks["late"].Equal(claimAt.Add(time.Minute)) {
		t.Fatalf("check due %v, want at the end of the claim (%v)", checks["late"], claimAt.Add(time.Minute))
	}
	// Claimed again when that claim ends, with a whole lease: done.
	claimAt, calls = claimAt.Add(time.Minute), -1000
	c.Sweep(t.Context())
	if tw.times("SMlate") != 1 || handledN != 1 {
		t.Fatalf("asked %d, handled %d after the claim ended; want once each", tw.times("SMlate"), handledN)
	}
}

// A check that finds a failure recorded and held by another handler (the receipt
// itself came a moment ago and is being handled) does not end: it looks again
// when that hold would have lapsed, and finishes the handling if the holder died.
func TestReceiptCheckWaitsForAHeldHandling(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := store.NewWithClient(srv.Client(), "vigil:", quiet())
	sent(t, st, t0, "held")
	// The webhook recorded the failure 1 s before the check and then died.
	if _, _, err := st.RecordDelivery(t.Context(), "s1", "held", "undelivered", 30003, false, "webhook", t0.Add(59*time.Second)); err != nil {
		t.Fatal(err)
	}
	tw := &twilioStatuses{status: map[string]sms.Status{}, fail: map[string]error{}, asked: map[string]int{}}
	now := t0.Add(time.Minute)
	handledN := 0
	c := notify.NewReceiptChecker(notify.ReceiptCheckOptions{
		Store: st, Twilio: tw, Log: quiet(), Now: func() time.Time { return now },
		// As the service does: handle only what RecordDelivery says is pending.
		Handle: func(ctx context.Context, school string, m visit.Message, status string, code int) error {
			_, pending, err := st.RecordDelivery(ctx, school, m.ID, status, code, false, "check", now)
			if err != nil || !pending {
				return err
			}
			handledN++
			return st.DeliveryHandled(ctx, school, m.ID, status)
		},
	})
	c.Sweep(t.Context())
	checks, _ := st.ReceiptChecks(t.Context(), "s1")
	if handledN != 0 || !checks["held"].Equal(now.Add(store.HandleFor+time.Second)) {
		t.Fatalf("handled %d, check due %v; want it left to its holder, looked at again when the hold lapses", handledN, checks["held"])
	}
	now = checks["held"]
	c.Sweep(t.Context())
	if checks, _ = st.ReceiptChecks(t.Context(), "s1"); handledN != 1 || len(checks) != 0 {
		t.Fatalf("after the hold lapsed: handled %d, checks %v; want handled once, check ended", handledN, checks)
	}
}
