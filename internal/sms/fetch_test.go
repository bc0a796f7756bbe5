package sms_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/sms"
	"github.com/vigil-safety/vigil/internal/sms/smstest"
)

func TestFetchStatusOfMessage(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	c := newClient(t, fake, nil)
	sid, err := c.SendSMS(t.Context(), sms.Outbound{To: officer, Body: "OVERDUE: Jane Doe"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.FetchStatus(t.Context(), sid)
	if err != nil {
		t.Fatalf("FetchStatus: %v", err)
	}
	want := sms.Status{MessageSID: sid, Status: "delivered", To: officer, From: from}
	if got != want {
		t.Errorf("FetchStatus = %+v, want %+v", got, want)
	}
	if !got.Final() || got.Failed() || got.IsCall() {
		t.Errorf("Final %v Failed %v IsCall %v; want a final, delivered message", got.Final(), got.Failed(), got.IsCall())
	}
	lks := fake.WaitLookups(5*time.Second, smstest.AtLeast[smstest.Lookup](1))
	if lk := lks[0]; len(lks) != 1 || lk.Resource != "Message" || lk.Query.Get("Sid") != sid || lk.HTTPStatus != http.StatusOK {
		t.Errorf("lookups = %+v, want one GET of Message %s", lks, sid)
	}
}

// A message sent through a messaging service has no From until Twilio picks
// a sender; the fake never picks one.
func TestFetchStatusThroughMessagingService(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	c := newClient(t, fake, func(o *sms.Options) { o.MessagingServiceSID = "MG0123456789abcdef0123456789abcdef" })
	sid, err := c.SendSMS(t.Context(), sms.Outbound{To: officer, Body: "IN"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.FetchStatus(t.Context(), sid)
	if err != nil || got.From != "" || got.To != officer || got.Status != "delivered" {
		t.Errorf("FetchStatus = %+v, %v; want delivered to %s with no From", got, err, officer)
	}
}

func TestFetchStatusOfCall(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	c := newClient(t, fake, nil)
	sid, err := c.PlaceCall(t.Context(), sms.Call{To: office, TwiMLURL: "https://vigil.example.org/twilio/voice/a1"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.FetchStatus(t.Context(), sid)
	if err != nil {
		t.Fatalf("FetchStatus: %v", err)
	}
	want := sms.Status{CallSID: sid, Status: "completed", To: office, From: from}
	if got != want || !got.IsCall() {
		t.Errorf("FetchStatus = %+v, want %+v", got, want)
	}

	fake.SetCallStatus(sid, "no-answer")
	if got, err := c.FetchStatus(t.Context(), sid); err != nil || got.Status != "no-answer" || !got.Failed() {
		t.Errorf("after SetCallStatus: FetchStatus = %+v, %v; want no-answer", got, err)
	}
	if lk := fake.Lookups()[0]; lk.Resource != "Call" || lk.Query.Get("Sid") != sid {
		t.Errorf("lookup = %s %v, want Call Sid=%s", lk.Resource, lk.Query, sid)
	}
}

func TestFetchStatusUndelivered(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	c := newClient(t, fake, nil)
	sid, err := c.SendSMS(t.Context(), sms.Outbound{To: officer, Body: "OVERDUE"})
	if err != nil {
		t.Fatal(err)
	}
	fake.SetMessageStatus(sid, "undelivered", sms.CodeUnreachable)
	got, err := c.FetchStatus(t.Context(), sid)
	if err != nil {
		t.Fatalf("FetchStatus: %v", err)
	}
	if got.Status != "undelivered" || got.ErrorCode != 30003 || !got.Failed() || !sms.IsPermanent(got.ErrorCode) {
		t.Errorf("FetchStatus = %+v, want undelivered with error code 30003", got)
	}
}

func TestFetchStatusUnknownSID(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	c := newClient(t, fake, nil)
	for _, sid := range []string{
		"SM" + fmt.Sprintf("%032x", 999),
		"MM" + fmt.Sprintf("%032x", 999),
		"CA" + fmt.Sprintf("%032x", 999),
	} {
		_, err := c.FetchStatus(t.Context(), sid)
		checkError(t, err, sms.Error{Code: sms.CodeNotFound, HTTPStatus: 404}, "not_found")
		if !sms.IsNotFound(err) {
			t.Errorf("IsNotFound(%v) = false for %s", err, sid)
		}
		if !sms.IsNotFound(fmt.Errorf("reconcile: %w", err)) {
			t.Error("IsNotFound does not see through wrapping")
		}
	}
	if n := len(fake.Lookups()); n != 3 {
		t.Errorf("%d lookups, want 3", n)
	}

	// An inbound message's SID is not one of ours.
	in := fake.InboundSMS(officer, from, "IN").Get("MessageSid")
	if _, err := c.FetchStatus(t.Context(), in); !sms.IsNotFound(err) {
		t.Errorf("FetchStatus(inbound %s) = %v, want not found", in, err)
	}
}

// Only message and call SIDs are fetched; anything else is refused before a
// request is made.
func TestFetchStatusRefusesOtherSIDs(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	c := newClient(t, fake, nil)
	for _, sid := range []string{"", "SM", "CA", "CONSOLE-1", "AC0123", "MG0123456789abcdef0123456789abcdef",
		"SM1/../../Calls/CA1", "SM1?x=y", "SM1.json", "sm0123"} {
		_, err := c.FetchStatus(t.Context(), sid)
		var e *sms.Error
		if !errors.As(err, &e) || e.Reason() != "config" || e.Retryable || e.Uncertain || sms.IsNotFound(err) {
			t.Errorf("FetchStatus(%q) = %v, want a config *Error", sid, err)
		}
	}
	if n := len(fake.Lookups()); n != 0 {
		t.Errorf("%d requests reached Twilio, want 0", n)
	}
}

// A fetch changes nothing at Twilio: a failure to read is retryable, and only
// a 404 is "not found".
func TestFetchStatusFailureIsRetryable(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	c := newClient(t, fake, nil)
	sid, err := c.SendSMS(t.Context(), sms.Outbound{To: officer, Body: "IN"})
	if err != nil {
		t.Fatal(err)
	}
	fake.FailNextLookup(1, http.StatusInternalServerError, 20500)
	_, err = c.FetchStatus(t.Context(), sid)
	checkError(t, err, sms.Error{HTTPStatus: 500, Code: 20500, Retryable: true}, "server_error")
	if sms.IsNotFound(err) {
		t.Errorf("IsNotFound(%v) = true", err)
	}
	fake.FailNextLookup(1, http.StatusServiceUnavailable, 0)
	_, err = c.FetchStatus(t.Context(), sid)
	checkError(t, err, sms.Error{HTTPStatus: 503, Retryable: true}, "server_error")

	// The fault is used up: the next fetch answers.
	if got, err := c.FetchStatus(t.Context(), sid); err != nil || got.Status != "delivered" {
		t.Errorf("FetchStatus after the faults = %+v, %v", got, err)
	}

	// A wrong auth token is refused, not "not found".
	c = newClient(t, fake, func(o *sms.Options) { o.AuthToken = "wrong" })
	_, err = c.FetchStatus(t.Context(), sid)
	checkError(t, err, sms.Error{Code: 20003, HTTPStatus: 401}, "auth")
}

func TestFetchStatusUnreadableAnswerIsRetryable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
	}{
		{"garbage", "<html>ok</html>"},
		{"no status", `{"sid":"SM00000000000000000000000000000001"}`},
		{"another message", `{"sid":"SM00000000000000000000000000000002","status":"delivered"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte(tt.body))
			}))
			t.Cleanup(srv.Close)
			c, err := sms.New(sms.Options{AccountSID: account, AuthToken: token, From: from, APIURL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.FetchStatus(t.Context(), "SM00000000000000000000000000000001")
			checkError(t, err, sms.Error{HTTPStatus: 200, Retryable: true}, "bad_response")
		})
	}
}
