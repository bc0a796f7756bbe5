package sms

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Console is the Sender used without Twilio credentials: it writes every message
// and call to w, readable by a person at a terminal, and accepts them all with
// SIDs "CONSOLE-1", "CONSOLE-2", ... It is safe for concurrent use; each entry is
// written in one piece.
//
// Format: one header line per message or call, then the body (or inline TwiML)
// indented by four spaces when it does not fit the header line:
//
//	[sms] CONSOLE-1 to=+447700900101 validity=10m0s | Checked in at 14:05.
//	[sms] CONSOLE-2 to=+441332000001
//	    OVERDUE: Jane Doe (+447700900101) ...
//	    ACK 4821
//	[call] CONSOLE-3 to=+447700900201 url=https://vigil.example.org/twilio/voice/a1
type Console struct {
	mu sync.Mutex
	w  io.Writer
	n  int
}

// NewConsole returns a Console writing to w.
func NewConsole(w io.Writer) *Console {
	return &Console{w: w}
}

// SendSMS writes m and returns its console SID.
func (c *Console) SendSMS(ctx context.Context, m Outbound) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", &Error{Retryable: true, reason: "canceled", Err: err}
	}
	head := "to=" + m.To
	if m.ValidityPeriod > 0 {
		head += " validity=" + m.ValidityPeriod.String()
	}
	return c.write("sms", head, m.Body, false)
}

// PlaceCall writes call and returns its console SID.
func (c *Console) PlaceCall(ctx context.Context, call Call) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", &Error{Retryable: true, reason: "canceled", Err: err}
	}
	if call.TwiMLURL != "" {
		return c.write("call", "to="+call.To+" url="+call.TwiMLURL, "", false)
	}
	return c.write("call", "to="+call.To+" twiml:", call.TwiML, true)
}

// write numbers and prints one entry. A one-line body goes on the header line
// unless block asks for it beneath, indented, as longer bodies always are.
func (c *Console) write(kind, head, body string, block bool) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	sid := "CONSOLE-" + strconv.Itoa(c.n)

	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s %s", kind, sid, head)
	body = strings.TrimRight(body, "\n")
	switch {
	case body == "":
	case !block && !strings.Contains(body, "\n"):
		b.WriteString(" | ")
		b.WriteString(body)
	default:
		for line := range strings.SplitSeq(body, "\n") {
			b.WriteString("\n    ")
			b.WriteString(line)
		}
	}
	b.WriteString("\n")
	if _, err := io.WriteString(c.w, b.String()); err != nil {
		return "", &Error{reason: "console", Err: fmt.Errorf("write %s %s: %w", kind, sid, err)}
	}
	return sid, nil
}

// FindSent reports every message as not found: nothing the console printed
// reached a phone.
func (c *Console) FindSent(ctx context.Context, to, body string, since time.Time) (string, bool, error) {
	return "", false, nil
}

// FindCall reports every call as not found.
func (c *Console) FindCall(ctx context.Context, to string, since time.Time) (string, bool, error) {
	return "", false, nil
}
