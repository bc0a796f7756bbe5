package console_test

import (
	"context"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/vigil-safety/vigil/internal/app"
	"github.com/vigil-safety/vigil/internal/config"
	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/service"
	"github.com/vigil-safety/vigil/internal/sms/smstest"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/web"
	"github.com/vigil-safety/vigil/internal/web/console"
)

// Phone numbers of the test directory (Ofcom drama numbers).
const (
	janePhone    = "+447700900101"
	alexPhone    = "+447700900102"
	officePhone  = "+441632960001"
	headPhone    = "+447700900301"
	policePhone  = "+447700900401"
	twilioNumber = "+441632960999"
	accountSID   = "AC00000000000000000000000000000001"
	adminToken   = "admin-token-for-tests-00001"
	officeToken  = "office-token-for-tests-0001"
	password     = "correct horse battery"
)

func testConfig(redisURL, twilioURL string) string {
	return fmt.Sprintf(`
listen: "127.0.0.1:0"
public_url: "https://vigil.test"
timezone: "Europe/London"
redis: { url: %q, key_prefix: "vigil:" }
twilio:
  account_sid: %q
  auth_token: %q
  from: %q
  api_url: %q
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
        office:      [{ name: "School office", phone: %q }]
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
`, redisURL, accountSID, smstest.DefaultAuthToken, twilioNumber, twilioURL, officeToken, adminToken,
		officePhone, headPhone, policePhone, headPhone, janePhone, alexPhone)
}

// clock is a fake clock the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

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

// start is 10:00 in London (BST) on a school day.
var start = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

// env is the real daemon (real redis-server, fake Twilio, fake clock) with the
// console and the directory API served in front of its service.
type env struct {
	t      *testing.T
	app    *app.App
	clock  *clock
	twilio *smstest.Server
	store  *store.Store
	srv    *httptest.Server
	base   string
	phone  *console.Phone
}

type envOption func(*console.Options)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, clock: &clock{now: start}}
	rd := redistest.Start(t)
	e.twilio = smstest.NewServer(t, accountSID, smstest.WithClock(e.clock.Now))
	path := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(path, []byte(testConfig(rd.URL(), e.twilio.URL())), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := app.New(t.Context(), cfg, app.Options{Log: log, Now: e.clock.Now, Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("start vigil: %v", err)
	}
	e.app, e.store = a, a.Store()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	e.phone = console.NewPhone(io.Discard, 50, e.clock.Now)
	dir := console.NewDirectory(a.Store(), cfg.DefaultRegion, []string{"office", "managers", "police"}, e.clock.Now)
	e.srv = httptest.NewUnstartedServer(nil)
	e.base = "http://" + e.srv.Listener.Addr().String()
	co := console.Options{
		Service: a.Service(), Store: a.Store(), Directory: dir, Log: log, Now: e.clock.Now,
		Location: mustLoc(t, cfg.Timezone), PublicURL: e.base, ReminderBefore: cfg.Visits.ReminderBefore,
		Grace: cfg.Visits.Grace, DefaultDuration: cfg.Visits.DefaultDuration, Phone: e.phone, BcryptCost: bcrypt.MinCost,
	}
	for _, o := range opts {
		o(&co)
	}
	h, err := console.New(co)
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Config.Handler = web.New(web.Options{
		Service: a.Service(), Log: log, PublicURL: cfg.PublicURL, TwiML: func(string) string { return "<Response/>" },
		Tokens:    []web.Token{{Name: "sbm", Role: web.RoleAdmin, SHA256: web.HashToken(adminToken)}, {Name: "office-pc", Role: web.RoleOffice, SHA256: web.HashToken(officeToken)}},
		Directory: dir, Console: h,
	})
	e.srv.Start()
	t.Cleanup(func() {
		e.srv.Close()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("vigil stopped with %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("vigil did not stop within 15 s")
		}
	})
	return e
}

func mustLoc(t *testing.T, name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// addUser creates a console user directly in the store.
func (e *env) addUser(name, role, school string) {
	e.t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.AddUser(e.t.Context(), store.User{Name: name, Role: role, School: school, Hash: string(hash)}); err != nil {
		e.t.Fatal(err)
	}
}

// advance moves the clock and wakes the daemon's loops.
func (e *env) advance(d time.Duration) {
	e.clock.Advance(d)
	e.app.Wake()
}

// browser is an HTTP client with cookies that behaves like a same-origin page.
type browser struct {
	e *env
	c *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request as a same-origin browser page would (Sec-Fetch-Site).
func (b *browser) do(method, path string, form url.Values, hdr ...string) (*http.Response, string) {
	b.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(b.e.t.Context(), method, b.e.base+path, body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res, string(out)
}

func (b *browser) get(path string) (*http.Response, string) { return b.do("GET", path, nil) }

func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	return b.do("POST", path, form)
}

// login signs in and fails the test if it does not work.
func (b *browser) login(name string) {
	b.e.t.Helper()
	res, body := b.post("/login", url.Values{"name": {name}, "password": {password}, "next": {"/"}})
	if res.StatusCode != http.StatusSeeOther {
		b.e.t.Fatalf("sign in as %s: %s\n%s", name, res.Status, body)
	}
}

// follow gets the page a redirect points at (to read its flash message).
func (b *browser) follow(res *http.Response) string {
	b.e.t.Helper()
	if res.StatusCode != http.StatusSeeOther {
		b.e.t.Fatalf("want a redirect, got %s", res.Status)
	}
	_, body := b.get(res.Header.Get("Location"))
	return body
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// contains checks s, read as HTML text (html/template writes + as &#43;).
func contains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	s = html.UnescapeString(s)
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}

func lacks(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	s = html.UnescapeString(s)
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			t.Errorf("%s contains %q", what, sub)
		}
	}
}

type smstestMessage = smstest.Message

func serviceReq(officer string) service.OpenVisitRequest {
	return service.OpenVisitRequest{Officer: officer, Destination: "1 Test Street", Duration: 30 * time.Minute}
}

var _ web.Directory = (*console.Directory)(nil)
