package sms_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/sms"
	"github.com/vigil-safety/vigil/internal/sms/smstest"
)

const (
	account  = "AC0123456789abcdef0123456789abcdef"
	from     = "+441332000900"
	callback = "https://vigil.example.org/twilio/status"
	officer  = "+447700900101"
	office   = "+441332000001"
)

// newClient returns a Client talking to fake, with options changed by edit.
func newClient(t *testing.T, fake *smstest.Server, edit func(*sms.Options)) *sms.Client {
	t.Helper()
	o := sms.Options{
		AccountSID:     account,
		AuthToken:      smstest.DefaultAuthToken,
		From:           from,
		APIURL:         fake.URL(),
		StatusCallback: callback,
	}
	if edit != nil {
		edit(&o)
	}
	c, err := sms.New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func TestSendSMSRecordsTheRequest(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	c := newClient(t, fake, nil)

	sid, err := c.SendSMS(t.Context(), sms.Outbound{To: officer, Body: "Reminder: due back 14:30.\nReply IN", ValidityPeriod: 10 * time.Minute})
	if err != nil {
		t.Fatalf("SendSMS: %v", err)
	}
	sent := fake.Sent()
	if len(sent) != 1 {
		t.Fatalf("sent %d messages, want 1", len(sent))
	}
	got := sent[0]
	want := smstest.Message{
		SID: sid, To: officer, From: from, Body: "Reminder: due back 14:30.\nReply IN",
		StatusCallback: callback, ValidityPeriod: 10 * time.Minute,
	}
	if got.SID != want.SID || got.To != want.To || got.From != want.From || got.Body != want.Body ||
		got.StatusCallback != want.StatusCallback || got.ValidityPeriod != want.ValidityPeriod || got.MessagingServiceSID != "" {
		t.Errorf("recorded %+v\nwant %+v", got, want)
	}
	if !strings.HasPrefix(sid, "SM") || len(sid) != 34 {
		t.Errorf("sid = %q, want SM + 32 hex digits", sid)
	}
	if got.Form.Get("ValidityPeriod") != "600" {
		t.Errorf("ValidityPeriod sent as %q, want 600", got.Form.Get("ValidityPeriod"))
	}
}

func TestSendSMSThroughMessagingService(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	c := newClient(t, fake, func(o *sms.Options) { o.MessagingServiceSID = "MG0123456789abcdef0123456789abcdef" })

	if _, err := c.SendSMS(t.Context(), sms.Outbound{To: officer, Body: "IN"}); err != nil {
		t.Fatalf("SendSMS: %v", err)
	}
	got := fake.Sent()[0]
	if got.MessagingServiceSID != "MG0123456789abcdef0123456789abcdef" || got.From != "" {
		t.Errorf("MessagingServiceSid = %q, From = %q; want the service and no From", got.MessagingServiceSID, got.From)
	}
	if got.ValidityPeriod != 0 || got.Form.Has("ValidityPeriod") {
		t.Errorf("ValidityPeriod sent although none was asked for: %q", got.Form.Get("ValidityPeriod"))
	}
}

func TestSendSMSValidityPeriodSeconds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   time.Duration
		want string
	}{
		{"whole seconds", 90 * time.Second, "90"},
		// Rounded up, so a message is never dropped earlier than asked.
		{"fraction rounds up", 1500 * time.Millisecond, "2"},
		// Below Twilio's minimum of 1 s.
		{"tiny", time.Millisecond, "1"},
		// Above Twilio's maximum of 10 h: clamped rather than refused.
		{"too long", 20 * time.Hour, "36000"},
	}
	fake := smstest.NewServer(t, account)
	c := newClient(t, fake, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			to := "+4477009" + strings.Repeat("0", 5-len(tt.want)) + tt.want
			if _, err := c.SendSMS(t.Context(), sms.Outbound{To: to, Body: "x", ValidityPeriod: tt.in}); err != nil {
				t.Fatalf("SendSMS: %v", err)
			}
			if got := fake.SentTo(to)[0].Form.Get("ValidityPeriod"); got != tt.want {
				t.Errorf("ValidityPeriod = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPlaceCall(t *testing.T) {
	t.Parallel()
	twiml := sms.VoiceAlertTwiML("Overdue alert.", "https://vigil.example.org/twilio/voice/a1/ack")
	tests := []struct {
		name          string
		call          sms.Call
		wantURL, want string
	}{
		// Twilio fetches the TwiML from Vigil.
		{"url", sms.Call{To: office, TwiMLURL: "https://vigil.example.org/twilio/voice/a1"}, "https://vigil.example.org/twilio/voice/a1", ""},
		// Inline TwiML when there is no URL.
		{"inline", sms.Call{To: office, TwiML: twiml}, "", twiml},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := smstest.NewServer(t, account)
			c := newClient(t, fake, nil)
			sid, err := c.PlaceCall(t.Context(), tt.call)
			if err != nil {
				t.Fatalf("PlaceCall: %v", err)
			}
			calls := fake.Calls()
			if len(calls) != 1 {
				t.Fatalf("placed %d calls, want 1", len(calls))
			}
			got := calls[0]
			if got.SID != sid || !strings.HasPrefix(sid, "CA") || got.To != office || got.From != from ||
				got.URL != tt.wantURL || got.TwiML != tt.want || got.StatusCallback != callback {
				t.Errorf("recorded %+v", got)
			}
			if want := []string{"answered", "completed"}; !slices.Equal(got.StatusCallbackEvents, want) {
				t.Errorf("StatusCallbackEvent = %q, want %q", got.StatusCallbackEvents, want)
			}
		})
	}
}

