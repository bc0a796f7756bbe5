// Package smstest is a fake Twilio for tests: an httptest server that speaks
// enough of Twilio's REST API (POST Messages.json and Calls.json, the GET lists
// of both with their filters and paging, GET Messages/{Sid}.json and
// Calls/{Sid}.json for one message or call, basic auth, Twilio's JSON answers
// and error bodies) for twilio-go and package sms, records what was sent and
// looked up, lets a test wait for sends and look-ups without sleeping, and
// injects faults (error codes per number, 429 storms, slow or hung answers,
// failed look-ups). It also builds the signed webhook requests Twilio would make
// to Vigil (PostSigned, InboundSMS, MessageStatus, CallStatus, Gather).
//
// The fake does not model a message's or a call's progress. A GET of one
// message or call answers it as a network where everything arrives would:
// "delivered" (error_code null) for a message, "completed" for a call; the lists
// show every message as "sent" and every call as "ringing" (see list.go).
// SetMessageStatus and SetCallStatus change the status (and a message's
// error_code and error_message) that later GETs of the one record and of the
// lists answer. A GET of a SID the fake did not accept (an inbound SMS's, or
// another account's) is answered 404 with code 20404, as Twilio does.
package smstest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultAuthToken is the auth token a Server accepts unless WithAuthToken says
// otherwise.
const DefaultAuthToken = "0123456789abcdef0123456789abcdef"

// apiVersion is the only REST API version served.
const apiVersion = "2010-04-01"

// e164 is what Twilio accepts as a phone number in 'To'.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// Message is one SMS the fake accepted.
type Message struct {
	SID                 string // "SM" + 32 hex digits
	To                  string
	From                string // empty when sent through a messaging service alone
	MessagingServiceSID string
	Body                string
	StatusCallback      string
	ValidityPeriod      time.Duration // 0 when not given
	Segments            int           // SMS segments the body takes (160/153 GSM-7, 70/67 UCS-2)
	GSM7                bool          // the body is GSM-7: no emoji, curly quotes, ...
	At                  time.Time
	Form                url.Values // the whole request, for anything not above
}

// CallRecord is one call the fake accepted.
type CallRecord struct {
	SID                  string // "CA" + 32 hex digits
	To                   string
	From                 string
	URL                  string // Url: where Twilio would fetch the TwiML
	TwiML                string // Twiml: inline TwiML
	StatusCallback       string
	StatusCallbackEvents []string
	At                   time.Time
	Form                 url.Values
}

// Attempt is one request that reached Messages.json or Calls.json, accepted or
// not, recorded when it was answered (or abandoned by the client).
type Attempt struct {
	Resource   string // "Messages" or "Calls"
	To         string
	HTTPStatus int    // what the fake answered (201 when accepted)
	Code       int    // Twilio error code answered; 0 when accepted
	SID        string // when accepted
	At         time.Time
	Form       url.Values
}

// Accepted reports whether the fake created the message or call.
func (a Attempt) Accepted() bool { return a.SID != "" }

// Option configures a Server.
type Option func(*Server)

// WithAuthToken sets the auth token the Server expects in basic auth.
func WithAuthToken(token string) Option { return func(s *Server) { s.authToken = token } }

// WithClock sets the clock that stamps records and answers.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// fault is an injected error answer.
type fault struct{ status, code int }

// gate holds requests to one number: for a delay, or until a channel is closed.
type gate struct {
	delay time.Duration
	until <-chan struct{}
}

// Server is a fake Twilio REST API. Its methods are safe for concurrent use.
type Server struct {
	t          testing.TB
	srv        *httptest.Server
	accountSID string
	authToken  string
	now        func() time.Time
	closing    chan struct{} // closed first at cleanup: releases held requests

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced whenever something is recorded
	seq       int
	sent      []Message
	calls     []CallRecord
	attempts  []Attempt
	failNext  []fault
	failLists []fault
	lookups   []Lookup
	msgStatus map[string]messageState // set by SetMessageStatus
	callState map[string]string       // set by SetCallStatus
	failSMS   map[string]fault
	failCalls map[string]fault
	gates     map[string]gate
}

