package notify_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/notify"
	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/sms"
	"github.com/vigil-safety/vigil/internal/sms/smstest"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

const (
	account = "AC0123456789abcdef0123456789abcdef"
	officer = "+447700900201"
	// lease is short so that a message whose send was left unsettled comes back
	// quickly; clientTimeout makes a hung send end well within it.
	lease         = time.Second
	clientTimeout = 150 * time.Millisecond
)

// The app passes its Sender as the Checker: both kinds answer the question.
var (
	_ notify.Checker = (*sms.Client)(nil)
	_ notify.Checker = (*sms.Console)(nil)
)

// twilio is a fake Twilio and a real sms.Client talking to it with a short
// timeout: the Sender and the Checker of the dispatchers below.
func twilio(t *testing.T) (*smstest.Server, *sms.Client) {
	t.Helper()
	fake := smstest.NewServer(t, account)
	c, err := sms.New(sms.Options{AccountSID: account, AuthToken: fake.AuthToken(), From: "+441332000900", APIURL: fake.URL(),
		HTTPClient: &http.Client{Timeout: clientTimeout}})
	if err != nil {
		t.Fatal(err)
	}
	return fake, c
}

// offsetClock is the wall clock moved on by whatever a test adds.
type offsetClock struct{ d atomic.Int64 }

func (c *offsetClock) now() time.Time      { return time.Now().Add(time.Duration(c.d.Load())) }
func (c *offsetClock) add(d time.Duration) { c.d.Add(int64(d)) }

// crash claims the queued message and records a send attempt, then abandons it
// as a replica that died mid-send would.
func crash(t *testing.T, st *store.Store, now time.Time) {
	t.Helper()
	claimed, err := st.ClaimMessages(t.Context(), "s1", now, lease, 10)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	if err := st.RecordAttempt(t.Context(), claimed[0], now); err != nil {
		t.Fatal(err)
	}
}

// sids collects what OnSent is told.
type sids struct {
	mu  sync.Mutex
	got []string
	ch  chan string
}

func newSIDs() *sids { return &sids{ch: make(chan string, 10)} }

func (s *sids) onSent(ctx context.Context, sid string) {
	s.mu.Lock()
	s.got = append(s.got, sid)
	s.mu.Unlock()
	s.ch <- sid
}

func (s *sids) wait(t *testing.T) string {
	t.Helper()
	select {
	case sid := <-s.ch:
		return sid
	case <-time.After(10 * time.Second):
		t.Fatal("no send was recorded")
		return ""
	}
}

// A send that timed out on the client but reached Twilio is found there when the
// lease ends: it is recorded under Twilio's SID and no second SMS goes out.
func TestTimedOutSendIsFoundNotSentAgain(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := store.NewWithClient(srv.Client(), "vigil:", quiet())
	fake, client := twilio(t)
	fake.Hang(officer, make(chan struct{})) // every send to the officer times out on the client, and goes through
	queue(t, st, time.Now(), visit.Message{ID: "m1", Kind: visit.KindAlert, To: officer, Body: "OVERDUE: Jane Doe", Priority: visit.PriorityAlert, First: true})

	got := newSIDs()
	run(t, notify.New(notify.Options{Store: st, Sender: client, Checker: client, Log: quiet(), Lease: lease, Poll: 50 * time.Millisecond,
		OnSent: got.onSent}))
	sid := got.wait(t)
	waitDepth(t, st, 0)

	sent := fake.Sent()
	if len(sent) != 1 || len(fake.Attempts()) != 1 {
		t.Fatalf("Twilio got %d messages in %d requests, want exactly 1", len(sent), len(fake.Attempts()))
	}
	if sid != sent[0].SID {
		t.Errorf("recorded under %q, want Twilio's %q", sid, sent[0].SID)
	}
	if lk := fake.Lookups(); len(lk) == 0 || lk[0].Query.Get("To") != officer {
		t.Errorf("lookups %v, want Twilio asked about the officer's messages", lk)
	}
}

// A replica died after recording the attempt and before its request reached
// Twilio: after the lease, Twilio is asked, does not have it, and exactly one
// SMS goes out.
func TestCrashBeforeTwilioSendsOnceAfterTheLease(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := store.NewWithClient(srv.Client(), "vigil:", quiet())
	fake, client := twilio(t)
	start := time.Now()
	queue(t, st, start, visit.Message{ID: "m1", Kind: visit.KindAlert, To: officer, Body: "OVERDUE: Jane Doe", Priority: visit.PriorityAlert})
	crash(t, st, start)

	got := newSIDs()
	run(t, notify.New(notify.Options{Store: st, Sender: client, Checker: client, Log: quiet(), Lease: lease, Poll: 50 * time.Millisecond,
		OnSent: got.onSent}))
	sid := got.wait(t)
	waitDepth(t, st, 0)

	sent := fake.Sent()
	if len(sent) != 1 || sent[0].SID != sid {
		t.Fatalf("Twilio got %d messages (recorded %q), want exactly 1", len(sent), sid)
	}
	if sent[0].At.Before(start.Add(lease - 5*time.Millisecond)) { // the lease is kept in whole ms
		t.Errorf("sent %v after the crash, before the lease ended", sent[0].At.Sub(start))
	}
	if lk := fake.Lookups(); len(lk) != 1 {
		t.Errorf("%d lookups, want Twilio asked once before the send", len(lk))
	}
}

