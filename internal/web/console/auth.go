package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/vigil-safety/vigil/internal/store"
)

// Roles of console users, weakest first. Each may do what the ones before it may.
const (
	RoleReadonly   = "readonly"    // sees the board and the history of their school
	RoleOffice     = "office"      // also starts, extends, checks in, aborts, ACKs, resolves
	RoleAdmin      = "admin"       // also keeps their school's officers, lists and users
	RoleTrustAdmin = "trust-admin" // all of that, for every school of the trust
)

// Roles lists the roles, weakest first.
var Roles = []string{RoleReadonly, RoleOffice, RoleAdmin, RoleTrustAdmin}

var roleRank = map[string]int{RoleReadonly: 1, RoleOffice: 2, RoleAdmin: 3, RoleTrustAdmin: 4}

// ValidRole reports whether r is a console role.
func ValidRole(r string) bool { return roleRank[r] > 0 }

// can reports whether u's role is at least role.
func can(u *store.User, role string) bool { return u != nil && roleRank[u.Role] >= roleRank[role] }

// MinPasswordLength is the shortest password accepted.
const MinPasswordLength = 10

// HashPassword checks a new password and returns its bcrypt hash (cost 0: default).
func HashPassword(pw string, cost int) (string, error) {
	if len([]rune(pw)) < MinPasswordLength {
		return "", fmt.Errorf("the password must have at least %d characters", MinPasswordLength)
	}
	if len(pw) > 72 {
		// bcrypt reads only 72 bytes; refuse rather than silently ignore the rest.
		return "", errors.New("the password must have at most 72 bytes")
	}
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	b, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// dummyHash is compared against when the user does not exist, so that a sign-in
// takes as long for an unknown name as for a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("vigil-no-such-user-password"), bcrypt.DefaultCost)

// Sign-in limits: failures counted per user name and per client address, in a
// window that opens at the first failure.
const (
	maxUserFailures = 5
	maxIPFailures   = 20
	failureWindow   = 15 * time.Minute
	// maxSessionAge ends a session however busy it is.
	maxSessionAge = 7 * 24 * time.Hour
	// touchEvery bounds how often a busy session (the board polls every 2 s) is
	// written back to refresh its idle timeout.
	touchEvery = time.Minute
)

const sessionCookie = "vigil_session"

func (h *Handler) secure() bool { return strings.HasPrefix(h.o.PublicURL, "https://") }

// sessionID is the store's key for a cookie secret: its SHA-256.
func sessionID(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// currentUser reads the session cookie; nil when there is no live session.
func (h *Handler) currentUser(r *http.Request) (*store.User, string) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return nil, ""
	}
	id := sessionID(c.Value)
	ctx := r.Context()
	sess, err := h.o.Store.Session(ctx, id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			h.log.Error("load session", "err", err)
		}
		return nil, ""
	}
	now := h.o.Now()
	if now.Sub(sess.SeenAt) > h.o.IdleTimeout || now.Sub(sess.CreatedAt) > maxSessionAge {
		_ = h.o.Store.DeleteSession(ctx, id)
		return nil, ""
	}
	u, err := h.o.Store.User(ctx, sess.User)
	if err != nil {
		// A deleted user's sessions end with them.
		return nil, ""
	}
	if now.Sub(sess.SeenAt) > touchEvery {
		sess.SeenAt = now
		if err := h.o.Store.PutSession(ctx, id, *sess, h.o.IdleTimeout); err != nil {
			h.log.Error("refresh session", "err", err)
		}
	}
	return u, id
}

type pageFunc func(w http.ResponseWriter, r *http.Request, u *store.User)

// page wraps a handler with sign-in and a minimum role.
func (h *Handler) page(role string, fn pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, _ := h.currentUser(r)
		if u == nil {
			if wantsJSON(r) {
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "signed out"})
				return
			}
			next := "/"
			if r.Method == http.MethodGet {
				next = r.URL.RequestURI()
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(next), http.StatusSeeOther)
			return
		}
		if !can(u, role) {
			h.fail(w, r, http.StatusForbidden, "Your role ("+u.Role+") may not do this.")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		fn(w, r, u)
	}
}

func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// safeNext keeps a post-sign-in redirect on this site.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

