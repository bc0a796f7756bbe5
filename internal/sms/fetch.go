package sms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

// sidKind is what a SID names, read from its two-letter prefix.
type sidKind int

const (
	messageSID sidKind = iota + 1 // "SM..." (SMS) or "MM..." (MMS)
	callSID                       // "CA..."
)

// kindOf reads what sid names. It fails, with a "config" *Error, for anything
// but a Twilio message or call SID: a prefix followed by ASCII letters and
// digits only, so that the SID cannot change the path it is put in.
func kindOf(sid string) (sidKind, error) {
	var k sidKind
	switch {
	case strings.HasPrefix(sid, "SM"), strings.HasPrefix(sid, "MM"):
		k = messageSID
	case strings.HasPrefix(sid, "CA"):
		k = callSID
	}
	if k == 0 || len(sid) == 2 || strings.IndexFunc(sid, func(r rune) bool {
		return (r < '0' || r > '9') && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z')
	}) >= 0 {
		return 0, &Error{reason: "config", Err: fmt.Errorf("fetch status: %q is not a message (SM, MM) or call (CA) SID", sid)}
	}
	return k, nil
}

// FetchStatus asks Twilio for the current status of one message ("SM..." or
// "MM...") or call ("CA...") and returns it as a Status, as a status callback
// would have reported it: MessageSID, Status, ErrorCode (0 when Twilio gives
// none), To and From for a message (From is empty while a messaging service has
// not yet picked the sender); CallSID, Status, To and From for a call. It is how
// a caller learns the outcome of a message or call whose status callbacks did
// not arrive.
//
// Any other SID is refused with a "config" *Error before a request is made. A
// failure is an *Error: when Twilio has no such message or call (HTTP 404, code
// 20404) IsNotFound reports true for it and it is not Retryable; otherwise it is
// classified as FindSent's are (Retryable when the fetch may simply be repeated).
func (c *Client) FetchStatus(ctx context.Context, sid string) (Status, error) {
	kind, err := kindOf(sid)
	if err != nil {
		return Status{}, err
	}
	ex := &exchange{c: c, ctx: ctx}
	api := openapi.NewApiService(ex.handler())
	if kind == callSID {
		op := "fetch call " + sid
		call, err := api.FetchCall(sid, &openapi.FetchCallParams{})
		if err != nil {
			return Status{}, ex.classifyFetch(op, err)
		}
		if err := checkFetched(sid, call.Sid, call.Status); err != nil {
			return Status{}, ex.classifyRead(op, err)
		}
		return Status{CallSID: sid, Status: *call.Status, To: deref(call.To), From: deref(call.From)}, nil
	}
	op := "fetch message " + sid
	msg, err := api.FetchMessage(sid, &openapi.FetchMessageParams{})
	if err != nil {
		return Status{}, ex.classifyFetch(op, err)
	}
	if err := checkFetched(sid, msg.Sid, msg.Status); err != nil {
		return Status{}, ex.classifyRead(op, err)
	}
	s := Status{MessageSID: sid, Status: *msg.Status, To: deref(msg.To), From: deref(msg.From)}
	if msg.ErrorCode != nil {
		s.ErrorCode = *msg.ErrorCode
	}
	return s, nil
}

// IsNotFound reports whether err is (or wraps) the *Error FetchStatus returns
// when Twilio has no message or call with the SID asked for: one Vigil never
// created with this account, or one Twilio no longer keeps.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.HTTPStatus == http.StatusNotFound && e.Code == CodeNotFound
}

// classifyFetch is classifyRead for a fetch by SID, which marks Twilio's answer
// that it has no such resource as not found (see IsNotFound).
func (x *exchange) classifyFetch(op string, err error) *Error {
	e := x.classifyRead(op, err)
	if e.HTTPStatus == 404 && e.Code == CodeNotFound {
		e.reason = "not_found"
	}
	return e
}

// checkFetched checks that a fetched message or call is the one asked for and
// has a status.
func checkFetched(want string, sid, status *string) error {
	switch {
	case sid != nil && *sid != want:
		return fmt.Errorf("answer is for %s", *sid)
	case status == nil || *status == "":
		return errors.New("answer has no status")
	}
	return nil
}

// deref returns *s, or "" for nil.
func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