func TestPlaceCallNeedsFrom(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	c := newClient(t, fake, func(o *sms.Options) { o.From = ""; o.MessagingServiceSID = "MG1" })
	_, err := c.PlaceCall(t.Context(), sms.Call{To: office, TwiMLURL: "https://vigil.example.org/v"})
	var e *sms.Error
	if !errors.As(err, &e) || e.Reason() != "config" || e.Retryable || e.Uncertain {
		t.Fatalf("PlaceCall without From: %v, want a config *Error", err)
	}
	if n := len(fake.Attempts()); n != 0 {
		t.Errorf("%d requests reached Twilio, want 0", n)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	t.Parallel()
	_, err := sms.New(sms.Options{APIURL: "ftp://x"})
	if err == nil {
		t.Fatal("New accepted empty options")
	}
	for _, want := range []string{"account SID", "auth token", "From", "API URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestErrorClassification(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(fake *smstest.Server)
		to    string
		// timeout is the client's; 0 means none.
		timeout       time.Duration
		want          sms.Error
		wantReason    string
		wantPermanent bool
	}{
		// An officer who texted STOP: permanent, never retried by SMS.
		{"opted out", func(f *smstest.Server) { f.FailNumber(officer, 400, 21610) }, officer, 0,
			sms.Error{Code: 21610, HTTPStatus: 400}, "opted_out", true},
		// Twilio's own validation of the number.
		{"invalid number", nil, "07700 900101", 0,
			sms.Error{Code: 21211, HTTPStatus: 400}, "invalid_number", true},
		// A landline on an SMS list.
		{"not mobile", func(f *smstest.Server) { f.FailNumber(office, 400, 21614) }, office, 0,
			sms.Error{Code: 21614, HTTPStatus: 400}, "not_mobile", true},
		// Rate limited: try again later.
		{"429", func(f *smstest.Server) { f.FailNext(1, 429, 20429) }, officer, 0,
			sms.Error{Code: 20429, HTTPStatus: 429, Retryable: true}, "rate_limited", false},
		// A load balancer's HTML error page: no Twilio code, still retryable.
		{"503 html", func(f *smstest.Server) { f.FailNext(1, 503, 0) }, officer, 0,
			sms.Error{HTTPStatus: 503, Retryable: true}, "server_error", false},
		// Twilio's JSON 500.
		{"500 json", func(f *smstest.Server) { f.FailNext(1, 500, 20500) }, officer, 0,
			sms.Error{Code: 20500, HTTPStatus: 500, Retryable: true}, "server_error", false},
		// Answered after the client gave up: Twilio may well have sent it.
		{"hung", func(f *smstest.Server) { f.Hang(officer, make(chan struct{})) }, officer, 100 * time.Millisecond,
			sms.Error{Uncertain: true}, "timeout", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := smstest.NewServer(t, account)
			if tt.setup != nil {
				tt.setup(fake)
			}
			c := newClient(t, fake, func(o *sms.Options) {
				if tt.timeout > 0 {
					o.HTTPClient = &http.Client{Timeout: tt.timeout}
				}
			})
			_, err := c.SendSMS(t.Context(), sms.Outbound{To: tt.to, Body: "OVERDUE"})
			checkError(t, err, tt.want, tt.wantReason)
			if got := sms.IsPermanent(tt.want.Code); got != tt.wantPermanent {
				t.Errorf("IsPermanent(%d) = %v, want %v", tt.want.Code, got, tt.wantPermanent)
			}
		})
	}
}

