package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/app"
	"github.com/vigil-safety/vigil/internal/config"
	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/sms/smstest"
)

// Phone numbers of the test directory (Ofcom drama numbers).
const (
	janePhone    = "+447700900101"
	alexPhone    = "+447700900102"
	officePhone  = "+441632960001"
	office2Phone = "+447700900201"
	headPhone    = "+447700900301"
	policePhone  = "+447700900401"
	twilioNumber = "+441632960999"
	accountSID   = "AC00000000000000000000000000000001"
	publicURL    = "https://vigil.test"
	officeToken  = "office-token-for-tests-0001"
	adminToken   = "admin-token-for-tests-00001"
)

// testConfig is a full configuration pointing at a test Redis and a fake Twilio.
func testConfig(redisURL, twilioURL string) string {
	return fmt.Sprintf(`
listen: "127.0.0.1:0"
public_url: %q
timezone: "Europe/London"
redis: { url: %q, key_prefix: "vigil:" }
twilio:
  account_sid: %q
  auth_token: %q
  from: %q
  api_url: %q
  validity_period: 10m
visits: { default_duration: 60m, max_duration: 8h, reminder_before: 10m, grace: 5m }
escalation:
  levels:
    - { name: office,   after: 0s,  repeat_every: 5m }
    - { name: managers, after: 10m, repeat_every: 5m }
    - { name: police,   after: 20m, repeat_every: 10m }
  panic_levels: [office, managers, police]
  ack_hold: 15m
api:
  tokens:
    - { name: office-pc, role: office, token: %q }
    - { name: sbm, role: admin, token: %q }
directory:
  schools:
    - id: bishop-lonsdale
      name: "Bishop Lonsdale CE Primary School"
      contacts:
        office:      [{ name: "School office", phone: %q }, { name: "Office manager", phone: %q }]
        managers:    [{ name: "Head of School", phone: %q }]
        police:      [{ name: "Safer Schools Officer", phone: %q }]
        headteacher: [{ name: "Head of School", phone: %q }]
  officers:
    - id: jdoe
      name: "Jane Doe"
      phone: %q
      school: bishop-lonsdale
      duress_code: "4321"
      vehicle: { make: Ford, model: Fiesta, colour: Blue, registration: "AB12 CDE", insurance_expires: 2027-03-01 }
    - id: asmith
      name: "Alex Smith"
      phone: %q
      school: bishop-lonsdale
`, publicURL, redisURL, accountSID, smstest.DefaultAuthToken, twilioNumber, twilioURL, officeToken, adminToken,
		officePhone, office2Phone, headPhone, policePhone, headPhone, janePhone, alexPhone)
}

// clock is a fake clock the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(t time.Time) *clock { return &clock{now: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is one test's world: a real redis-server, a fake Twilio, and a clock.
type env struct {
	t      *testing.T
	redis  *redistest.Server
	twilio *smstest.Server
	clock  *clock
	cfg    string // path of the config file
}

// start is 10:00 in London (BST) on a summer school day, so times in messages show
// that the school's zone is used.
var start = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

