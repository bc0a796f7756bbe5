// Package sms is Vigil's adapter to Twilio: it sends SMS and places voice calls
// through Twilio's REST API (with twilio-go), classifies every failure at this
// boundary (Error), checks and makes webhook signatures (Sign, ValidSignature),
// writes the TwiML Vigil answers with (MessageTwiML, VoiceAlertTwiML) and reads
// status callbacks (ParseStatus). Console stands in for Twilio when no credentials
// are configured. Package smstest is a fake Twilio for tests.
//
// Nothing here logs or reads the clock: callers log the classified errors (whose
// text has phone numbers masked) and take time themselves.
package sms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

// Outbound is one SMS to send.
type Outbound struct {
	To   string // E.164
	Body string
	// ValidityPeriod, when not 0, is sent as ValidityPeriod in whole seconds
	// (rounded up, within Twilio's 1..36000): a message still queued at Twilio after
	// that long is dropped (status "failed", error 30036) instead of arriving late.
	ValidityPeriod time.Duration
}

// Call is one voice call to place.
type Call struct {
	To       string // E.164
	TwiMLURL string // Twilio fetches the call's TwiML from here (Url); or
	TwiML    string // inline TwiML (Twiml), used when TwiMLURL is empty
}

// Sender sends SMS and places calls. Client and Console implement it; consumers
// should declare the subset they need.
//
// Contract: a nil error means Twilio accepted the request and sid identifies it in
// status callbacks. A non-nil error is an *Error (use errors.As) saying whether the
// request may be retried as it is, may already have been accepted (Uncertain), or
// was refused. Neither method retries: retry policy, rate limits and deduplication
// belong to the caller.
type Sender interface {
	SendSMS(ctx context.Context, m Outbound) (sid string, err error)
	PlaceCall(ctx context.Context, c Call) (sid string, err error)
}

var (
	_ Sender = (*Client)(nil)
	_ Sender = (*Console)(nil)
)

// DefaultAPIURL is Twilio's REST API.
const DefaultAPIURL = "https://api.twilio.com"

// Twilio's limits on ValidityPeriod, in seconds.
const (
	minValiditySeconds = 1
	maxValiditySeconds = 36000
)

// callStatusEvents are the call progress events Twilio reports to StatusCallback.
// "completed" carries the final CallStatus (completed, busy, no-answer, failed,
// canceled); "answered" lets the audit log say when someone picked up.
var callStatusEvents = []string{"answered", "completed"}

// Options configure a Client.
type Options struct {
	AccountSID string
	AuthToken  string
	// From is the sender number. SMS use MessagingServiceSID instead when it is set
	// (Twilio then picks a sender from the service's pool); calls always use From.
	From                string
	MessagingServiceSID string
	// APIURL is where requests go: APIURL + "/2010-04-01/Accounts/{sid}/Messages.json"
	// and ".../Calls.json". Empty means DefaultAPIURL; tests give a fake's URL.
	APIURL string
	// StatusCallback is set as StatusCallback on every message and call (SPEC §6).
	StatusCallback string
	// HTTPClient carries the timeouts. Nil means a client with a 10 s timeout that
	// does not follow redirects.
	HTTPClient *http.Client
}

// Client sends through Twilio's REST API with twilio-go. It is safe for concurrent
// use.
//
// twilio-go builds the requests (parameter names and encoding, paths) and decodes
// the answers; the HTTP exchange itself is done here, through twilio-go's
// client.BaseClient interface, because twilio-go's own client ignores contexts,
// always talks to api.twilio.com (or an edge chosen by the TWILIO_EDGE and
// TWILIO_REGION environment variables), and cannot tell a timeout before the
// request was written from one after it.
type Client struct {
	opts   Options
	apiURL *url.URL
	http   *http.Client
}

// New checks o and returns a Client. It does not contact Twilio.
func New(o Options) (*Client, error) {
	var errs []error
	if o.AccountSID == "" {
		errs = append(errs, errors.New("account SID is empty"))
	}
	if o.AuthToken == "" {
		errs = append(errs, errors.New("auth token is empty"))
	}
	if o.From == "" && o.MessagingServiceSID == "" {
		errs = append(errs, errors.New("neither a From number nor a messaging service SID is set"))
	}
	if o.APIURL == "" {
		o.APIURL = DefaultAPIURL
	}
	u, err := url.Parse(o.APIURL)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("API URL: %w", err))
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		errs = append(errs, fmt.Errorf("API URL %q: want http(s)://host", o.APIURL))
	case u.RawQuery != "" || u.Fragment != "":
		errs = append(errs, fmt.Errorf("API URL %q: must not have a query or fragment", o.APIURL))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("twilio client: %w", err)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""

	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{
			Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	return &Client{opts: o, apiURL: u, http: hc}, nil
}

// SendSMS asks Twilio to send m and returns the message SID ("SM...").
// A failure is an *Error.
func (c *Client) SendSMS(ctx context.Context, m Outbound) (string, error) {
	p := &openapi.CreateMessageParams{}
	p.SetTo(m.To)
	p.SetBody(m.Body)
	if c.opts.MessagingServiceSID != "" {
		p.SetMessagingServiceSid(c.opts.MessagingServiceSID)
	} else {
		p.SetFrom(c.opts.From)
	}
	if m.ValidityPeriod > 0 {
		p.SetValidityPeriod(validitySeconds(m.ValidityPeriod))
	}
	if c.opts.StatusCallback != "" {
		p.SetStatusCallback(c.opts.StatusCallback)
	}

	ex := &exchange{c: c, ctx: ctx}
	msg, err := openapi.NewApiService(ex.handler()).CreateMessage(p)
	if err != nil {
		return "", ex.classify("create message", err)
	}
	if msg.Sid == nil || *msg.Sid == "" {
		return "", ex.classify("create message", errors.New("answer has no sid"))
	}
	return *msg.Sid, nil
}

// PlaceCall asks Twilio to call call.To from Options.From and play the TwiML at
// call.TwiMLURL (or call.TwiML). It returns the call SID ("CA..."). A failure is
// an *Error. Status callbacks are requested for the "answered" and "completed"
// events.
func (c *Client) PlaceCall(ctx context.Context, call Call) (string, error) {
	switch {
	case c.opts.From == "":
		return "", &Error{reason: "config", Err: errors.New("place call: no From number configured (a messaging service cannot place calls)")}
	case call.TwiMLURL == "" && call.TwiML == "":
		return "", &Error{reason: "config", Err: errors.New("place call: neither a TwiML URL nor TwiML given")}
	}
	p := &openapi.CreateCallParams{}
	p.SetTo(call.To)
	p.SetFrom(c.opts.From)
	if call.TwiMLURL != "" {
		p.SetUrl(call.TwiMLURL)
	} else {
		p.SetTwiml(call.TwiML)
	}
	if c.opts.StatusCallback != "" {
		p.SetStatusCallback(c.opts.StatusCallback)
		p.SetStatusCallbackMethod(http.MethodPost)
		p.SetStatusCallbackEvent(callStatusEvents)
	}

	ex := &exchange{c: c, ctx: ctx}
	res, err := openapi.NewApiService(ex.handler()).CreateCall(p)
	if err != nil {
		return "", ex.classify("create call", err)
	}
	if res.Sid == nil || *res.Sid == "" {
		return "", ex.classify("create call", errors.New("answer has no sid"))
	}
	return *res.Sid, nil
}

// validitySeconds converts d to whole seconds, rounded up and kept within
// Twilio's accepted range so that a configuration value never makes a send fail.
func validitySeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return min(max(s, minValiditySeconds), maxValiditySeconds)
}
