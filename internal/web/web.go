// Package web is Vigil's HTTP surface: Twilio's webhooks, the office and admin JSON
// API, and the health and metrics endpoints. routes.go lists all of it.
package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/vigil-safety/vigil/internal/service"
	"github.com/vigil-safety/vigil/internal/visit"
)

// Service is what the HTTP surface asks of the service layer.
type Service interface {
	HandleSMS(ctx context.Context, in service.InboundSMS) (string, error)
	HandleReceipt(ctx context.Context, r service.Receipt) error
	CountReply()
	NotConfirmed(in service.InboundSMS) string
	OpenVisit(ctx context.Context, by string, req service.OpenVisitRequest) (*visit.Visit, error)
	VisitCommand(ctx context.Context, by, visitID string, cmd visit.Command) (*visit.Visit, error)
	Visit(ctx context.Context, id string) (*visit.Visit, error)
	Visits(ctx context.Context, state string) ([]*visit.Visit, error)
	Alerts(ctx context.Context, state string) ([]*visit.Alert, error)
	AckAlert(ctx context.Context, by, alertID string) (*visit.Alert, error)
	ResolveAlert(ctx context.Context, by, alertID, note string) (*visit.Alert, error)
	VoiceAck(ctx context.Context, school, alertID, phone, digits string) (string, error)
}

// Roles of API tokens, weakest first.
const (
	RoleReadonly = "readonly"
	RoleOffice   = "office"
	RoleAdmin    = "admin"
)

var roleRank = map[string]int{RoleReadonly: 1, RoleOffice: 2, RoleAdmin: 3}

// Token is an API bearer token: its name (who, in the audit trail), role and the
// SHA-256 of its secret.
type Token struct {
	Name   string
	Role   string
	SHA256 [32]byte
}

// HashToken is the SHA-256 of a token's secret.
func HashToken(secret string) [32]byte { return sha256.Sum256([]byte(secret)) }

// ParseTokenHash reads a token_sha256 value.
func ParseTokenHash(h string) ([32]byte, error) {
	var out [32]byte
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 {
		return out, errors.New("token_sha256 must be 64 hex characters")
	}
	copy(out[:], b)
	return out, nil
}

// Options configure the HTTP surface.
type Options struct {
	Service Service
	Log     *slog.Logger
	// PublicURL is the base URL Twilio calls; signatures are checked against it.
	PublicURL string
	// CheckSignature reports whether sig is Twilio's signature of fullURL and form.
	// Nil disables the check (twilio.validate_signatures: false).
	CheckSignature func(fullURL string, form url.Values, sig string) bool
	// TwiML writes an SMS reply as TwiML ("" for no reply).
	TwiML func(body string) string
	// SayTwiML writes TwiML that says text on a call and hangs up.
	SayTwiML func(text string) string
	Tokens   []Token
	Metrics  http.Handler
	// Ready reports why Vigil is not ready (nil when it is).
	Ready func(ctx context.Context) error
	// MonthlyReport, when set, serves GET /api/v1/reports/monthly.
	MonthlyReport func(ctx context.Context, school, month string) (any, error)
	// Directory, when set, serves the directory API (directory.go).
	Directory Directory
	// Console, when set, serves every path nothing else does: the office console.
	Console http.Handler
	// Patience is how long an inbound SMS or a delivery receipt keeps being retried
	// while Vigil cannot record it (Redis restarting, a Sentinel failover). Twilio
	// waits 15 s for an answer and does not repeat an SMS webhook that fails, so the
	// default is 10 s, attempts included; after it the sender is told the SMS may not
	// have been recorded.
	Patience time.Duration
	// OnRetry, when set, is called before each retry of a webhook (tests).
	OnRetry func(path string, err error)
	// MaxInFlight bounds the webhooks (inbound SMS and receipts) handled at once
	// (default DefaultMaxInFlight); more wait their turn, within their patience.
	// A PANIC does not wait.
	MaxInFlight int
}

// DefaultMaxInFlight is Options.MaxInFlight when it is zero: enough to keep 2
// cores and the Redis connection pool (20 connections) busy. Handling more at
// once only made every one slower, and the daemon answered about half of what it
// could (README "Inbound webhooks": 2,600 a second offered 5,000, 3,500-3,800
// with this bound).
const DefaultMaxInFlight = 32

// DefaultPatience is Options.Patience when it is zero.
const DefaultPatience = 10 * time.Second

// Server holds the handlers.
type Server struct {
	o     Options
	log   *slog.Logger
	slots chan struct{} // one per webhook being handled (MaxInFlight)
}

// New builds the HTTP handler.
func New(o Options) http.Handler {
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	s := &Server{o: o, log: o.Log.With("component", "web"), slots: make(chan struct{}, o.MaxInFlight)}
	return s.routes()
}

