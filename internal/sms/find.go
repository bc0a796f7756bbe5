package sms

import (
	"context"
	"time"

	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

// Bounds on what a look-up reads: messages and calls to one number since the
// start of one UTC day are few, and a look-up must end well within a lease.
const (
	findPageSize = 100
	findLimit    = 500
)

// FindSent looks for an outbound message to 'to' with exactly body that Twilio
// created at or after since, and returns its SID. It is how a caller whose send
// ended Uncertain (or whose process died mid-send) learns whether Twilio has the
// message before sending it again.
//
// Twilio filters lists by the day of DateSent only (DateSent> takes a date, and
// a time in it is ignored), so the list asked for starts at since's UTC day and
// DateCreated is compared here. Twilio's lists may lag a moment behind its
// creates, and a message still queued at Twilio has no DateSent yet; found false
// is therefore Twilio's best knowledge, not proof. A failure is an *Error
// (Retryable when the look-up may simply be repeated).
func (c *Client) FindSent(ctx context.Context, to, body string, since time.Time) (string, bool, error) {
	p := &openapi.ListMessageParams{}
	p.SetTo(to)
	p.SetDateSentAfter(utcDay(since))
	p.SetPageSize(findPageSize)
	p.SetLimit(findLimit)

	ex := &exchange{c: c, ctx: ctx}
	msgs, err := openapi.NewApiService(ex.handler()).ListMessage(p)
	if err != nil {
		return "", false, ex.classifyRead("list messages", err)
	}
	for _, m := range msgs {
		if m.Sid == nil || *m.Sid == "" || m.Body == nil || *m.Body != body ||
			m.To == nil || *m.To != to || inbound(m.Direction) {
			continue
		}
		if created, ok := twilioTime(m.DateCreated); ok && !created.Before(since) {
			return *m.Sid, true, nil
		}
	}
	return "", false, nil
}

// FindCall looks for an outbound call to 'to' that Twilio created at or after
// since, and returns its SID: FindSent for calls. Twilio filters calls by the day
// of StartTime; a call not yet dialled has none and may be missing.
func (c *Client) FindCall(ctx context.Context, to string, since time.Time) (string, bool, error) {
	p := &openapi.ListCallParams{}
	p.SetTo(to)
	p.SetStartTimeAfter(utcDay(since))
	p.SetPageSize(findPageSize)
	p.SetLimit(findLimit)

	ex := &exchange{c: c, ctx: ctx}
	calls, err := openapi.NewApiService(ex.handler()).ListCall(p)
	if err != nil {
		return "", false, ex.classifyRead("list calls", err)
	}
	for _, call := range calls {
		if call.Sid == nil || *call.Sid == "" || call.To == nil || *call.To != to || inbound(call.Direction) {
			continue
		}
		if created, ok := twilioTime(call.DateCreated); ok && !created.Before(since) {
			return *call.Sid, true, nil
		}
	}
	return "", false, nil
}

// classifyRead is classify for a request that changes nothing at Twilio: it
// cannot have half-happened, so a look-up that got no (readable) answer may
// simply be repeated.
func (x *exchange) classifyRead(op string, err error) *Error {
	e := x.classify(op, err)
	if e.Uncertain {
		e.Uncertain = false
		e.Retryable = true
	}
	return e
}

// utcDay is the start of t's day in UTC, the granularity of Twilio's date filters.
func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// inbound reports whether a listed message or call came to us rather than from us.
func inbound(direction *string) bool {
	return direction != nil && *direction == "inbound"
}

// twilioTime parses a date as Twilio's 2010 API writes them (RFC 2822, e.g.
// "Mon, 01 Jun 2026 09:00:00 +0000").
func twilioTime(s *string) (time.Time, bool) {
	if s == nil {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC1123Z, time.RFC1123, time.RFC3339} {
		if t, err := time.Parse(layout, *s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