// NewServer starts a fake Twilio for accountSID, closed when the test ends. Requests
// must use basic auth with accountSID and DefaultAuthToken (or WithAuthToken's).
func NewServer(t testing.TB, accountSID string, opts ...Option) *Server {
	t.Helper()
	s := &Server{
		t:          t,
		accountSID: accountSID,
		authToken:  DefaultAuthToken,
		now:        time.Now,
		closing:    make(chan struct{}),
		changed:    make(chan struct{}),
		failSMS:    map[string]fault{},
		failCalls:  map[string]fault{},
		gates:      map[string]gate{},
		msgStatus:  map[string]messageState{},
		callState:  map[string]string{},
	}
	for _, o := range opts {
		o(s)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /"+apiVersion+"/Accounts/{AccountSid}/Messages.json", s.handleMessage)
	mux.HandleFunc("POST /"+apiVersion+"/Accounts/{AccountSid}/Calls.json", s.handleCall)
	mux.HandleFunc("GET /"+apiVersion+"/Accounts/{AccountSid}/Messages.json", s.handleListMessages)
	mux.HandleFunc("GET /"+apiVersion+"/Accounts/{AccountSid}/Calls.json", s.handleListCalls)
	// A wildcard is a whole path segment: the handlers cut ".json" off {Sid}.
	mux.HandleFunc("GET /"+apiVersion+"/Accounts/{AccountSid}/Messages/{Sid}", s.handleFetchMessage)
	mux.HandleFunc("GET /"+apiVersion+"/Accounts/{AccountSid}/Calls/{Sid}", s.handleFetchCall)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, 20404)
	})
	s.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		close(s.closing) // first, so that held requests end and Close does not wait on them
		s.srv.Close()
	})
	return s
}

// URL is the base URL to give sms.Options.APIURL.
func (s *Server) URL() string { return s.srv.URL }

// AccountSID is the account the Server serves.
func (s *Server) AccountSID() string { return s.accountSID }

// AuthToken is the auth token the Server expects.
func (s *Server) AuthToken() string { return s.authToken }

// Sent returns the messages accepted so far, in order.
func (s *Server) Sent() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sent)
}

// SentTo returns the messages accepted for one number, in order.
func (s *Server) SentTo(to string) []Message {
	var out []Message
	for _, m := range s.Sent() {
		if m.To == to {
			out = append(out, m)
		}
	}
	return out
}

// Calls returns the calls accepted so far, in order.
func (s *Server) Calls() []CallRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Attempts returns every request to Messages.json and Calls.json answered so far,
// accepted or refused, in the order they were answered.
func (s *Server) Attempts() []Attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.attempts)
}

// FailNumber makes every message to 'to' fail with httpStatus and Twilio's JSON
// error body for twilioCode (e.g. 400, 21610 for an opted-out number) until it is
// called again; httpStatus 0 lifts the fault. Calls to the number are not affected
// (see FailCall): an officer who opted out of SMS can still be phoned.
func (s *Server) FailNumber(to string, httpStatus, twilioCode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	setFault(s.failSMS, to, httpStatus, twilioCode)
}

// FailCall is FailNumber for calls.
func (s *Server) FailCall(to string, httpStatus, twilioCode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	setFault(s.failCalls, to, httpStatus, twilioCode)
}

// FailNext makes the next n requests (messages or calls, any number) fail with
// httpStatus and twilioCode, e.g. FailNext(3, 429, 20429) for a rate-limit storm.
// Calls add up. With twilioCode 0 the answer body is not JSON, like an error page
// from a load balancer.
func (s *Server) FailNext(n, httpStatus, twilioCode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failNext = append(s.failNext, fault{httpStatus, twilioCode})
	}
}