func newEnv(t *testing.T, opts ...redistest.Option) *env {
	t.Helper()
	e := &env{t: t, redis: redistest.Start(t, opts...), clock: newClock(start)}
	e.twilio = smstest.NewServer(t, accountSID, smstest.WithClock(e.clock.Now))
	e.cfg = filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(e.cfg, []byte(testConfig(e.redis.URL(), e.twilio.URL())), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// daemon is one running Vigil.
type daemon struct {
	*app.App
	base   string
	cancel context.CancelFunc
	done   chan error
}

// daemonOptions are the knobs a test may turn on a daemon.
type daemonOptions struct {
	heartbeatEvery time.Duration
	patience       time.Duration
	onRetry        func(path string, err error)
	// onLog sees every line the daemon logs (warnings and errors), as it is logged.
	onLog func(line string)
}

// startDaemon runs Vigil in-process on e's Redis and fake Twilio.
func (e *env) startDaemon() *daemon { return e.startDaemonWith(nil) }

func (e *env) startDaemonWith(opt func(*daemonOptions)) *daemon {
	e.t.Helper()
	var do daemonOptions
	if opt != nil {
		opt(&do)
	}
	cfg, err := config.Load(e.cfg, nil)
	if err != nil {
		e.t.Fatalf("config: %v", err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{e.t, do.onLog}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := app.New(e.t.Context(), cfg, app.Options{Log: log, Now: e.clock.Now, Poll: 50 * time.Millisecond, HeartbeatEvery: do.heartbeatEvery,
		WebhookPatience: do.patience, OnWebhookRetry: do.onRetry})
	if err != nil {
		e.t.Fatalf("start vigil: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemon{App: a, base: "http://" + a.Addr(), cancel: cancel, done: make(chan error, 1)}
	go func() { d.done <- a.Run(ctx) }()
	e.t.Cleanup(func() { d.stop(e.t) })
	return d
}

// stop shuts the daemon down and waits for it (idempotent).
func (d *daemon) stop(t *testing.T) {
	if d.cancel == nil {
		return
	}
	d.cancel()
	d.cancel = nil
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("vigil stopped with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("vigil did not stop within 15 s")
	}
}

// advance moves the clock and wakes the daemons' loops.
func (e *env) advance(d time.Duration, ds ...*daemon) {
	e.clock.Advance(d)
	for _, x := range ds {
		x.Wake()
	}
}

// sms sends a signed inbound SMS and returns Vigil's reply text.
func (e *env) sms(d *daemon, from, body string) string {
	e.t.Helper()
	return e.smsForm(d, e.twilio.InboundSMS(from, twilioNumber, body))
}

func (e *env) smsForm(d *daemon, form map[string][]string) string {
	e.t.Helper()
	res := smstest.PostSigned(e.t, nil, d.base, publicURL, "/twilio/sms", smstest.DefaultAuthToken, form)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		e.t.Fatalf("POST /twilio/sms: %s: %s", res.Status, b)
	}
	return twimlText(e.t, b)
}

func twimlText(t *testing.T, b []byte) string {
	t.Helper()
	s := string(b)
	i := strings.Index(s, "<Message>")
	if i < 0 {
		if !strings.Contains(s, "<Response/>") && !strings.Contains(s, "<Response></Response>") {
			t.Fatalf("not TwiML: %s", s)
		}
		return ""
	}
	j := strings.Index(s, "</Message>")
	return xmlUnescape(s[i+len("<Message>") : j])
}

func xmlUnescape(s string) string {
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&", "&#34;", `"`, "&#39;", "'", "&quot;", `"`, "&apos;", "'", "&#xA;", "\n").Replace(s)
}

// api calls the JSON API and decodes the answer into out (when not nil).
func (e *env) api(d *daemon, method, path, token, body string, out any) int {
	e.t.Helper()
	code, b := e.raw(d, method, path, token, body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: %d: decode %q: %v", method, path, code, b, err)
		}
	}
	return code
}

// raw calls the API and returns the status and the body, whatever it is.
func (e *env) raw(d *daemon, method, path, token, body string) (int, []byte) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), method, d.base+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// sentTo is the bodies sent to one phone so far.
func (e *env) sentTo(phone string) []string {
	var out []string
	for _, m := range e.twilio.SentTo(phone) {
		out = append(out, m.Body)
	}
	return out
}

// waitFor waits until the fake Twilio has accepted n messages in all.
func (e *env) waitFor(n int) []smstest.Message {
	e.t.Helper()
	return e.twilio.WaitSent(10*time.Second, smstest.AtLeast[smstest.Message](n))
}

type testWriter struct {
	t     *testing.T
	onLog func(string)
}

func (w testWriter) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	if w.onLog != nil {
		w.onLog(line)
	}
	w.t.Log(line)
	return len(p), nil
}

// waitSettled waits until nothing more can be sent before the clock moves: the
// outbox is empty and no timer is due. Twilio having accepted a message does not
// mean the daemon has recorded it yet, and no event says so, so this polls the
// state (bounded) rather than sleeping a guessed time.
func (e *env) waitSettled(d *daemon) bool {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !e.settled(d) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// settled reports whether nothing more can be sent before the clock moves.
func (e *env) settled(d *daemon) bool {
	e.t.Helper()
	ctx := e.t.Context()
	schools, err := d.Store().SchoolIDs(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	n, err := d.Store().OutboxDepth(ctx, schools)
	if err != nil {
		e.t.Fatal(err)
	}
	if n > 0 {
		return false
	}
	for _, s := range schools {
		at, ok, err := d.Store().NextTimer(ctx, s)
		if err != nil {
			e.t.Fatal(err)
		}
		// Due, or claimed and not yet committed (a claim re-scores the timer to
		// now + the lease, which would otherwise look like a timer not yet due).
		if ok && (!at.After(e.clock.Now()) || at.Equal(e.clock.Now().Add(app.TimerLease))) {
			return false
		}
	}
	return true
}

// newEnvWith is newEnv with the test configuration changed by edit, which gets the
// YAML and returns it: for a test that needs another token, list or level.
func newEnvWith(t *testing.T, edit func(yaml string) string) *env {
	t.Helper()
	e := newEnv(t)
	b, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.cfg, []byte(edit(string(b))), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// replaceOnce replaces old with new in s, failing the test when old is not there
// (a configuration edit that silently did nothing would make a test prove nothing).
func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("test config has no %q", old)
	}
	return strings.Replace(s, old, new, 1)
}

// get fetches path from the daemon and returns the status code.
func (e *env) get(d *daemon, path string) int {
	e.t.Helper()
	res, err := http.Get(d.base + path)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	res.Body.Close()
	return res.StatusCode
}

// runApp runs Vigil on the real clock with the configuration yaml, until the test
// ends (for benchmarks and real-time tests; timelines use env and its fake clock).
func runApp(tb testing.TB, yaml string) *daemon {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "vigil.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		tb.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	a, err := app.New(tb.Context(), cfg, app.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	return &daemon{App: a, base: "http://" + a.Addr()}
}
