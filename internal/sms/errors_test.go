package sms_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/vigil-safety/vigil/internal/sms"
)

func TestIsPermanent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code       int
		want       bool
		wantReason string
	}{
		{21211, true, "invalid_number"},  // invalid 'To'
		{21610, true, "opted_out"},       // STOP
		{21408, true, "region_disabled"}, // geo permissions
		{21612, true, "unreachable"},     // no SMS route
		{21614, true, "not_mobile"},      // landline
		{30003, true, "unreachable"},     // handset unreachable: re-route, do not resend
		{30004, true, "blocked"},         // blocked
		{30005, true, "invalid_number"},  // unknown destination
		{30006, true, "not_mobile"},      // landline or unreachable carrier
		{20429, false, "rate_limited"},   // rate limit: retry
		{30008, false, "rejected"},       // unknown error: may pass next time
		{0, false, ""},                   // no code
		{99999, false, ""},               // unknown code
	}
	for _, tt := range tests {
		if got := sms.IsPermanent(tt.code); got != tt.want {
			t.Errorf("IsPermanent(%d) = %v, want %v", tt.code, got, tt.want)
		}
		if got := sms.CodeReason(tt.code); got != tt.wantReason {
			t.Errorf("CodeReason(%d) = %q, want %q", tt.code, got, tt.wantReason)
		}
	}
}

func TestErrorTextMasksNumbersAndUnwraps(t *testing.T) {
	t.Parallel()
	cause := errors.New("Invalid 'To' Phone Number: +447700900101")
	e := &sms.Error{Code: 21211, HTTPStatus: 400, Err: cause}
	got := e.Error()
	if strings.Contains(got, "447700900101") || !strings.Contains(got, "+xxxxxxxxx101") {
		t.Errorf("Error() = %q, want the number masked to +xxxxxxxxx101", got)
	}
	for _, want := range []string{"invalid_number", "400", "21211"} {
		if !strings.Contains(got, want) {
			t.Errorf("Error() = %q, does not say %s", got, want)
		}
	}
	if !errors.Is(e, cause) {
		t.Errorf("errors.Is does not reach the cause")
	}
}