// Delay holds every request to 'to' for d before answering it; 0 removes the
// delay. A request whose client gives up meanwhile is still processed, as Twilio
// would process it: the message is recorded as sent although the client never saw
// the answer.
func (s *Server) Delay(to string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d <= 0 {
		delete(s.gates, to)
		return
	}
	s.gates[to] = gate{delay: d}
}

// Hang holds every request to 'to' until the test closes until (or the client
// gives up, or the test ends), then processes it as Delay does. Use it with a
// short client timeout to make a send whose outcome the client cannot know.
func (s *Server) Hang(to string, until <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gates[to] = gate{until: until}
}

// NextMessageSID is the SID the next message accepted will have (if no other
// is accepted, and no inbound SMS made, first): a test can post a receipt for a
// send held by Hang before Vigil learns the SID from Twilio's answer.
func (s *Server) NextMessageSID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("SM%032x", s.seq+1)
}

// WaitSent returns the messages sent so far as soon as ready holds for them,
// waking on every recorded send (no polling). After timeout it fails the test
// with a dump of what was sent. Call it from the test's goroutine.
func (s *Server) WaitSent(timeout time.Duration, ready func([]Message) bool) []Message {
	s.t.Helper()
	return wait(s, timeout, "messages", s.Sent, ready)
}

// WaitCalls is WaitSent for calls.
func (s *Server) WaitCalls(timeout time.Duration, ready func([]CallRecord) bool) []CallRecord {
	s.t.Helper()
	return wait(s, timeout, "calls", s.Calls, ready)
}

// WaitAttempts is WaitSent for attempts, accepted or refused.
func (s *Server) WaitAttempts(timeout time.Duration, ready func([]Attempt) bool) []Attempt {
	s.t.Helper()
	return wait(s, timeout, "attempts", s.Attempts, ready)
}

// WaitLookups is WaitSent for GETs of the lists and of single messages and
// calls.
func (s *Server) WaitLookups(timeout time.Duration, ready func([]Lookup) bool) []Lookup {
	s.t.Helper()
	return wait(s, timeout, "lookups", s.Lookups, ready)
}

// AtLeast is a predicate for the Wait methods: at least n records.
func AtLeast[T any](n int) func([]T) bool {
	return func(xs []T) bool { return len(xs) >= n }
}

// wait blocks until ready(snapshot()) or timeout.
func wait[T any](s *Server, timeout time.Duration, what string, snapshot func() []T, ready func([]T) bool) []T {
	s.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		changed := s.changed
		s.mu.Unlock()
		// Snapshot after taking the channel, so that a record made in between
		// closes the channel we wait on.
		xs := snapshot()
		if ready(xs) {
			return xs
		}
		select {
		case <-changed:
		case <-deadline.C:
			s.t.Fatalf("smstest: %s not as expected after %v; %s so far:\n%s", what, timeout, what, dump(xs))
			return nil
		}
	}
}