// maxBody bounds request bodies: Twilio's forms and the API's JSON are small.
const maxBody = 64 << 10

// twilioForm reads a Twilio webhook's form and checks its signature. It writes the
// error answer itself and reports false when the request must be ignored.
func (s *Server) twilioForm(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return nil, false
	}
	if s.o.CheckSignature != nil {
		full := s.o.PublicURL + r.URL.RequestURI()
		if !s.o.CheckSignature(full, r.PostForm, r.Header.Get("X-Twilio-Signature")) {
			s.log.Warn("webhook with a bad or missing Twilio signature refused", "path", r.URL.Path)
			http.Error(w, "invalid Twilio signature", http.StatusForbidden)
			return nil, false
		}
	}
	return r.PostForm, true
}

// patiently runs do, and while it fails runs it again with a growing pause, for as
// long as Options.Patience allows and the request lasts. Every attempt runs under the
// patience's deadline too, so one that waits on a Redis that stopped answering ends
// with it (the store's client honours context deadlines) and the answer still reaches
// Twilio in time. Each attempt first waits for one of MaxInFlight slots, unless
// the webhook is urgent (a PANIC or a possible duress code: in a flood it goes
// ahead of the texts waiting their turn). repeatable says do is safe to run twice: the webhook carries a
// Twilio SID its commit is keyed on, so an attempt that did commit before its answer
// was lost is answered from that commit. It returns do's last error.
func (s *Server) patiently(ctx context.Context, path string, repeatable, urgent bool, do func(context.Context) error) error {
	patience := s.o.Patience
	if patience <= 0 {
		patience = DefaultPatience
	}
	deadline := time.Now().Add(patience)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	pause := 50 * time.Millisecond
	for {
		// Each attempt waits for a slot (MaxInFlight), within the patience.
		if !urgent {
			select {
			case s.slots <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		err := do(ctx)
		if !urgent {
			<-s.slots
		}
		if err == nil || !repeatable || ctx.Err() != nil || time.Now().Add(pause).After(deadline) {
			return err
		}
		s.log.Warn("webhook not recorded yet; trying again", "path", path, "err", err, "in", pause)
		if s.o.OnRetry != nil {
			s.o.OnRetry(path, err)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		pause = min(2*pause, time.Second)
	}
}

func (s *Server) handleSMS(w http.ResponseWriter, r *http.Request) {
	form, ok := s.twilioForm(w, r)
	if !ok {
		return
	}
	from := strings.TrimSpace(form.Get("From"))
	if from == "" {
		http.Error(w, "From is required", http.StatusBadRequest)
		return
	}
	in := service.InboundSMS{From: from, Body: form.Get("Body"), SID: form.Get("MessageSid")}
	var reply string
	urgent := isUrgent(visit.Parse(in.Body))
	err := s.patiently(r.Context(), r.URL.Path, in.SID != "", urgent, func(ctx context.Context) (err error) {
		reply, err = s.o.Service.HandleSMS(ctx, in)
		return err
	})
	if err != nil {
		// Twilio does not repeat an SMS webhook that fails: a 500 would leave the officer
		// believing a PANIC was raised. Say plainly that it may not have been.
		s.log.Error("inbound SMS not confirmed (Redis unreachable); the sender is told to call instead", "err", err)
		reply = s.o.Service.NotConfirmed(in)
	}
	if reply != "" {
		s.o.Service.CountReply()
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = io.WriteString(w, s.o.TwiML(reply)) // no copy of the answer into a []byte
}

// isUrgent says whether a text goes ahead of the webhooks waiting for a slot: a
// PANIC, and a check-in with a word after it, which may be the officer's duress
// code (only the service, looking the officer up, can tell). An ordinary check-in
// has nothing after the word, so it still waits its turn.
func isUrgent(c visit.Command) bool {
	return c.Verb == visit.VerbPanic || (c.Verb == visit.VerbIn && c.Code != "")
}

// handleGather takes a keypress on an alert call (the <Gather> action): 1 takes
// charge; any other key is told so, and the service is not asked. The query (school, alert, to) is Vigil's own, inside the signed URL.
func (s *Server) handleGather(w http.ResponseWriter, r *http.Request) {
	form, ok := s.twilioForm(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	var said string
	switch digits := strings.TrimSpace(form.Get("Digits")); digits {
	case "1":
		var err error
		said, err = s.o.Service.VoiceAck(r.Context(), q.Get("school"), q.Get("alert"), q.Get("to"), digits)
		if err != nil {
			s.log.Error("keypress failed", "err", err)
			said = "Sorry, Vigil could not record that. Please reply ACK to the text message instead."
		}
	case "":
		said = "No key was pressed. Nothing changed. To take charge, reply ACK to the text message. Goodbye."
	default:
		// Another key was pressed: saying none was would be untrue, and the contact
		// may think the alert taken.
		said = "Only the 1 key takes charge. Nothing changed. To take charge, reply ACK to the text message. Goodbye."
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = io.WriteString(w, s.o.SayTwiML(said))
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	form, ok := s.twilioForm(w, r)
	if !ok {
		return
	}
	sid := form.Get("MessageSid")
	if sid == "" {
		sid = form.Get("CallSid")
	}
	status := form.Get("MessageStatus")
	if status == "" {
		status = form.Get("CallStatus")
	}
	code := 0
	if c := form.Get("ErrorCode"); c != "" {
		for _, ch := range c {
			if ch < '0' || ch > '9' {
				code = -1
				break
			}
			code = code*10 + int(ch-'0')
		}
	}
	if sid == "" || status == "" || code < 0 {
		http.Error(w, "MessageSid and MessageStatus are required", http.StatusBadRequest)
		return
	}
	// One handler for every try of this request (service.Receipt.By).
	rc := service.Receipt{SID: sid, Status: status, ErrorCode: code, By: service.NewHandler()}
	if err := s.patiently(r.Context(), r.URL.Path, true, false, func(ctx context.Context) error {
		return s.o.Service.HandleReceipt(ctx, rc)
	}); err != nil {
		s.log.Error("status callback failed", "err", err)
		http.Error(w, "temporary failure", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ---- JSON API ----

type apiFunc func(w http.ResponseWriter, r *http.Request, who string) (any, int, error)

// api wraps a JSON handler with bearer-token authentication and a minimum role.
func (s *Server) api(role string, h apiFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := s.authenticate(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
			writeJSON(w, http.StatusUnauthorized, errorBody("a valid bearer token is required"))
			return
		}
		if roleRank[tok.Role] < roleRank[role] {
			writeJSON(w, http.StatusForbidden, errorBody("role "+tok.Role+" may not do this"))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		body, status, err := h(w, r, tok.Name)
		if err != nil {
			s.writeError(w, err)
			return
		}
		writeJSON(w, status, body)
	}
}

func (s *Server) authenticate(r *http.Request) (Token, bool) {
	// The scheme word is not case-sensitive (RFC 7235): "bearer x" is "Bearer x".
	scheme, secret, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	secret = strings.TrimSpace(secret)
	if !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return Token{}, false
	}
	sum := HashToken(secret)
	var found Token
	match := 0
	for _, t := range s.o.Tokens {
		// Compare every token in constant time so timing says nothing.
		if subtle.ConstantTimeCompare(sum[:], t.SHA256[:]) == 1 {
			found, match = t, 1
		}
	}
	return found, match == 1
}

// apiError is an error with the status to answer it with.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(msg string) error { return &apiError{http.StatusBadRequest, msg} }

func (s *Server) writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	var ve *visit.Error
	switch {
	case errors.As(err, &ae):
		writeJSON(w, ae.status, errorBody(ae.msg))
	case errors.As(err, &ve):
		status := map[visit.ErrorKind]int{visit.Invalid: 400, visit.Conflict: 409, visit.NotFound: 404}[ve.Kind]
		if status == 0 {
			status = 400
		}
		writeJSON(w, status, errorBody(ve.Msg))
	default:
		s.log.Error("API request failed", "err", err)
		writeJSON(w, http.StatusInternalServerError, errorBody("internal error; nothing may have changed, check before retrying"))
	}
}

func errorBody(msg string) map[string]string { return map[string]string{"error": msg} }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// decode reads a JSON body strictly: unknown fields and trailing data are errors,
// and a body over maxBody (api sets the limit) is 413, wherever the limit falls.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	// Only white space may follow, to the end: reading it also finds a body that
	// goes over the limit after the value.
	switch _, err := dec.Token(); {
	case err == io.EOF:
		return nil
	case err == nil:
		return badRequest("bad JSON body: more than one value")
	default:
		return bodyError(err)
	}
}

// bodyError is the answer to a body that could not be read as JSON.
func bodyError(err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over the limit of %d KiB", maxBody>>10)}
	}
	return badRequest("bad JSON body: " + err.Error())
}

// parseDuration reads an API duration: Go syntax ("45m", "1h30m") or the SMS forms.
func parseDuration(field, s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d, nil
	}
	if d, ok := visit.ParseDuration(s); ok {
		return d, nil
	}
	return 0, badRequest(field + ": " + `"` + s + `" is not a duration (e.g. "45m", "1h30m")`)
}
