package sms_test

import (
	"net/url"
	"testing"

	"github.com/vigil-safety/vigil/internal/sms"
)

func TestParseStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		form       url.Values
		want       sms.Status
		wantFailed bool
		wantFinal  bool
	}{
		// A delivered escalation SMS.
		{"delivered", url.Values{"MessageSid": {"SM1"}, "SmsSid": {"SM1"}, "MessageStatus": {"delivered"}, "SmsStatus": {"delivered"}, "To": {officer}, "From": {from}},
			sms.Status{MessageSID: "SM1", Status: "delivered", To: officer, From: from}, false, true},
		// Undelivered with the carrier's reason: re-route.
		{"undelivered", url.Values{"MessageSid": {"SM2"}, "MessageStatus": {"undelivered"}, "ErrorCode": {"30003"}, "To": {officer}},
			sms.Status{MessageSID: "SM2", Status: "undelivered", ErrorCode: 30003, To: officer}, true, true},
		// Still on its way.
		{"sent", url.Values{"MessageSid": {"SM3"}, "MessageStatus": {"sent"}},
			sms.Status{MessageSID: "SM3", Status: "sent"}, false, false},
		// Old-style callback with SMS* names only.
		{"legacy names", url.Values{"SmsSid": {"SM4"}, "SmsStatus": {"failed"}, "ErrorCode": {"21610"}},
			sms.Status{MessageSID: "SM4", Status: "failed", ErrorCode: 21610}, true, true},
		// A call nobody answered.
		{"call no-answer", url.Values{"CallSid": {"CA1"}, "CallStatus": {"no-answer"}, "To": {office}},
			sms.Status{CallSID: "CA1", Status: "no-answer", To: office}, true, true},
		// A call that was answered: final, not failed.
		{"call completed", url.Values{"CallSid": {"CA2"}, "CallStatus": {"completed"}},
			sms.Status{CallSID: "CA2", Status: "completed"}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := sms.ParseStatus(tt.form)
			if err != nil {
				t.Fatalf("ParseStatus: %v", err)
			}
			if got != tt.want {
				t.Errorf("ParseStatus = %+v, want %+v", got, tt.want)
			}
			if got.Failed() != tt.wantFailed || got.Final() != tt.wantFinal {
				t.Errorf("Failed() = %v, Final() = %v; want %v, %v", got.Failed(), got.Final(), tt.wantFailed, tt.wantFinal)
			}
			if got.IsCall() != (tt.want.CallSID != "") {
				t.Errorf("IsCall() = %v", got.IsCall())
			}
		})
	}
}

func TestParseStatusRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		form url.Values
	}{
		// Neither a message nor a call.
		{"no sid", url.Values{"MessageStatus": {"delivered"}}},
		// A sid without a status.
		{"no status", url.Values{"MessageSid": {"SM1"}}},
		// ErrorCode must be a number.
		{"bad error code", url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"failed"}, "ErrorCode": {"x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if s, err := sms.ParseStatus(tt.form); err == nil {
				t.Errorf("ParseStatus = %+v, want an error", s)
			}
		})
	}
}