// After two crashes mid-send Vigil used to give the message up; when Twilio has
// it, it is recorded as sent instead, and nothing more goes out.
func TestTwoCrashesTwilioHasItIsRecordedSent(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := store.NewWithClient(srv.Client(), "vigil:", quiet())
	fake, client := twilio(t)
	clk := &offsetClock{}
	now := clk.now()
	queue(t, st, now, visit.Message{ID: "m1", Kind: visit.KindAlert, To: officer, Body: "OVERDUE: Jane Doe", Priority: visit.PriorityAlert})
	crash(t, st, now)
	crash(t, st, now.Add(2*lease))
	// The second replica's request did reach Twilio.
	want, err := client.SendSMS(t.Context(), sms.Outbound{To: officer, Body: "OVERDUE: Jane Doe"})
	if err != nil {
		t.Fatal(err)
	}
	clk.add(4 * lease)

	got := newSIDs()
	run(t, notify.New(notify.Options{Store: st, Sender: client, Checker: client, Log: quiet(), Lease: lease, Now: clk.now,
		Poll: 50 * time.Millisecond, OnSent: got.onSent,
		OnFailure: func(ctx context.Context, f notify.Failure) { t.Errorf("handed on as failed: %+v", f) }}))
	if sid := got.wait(t); sid != want {
		t.Errorf("recorded %q, want Twilio's %q", sid, want)
	}
	waitDepth(t, st, 0)
	if n := len(fake.Sent()); n != 1 {
		t.Errorf("Twilio got %d messages, want the 1 from before", n)
	}
}

// When Twilio cannot be asked, an alert goes out again (a missing alert is worse
// than a duplicate); a reminder waits and asks again, and is given up, not sent
// blindly, once it has waited too long.
func TestUnansweredCheck(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := store.NewWithClient(srv.Client(), "vigil:", quiet())
	fake, client := twilio(t)
	fake.FailNextLookup(1000, http.StatusServiceUnavailable, 0)
	clk := &offsetClock{}
	now := clk.now()
	const office = "+441332000001"
	queue(t, st, now,
		visit.Message{ID: "alert", Kind: visit.KindAlert, To: officer, Body: "OVERDUE: Jane Doe", Priority: visit.PriorityAlert},
		visit.Message{ID: "remind", Kind: visit.KindReminder, To: office, Body: "Reminder: due back 14:30", Priority: visit.PriorityNormal})
	claimed, err := st.ClaimMessages(t.Context(), "s1", now, lease, 10)
	if err != nil || len(claimed) != 2 {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	for _, o := range claimed {
		if err := st.RecordAttempt(t.Context(), o, now); err != nil {
			t.Fatal(err)
		}
	}

	failed := make(chan notify.Failure, 10)
	run(t, notify.New(notify.Options{Store: st, Sender: client, Checker: client, Log: quiet(), Lease: lease, Now: clk.now,
		Poll: 50 * time.Millisecond, OnFailure: func(ctx context.Context, f notify.Failure) { failed <- f }}))
	sent := fake.WaitSent(10*time.Second, smstest.AtLeast[smstest.Message](1))
	if sent[0].To != officer {
		t.Fatalf("sent %+v, want the alert", sent[0])
	}
	// The reminder is asked about again after its lease, and still not sent.
	fake.WaitLookups(10*time.Second, func(lks []smstest.Lookup) bool {
		n := 0
		for _, l := range lks {
			if l.Query.Get("To") == office {
				n++
			}
		}
		return n >= 2
	})
	if sent := fake.Sent(); len(sent) != 1 {
		t.Fatalf("Twilio got %d messages, want only the alert", len(sent))
	}
	clk.add(11 * time.Minute)
	select {
	case f := <-failed:
		if f.Message.ID != "remind" || f.Reason != "uncertain" {
			t.Errorf("handed on %+v, want the reminder as uncertain", f)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reminder was neither sent nor given up")
	}
	waitDepth(t, st, 0)
	if sent := fake.Sent(); len(sent) != 1 {
		t.Errorf("Twilio got %d messages, want only the alert", len(sent))
	}
}