// checkError asserts err is an *sms.Error classified like want.
func checkError(t *testing.T, err error, want sms.Error, wantReason string) {
	t.Helper()
	var e *sms.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *sms.Error", err, err)
	}
	if e.Code != want.Code || e.HTTPStatus != want.HTTPStatus || e.Retryable != want.Retryable || e.Uncertain != want.Uncertain {
		t.Errorf("got Code=%d HTTPStatus=%d Retryable=%v Uncertain=%v, want Code=%d HTTPStatus=%d Retryable=%v Uncertain=%v\n(%v)",
			e.Code, e.HTTPStatus, e.Retryable, e.Uncertain, want.Code, want.HTTPStatus, want.Retryable, want.Uncertain, err)
	}
	if e.Reason() != wantReason {
		t.Errorf("Reason() = %q, want %q", e.Reason(), wantReason)
	}
}

func TestHungSendWasAcceptedAfterAll(t *testing.T) {
	t.Parallel()
	// Why Uncertain matters: the client timed out, yet Twilio queued the message.
	fake := smstest.NewServer(t, account)
	fake.Hang(officer, make(chan struct{}))
	c := newClient(t, fake, func(o *sms.Options) { o.HTTPClient = &http.Client{Timeout: 50 * time.Millisecond} })

	_, err := c.SendSMS(t.Context(), sms.Outbound{To: officer, Body: "PANIC"})
	checkError(t, err, sms.Error{Uncertain: true}, "timeout")
	fake.WaitSent(5*time.Second, smstest.AtLeast[smstest.Message](1))
}

func TestCallerDeadlineAfterWriteIsUncertain(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	fake.Hang(office, make(chan struct{}))
	c := newClient(t, fake, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := c.PlaceCall(ctx, sms.Call{To: office, TwiMLURL: "https://vigil.example.org/v"})
	checkError(t, err, sms.Error{Uncertain: true}, "timeout")
}

func TestCanceledBeforeSendIsRetryable(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	c := newClient(t, fake, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := c.SendSMS(ctx, sms.Outbound{To: officer, Body: "IN"})
	checkError(t, err, sms.Error{Retryable: true}, "canceled")
	if n := len(fake.Attempts()); n != 0 {
		t.Errorf("%d requests reached Twilio, want 0", n)
	}
}

func TestConnectionRefusedIsRetryable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more

	c, err := sms.New(sms.Options{AccountSID: account, AuthToken: token, From: from, APIURL: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.SendSMS(t.Context(), sms.Outbound{To: officer, Body: "IN"})
	checkError(t, err, sms.Error{Retryable: true}, "network")
}

func TestUnreadable2xxIsUncertain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
	}{
		// Not JSON: accepted, but we cannot know the sid.
		{"garbage", "<html>ok</html>"},
		// JSON without a sid.
		{"no sid", `{"status":"queued"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusCreated)
				_, _ = w.Write([]byte(tt.body))
			}))
			t.Cleanup(srv.Close)
			c, err := sms.New(sms.Options{AccountSID: account, AuthToken: token, From: from, APIURL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.SendSMS(t.Context(), sms.Outbound{To: officer, Body: "IN"})
			checkError(t, err, sms.Error{HTTPStatus: 201, Uncertain: true}, "bad_response")
		})
	}
}

func TestWrongAuthToken(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	c := newClient(t, fake, func(o *sms.Options) { o.AuthToken = "wrong" })
	_, err := c.SendSMS(t.Context(), sms.Outbound{To: officer, Body: "IN"})
	checkError(t, err, sms.Error{Code: 20003, HTTPStatus: 401}, "auth")
	if len(fake.Sent()) != 0 {
		t.Errorf("message accepted with a wrong auth token")
	}
}

func TestAPIURLWithPathPrefix(t *testing.T) {
	t.Parallel()
	// A proxy in front of Twilio: APIURL's path is kept before Twilio's.
	paths := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths <- r.URL.Path
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"sid":"SM1"}`))
	}))
	t.Cleanup(srv.Close)
	c, err := sms.New(sms.Options{AccountSID: account, AuthToken: token, From: from, APIURL: srv.URL + "/twilio/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendSMS(t.Context(), sms.Outbound{To: officer, Body: "IN"}); err != nil {
		t.Fatal(err)
	}
	if got, want := <-paths, "/twilio/2010-04-01/Accounts/"+account+"/Messages.json"; got != want {
		t.Errorf("path = %q, want %q", got, want)
	}
}
