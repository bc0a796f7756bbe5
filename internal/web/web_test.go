package web_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/service"
	"github.com/vigil-safety/vigil/internal/web"
)

// blockingService answers inbound SMS only when released, ignoring deadlines, as
// a service stuck behind a busy Redis would; the rest of web.Service is not used.
type blockingService struct {
	web.Service
	release chan struct{}
	once    sync.Once
	entered atomic.Int32
	in      chan struct{} // one send per call, as it enters
}

func (b *blockingService) free() { b.once.Do(func() { close(b.release) }) }

func (b *blockingService) HandleSMS(_ context.Context, in service.InboundSMS) (string, error) {
	if in.Body == "PANIC" || in.Body == "IN 4321" {
		return in.Body + " received", nil // the stuck part is the others' records
	}
	b.entered.Add(1)
	b.in <- struct{}{}
	<-b.release
	return "recorded", nil
}

func (b *blockingService) CountReply() {}

func (b *blockingService) NotConfirmed(service.InboundSMS) string { return "NOT CONFIRMED" }

// Webhooks beyond MaxInFlight wait for a slot, within their patience: with one
// slot taken by a request the service is still working on, the next is not
// handed to the service at all, and is answered NOT CONFIRMED when its patience
// runs out (unbounded, it would pile onto the stuck service and wait with it).
// A PANIC does not wait for a slot, nor does a check-in with a code after it (it
// may be the officer's duress code, which only the service can tell).
func TestWebhooksBeyondMaxInFlightWaitTheirTurn(t *testing.T) {
	t.Parallel()
	svc := &blockingService{release: make(chan struct{}), in: make(chan struct{}, 8)}
	srv := httptest.NewServer(web.New(web.Options{
		Service: svc, Log: slog.New(slog.DiscardHandler), TwiML: func(s string) string { return "<Response><Message>" + s + "</Message></Response>" },
		Patience: 300 * time.Millisecond, MaxInFlight: 1,
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(svc.free) // first: a failed test must not leave the server's Close waiting
	post := func(sid, body string) <-chan string {
		out := make(chan string, 1)
		go func() {
			form := url.Values{"From": {"+447700900101"}, "Body": {body}, "MessageSid": {sid}}
			res, err := http.PostForm(srv.URL+"/twilio/sms", form)
			if err != nil {
				out <- err.Error()
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			out <- string(b)
		}()
		return out
	}

	first := post("SM1", "IN")
	select {
	case <-svc.in:
	case <-time.After(5 * time.Second):
		t.Fatal("the first webhook never reached the service")
	}
	// A PANIC does not wait its turn: it is handled while the slot is taken.
	select {
	case got := <-post("SM3", "PANIC"):
		if !strings.Contains(got, "PANIC received") {
			t.Fatalf("PANIC answered %q while the slot was taken; want it handled", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer to a PANIC while the slot was taken")
	}
	// Nor does a check-in that may carry a duress code.
	select {
	case got := <-post("SM4", "IN 4321"):
		if !strings.Contains(got, "IN 4321 received") {
			t.Fatalf("a check-in with a code answered %q while the slot was taken; want it handled", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer to a check-in with a code while the slot was taken")
	}
	second := post("SM2", "IN")
	select {
	case got := <-second:
		if !strings.Contains(got, "NOT CONFIRMED") || svc.entered.Load() != 1 {
			t.Fatalf("second answered %q with %d in the service; want NOT CONFIRMED, never handed over", got, svc.entered.Load())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second webhook was handed to the stuck service instead of waiting for a slot")
	}
	svc.free()
	if got := <-first; !strings.Contains(got, "recorded") {
		t.Fatalf("first answered %q", got)
	}
}

// voiceService records the keypresses handed to it; the rest of web.Service is not
// used.
type voiceService struct {
	web.Service
	digits []string
}

func (v *voiceService) VoiceAck(_ context.Context, _, _, _, digits string) (string, error) {
	v.digits = append(v.digits, digits)
	return "You have taken charge.", nil
}

// On an alert call, 1 takes charge through the service. Any other key is told that
// only 1 takes charge, not that no key was pressed, and takes nothing.
func TestGatherKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		digits string
		want   string // in what the call says
		ack    bool   // handed to the service
	}{
		// 1 takes charge.
		{"one", "1", "You have taken charge.", true},
		// Another key is named as the wrong one.
		{"two", "2", "Only the 1 key takes charge. Nothing changed.", false},
		// So is the star key.
		{"star", "*", "Only the 1 key takes charge. Nothing changed.", false},
		// No key at all.
		{"none", "", "No key was pressed. Nothing changed.", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svc := &voiceService{}
			srv := httptest.NewServer(web.New(web.Options{
				Service: svc, Log: slog.New(slog.DiscardHandler),
				SayTwiML: func(s string) string { return "<Response><Say>" + s + "</Say></Response>" },
			}))
			t.Cleanup(srv.Close)
			res, err := http.PostForm(srv.URL+"/twilio/voice/gather?school=s1&alert=a1&to=%2B447700900201",
				url.Values{"Digits": {tt.digits}, "CallSid": {"CA1"}})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || !strings.Contains(string(b), tt.want) {
				t.Errorf("Digits %q: %s %q, want it to say %q", tt.digits, res.Status, b, tt.want)
			}
			if got := len(svc.digits) > 0; got != tt.ack {
				t.Errorf("Digits %q handed to the service: %v, want %v", tt.digits, got, tt.ack)
			}
		})
	}
}
