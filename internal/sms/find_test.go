package sms_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/sms"
	"github.com/vigil-safety/vigil/internal/sms/smstest"
)

// clock is a settable clock for the fake's records.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

var day = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

func TestFindSent(t *testing.T) {
	t.Parallel()
	clk := &clock{t: day}
	fake := smstest.NewServer(t, account, smstest.WithClock(clk.now))
	c := newClient(t, fake, nil)
	ctx := t.Context()

	send := func(at time.Time, to, body string) string {
		t.Helper()
		clk.set(at)
		sid, err := c.SendSMS(ctx, sms.Outbound{To: to, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		return sid
	}
	send(day.Add(-24*time.Hour), officer, "OVERDUE: Jane Doe") // yesterday, same text
	send(day, officer, "OVERDUE: Jane Doe")                    // before since
	want := send(day.Add(10*time.Minute), officer, "OVERDUE: Jane Doe\nReply ACK")
	send(day.Add(11*time.Minute), office, "OVERDUE: Jane Doe") // another number
	send(day.Add(12*time.Minute), officer, "Reminder: due back 14:30")

	since := day.Add(5 * time.Minute)
	cases := []struct {
		to, body string
		since    time.Time
		sid      string
	}{
		{officer, "OVERDUE: Jane Doe\nReply ACK", since, want},
		{officer, "OVERDUE: Jane Doe\nReply ACK", day.Add(10 * time.Minute), want}, // at since exactly
		{officer, "OVERDUE: Jane Doe\nReply ACK", day.Add(11 * time.Minute), ""},   // created before since
		{officer, "OVERDUE: Jane Doe", since, ""},                                  // only before since, or to another number
		{officer, "OVERDUE: Jane Doe\nReply", since, ""},                           // not exactly the body
		{"+447700900999", "OVERDUE: Jane Doe\nReply ACK", since, ""},               // nothing to that number
	}
	for i, tc := range cases {
		sid, found, err := c.FindSent(ctx, tc.to, tc.body, tc.since)
		if err != nil {
			t.Fatalf("case %d: FindSent: %v", i, err)
		}
		if found != (tc.sid != "") || sid != tc.sid {
			t.Errorf("case %d: FindSent(%s, %q, %v) = %q, %v; want %q", i, tc.to, tc.body, tc.since, sid, found, tc.sid)
		}
	}

	// Twilio filters by day: the request asks for since's UTC day onwards.
	lk := fake.Lookups()[0]
	if lk.Resource != "Messages" || lk.Query.Get("To") != officer || lk.Query.Get("DateSent>") != "2026-06-01T00:00:00Z" {
		t.Errorf("lookup = %s %v, want Messages To=%s DateSent>=2026-06-01", lk.Resource, lk.Query, officer)
	}
}

// The point of FindSent: a send that timed out on the client but reached Twilio
// is found there.
func TestFindSentFindsAHungSend(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	fake.Hang(officer, make(chan struct{}))
	c := newClient(t, fake, func(o *sms.Options) { o.HTTPClient = &http.Client{Timeout: 50 * time.Millisecond} })
	since := time.Now().Add(-time.Minute)

	_, err := c.SendSMS(t.Context(), sms.Outbound{To: officer, Body: "PANIC"})
	var se *sms.Error
	if !errors.As(err, &se) || !se.Uncertain {
		t.Fatalf("SendSMS: %v, want an uncertain error", err)
	}
	sent := fake.WaitSent(5*time.Second, smstest.AtLeast[smstest.Message](1))
	sid, found, err := c.FindSent(t.Context(), officer, "PANIC", since)
	if err != nil || !found || sid != sent[0].SID {
		t.Errorf("FindSent = %q, %v, %v; want %q", sid, found, err, sent[0].SID)
	}
}

// A look-up reads every page: the message asked for is the oldest of many.
func TestFindSentReadsEveryPage(t *testing.T) {
	t.Parallel()
	clk := &clock{t: day}
	fake := smstest.NewServer(t, account, smstest.WithClock(clk.now))
	c := newClient(t, fake, nil)
	var first string
	for i := range 230 {
		clk.set(day.Add(time.Duration(i) * time.Second))
		sid, err := c.SendSMS(t.Context(), sms.Outbound{To: officer, Body: fmt.Sprintf("reminder %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = sid
		}
	}
	sid, found, err := c.FindSent(t.Context(), officer, "reminder 0", day)
	if err != nil || !found || sid != first {
		t.Fatalf("FindSent = %q, %v, %v; want %q", sid, found, err, first)
	}
	lks := fake.Lookups()
	if len(lks) != 3 {
		t.Fatalf("%d lookups, want 3 pages of at most 100", len(lks))
	}
	if got := lks[2].Query; got.Get("Page") != "2" || got.Get("PageToken") == "" || got.Get("To") != officer || got.Get("DateSent>") == "" {
		t.Errorf("third page asked for with %v, want the filters, Page=2 and a PageToken", got)
	}
}

func TestFindCall(t *testing.T) {
	t.Parallel()
	clk := &clock{t: day}
	fake := smstest.NewServer(t, account, smstest.WithClock(clk.now))
	c := newClient(t, fake, nil)
	ctx := t.Context()
	if _, err := c.PlaceCall(ctx, sms.Call{To: office, TwiML: "<Response/>"}); err != nil {
		t.Fatal(err)
	}
	clk.set(day.Add(10 * time.Minute))
	want, err := c.PlaceCall(ctx, sms.Call{To: office, TwiML: "<Response/>"})
	if err != nil {
		t.Fatal(err)
	}
	if sid, found, err := c.FindCall(ctx, office, day.Add(5*time.Minute)); err != nil || !found || sid != want {
		t.Errorf("FindCall = %q, %v, %v; want %q", sid, found, err, want)
	}
	if sid, found, err := c.FindCall(ctx, office, day.Add(11*time.Minute)); err != nil || found {
		t.Errorf("FindCall after the last call = %q, %v, %v; want not found", sid, found, err)
	}
	if sid, found, err := c.FindCall(ctx, officer, day); err != nil || found {
		t.Errorf("FindCall to another number = %q, %v, %v; want not found", sid, found, err)
	}
	if q := fake.Lookups()[0].Query; q.Get("StartTime>") != "2026-06-01T00:00:00Z" || q.Get("To") != office {
		t.Errorf("lookup query %v, want To and StartTime>", q)
	}
}

// A failed look-up is an *Error that may simply be repeated: listing changes
// nothing at Twilio.
func TestFindFailureIsRetryable(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	c := newClient(t, fake, nil)
	fake.FailNextLookup(1, http.StatusInternalServerError, 20500)
	_, found, err := c.FindSent(t.Context(), officer, "PANIC", day)
	checkError(t, err, sms.Error{HTTPStatus: 500, Code: 20500, Retryable: true}, "server_error")
	if found {
		t.Error("found after a failed look-up")
	}

	// A look-up that times out after it was written is not "uncertain".
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(block); srv.Close() })
	c, err = sms.New(sms.Options{AccountSID: account, AuthToken: token, From: from, APIURL: srv.URL,
		HTTPClient: &http.Client{Timeout: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.FindCall(t.Context(), officer, day)
	checkError(t, err, sms.Error{Retryable: true}, "timeout")
}

func TestConsoleFindsNothing(t *testing.T) {
	t.Parallel()
	c := sms.NewConsole(&discard{})
	if _, err := c.SendSMS(t.Context(), sms.Outbound{To: officer, Body: "PANIC"}); err != nil {
		t.Fatal(err)
	}
	if _, found, err := c.FindSent(t.Context(), officer, "PANIC", day); found || err != nil {
		t.Errorf("Console.FindSent = %v, %v; want not found", found, err)
	}
	if _, found, err := c.FindCall(t.Context(), officer, day); found || err != nil {
		t.Errorf("Console.FindCall = %v, %v; want not found", found, err)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
