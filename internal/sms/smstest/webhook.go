package smstest

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/vigil-safety/vigil/internal/sms"
)

// PostSigned posts form to baseURL+path as Twilio would post a webhook: form
// encoded, with X-Twilio-Signature computed under authToken over publicURL+path
// (the URL configured at Twilio, which is what Vigil checks the signature
// against). path may carry a query. A nil client means http.DefaultClient. It
// fails the test when no answer comes back; the caller closes the body.
func PostSigned(t testing.TB, client *http.Client, baseURL, publicURL, path, authToken string, form url.Values) *http.Response {
	t.Helper()
	return post(t, client, strings.TrimSuffix(baseURL, "/")+path, sms.Sign(authToken, strings.TrimSuffix(publicURL, "/")+path, form), form)
}

// PostUnsigned posts form like PostSigned with the given signature header value
// (empty for none), to check that forged requests are refused.
func PostUnsigned(t testing.TB, client *http.Client, baseURL, path, signature string, form url.Values) *http.Response {
	t.Helper()
	return post(t, client, strings.TrimSuffix(baseURL, "/")+path, signature, form)
}

func post(t testing.TB, client *http.Client, target, signature string, form url.Values) *http.Response {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatalf("smstest: build webhook request to %s: %v", target, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "TwilioProxy/1.1")
	if signature != "" {
		req.Header.Set(sms.SignatureHeader, signature)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("smstest: post webhook to %s: %v", target, err)
	}
	return res
}

// InboundSMS returns the form Twilio posts to the SMS webhook when 'from' texts
// body to the Twilio number 'to', with a fresh MessageSid. Post the same form
// twice to simulate Twilio retrying a webhook.
func (s *Server) InboundSMS(from, to, body string) url.Values {
	s.mu.Lock()
	s.seq++
	sid := fmt.Sprintf("SM%032x", s.seq)
	s.mu.Unlock()
	return url.Values{
		"AccountSid":    {s.accountSID},
		"ApiVersion":    {apiVersion},
		"Body":          {body},
		"From":          {from},
		"MessageSid":    {sid},
		"NumMedia":      {"0"},
		"NumSegments":   {"1"},
		"SmsMessageSid": {sid},
		"SmsSid":        {sid},
		"SmsStatus":     {"received"},
		"To":            {to},
	}
}

// MessageStatus returns the status callback form Twilio posts to
// m.StatusCallback when m reaches status ("sent", "delivered", "undelivered",
// "failed", ...), with ErrorCode when errorCode is not 0.
func (s *Server) MessageStatus(m Message, status string, errorCode int) url.Values {
	f := url.Values{
		"AccountSid":    {s.accountSID},
		"ApiVersion":    {apiVersion},
		"From":          {m.From},
		"MessageSid":    {m.SID},
		"MessageStatus": {status},
		"SmsSid":        {m.SID},
		"SmsStatus":     {status},
		"To":            {m.To},
	}
	if m.MessagingServiceSID != "" {
		f.Set("MessagingServiceSid", m.MessagingServiceSID)
	}
	if errorCode != 0 {
		f.Set("ErrorCode", strconv.Itoa(errorCode))
	}
	return f
}

// CallStatus returns the status callback form Twilio posts to c.StatusCallback
// when c reaches status ("ringing", "in-progress", "completed", "busy",
// "no-answer", "failed", ...).
func (s *Server) CallStatus(c CallRecord, status string) url.Values {
	return url.Values{
		"AccountSid":     {s.accountSID},
		"ApiVersion":     {apiVersion},
		"CallSid":        {c.SID},
		"CallStatus":     {status},
		"CallbackSource": {"call-progress-events"},
		"Direction":      {"outbound-api"},
		"From":           {c.From},
		"To":             {c.To},
	}
}

// Gather returns the form Twilio posts to a <Gather> action when the person on
// call c presses digits.
func (s *Server) Gather(c CallRecord, digits string) url.Values {
	return url.Values{
		"AccountSid": {s.accountSID},
		"ApiVersion": {apiVersion},
		"CallSid":    {c.SID},
		"CallStatus": {"in-progress"},
		"Digits":     {digits},
		"Direction":  {"outbound-api"},
		"From":       {c.From},
		"To":         {c.To},
	}
}
