package sms

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
)

// Status is one status callback: Twilio's report on a message (MessageSid,
// MessageStatus) or a call (CallSid, CallStatus) that Vigil created with
// StatusCallback set.
type Status struct {
	MessageSID string // "SM..." for a message; empty for a call
	CallSID    string // "CA..." for a call; empty for a message
	// Status is MessageStatus (queued, sending, sent, delivered, undelivered,
	// failed, ...) or CallStatus (queued, initiated, ringing, in-progress,
	// completed, busy, no-answer, failed, canceled).
	Status    string
	ErrorCode int // Twilio error code when the message failed (30003, 30005, 21610, ...); 0 if none
	To        string
	From      string
}

// ParseStatus reads a status callback form. It fails when the form names neither
// a message nor a call, has no status, or has an ErrorCode that is not a number.
func ParseStatus(form url.Values) (Status, error) {
	s := Status{
		MessageSID: form.Get("MessageSid"),
		CallSID:    form.Get("CallSid"),
		To:         form.Get("To"),
		From:       form.Get("From"),
	}
	if s.MessageSID == "" {
		// Older callbacks carry the SMS* names only.
		s.MessageSID = form.Get("SmsSid")
	}
	switch {
	case s.MessageSID != "":
		s.CallSID = "" // a message sent during a call names the call too
		s.Status = first(form.Get("MessageStatus"), form.Get("SmsStatus"))
	case s.CallSID != "":
		s.Status = form.Get("CallStatus")
	default:
		return Status{}, errors.New("status callback: neither MessageSid nor CallSid")
	}
	if s.Status == "" {
		return Status{}, fmt.Errorf("status callback for %s: no status", s.SID())
	}
	if ec := form.Get("ErrorCode"); ec != "" {
		n, err := strconv.Atoi(ec)
		if err != nil {
			return Status{}, fmt.Errorf("status callback for %s: ErrorCode %q: %w", s.SID(), ec, err)
		}
		s.ErrorCode = n
	}
	return s, nil
}

// SID is the message or call SID.
func (s Status) SID() string { return first(s.MessageSID, s.CallSID) }

// IsCall reports whether s is about a call.
func (s Status) IsCall() bool { return s.MessageSID == "" && s.CallSID != "" }

// Failed reports whether the message or call ended without reaching anyone:
// undelivered or failed for a message; busy, no-answer, failed or canceled for a
// call. A "completed" call was answered, perhaps by voicemail: only the gathered
// digit says someone took charge.
func (s Status) Failed() bool {
	switch s.Status {
	case "undelivered", "failed", "busy", "no-answer", "canceled":
		return true
	}
	return false
}

// Final reports whether no later callback will change the outcome.
func (s Status) Final() bool {
	switch s.Status {
	case "delivered", "read", "completed":
		return true
	}
	return s.Failed()
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
