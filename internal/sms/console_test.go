package sms_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/sms"
)

func TestConsole(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	c := sms.NewConsole(&buf)
	ctx := t.Context()

	steps := []struct {
		send    func() (string, error)
		wantSID string
	}{
		{func() (string, error) {
			return c.SendSMS(ctx, sms.Outbound{To: officer, Body: "Checked in at 14:05.", ValidityPeriod: 10 * time.Minute})
		}, "CONSOLE-1"},
		{func() (string, error) {
			return c.SendSMS(ctx, sms.Outbound{To: office, Body: "OVERDUE: Jane Doe\nACK 4821\n"})
		}, "CONSOLE-2"},
		{func() (string, error) {
			return c.PlaceCall(ctx, sms.Call{To: office, TwiMLURL: "https://vigil.example.org/twilio/voice/a1"})
		}, "CONSOLE-3"},
		{func() (string, error) {
			return c.PlaceCall(ctx, sms.Call{To: office, TwiML: "<Response>\n<Say>Hi</Say>\n</Response>"})
		}, "CONSOLE-4"},
	}
	for _, s := range steps {
		sid, err := s.send()
		if err != nil || sid != s.wantSID {
			t.Fatalf("send = %q, %v; want %q", sid, err, s.wantSID)
		}
	}
	want := "[sms] CONSOLE-1 to=+447700900101 validity=10m0s | Checked in at 14:05.\n" +
		"[sms] CONSOLE-2 to=+441332000001\n" +
		"    OVERDUE: Jane Doe\n" +
		"    ACK 4821\n" +
		"[call] CONSOLE-3 to=+441332000001 url=https://vigil.example.org/twilio/voice/a1\n" +
		"[call] CONSOLE-4 to=+441332000001 twiml:\n" +
		"    <Response>\n" +
		"    <Say>Hi</Say>\n" +
		"    </Response>\n"
	if got := buf.String(); got != want {
		t.Errorf("console output:\n%s\nwant:\n%s", got, want)
	}
}

func TestConsoleConcurrent(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	c := sms.NewConsole(&buf)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := c.SendSMS(t.Context(), sms.Outbound{To: officer, Body: "line one\nline two"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// Every entry is whole: a header, then its two body lines.
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 60 {
		t.Fatalf("%d lines, want 60", len(lines))
	}
	for i := 0; i < len(lines); i += 3 {
		if !strings.HasPrefix(lines[i], "[sms] CONSOLE-") || lines[i+1] != "    line one" || lines[i+2] != "    line two" {
			t.Fatalf("entry at line %d torn: %q", i, lines[i:i+3])
		}
	}
}

func TestConsoleCanceled(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := sms.NewConsole(&buf).SendSMS(ctx, sms.Outbound{To: officer, Body: "x"})
	var e *sms.Error
	if !errors.As(err, &e) || !e.Retryable {
		t.Errorf("SendSMS after cancel = %v, want a retryable *Error", err)
	}
	if buf.Len() != 0 {
		t.Errorf("printed %q after cancel", buf.String())
	}
}
