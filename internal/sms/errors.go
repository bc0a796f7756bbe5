package sms

import (
	"fmt"
	"strings"
)

// Twilio error codes Vigil reacts to by name. The full meaning of each is at
// https://www.twilio.com/docs/api/errors/<code>.
const (
	CodeAuthenticate       = 20003 // bad account SID or auth token
	CodeNotFound           = 20404 // no such resource: account, or message or call asked for by SID
	CodeTooManyRequests    = 20429 // REST API rate limit or concurrency limit
	CodeInvalidTo          = 21211 // 'To' is not a valid phone number
	CodeRegionNotEnabled   = 21408 // geo permissions: SMS to that country not enabled
	CodeOptedOut           = 21610 // recipient replied STOP (or CANCEL, END, ...) to our sender
	CodeNotReachableBySMS  = 21612 // no route for this To/From pair
	CodeNotMobile          = 21614 // 'To' is not a mobile number (landline or invalid)
	CodeUnreachable        = 30003 // handset off, out of coverage or cannot take SMS
	CodeBlocked            = 30004 // destination blocked: opted out, carrier block, DND list
	CodeUnknownDestination = 30005 // number unknown or no longer in service
	CodeLandline           = 30006 // landline or unreachable carrier
)

// codeInfo is what Vigil knows about one Twilio error code: the metric label and
// whether sending the same SMS to the same number again can ever succeed soon.
type codeInfo struct {
	reason    string
	permanent bool
}

// codes is a read-only table. It lists the codes that appear in answers to POST Messages.json / Calls.json
// (2xxxx, 13xxx) and in status callbacks (30xxx). Codes not listed here are
// classified by HTTP status alone.
var codes = map[int]codeInfo{
	// Rate limits are the one transient class with a code.
	20429: {"rate_limited", false},

	// The destination number can never take this message.
	13224: {"invalid_number", true}, // voice: Twilio cannot call this number or it is invalid
	21211: {"invalid_number", true}, // invalid 'To' phone number
	21214: {"invalid_number", true}, // voice: 'To' phone number cannot be reached
	21217: {"invalid_number", true}, // voice: phone number does not appear to be valid
	21265: {"invalid_number", true}, // 'To' is a short code
	21401: {"invalid_number", true}, // invalid phone number
	21421: {"invalid_number", true}, // phone number is invalid
	21614: {"not_mobile", true},     // 'To' is not a valid mobile number
	21635: {"not_mobile", true},     // 'To' cannot be a landline
	30005: {"invalid_number", true}, // unknown destination handset (not in service)
	30006: {"not_mobile", true},     // landline or unreachable carrier

	// The recipient (or their carrier) refuses our messages.
	21610: {"opted_out", true}, // attempt to send to unsubscribed recipient (STOP)
	30004: {"blocked", true},   // message blocked
	21216: {"blocked", true},   // voice: call blocked by Twilio

	// Twilio will not route there from this account.
	21408: {"region_disabled", true}, // SMS permission not enabled for the region
	21215: {"region_disabled", true}, // voice: geo permission not enabled for the number
	21612: {"unreachable", true},     // 'To' not currently reachable via SMS (no route)
	// 30003 is often temporary for the handset (switched off, no signal), but the
	// carrier has already given up on this message: resending the same SMS minutes
	// later rarely helps, re-routing (voice call, next contact) does.
	30003: {"unreachable", true},

	// Our own account or sender is misconfigured: no recipient will succeed until an
	// operator fixes it, so retrying only delays the re-route.
	20003: {"auth", true},
	20404: {"rejected", true}, // resource (account) not found
	21210: {"sender", true},   // voice: 'From' not verified for this account
	21212: {"sender", true},   // invalid 'From' number
	21602: {"rejected", true}, // message body required
	21603: {"sender", true},   // 'From' required
	21604: {"rejected", true}, // 'To' required
	21606: {"sender", true},   // 'From' not a message-capable Twilio number
	21608: {"sender", true},   // trial account: 'To' not verified
	21617: {"rejected", true}, // body exceeds 1600 characters
	21624: {"rejected", true}, // invalid validity period
	21659: {"sender", true},   // 'From' is not a Twilio number / short code country mismatch
	21660: {"sender", true},   // 'From' does not belong to this account
	21661: {"sender", true},   // 'From' is not SMS-capable
	30002: {"auth", true},     // account suspended
	30007: {"blocked", true},  // filtered by the carrier as spam
	30008: {"rejected", false},
	30034: {"sender", true}, // US A2P 10DLC: unregistered number
	30036: {"rejected", true},
}

