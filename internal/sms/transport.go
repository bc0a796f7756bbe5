package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twilio/twilio-go/client"
)

// twilioAPIHost is the host twilio-go's v2010 API service builds its URLs with;
// exchange sends them to Options.APIURL instead.
const twilioAPIHost = "api.twilio.com"

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// Compile-time check that exchange is what twilio-go's services send through.
var _ client.BaseClient = (*exchange)(nil)

// exchange is one request to Twilio. It is the client.BaseClient that twilio-go's
// generated API service sends through, made afresh for each call so that it can
// carry the caller's context and record what happened on the wire: whether the
// request was written, and what HTTP status came back.
type exchange struct {
	c     *Client
	ctx   context.Context
	wrote atomic.Bool // the whole request reached the connection at least once
	// status is the HTTP status of the last answer, 0 if none came back. Written
	// by whichever goroutine sends (twilio-go fetches a list's later pages on a
	// goroutine of its own) and read once the twilio-go call has returned, which
	// orders the two.
	status int
}

// handler returns a twilio-go request handler over x. It is built by hand rather
// than with client.NewRequestHandler, which would read TWILIO_EDGE and
// TWILIO_REGION from the environment and reroute requests.
func (x *exchange) handler() *client.RequestHandler {
	return &client.RequestHandler{Client: x}
}

// AccountSid is the account in request paths.
func (x *exchange) AccountSid() string { return x.c.opts.AccountSID }

// SetTimeout does nothing: timeouts belong to Options.HTTPClient and to the
// caller's context.
func (x *exchange) SetTimeout(time.Duration) {}

// SetOauth does nothing: Vigil authenticates with the auth token.
func (x *exchange) SetOauth(client.OAuth) {}

// OAuth returns nil: Vigil authenticates with the auth token.
func (x *exchange) OAuth() client.OAuth { return nil }

// SendRequest sends one request built by twilio-go to Options.APIURL, with basic
// auth, under the caller's context. A 2xx answer is returned for twilio-go to
// decode; anything else becomes an *Error.
func (x *exchange) SendRequest(method, rawURL string, data url.Values,
	headers map[string]interface{}, body ...byte) (*http.Response, error) {
	target, err := x.c.target(rawURL)
	if err != nil {
		return nil, &Error{reason: "config", Err: err}
	}
	if len(body) > 0 {
		return nil, &Error{reason: "config", Err: errors.New("JSON request bodies are not supported")}
	}
	var rd io.Reader
	switch method {
	case http.MethodGet, http.MethodDelete:
		// A list's next page comes as a URL with its query and no data: keep it.
		if len(data) > 0 {
			q := target.Query()
			for k, vs := range data {
				q[k] = vs
			}
			target.RawQuery = q.Encode()
		}
	default:
		rd = strings.NewReader(data.Encode())
	}

	trace := &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				x.wrote.Store(true)
			}
		},
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(x.ctx, trace), method, target.String(), rd)
	if err != nil {
		return nil, &Error{reason: "config", Err: err}
	}
	for k, v := range headers {
		req.Header.Set(k, fmt.Sprint(v))
	}
	if rd != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "vigil twilio-go/"+client.LibraryVersion)
	req.SetBasicAuth(x.c.opts.AccountSID, x.c.opts.AuthToken)

	res, err := x.c.http.Do(req)
	if err != nil {
		return nil, x.transportError(err)
	}
	x.status = res.StatusCode
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		return res, nil
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
	if err != nil {
		return nil, httpError(res.StatusCode, 0, fmt.Errorf("read HTTP %d answer: %w", res.StatusCode, err))
	}
	var rest client.TwilioRestError
	if json.Unmarshal(raw, &rest) != nil || (rest.Code == 0 && rest.Message == "") {
		return nil, httpError(res.StatusCode, 0, fmt.Errorf("HTTP %d: %q", res.StatusCode, snippet(raw)))
	}
	return nil, httpError(res.StatusCode, rest.Code, &rest)
}

// classify turns the error of a twilio-go call made through x into an *Error
// whose text starts with op, what was being done.
func (x *exchange) classify(op string, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		// Made by SendRequest for this exchange alone: safe to amend.
		e.Err = fmt.Errorf("%s: %w", op, e.Err)
		return e
	}
	err = fmt.Errorf("%s: %w", op, err)
	if x.status != 0 {
		// Twilio answered 2xx, so the message or call was accepted, but its answer
		// could not be read (cut off, or not the JSON expected).
		return &Error{HTTPStatus: x.status, Uncertain: true, reason: "bad_response", Err: err}
	}
	return &Error{reason: "config", Uncertain: x.wrote.Load(), Err: err}
}

// transportError classifies a request that got no HTTP answer. Before the request
// was written (refused, reset or timed out while connecting, context ended early)
// it is safe to resend; after, Twilio may have acted on it.
func (x *exchange) transportError(err error) *Error {
	e := &Error{Err: err}
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		e.reason = "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		e.reason = "timeout"
	default:
		e.reason = "network"
	}
	if x.wrote.Load() {
		e.Uncertain = true
	} else {
		e.Retryable = true
	}
	return e
}

// target maps a URL twilio-go built for api.twilio.com onto Options.APIURL.
func (c *Client) target(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Host != twilioAPIHost {
		return nil, fmt.Errorf("unexpected Twilio host %q", u.Host)
	}
	t := *c.apiURL
	t.Path = c.apiURL.Path + u.Path
	t.RawQuery = u.RawQuery
	return &t, nil
}

// snippet returns the start of a non-JSON answer body, for error text.
func snippet(b []byte) string {
	const n = 200
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}
