// Package console is Vigil's office console: the server-rendered pages where the
// school office watches who is out and takes charge of alerts, and where the
// business manager keeps officers, phones, vehicles and contact lists right.
//
// Pages are html/template, embedded with their stylesheet and the one small script
// that keeps the board live (short polling, no build step). People sign in with a
// name and password (bcrypt hashes in Redis); sessions are cookies that end after
// idle time; every state-changing request passes Go's cross-origin protection.
package console

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/vigil-safety/vigil/internal/service"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Service is what the console asks of the service layer: the same operations as the
// JSON API, so everything done here is decided and audited the same way.
type Service interface {
	HandleSMS(ctx context.Context, in service.InboundSMS) (string, error)
	OpenVisit(ctx context.Context, by string, req service.OpenVisitRequest) (*visit.Visit, error)
	VisitCommand(ctx context.Context, by, visitID string, cmd visit.Command) (*visit.Visit, error)
	Visit(ctx context.Context, id string) (*visit.Visit, error)
	Visits(ctx context.Context, state string) ([]*visit.Visit, error)
	Alerts(ctx context.Context, state string) ([]*visit.Alert, error)
	AckAlert(ctx context.Context, by, alertID string) (*visit.Alert, error)
	ResolveAlert(ctx context.Context, by, alertID, note string) (*visit.Alert, error)
}

// Store is what the console reads and writes itself: users, sessions, sign-in
// counters, the directory (read) and the history.
type Store interface {
	User(ctx context.Context, name string) (*store.User, error)
	Users(ctx context.Context) ([]store.User, error)
	AddUser(ctx context.Context, u store.User) error
	PutUser(ctx context.Context, u store.User) error
	DeleteUser(ctx context.Context, name string) error

	PutSession(ctx context.Context, id string, s store.Session, ttl time.Duration) error
	Session(ctx context.Context, id string) (*store.Session, error)
	DeleteSession(ctx context.Context, id string) error
	DeleteUserSessions(ctx context.Context, name string) error
	AddLoginFailure(ctx context.Context, kind, who string, window time.Duration) (int64, error)
	LoginFailures(ctx context.Context, kind, who string) (int64, time.Duration, error)
	ResetLoginFailures(ctx context.Context, kind, who string) error

	Schools(ctx context.Context) ([]visit.School, error)
	Officers(ctx context.Context) ([]visit.Officer, error)
	HistoryVisits(ctx context.Context, school string, from, to time.Time, limit int64) ([]*visit.Visit, error)
	HistoryAlerts(ctx context.Context, school string, from, to time.Time, limit int64) ([]*visit.Alert, error)
	HistoryAlert(ctx context.Context, school, id string) (*visit.Alert, error)
	AuditEvents(ctx context.Context, school string, n int64) ([]visit.Event, error)
}

var _ Store = (*store.Store)(nil)

// Options configure the console.
type Options struct {
	Service   Service
	Store     Store
	Directory *Directory
	Log       *slog.Logger
	// Now is the clock (tests replace it): countdowns, session idle time.
	Now func() time.Time
	// Location writes times for schools that name no time zone.
	Location *time.Location
	// PublicURL is the console's own origin: cookies are Secure when it is https,
	// and it is trusted by the cross-origin protection (behind a proxy).
	PublicURL string
	// ReminderBefore and Grace colour the board: amber from due-ReminderBefore, red
	// from due; an alert is raised at due+Grace.
	ReminderBefore time.Duration
	Grace          time.Duration
	// DefaultDuration is offered when starting a visit.
	DefaultDuration time.Duration
	// Lists are the contact lists a school page offers (escalation levels and
	// headteacher), in order.
	Lists []string
	// Phone, when set (console SMS driver: demo mode), enables the phone page.
	Phone *Phone
	// DemoLogin shows the demo user's sign-in on the sign-in page (EnsureDemoUser
	// made it).
	DemoLogin bool
	// BcryptCost is the cost of new password hashes (0: DefaultCost).
	BcryptCost int
	// IdleTimeout ends a session not used for this long (0: 8h).
	IdleTimeout time.Duration
}

// Handler serves the console.
type Handler struct {
	o     Options
	log   *slog.Logger
	pages map[string]*template.Template
	h     http.Handler
}

// New builds the console.
func New(o Options) (*Handler, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 8 * time.Hour
	}
	if o.DefaultDuration == 0 {
		o.DefaultDuration = time.Hour
	}
	if len(o.Lists) == 0 {
		o.Lists = []string{visit.ListOffice, visit.ListManagers, visit.ListPolice, visit.ListHeadteacher}
	}
	h := &Handler{o: o, log: o.Log.With("component", "console")}
	if err := h.parseTemplates(); err != nil {
		return nil, err
	}
	cop := http.NewCrossOriginProtection()
	if u, err := url.Parse(o.PublicURL); err == nil && u.Scheme != "" && u.Host != "" {
		if err := cop.AddTrustedOrigin(u.Scheme + "://" + u.Host); err != nil {
			return nil, fmt.Errorf("console: public_url: %w", err)
		}
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.log.Warn("cross-origin request refused", "path", r.URL.Path, "origin", r.Header.Get("Origin"))
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
	}))
	h.h = securityHeaders(cop.Handler(h.routes()))
	return h, nil
}