// IsPermanent reports whether a Twilio error code, from a REST answer or a status
// callback's ErrorCode, means that sending the same SMS to the same number again will
// not succeed: the caller must re-route (voice call, next contact) instead of
// retrying by SMS. It is false for 0 and for codes Vigil does not know.
//
// Permanent codes: invalid or unreachable destination (21211, 21214, 21217, 21265,
// 21401, 21421, 13224, 21612, 21614, 21635, 30003, 30005, 30006), refused by the
// recipient (21610 opted out, 30004 blocked, 30007 filtered, 21216), geo permissions
// (21408, 21215), expired validity period (30036) and account or sender
// misconfiguration (20003, 20404, 21210, 21212, 21602-21608, 21617, 21624,
// 21659-21661, 30002, 30034).
func IsPermanent(code int) bool {
	return codes[code].permanent
}

// CodeReason returns the metric label for a Twilio error code ("opted_out",
// "invalid_number", ...), or "" when the code is 0 or unknown. It is the label
// Error.Reason uses, exported for status callbacks' ErrorCode.
func CodeReason(code int) string {
	return codes[code].reason
}

// Error is a failed send, classified where it happened so that callers decide what
// to do without parsing messages:
//
//   - Retryable: Twilio did not take the request and the same request may succeed
//     later (HTTP 429 or code 20429, HTTP 5xx, a connection that failed before the
//     request was written, a caller's context that ended before it was written).
//   - Uncertain: the request was written and no answer (or an unreadable answer)
//     came back, so Twilio may have queued the message or call. Resending risks a
//     duplicate; not resending risks silence. Retryable is false.
//   - neither: Twilio refused; see Code, and IsPermanent(Code).
type Error struct {
	Code       int  // Twilio error code (21211, 21610, 20429, ...); 0 if none
	HTTPStatus int  // 0 when no HTTP answer came back
	Retryable  bool // the same request may be sent again as it is
	Uncertain  bool // the request may have reached Twilio: do not blindly resend
	Err        error

	// reason overrides the label derived from Code and HTTPStatus; it is set for
	// failures without an HTTP answer ("timeout", "network", "canceled", ...).
	reason string
}

// Error says what failed, with phone numbers in Twilio's message masked.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("twilio: ")
	b.WriteString(e.Reason())
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, " (HTTP %d", e.HTTPStatus)
		if e.Code != 0 {
			fmt.Fprintf(&b, ", code %d", e.Code)
		}
		b.WriteString(")")
	} else if e.Code != 0 {
		fmt.Fprintf(&b, " (code %d)", e.Code)
	}
	switch {
	case e.Uncertain:
		b.WriteString(", may have been accepted")
	case e.Retryable:
		b.WriteString(", retryable")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(maskNumbers(e.Err.Error()))
	}
	return b.String()
}

// Unwrap returns the underlying error: a *client.TwilioRestError when Twilio
// answered with its JSON error body, else a transport or decoding error.
func (e *Error) Unwrap() error { return e.Err }

// Reason is a short label for metrics: "invalid_number", "not_mobile",
// "opted_out", "blocked", "unreachable", "region_disabled", "sender", "auth",
// "rate_limited", "server_error", "timeout", "network", "canceled",
// "bad_response", "config", "console", "rejected", "not_found" (FetchStatus of a
// message or call Twilio does not have; see IsNotFound). The set is small and
// fixed.
func (e *Error) Reason() string {
	if e.reason != "" {
		return e.reason
	}
	if r := CodeReason(e.Code); r != "" {
		return r
	}
	switch {
	case e.HTTPStatus == 429:
		return "rate_limited"
	case e.HTTPStatus >= 500:
		return "server_error"
	case e.HTTPStatus == 401 || e.HTTPStatus == 403:
		return "auth"
	default:
		return "rejected"
	}
}

// httpError classifies an answer from Twilio outside 2xx.
func httpError(status, code int, err error) *Error {
	return &Error{
		Code:       code,
		HTTPStatus: status,
		Retryable:  status == 429 || code == CodeTooManyRequests || status >= 500,
		Err:        err,
	}
}

// maskNumbers hides all but the last three digits of every phone number written
// with a leading '+' (Twilio's messages quote the 'To' number), so that errors can
// be logged at info level.
func maskNumbers(s string) string {
	if !strings.Contains(s, "+") {
		return s
	}
	b := []byte(s)
	for i := 0; i < len(b); i++ {
		if b[i] != '+' {
			continue
		}
		j := i + 1
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if n := j - i - 1; n >= 7 {
			for k := i + 1; k < j-3; k++ {
				b[k] = 'x'
			}
		}
		i = j - 1
	}
	return string(b)
}
