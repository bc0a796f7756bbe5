package smstest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/sms"
	"github.com/vigil-safety/vigil/internal/sms/smstest"
)

const (
	account = "AC0123456789abcdef0123456789abcdef"
	from    = "+441332000900"
	officer = "+447700900101"
	office  = "+441332000001"
)

func newClient(t *testing.T, fake *smstest.Server, hc *http.Client) *sms.Client {
	t.Helper()
	c, err := sms.New(sms.Options{AccountSID: account, AuthToken: fake.AuthToken(), From: from, APIURL: fake.URL(), HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWaitSentWakesOnSend(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	c := newClient(t, fake, nil)
	go func() {
		for _, body := range []string{"one", "two", "three"} {
			if _, err := c.SendSMS(context.Background(), sms.Outbound{To: officer, Body: body}); err != nil {
				t.Error(err)
			}
		}
	}()
	got := fake.WaitSent(5*time.Second, func(ms []smstest.Message) bool {
		return len(ms) > 0 && ms[len(ms)-1].Body == "three"
	})
	if len(got) != 3 {
		t.Errorf("WaitSent returned %d messages, want 3", len(got))
	}
}

// fatalRecorder stands in for a test to see what WaitSent fails with.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestWaitSentTimeoutDumpsWhatWasSent(t *testing.T) {
	t.Parallel()
	rec := &fatalRecorder{TB: t}
	fake := smstest.NewServer(rec, account)
	if _, err := newClient(t, fake, nil).SendSMS(t.Context(), sms.Outbound{To: officer, Body: "Reminder"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fake.WaitSent(20*time.Millisecond, smstest.AtLeast[smstest.Message](2))
	}()
	<-done
	if !strings.Contains(rec.msg, "not as expected after 20ms") || !strings.Contains(rec.msg, `body="Reminder"`) {
		t.Errorf("failure message %q does not dump the sent message", rec.msg)
	}
}

func TestFailNextThenAccept(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	fake.FailNext(2, 429, 20429)
	c := newClient(t, fake, nil)
	for i, wantRetryable := range []bool{true, true, false} {
		_, err := c.SendSMS(t.Context(), sms.Outbound{To: officer, Body: "x"})
		if (err != nil) != wantRetryable {
			t.Fatalf("send %d: err = %v, want failure %v", i, err, wantRetryable)
		}
	}
	att := fake.Attempts()
	if len(att) != 3 || att[0].HTTPStatus != 429 || att[0].Code != 20429 || att[1].Accepted() || !att[2].Accepted() {
		t.Errorf("attempts = %+v", att)
	}
	if len(fake.Sent()) != 1 {
		t.Errorf("Sent() has %d, want only the accepted one", len(fake.Sent()))
	}
}

func TestFailNumberIsSMSOnly(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	fake.FailNumber(officer, 400, 21610)
	c := newClient(t, fake, nil)
	if _, err := c.SendSMS(t.Context(), sms.Outbound{To: officer, Body: "x"}); err == nil {
		t.Fatal("SMS to an opted-out number accepted")
	}
	// An officer who opted out can still be phoned.
	if _, err := c.PlaceCall(t.Context(), sms.Call{To: officer, TwiMLURL: "https://vigil.example.org/v"}); err != nil {
		t.Fatalf("call: %v", err)
	}
	// Opting back in lifts the fault.
	fake.FailNumber(officer, 0, 0)
	if _, err := c.SendSMS(t.Context(), sms.Outbound{To: officer, Body: "x"}); err != nil {
		t.Fatalf("after lifting: %v", err)
	}
	fake.FailCall(office, 400, 21217)
	if _, err := c.PlaceCall(t.Context(), sms.Call{To: office, TwiMLURL: "https://vigil.example.org/v"}); err == nil {
		t.Fatal("FailCall ignored")
	}
}

func TestCloseDoesNotWaitForHeldRequests(t *testing.T) {
	t.Parallel()
	result := make(chan error, 1)
	t.Run("server", func(t *testing.T) {
		fake := smstest.NewServer(t, account)
		fake.Hang(officer, make(chan struct{})) // never released
		wrote := make(chan struct{})
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { close(wrote) },
		})
		c := newClient(t, fake, &http.Client{}) // no timeout: only Close can end it
		go func() {
			_, err := c.SendSMS(ctx, sms.Outbound{To: officer, Body: "x"})
			result <- err
		}()
		<-wrote
	}) // the server's cleanup runs here and must return
	select {
	case err := <-result:
		if err == nil {
			t.Error("held send succeeded after Close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("held send did not end after Close")
	}
}

func TestDelayAnswersLate(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	fake.Delay(officer, 50*time.Millisecond)
	c := newClient(t, fake, nil)
	start := time.Now()
	if _, err := c.SendSMS(t.Context(), sms.Outbound{To: officer, Body: "x"}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("answered after %v, want at least 50ms", d)
	}
}

func TestMessagingServiceAnswer(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account, smstest.WithAuthToken("othertoken"))
	c, err := sms.New(sms.Options{AccountSID: account, AuthToken: "othertoken", MessagingServiceSID: "MG1", APIURL: fake.URL()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendSMS(t.Context(), sms.Outbound{To: officer, Body: "x"}); err != nil {
		t.Fatal(err)
	}
	if m := fake.Sent()[0]; m.MessagingServiceSID != "MG1" || m.From != "" {
		t.Errorf("recorded %+v", m)
	}
}

func TestSegments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		body         string
		wantSegments int
		wantGSM      bool
	}{
		{"one GSM segment", strings.Repeat("a", 160), 1, true},
		{"two GSM segments", strings.Repeat("a", 161), 2, true},
		// Extension characters cost two septets.
		{"extension chars", strings.Repeat("€", 80), 1, true},
		{"extension overflow", strings.Repeat("€", 81), 2, true},
		// A curly quote makes the whole message UCS-2.
		{"curly quote", "It’s " + strings.Repeat("a", 66), 2, false},
		{"emoji", "ok 👍", 1, false},
	}
	for _, tt := range tests {
		if n, gsm := smstest.Segments(tt.body); n != tt.wantSegments || gsm != tt.wantGSM {
			t.Errorf("%s: Segments = %d, %v; want %d, %v", tt.name, n, gsm, tt.wantSegments, tt.wantGSM)
		}
	}
}

func TestPostSignedIsValid(t *testing.T) {
	t.Parallel()
	const public = "https://vigil.example.org"
	fake := smstest.NewServer(t, account)
	type seen struct {
		path  string
		valid bool
	}
	got := make(chan seen, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		got <- seen{r.URL.RequestURI(), sms.ValidSignature(fake.AuthToken(), public+r.URL.RequestURI(), r.PostForm, r.Header.Get(sms.SignatureHeader))}
	}))
	t.Cleanup(srv.Close)

	res := smstest.PostSigned(t, srv.Client(), srv.URL, public, "/twilio/voice/gather?alert=a1", fake.AuthToken(), url.Values{"Digits": {"1"}})
	res.Body.Close()
	if s := <-got; !s.valid || s.path != "/twilio/voice/gather?alert=a1" {
		t.Errorf("signed request: %+v, want valid at /twilio/voice/gather?alert=a1", s)
	}
	res = smstest.PostUnsigned(t, srv.Client(), srv.URL, "/twilio/sms", "forged", fake.InboundSMS(officer, from, "IN"))
	res.Body.Close()
	if s := <-got; s.valid {
		t.Errorf("forged signature accepted")
	}
}