// ServeHTTP serves the console.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.h.ServeHTTP(w, r) }

func (h *Handler) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheStatic(http.FileServerFS(static))))

	mux.HandleFunc("GET /login", h.loginPage)
	mux.HandleFunc("POST /login", h.login)
	mux.HandleFunc("POST /logout", h.logout)

	// The office board.
	mux.HandleFunc("GET /{$}", h.page(RoleReadonly, h.board))
	mux.HandleFunc("GET /board/state", h.page(RoleReadonly, h.boardState))
	mux.HandleFunc("POST /visits", h.page(RoleOffice, h.startVisit))
	mux.HandleFunc("POST /visits/{id}/checkin", h.page(RoleOffice, h.visitAction))
	mux.HandleFunc("POST /visits/{id}/extend", h.page(RoleOffice, h.visitAction))
	mux.HandleFunc("POST /visits/{id}/abort", h.page(RoleOffice, h.visitAction))
	mux.HandleFunc("POST /alerts/{id}/ack", h.page(RoleOffice, h.alertAction))
	mux.HandleFunc("POST /alerts/{id}/resolve", h.page(RoleOffice, h.alertAction))

	// History.
	mux.HandleFunc("GET /history", h.page(RoleReadonly, h.history))
	mux.HandleFunc("GET /history.csv", h.page(RoleReadonly, h.historyCSV))
	mux.HandleFunc("GET /history/visits/{id}", h.page(RoleReadonly, h.visitDetail))
	mux.HandleFunc("GET /history/alerts/{school}/{id}", h.page(RoleReadonly, h.alertDetail))

	// The business manager's pages.
	mux.HandleFunc("GET /admin/officers", h.page(RoleAdmin, h.officers))
	mux.HandleFunc("GET /admin/officers/new", h.page(RoleAdmin, h.officerForm))
	mux.HandleFunc("GET /admin/officers/{id}", h.page(RoleAdmin, h.officerForm))
	mux.HandleFunc("POST /admin/officers", h.page(RoleAdmin, h.saveOfficer))
	mux.HandleFunc("POST /admin/officers/{id}/delete", h.page(RoleAdmin, h.deleteOfficer))
	mux.HandleFunc("GET /admin/schools", h.page(RoleAdmin, h.schools))
	mux.HandleFunc("GET /admin/schools/new", h.page(RoleTrustAdmin, h.schoolForm))
	mux.HandleFunc("GET /admin/schools/{id}", h.page(RoleAdmin, h.schoolForm))
	mux.HandleFunc("POST /admin/schools", h.page(RoleAdmin, h.saveSchool))
	mux.HandleFunc("POST /admin/schools/{id}/test", h.page(RoleAdmin, h.testSMS))
	mux.HandleFunc("GET /admin/users", h.page(RoleAdmin, h.users))
	mux.HandleFunc("POST /admin/users", h.page(RoleAdmin, h.saveUser))
	mux.HandleFunc("POST /admin/users/{name}/delete", h.page(RoleAdmin, h.deleteUser))
	mux.HandleFunc("GET /admin/audit", h.page(RoleAdmin, h.audit))

	// Demo mode: the console SMS driver's phone.
	if h.o.Phone != nil {
		mux.HandleFunc("GET /phone", h.page(RoleOffice, h.phone))
		mux.HandleFunc("GET /phone/state", h.page(RoleOffice, h.phoneState))
		mux.HandleFunc("POST /phone", h.page(RoleOffice, h.phoneSend))
	}

	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, http.StatusNotFound, "There is no page here.")
	})
	return mux
}

// securityHeaders keeps the pages out of frames and other origins' scripts.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

func cacheStatic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		next.ServeHTTP(w, r)
	})
}

// ---- templates ----

var funcs = template.FuncMap{
	"join":  strings.Join,
	"upper": strings.ToUpper,
	"title": func(s string) string {
		s = strings.ReplaceAll(s, "_", " ")
		if s == "" {
			return s
		}
		return strings.ToUpper(s[:1]) + s[1:]
	},
	"can": can,
}

func (h *Handler) parseTemplates() error {
	h.pages = map[string]*template.Template{}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return fmt.Errorf("console: parse %s: %w", n, err)
		}
		h.pages[base] = t
	}
	return nil
}

// view is what every page template gets.
type view struct {
	Title   string
	User    *store.User
	Nav     string
	Flash   *flash
	Demo    bool
	Data    any
	Version string
}