type loginData struct {
	Name  string
	Next  string
	Error string
	Demo  bool
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	if u, _ := h.currentUser(r); u != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	h.render(w, r, http.StatusOK, "login", nil, "Sign in", loginData{Next: safeNext(r.URL.Query().Get("next")), Demo: h.o.DemoLogin})
}

// clientIP is the address a request came from (the proxy's, behind one).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	name := strings.TrimSpace(r.PostForm.Get("name"))
	pw := r.PostForm.Get("password")
	next := safeNext(r.PostForm.Get("next"))
	data := loginData{Name: name, Next: next, Demo: h.o.DemoLogin}
	ip := clientIP(r)

	if wait, err := h.loginBlocked(ctx, name, ip); err != nil {
		h.internal(w, r, err)
		return
	} else if wait > 0 {
		h.log.Warn("sign-in refused: too many failures", "user", name, "ip", ip)
		data.Error = fmt.Sprintf("Too many failed sign-ins. Try again in %d minutes, or ask an administrator.", int(wait.Minutes())+1)
		h.render(w, r, http.StatusTooManyRequests, "login", nil, "Sign in", data)
		return
	}

	u, err := h.o.Store.User(ctx, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.internal(w, r, err)
		return
	}
	hash := dummyHash
	if u != nil {
		hash = []byte(u.Hash)
	}
	ok := bcrypt.CompareHashAndPassword(hash, []byte(pw)) == nil && u != nil && name != ""
	if !ok {
		for _, k := range [][2]string{{"user", name}, {"ip", ip}} {
			if _, err := h.o.Store.AddLoginFailure(ctx, k[0], k[1], failureWindow); err != nil {
				h.log.Error("count sign-in failure", "err", err)
			}
		}
		h.log.Info("sign-in failed", "user", name, "ip", ip)
		data.Error = "That name and password do not match."
		h.render(w, r, http.StatusUnauthorized, "login", nil, "Sign in", data)
		return
	}
	_ = h.o.Store.ResetLoginFailures(ctx, "user", name)

	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		h.internal(w, r, err)
		return
	}
	value := base64.RawURLEncoding.EncodeToString(secret)
	now := h.o.Now()
	if err := h.o.Store.PutSession(ctx, sessionID(value), store.Session{User: u.Name, CreatedAt: now, SeenAt: now}, h.o.IdleTimeout); err != nil {
		h.internal(w, r, err)
		return
	}
	// The cookie lives as long as the browser session; the server ends it on idle.
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: value, Path: "/", HttpOnly: true,
		Secure: h.secure(), SameSite: http.SameSiteLaxMode})
	h.log.Info("signed in", "user", u.Name, "role", u.Role)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// loginBlocked says how long sign-ins for name or from ip are refused (0: not).
func (h *Handler) loginBlocked(ctx context.Context, name, ip string) (time.Duration, error) {
	var wait time.Duration
	for _, k := range []struct {
		kind, who string
		max       int64
	}{{"user", name, maxUserFailures}, {"ip", ip, maxIPFailures}} {
		n, ttl, err := h.o.Store.LoginFailures(ctx, k.kind, k.who)
		if err != nil {
			return 0, err
		}
		if n >= k.max {
			wait = max(wait, ttl, time.Second)
		}
	}
	return wait, nil
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if _, id := h.currentUser(r); id != "" {
		if err := h.o.Store.DeleteSession(r.Context(), id); err != nil {
			h.log.Error("end session", "err", err)
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: h.secure(), SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// EnsureDemoUser creates the demo mode's user (name "demo", role trust-admin) with
// password "demo-password" unless a user of that name exists. Call it only with the
// embedded store and the console SMS driver: it is for `make run`.
func EnsureDemoUser(ctx context.Context, st interface {
	AddUser(ctx context.Context, u store.User) error
}, now time.Time) error {
	hash, err := HashPassword(DemoPassword, bcrypt.MinCost)
	if err != nil {
		return err
	}
	err = st.AddUser(ctx, store.User{Name: DemoUser, Role: RoleTrustAdmin, Hash: hash, CreatedAt: now, CreatedBy: "demo mode"})
	if errors.Is(err, store.ErrExists) {
		return nil
	}
	return err
}

// The demo mode's sign-in.
const (
	DemoUser     = "demo"
	DemoPassword = "demo-password"
)