func TestCallbackFormsParse(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	c := newClient(t, fake, nil)
	if _, err := c.SendSMS(t.Context(), sms.Outbound{To: officer, Body: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PlaceCall(t.Context(), sms.Call{To: office, TwiMLURL: "https://vigil.example.org/v"}); err != nil {
		t.Fatal(err)
	}
	m, call := fake.Sent()[0], fake.Calls()[0]

	st, err := sms.ParseStatus(fake.MessageStatus(m, "undelivered", 30003))
	if err != nil || st.MessageSID != m.SID || st.ErrorCode != 30003 || !st.Failed() {
		t.Errorf("message status = %+v, %v", st, err)
	}
	st, err = sms.ParseStatus(fake.CallStatus(call, "no-answer"))
	if err != nil || st.CallSID != call.SID || !st.IsCall() || !st.Failed() {
		t.Errorf("call status = %+v, %v", st, err)
	}
	in1, in2 := fake.InboundSMS(officer, from, "IN"), fake.InboundSMS(officer, from, "IN")
	if in1.Get("MessageSid") == in2.Get("MessageSid") || in1.Get("Body") != "IN" {
		t.Errorf("inbound forms %v, %v", in1, in2)
	}
	if g := fake.Gather(call, "1"); g.Get("Digits") != "1" || g.Get("CallSid") != call.SID {
		t.Errorf("gather form %v", g)
	}
}