// dump writes records one a line for failure messages.
func dump[T any](xs []T) string {
	if len(xs) == 0 {
		return "  (none)"
	}
	var b strings.Builder
	for i, x := range xs {
		fmt.Fprintf(&b, "  %d. ", i+1)
		switch v := any(x).(type) {
		case Message:
			fmt.Fprintf(&b, "%s to=%s validity=%v callback=%s body=%q", v.SID, v.To, v.ValidityPeriod, v.StatusCallback, v.Body)
		case CallRecord:
			fmt.Fprintf(&b, "%s to=%s url=%s twiml=%q", v.SID, v.To, v.URL, v.TwiML)
		case Attempt:
			fmt.Fprintf(&b, "%s to=%s -> %d code=%d sid=%s", v.Resource, v.To, v.HTTPStatus, v.Code, v.SID)
		case Lookup:
			fmt.Fprintf(&b, "GET %s %s -> %d", v.Resource, v.Query.Encode(), v.HTTPStatus)
		default:
			fmt.Fprintf(&b, "%+v", v)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func setFault(m map[string]fault, to string, status, code int) {
	if status == 0 {
		delete(m, to)
		return
	}
	m[to] = fault{status, code}
}

// notifyLocked wakes every waiter. s.mu must be held.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// hold applies the gate for 'to', if any. It returns false when the test is
// ending and the request must be dropped unanswered.
func (s *Server) hold(r *http.Request, to string) bool {
	s.mu.Lock()
	g, ok := s.gates[to]
	s.mu.Unlock()
	if !ok {
		return true
	}
	var timer <-chan time.Time
	if g.delay > 0 {
		t := time.NewTimer(g.delay)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-timer:
	case <-g.until:
	case <-r.Context().Done(): // the client gave up; Twilio would carry on
	case <-s.closing:
		return false
	}
	return true
}

// request is what both endpoints do before creating anything: hold, check
// auth and account, and apply injected faults. It returns the parsed form and
// false when it has already answered.
func (s *Server) request(w http.ResponseWriter, r *http.Request, resource string) (url.Values, bool) {
	if err := r.ParseForm(); err != nil {
		s.refuse(w, resource, nil, http.StatusBadRequest, 20001)
		return nil, false
	}
	form := r.PostForm
	if !s.hold(r, form.Get("To")) {
		panic(http.ErrAbortHandler) // drop the connection unanswered
	}
	if user, pass, ok := r.BasicAuth(); !ok || user != s.accountSID || pass != s.authToken {
		s.refuse(w, resource, form, http.StatusUnauthorized, 20003)
		return nil, false
	}
	if r.PathValue("AccountSid") != s.accountSID {
		s.refuse(w, resource, form, http.StatusNotFound, 20404)
		return nil, false
	}
	s.mu.Lock()
	var f fault
	if len(s.failNext) > 0 {
		f, s.failNext = s.failNext[0], s.failNext[1:]
	}
	s.mu.Unlock()
	if f.status != 0 {
		s.refuse(w, resource, form, f.status, f.code)
		return nil, false
	}
	return form, true
}

func (s *Server) handleMessage(w http.ResponseWriter, r *http.Request) {
	form, ok := s.request(w, r, "Messages")
	if !ok {
		return
	}
	to, from, msid, body := form.Get("To"), form.Get("From"), form.Get("MessagingServiceSid"), form.Get("Body")
	var validity time.Duration
	code := 0
	switch {
	case to == "":
		code = 21604
	case !e164.MatchString(to):
		code = 21211
	case from == "" && msid == "":
		code = 21603
	case body == "" && form.Get("MediaUrl") == "":
		code = 21602
	case len([]rune(body)) > 1600:
		code = 21617
	}
	if vp := form.Get("ValidityPeriod"); code == 0 && vp != "" {
		n, err := strconv.Atoi(vp)
		if err != nil || n < 1 || n > 36000 {
			code = 21624
		}
		validity = time.Duration(n) * time.Second
	}
	if code != 0 {
		s.refuse(w, "Messages", form, http.StatusBadRequest, code)
		return
	}
	s.mu.Lock()
	f, failed := s.failSMS[to]
	s.mu.Unlock()
	if failed {
		s.refuse(w, "Messages", form, f.status, f.code)
		return
	}

	segments, gsm := Segments(body)
	s.mu.Lock()
	s.seq++
	m := Message{
		SID:                 fmt.Sprintf("SM%032x", s.seq),
		To:                  to,
		From:                from,
		MessagingServiceSID: msid,
		Body:                body,
		StatusCallback:      form.Get("StatusCallback"),
		ValidityPeriod:      validity,
		Segments:            segments,
		GSM7:                gsm,
		At:                  s.now(),
		Form:                form,
	}
	s.sent = append(s.sent, m)
	s.attempts = append(s.attempts, Attempt{Resource: "Messages", To: to, HTTPStatus: http.StatusCreated, SID: m.SID, At: m.At, Form: form})
	s.notifyLocked()
	s.mu.Unlock()

	status := "queued"
	if from == "" {
		status = "accepted" // a messaging service picks the sender later
	}
	writeJSON(w, http.StatusCreated, s.messageJSON(m, messageState{status: status}, nil))
}

func (s *Server) handleCall(w http.ResponseWriter, r *http.Request) {
	form, ok := s.request(w, r, "Calls")
	if !ok {
		return
	}
	to, from := form.Get("To"), form.Get("From")
	code := 0
	switch {
	case to == "":
		code = 21201
	case !e164.MatchString(to):
		code = 21211
	case from == "":
		code = 21213
	case form.Get("Url") == "" && form.Get("Twiml") == "" && form.Get("ApplicationSid") == "":
		code = 21205
	}
	if code != 0 {
		s.refuse(w, "Calls", form, http.StatusBadRequest, code)
		return
	}
	s.mu.Lock()
	f, failed := s.failCalls[to]
	s.mu.Unlock()
	if failed {
		s.refuse(w, "Calls", form, f.status, f.code)
		return
	}

	s.mu.Lock()
	s.seq++
	c := CallRecord{
		SID:                  fmt.Sprintf("CA%032x", s.seq),
		To:                   to,
		From:                 from,
		URL:                  form.Get("Url"),
		TwiML:                form.Get("Twiml"),
		StatusCallback:       form.Get("StatusCallback"),
		StatusCallbackEvents: form["StatusCallbackEvent"],
		At:                   s.now(),
		Form:                 form,
	}
	s.calls = append(s.calls, c)
	s.attempts = append(s.attempts, Attempt{Resource: "Calls", To: to, HTTPStatus: http.StatusCreated, SID: c.SID, At: c.At, Form: form})
	s.notifyLocked()
	s.mu.Unlock()

	writeJSON(w, http.StatusCreated, s.callJSON(c, "queued", nil))
}

// refuse records a refused attempt and answers with Twilio's error body.
func (s *Server) refuse(w http.ResponseWriter, resource string, form url.Values, status, code int) {
	s.mu.Lock()
	s.attempts = append(s.attempts, Attempt{Resource: resource, To: form.Get("To"), HTTPStatus: status, Code: code, At: s.now(), Form: form})
	s.notifyLocked()
	s.mu.Unlock()
	writeError(w, status, code)
}

// errorMessages are Twilio's texts for the codes the fake answers with.
var errorMessages = map[int]string{
	20001: "Unable to parse the request",
	20003: "Authenticate",
	20404: "The requested resource was not found",
	20429: "Too Many Requests",
	20500: "An internal server error has occurred",
	21201: "No 'To' number is specified",
	21205: "Url parameter is required.",
	21211: "Invalid 'To' Phone Number",
	21213: "No 'From' number is specified",
	21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number",
	21602: "Message body is required.",
	21603: "A 'From' phone number is required.",
	21604: "A 'To' phone number is required.",
	21610: "Attempt to send to unsubscribed recipient",
	21612: "The 'To' phone number is not currently reachable via SMS",
	21614: "'To' number is not a valid mobile number",
	21617: "The concatenated message body exceeds the 1600 character limit.",
	21624: "Invalid validity period value",
	30003: "Unreachable destination handset",
	30004: "Message blocked",
	30005: "Unknown destination handset",
	30006: "Landline or unreachable carrier",
	30007: "Message filtered",
	30008: "Unknown error",
	30036: "Validity period expired",
}

// errorMessage is Twilio's text for code.
func errorMessage(code int) string {
	if msg, ok := errorMessages[code]; ok {
		return msg
	}
	return "Error " + strconv.Itoa(code)
}

// writeError answers like Twilio: {"code":...,"message":...,"more_info":...,
// "status":...}. With code 0 the body is an HTML error page instead.
func writeError(w http.ResponseWriter, status, code int) {
	if code == 0 {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<html><body><h1>%d %s</h1></body></html>\n", status, http.StatusText(status))
		return
	}
	writeJSON(w, status, map[string]any{
		"code":      code,
		"message":   errorMessage(code),
		"more_info": "https://www.twilio.com/docs/errors/" + strconv.Itoa(code),
		"status":    status,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may have gone: nothing to do
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