// render writes a whole page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, page string, u *store.User, title string, data any) {
	t, ok := h.pages[page]
	if !ok {
		h.log.Error("no such page template", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	v := view{Title: title, User: u, Nav: page, Flash: h.takeFlash(w, r), Demo: h.o.Phone != nil, Data: data}
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		h.log.Error("render page", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fragment renders one named template of a page (the live parts) to a string.
func (h *Handler) fragment(page, name string, data any) (string, error) {
	var buf bytes.Buffer
	if err := h.pages[page].ExecuteTemplate(&buf, name, data); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// fail shows an error page.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	u, _ := h.currentUser(r)
	h.render(w, r, status, "error", u, http.StatusText(status), msg)
}

// internal logs err and shows a page that says nothing of it.
func (h *Handler) internal(w http.ResponseWriter, r *http.Request, err error) {
	h.log.Error("console request failed", "path", r.URL.Path, "err", err)
	h.fail(w, r, http.StatusInternalServerError, "Something went wrong; nothing may have changed. Check before trying again.")
}

// ---- flash messages (one message carried across a redirect) ----

type flash struct {
	Error bool
	Text  string
}

const flashCookie = "vigil_flash"

func (h *Handler) setFlash(w http.ResponseWriter, isErr bool, text string) {
	v := "ok:" + text
	if isErr {
		v = "err:" + text
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: url.QueryEscape(v), Path: "/", MaxAge: 60,
		HttpOnly: true, Secure: h.secure(), SameSite: http.SameSiteLaxMode})
}

func (h *Handler) takeFlash(w http.ResponseWriter, r *http.Request) *flash {
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return nil
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: h.secure(), SameSite: http.SameSiteLaxMode})
	v, err := url.QueryUnescape(c.Value)
	if err != nil {
		return nil
	}
	if t, ok := strings.CutPrefix(v, "err:"); ok {
		return &flash{Error: true, Text: t}
	}
	if t, ok := strings.CutPrefix(v, "ok:"); ok {
		return &flash{Text: t}
	}
	return nil
}

// done redirects back after a form, with a message.
func (h *Handler) done(w http.ResponseWriter, r *http.Request, to string, err error, ok string) {
	if err != nil {
		h.setFlash(w, true, h.userError(r, err))
	} else if ok != "" {
		h.setFlash(w, false, ok)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// userError words an error for the person who caused it; unexpected errors are
// logged and not shown.
func (h *Handler) userError(r *http.Request, err error) string {
	var ve *visit.Error
	if errors.As(err, &ve) {
		return ve.Msg
	}
	h.log.Error("console action failed", "path", r.URL.Path, "err", err)
	return "Something went wrong; nothing may have changed. Check before trying again."
}

// ---- scope: which schools a user sees ----

// sees reports whether u may see school.
func sees(u *store.User, school string) bool {
	return u.Role == RoleTrustAdmin || u.School == school
}

// schoolInfo is a school as the pages need it.
type schoolInfo struct {
	visit.School
	loc *time.Location
}

// directory is the schools and officers a user sees, loaded once per request.
type directory struct {
	schools  map[string]*schoolInfo
	officers map[string]visit.Officer
	order    []string // school IDs, sorted
}

func (h *Handler) loadDirectory(ctx context.Context, u *store.User) (*directory, error) {
	scs, err := h.o.Store.Schools(ctx)
	if err != nil {
		return nil, err
	}
	offs, err := h.o.Store.Officers(ctx)
	if err != nil {
		return nil, err
	}
	d := &directory{schools: map[string]*schoolInfo{}, officers: map[string]visit.Officer{}}
	for _, sc := range scs {
		if !sees(u, sc.ID) {
			continue
		}
		loc := h.o.Location
		if sc.TimeZone != "" {
			if l, err := time.LoadLocation(sc.TimeZone); err == nil {
				loc = l
			}
		}
		d.schools[sc.ID] = &schoolInfo{School: sc, loc: loc}
		d.order = append(d.order, sc.ID)
	}
	sort.Strings(d.order)
	for _, o := range offs {
		if sees(u, o.School) {
			d.officers[o.ID] = o
		}
	}
	return d, nil
}

func (d *directory) loc(school string, fallback *time.Location) *time.Location {
	if s, ok := d.schools[school]; ok {
		return s.loc
	}
	return fallback
}

func (d *directory) officerName(id string) string {
	if o, ok := d.officers[id]; ok {
		return o.Name
	}
	return id
}

func (d *directory) schoolName(id string) string {
	if s, ok := d.schools[id]; ok {
		return s.Name
	}
	return id
}

// sortedOfficers lists the officers a user sees, by name.
func (d *directory) sortedOfficers() []visit.Officer {
	out := make([]visit.Officer, 0, len(d.officers))
	for _, o := range d.officers {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].Name) < strings.ToLower(out[j].Name) })
	return out
}

func (d *directory) schoolList() []visit.School {
	out := make([]visit.School, 0, len(d.order))
	for _, id := range d.order {
		out = append(out, d.schools[id].School)
	}
	return out
}
