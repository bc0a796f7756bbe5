package console_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/sms"
	"github.com/vigil-safety/vigil/internal/visit"
	"github.com/vigil-safety/vigil/internal/web/console"
)

// Signing in: redirects, cookie flags, a wrong password, and the per-user limit.
func TestSignIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addUser("Sam Office", console.RoleOffice, "bishop-lonsdale")
	b := e.browser()

	res, _ := b.get("/")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login?next=%2F" {
		t.Fatalf("signed-out board: %s to %q, want a redirect to the sign-in page", res.Status, res.Header.Get("Location"))
	}
	res, body := b.post("/login", url.Values{"name": {"Sam Office"}, "password": {"wrong password!"}})
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong password: %s, want 401", res.Status)
	}
	contains(t, "wrong password page", body, "do not match")

	res, _ = b.post("/login", url.Values{"name": {"sam office"}, "password": {password}, "next": {"/history"}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/history" {
		t.Fatalf("sign in: %s to %q", res.Status, res.Header.Get("Location"))
	}
	cookie := res.Header.Get("Set-Cookie")
	contains(t, "session cookie", cookie, "vigil_session=", "HttpOnly", "SameSite=Lax", "Path=/")
	lacks(t, "session cookie over http", cookie, "Secure")
	_, body = b.get("/")
	contains(t, "board", body, "Sam Office", "No open alerts.", "Nobody is out on a visit.")

	// An open redirect is not followed.
	other := e.browser()
	res, _ = other.post("/login", url.Values{"name": {"Sam Office"}, "password": {password}, "next": {"//evil.example/"}})
	if loc := res.Header.Get("Location"); loc != "/" {
		t.Errorf("next=//evil.example/ redirected to %q, want /", loc)
	}

	// Five failures lock the name for a while, even with the right password.
	c := e.browser()
	for range 5 {
		c.post("/login", url.Values{"name": {"Sam Office"}, "password": {"not the password"}})
	}
	res, body = c.post("/login", url.Values{"name": {"Sam Office"}, "password": {password}})
	if res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("sign in after 5 failures: %s, want 429", res.Status)
	}
	contains(t, "locked page", body, "Too many failed sign-ins")

	// Signing out ends the session on the server.
	res, _ = b.post("/logout", url.Values{})
	if res.StatusCode != http.StatusSeeOther {
		t.Errorf("sign out: %s", res.Status)
	}
	if res, _ = b.get("/"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("board after sign-out: %s, want a redirect", res.Status)
	}
}

// Cookies are Secure when the console's public URL is https.
func TestSecureCookie(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *console.Options) { o.PublicURL = "https://vigil.test" })
	e.addUser("sam", console.RoleOffice, "bishop-lonsdale")
	res, _ := e.browser().post("/login", url.Values{"name": {"sam"}, "password": {password}})
	contains(t, "session cookie", res.Header.Get("Set-Cookie"), "Secure", "HttpOnly", "SameSite=Lax")
}

// A session unused for 8 hours has ended.
func TestSessionIdleExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addUser("sam", console.RoleOffice, "bishop-lonsdale")
	b := e.browser()
	b.login("sam")
	e.clock.Advance(7 * time.Hour)
	if res, _ := b.get("/"); res.StatusCode != http.StatusOK {
		t.Fatalf("after 7 h: %s, want the board", res.Status)
	}
	e.clock.Advance(8*time.Hour + time.Minute)
	if res, _ := b.get("/"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("after 8 h idle: %s, want a redirect to sign in", res.Status)
	}
}

// A state-changing request from another origin is refused and changes nothing.
func TestCrossOriginRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addUser("sam", console.RoleOffice, "bishop-lonsdale")
	b := e.browser()
	b.login("sam")
	form := url.Values{"officer": {"jdoe"}, "destination": {"14 Elm Road"}, "duration": {"45"}}
	res, _ := b.do("POST", "/visits", form, "Sec-Fetch-Site", "cross-site")
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST: %s, want 403", res.Status)
	}
	res, _ = b.do("POST", "/visits", form, "Sec-Fetch-Site", "", "Origin", "https://evil.example")
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("POST with a foreign Origin: %s, want 403", res.Status)
	}
	vs, _ := e.app.Service().Visits(t.Context(), "")
	if len(vs) != 0 {
		t.Errorf("a cross-origin request opened a visit")
	}
}

type state struct {
	Version string   `json:"version"`
	Alerts  []string `json:"alerts"`
	HTML    string   `json:"html"`
}

func (b *browser) state() state {
	b.e.t.Helper()
	res, body := b.do("GET", "/board/state", nil, "Accept", "application/json")
	if res.StatusCode != http.StatusOK {
		b.e.t.Fatalf("board state: %s %s", res.Status, body)
	}
	var s state
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		b.e.t.Fatal(err)
	}
	return s
}

// The office's day: start a visit for an officer, see it due soon, then overdue with
// an alert naming the vehicle; take charge; resolve; all audited under the person.
func TestBoardVisitToResolvedAlert(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addUser("Sam Office", console.RoleOffice, "bishop-lonsdale")
	b := e.browser()
	b.login("Sam Office")

	res, _ := b.post("/visits", url.Values{"officer": {"jdoe"}, "destination": {"14 Elm Road"}, "duration": {"45"},
		"kind": {"safe_and_well"}, "pupil_ref": {"P-1234"}, "companions": {"asmith"}})
	contains(t, "after starting", b.follow(res), "Visit started for Jane Doe to 14 Elm Road, due back at 10:45")
	s := b.state()
	contains(t, "board", s.HTML, "Jane Doe", "with Alex Smith", "14 Elm Road", "due in 45 min", "ref P-1234")
	if len(s.Alerts) != 0 {
		t.Fatalf("alerts before overdue: %v", s.Alerts)
	}

	e.advance(40 * time.Minute)
	s2 := b.state()
	contains(t, "board in the reminder window", s2.HTML, `class="visit amber"`, "Due soon")
	if s2.Version == s.Version {
		t.Errorf("the board's version did not change with its content")
	}

	e.advance(11 * time.Minute) // due + grace
	var st state
	deadline := time.Now().Add(5 * time.Second)
	for st = b.state(); len(st.Alerts) == 0 && time.Now().Before(deadline); st = b.state() {
		time.Sleep(20 * time.Millisecond)
	}
	if len(st.Alerts) != 1 {
		t.Fatalf("no alert on the board after due + grace:\n%s", st.HTML)
	}
	contains(t, "alert", st.HTML, "OVERDUE", "Jane Doe", "Blue Ford Fiesta AB12 CDE", "6 min overdue", "nobody has taken charge", "Take charge (ACK)")
	alertID := st.Alerts[0]

	res, _ = b.post("/alerts/"+alertID+"/ack", url.Values{})
	contains(t, "after ACK", b.follow(res), "You have taken charge")
	afterAck := b.state().HTML
	contains(t, "board after ACK", afterAck, "Sam Office since 10:51")
	if strings.Contains(afterAck, "Take charge (ACK)") {
		t.Errorf("board offers to take charge during the ACK's hold")
	}
	// The hold (15 min) ends and the alert escalates again: the board says so, and
	// anyone may take charge again.
	e.advance(16 * time.Minute)
	deadline = time.Now().Add(5 * time.Second)
	for st = b.state(); !strings.Contains(st.HTML, "the hold is over") && time.Now().Before(deadline); st = b.state() {
		time.Sleep(20 * time.Millisecond)
	}
	contains(t, "board after the hold", st.HTML, "Sam Office since 10:51", "the hold is over", "Take charge (ACK)")

	res, _ = b.post("/alerts/"+alertID+"/resolve", url.Values{"note": {""}})
	contains(t, "resolve without a note", b.follow(res), "say how the alert was resolved")
	res, _ = b.post("/alerts/"+alertID+"/resolve", url.Values{"note": {"Phoned Jane: safe, phone had died"}})
	contains(t, "after resolve", b.follow(res), "resolved")
	if st := b.state(); len(st.Alerts) != 0 {
		t.Errorf("alert still open after resolve")
	}

	// Close the visit and find the whole trail in the history.
	vs, _ := e.app.Service().Visits(t.Context(), "")
	if len(vs) == 1 {
		res, _ = b.post("/visits/"+vs[0].ID+"/checkin", url.Values{})
		contains(t, "after check-in", b.follow(res), "checked in safe")
	}
	closed, err := e.app.Service().Visits(t.Context(), "closed")
	if err != nil || len(closed) != 1 {
		t.Fatalf("closed visits: %v %v", closed, err)
	}
	v, _ := e.app.Service().Visit(t.Context(), closed[0].ID)
	if v.Events[0].By != "Sam Office" {
		t.Errorf("visit opened by %q, want the signed-in person", v.Events[0].By)
	}
	_, page := b.get("/history/visits/" + v.ID)
	contains(t, "visit trail", page, "opened", "overdue", "Sam Office", "Phoned Jane: safe, phone had died", "OVERDUE")

	_, page = b.get("/history?from=2026-06-01&to=2026-06-01")
	contains(t, "history", page, "14 Elm Road", "OVERDUE", "Sam Office")
	_, csv := b.get("/history.csv?from=2026-06-01&to=2026-06-01&officer=jdoe")
	contains(t, "CSV", csv, "visit_id,school,officer_id", v.ID, "P-1234", "Alex Smith", "overdue", "Phoned Jane")
}

// Extend and call off from the board; a call-off needs a reason.
func TestBoardExtendAndAbort(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addUser("sam", console.RoleOffice, "bishop-lonsdale")
	b := e.browser()
	b.login("sam")
	b.post("/visits", url.Values{"officer": {"jdoe"}, "destination": {"14 Elm Road"}, "duration": {"45"}})
	vs, _ := e.app.Service().Visits(t.Context(), "")
	if len(vs) != 1 {
		t.Fatalf("open visits: %d", len(vs))
	}
	id := vs[0].ID
	res, _ := b.post("/visits/"+id+"/extend", url.Values{"duration": {"30m"}})
	contains(t, "after extend", b.follow(res), "now due at 11:15")
	res, _ = b.post("/visits/"+id+"/abort", url.Values{"reason": {" "}})
	contains(t, "abort without a reason", b.follow(res), "say why")
	res, _ = b.post("/visits/"+id+"/abort", url.Values{"reason": {"family not at home"}})
	contains(t, "after abort", b.follow(res), "called off")
	v, _ := e.app.Service().Visit(t.Context(), id)
	if v.Outcome != visit.OutcomeCancelled {
		t.Errorf("outcome %q, want cancelled", v.Outcome)
	}
	// A second officer start on the same officer is refused with the service's words.
	b.post("/visits", url.Values{"officer": {"asmith"}, "destination": {"1 Oak Lane"}})
	res, _ = b.post("/visits", url.Values{"officer": {"asmith"}, "destination": {"2 Oak Lane"}})
	contains(t, "second visit", b.follow(res), "flash-err")
}

// Roles: readonly sees but may not act; office may not reach the admin pages.
func TestRoles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addUser("rita", console.RoleReadonly, "bishop-lonsdale")
	e.addUser("olly", console.RoleOffice, "bishop-lonsdale")
	r := e.browser()
	r.login("rita")
	_, body := r.get("/")
	lacks(t, "readonly board", body, "Start a visit")
	if res, _ := r.post("/visits", url.Values{"officer": {"jdoe"}, "destination": {"x"}}); res.StatusCode != http.StatusForbidden {
		t.Errorf("readonly POST /visits: %s, want 403", res.Status)
	}
	o := e.browser()
	o.login("olly")
	for _, p := range []string{"/admin/officers", "/admin/schools", "/admin/users"} {
		if res, _ := o.get(p); res.StatusCode != http.StatusForbidden {
			t.Errorf("office GET %s: %s, want 403", p, res.Status)
		}
	}
}

// A school's staff see only their school; a trust administrator sees every one.
func TestSchoolScope(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	dir := console.NewDirectory(e.store, "GB", []string{"office", "managers", "police"}, e.clock.Now)
	if _, _, err := dir.PutSchool(ctx, "test", visit.School{ID: "st-marys", Name: "St Mary's", Contacts: map[string][]visit.Contact{
		"office": {{Name: "St Mary's office", Phone: "01632 960002"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dir.PutOfficer(ctx, "test", visit.Officer{ID: "mjones", Name: "Mo Jones", Phone: "07700 900111", School: "st-marys"}, false); err != nil {
		t.Fatal(err)
	}
	e.addUser("marys-office", console.RoleOffice, "st-marys")
	e.addUser("trust", console.RoleTrustAdmin, "")
	boss := e.browser()
	boss.login("trust")
	boss.post("/visits", url.Values{"officer": {"jdoe"}, "destination": {"14 Elm Road"}})

	m := e.browser()
	m.login("marys-office")
	st := m.state()
	lacks(t, "St Mary's board", st.HTML, "Jane Doe", "14 Elm Road")
	_, body := m.get("/")
	lacks(t, "St Mary's officer list", body, "Jane Doe")
	contains(t, "St Mary's officer list", body, "Mo Jones")
	vs, _ := e.app.Service().Visits(ctx, "")
	if res, _ := m.post("/visits/"+vs[0].ID+"/checkin", url.Values{}); !strings.Contains(m.follow(res), "not found") {
		t.Errorf("another school's visit could be checked in")
	}
	contains(t, "trust board", boss.state().HTML, "Jane Doe", "Bishop Lonsdale")
}

// Officers: add with a national mobile (stored E.164) and a vehicle; the duress code
// is never shown; provisioned officers are read-only; an officer on a visit stays.
func TestOfficerAdmin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addUser("bm", console.RoleAdmin, "bishop-lonsdale")
	b := e.browser()
	b.login("bm")

	form := url.Values{"new": {"1"}, "name": {"Priya Patel"}, "phone": {"07700 900123"}, "school": {"bishop-lonsdale"},
		"make": {"Vauxhall"}, "model": {"Corsa"}, "colour": {"Red"}, "registration": {"xy21 abc"}, "insurance_expires": {"2027-01-31"},
		"duress_code": {"9876"}}
	res, body := b.post("/admin/officers", form)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("add officer: %s\n%s", res.Status, body)
	}
	contains(t, "officers page", b.follow(res), "Priya Patel (+447700900123) added", "Red Vauxhall Corsa XY21 ABC", "2027-01-31")
	o, err := e.store.Officer(t.Context(), "priya-patel")
	if err != nil || o.Phone != "+447700900123" || o.DuressCode != "9876" || o.Vehicle.Registration != "XY21 ABC" {
		t.Fatalf("stored officer = %+v, %v", o, err)
	}
	_, page := b.get("/admin/officers/priya-patel")
	lacks(t, "officer page", page, "9876")
	contains(t, "officer page", page, "A code is set", `value="+447700900123"`)

	// Saving without a code keeps it; a bad mobile is refused with the form kept.
	form.Set("new", "")
	form.Set("id", "priya-patel")
	form.Set("duress_code", "")
	form.Set("colour", "Dark red")
	b.post("/admin/officers", form)
	if o, _ := e.store.Officer(t.Context(), "priya-patel"); o.DuressCode != "9876" || o.Vehicle.Colour != "Dark red" {
		t.Errorf("after an edit without a code: %+v", o)
	}
	form.Set("phone", "not a phone")
	res, body = b.post("/admin/officers", form)
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("bad mobile: %s", res.Status)
	}
	contains(t, "bad mobile page", body, "is not a phone number", "Dark red")

	// Provisioned officers are read-only, here and through the API.
	_, page = b.get("/admin/officers/jdoe")
	contains(t, "provisioned officer page", page, "comes from the configuration file", "<fieldset disabled>")
	res, body = b.post("/admin/officers", url.Values{"id": {"jdoe"}, "name": {"J"}, "phone": {janePhone}, "school": {"bishop-lonsdale"}})
	contains(t, "editing a provisioned officer", body, "comes from the configuration file")

	// An officer on a visit cannot be removed; after the visit they can.
	if _, err := e.app.Service().OpenVisit(t.Context(), "test", serviceReq("priya-patel")); err != nil {
		t.Fatal(err)
	}
	res, _ = b.post("/admin/officers/priya-patel/delete", url.Values{})
	contains(t, "removing an officer on a visit", b.follow(res), "is busy (on visit ")

	// Every change is in the audit trail, without the duress code.
	_, page = b.get("/admin/audit")
	contains(t, "audit", page, "officer created", "officer updated", "bm", "duress code set", "Red Vauxhall Corsa XY21 ABC")
	lacks(t, "audit", page, "9876")
}

// The directory API: admin only, duress codes never shown, 409 for provisioned
// entries, schools with normalised contacts that can ACK by SMS.
func TestDirectoryAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	call := func(method, path, token, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), method, e.base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var out map[string]any
		_ = json.Unmarshal(b, &out)
		return res.StatusCode, out
	}
	if code, _ := call("GET", "/api/v1/officers", officeToken, ""); code != http.StatusForbidden {
		t.Errorf("office token GET officers: %d, want 403", code)
	}
	code, out := call("GET", "/api/v1/officers", adminToken, "")
	if code != 200 {
		t.Fatalf("GET officers: %d", code)
	}
	raw, _ := json.Marshal(out)
	lacks(t, "officers JSON", string(raw), "4321")
	contains(t, "officers JSON", string(raw), `"duress_code_set":true`, "Blue")

	if code, out := call("PUT", "/api/v1/officers/jdoe", adminToken, `{"name":"Jane","phone":"+447700900101","school":"bishop-lonsdale"}`); code != http.StatusConflict {
		t.Errorf("PUT provisioned officer: %d %v, want 409", code, out)
	}
	code, out = call("PUT", "/api/v1/officers/kb", adminToken, `{"name":"Kim Brown","phone":"07700 900124","school":"bishop-lonsdale","duress_code":"555"}`)
	if code != http.StatusCreated || out["phone"] != "+447700900124" || out["duress_code"] != nil {
		t.Errorf("PUT new officer: %d %v", code, out)
	}
	if code, out := call("PUT", "/api/v1/officers/kb2", adminToken, `{"name":"Kim Two","phone":"+447700900124","school":"bishop-lonsdale"}`); code != http.StatusConflict {
		t.Errorf("PUT officer with a taken phone: %d %v, want 409", code, out)
	}
	if code, out := call("PUT", "/api/v1/officers/bad", adminToken, `{"name":"","phone":"12","school":"nowhere"}`); code != http.StatusBadRequest {
		t.Errorf("PUT invalid officer: %d %v, want 400", code, out)
	}
	if code, _ := call("DELETE", "/api/v1/officers/kb", adminToken, ""); code != 200 {
		t.Errorf("DELETE officer: %d", code)
	}
	if code, _ := call("DELETE", "/api/v1/officers/jdoe", adminToken, ""); code != http.StatusConflict {
		t.Errorf("DELETE provisioned officer: %d, want 409", code)
	}
	if code, _ := call("PUT", "/api/v1/schools/bishop-lonsdale", adminToken, `{"name":"x"}`); code != http.StatusConflict {
		t.Errorf("PUT provisioned school: %d, want 409", code)
	}
	code, out = call("PUT", "/api/v1/schools/oak", adminToken, `{"name":"Oak Academy","contacts":{"office":[{"name":"Oak office","phone":"01632 960003"}]}}`)
	if code != http.StatusCreated {
		t.Fatalf("PUT school: %d %v", code, out)
	}
	roles, _ := e.store.PhoneRoles(t.Context(), "+441632960003")
	if len(roles) != 1 || roles[0].School != "oak" {
		t.Errorf("new contact not in the phone index: %+v", roles)
	}
	// A school whose alerts would reach nobody is refused, new or replaced, as the
	// configuration refuses it: no contacts, or only a headteacher.
	for _, body := range []string{
		`{"name":"Empty School"}`,
		`{"name":"Empty School","contacts":{"headteacher":[{"name":"Head","phone":"+447700900777"}]}}`,
	} {
		for _, id := range []string{"empty", "oak"} {
			code, out := call("PUT", "/api/v1/schools/"+id, adminToken, body)
			if msg, _ := out["error"].(string); code != http.StatusBadRequest || !strings.Contains(msg, "would reach nobody") {
				t.Errorf("PUT school %s %s: %d %v, want 400 saying an alert would reach nobody", id, body, code, out)
			}
		}
	}
	// So is a list nothing is sent to (a misspelt level's).
	code, out = call("PUT", "/api/v1/schools/oak", adminToken, `{"name":"Oak","contacts":{"office":[{"name":"O","phone":"+441632960003"}],"manager":[{"name":"M","phone":"+447700900778"}]}}`)
	if msg, _ := out["error"].(string); code != http.StatusBadRequest || !strings.Contains(msg, "contacts.manager: no escalation level") {
		t.Errorf("PUT school with a list named manager: %d %v, want 400 naming contacts.manager", code, out)
	}
	if sc, err := e.store.School(t.Context(), "oak"); err != nil || len(sc.Contacts["office"]) != 1 {
		t.Errorf("oak after refused PUTs: %+v %v, want its office contact kept", sc, err)
	}
	if code, out := call("GET", "/api/v1/schools", adminToken, ""); code != 200 || len(out["schools"].([]any)) != 2 {
		t.Errorf("GET schools: %d %v", code, out)
	}
}

// "Send test SMS" queues a notice through the outbox to the contact.
func TestSendTestSMS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addUser("bm", console.RoleAdmin, "bishop-lonsdale")
	b := e.browser()
	b.login("bm")
	_, page := b.get("/admin/schools/bishop-lonsdale")
	contains(t, "school page", page, "come from the configuration file", "School office", officePhone, "Send test SMS")
	res, _ := b.post("/admin/schools/bishop-lonsdale/test", url.Values{"phone": {officePhone}})
	contains(t, "after test", b.follow(res), "Test SMS queued for School office")
	e.app.Wake()
	msgs := e.twilio.WaitSent(5*time.Second, func(ms []smstestMessage) bool { return len(ms) > 0 })
	if msgs[0].To != officePhone || !strings.Contains(msgs[0].Body, "Vigil test message") {
		t.Errorf("test SMS = %+v", msgs[0])
	}
	res, _ = b.post("/admin/schools/bishop-lonsdale/test", url.Values{"phone": {"+447700900999"}})
	contains(t, "test to a stranger", b.follow(res), "is not a number of")
}

// Demo mode: the phone page sends as a directory number and shows the console
// driver's messages.
func TestPhonePage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addUser("sam", console.RoleOffice, "bishop-lonsdale")
	b := e.browser()
	b.login("sam")
	res, _ := b.post("/phone", url.Values{"from": {janePhone}, "body": {"VISIT 30 14 Elm Road"}})
	page := b.follow(res)
	contains(t, "phone page", page, "Jane Doe +447700900101 → Vigil", "VISIT 30 14 Elm Road", "reply → Jane Doe", "14 Elm Road",
		`<option value="+447700900101" selected>`)

	// What the console driver prints is listed too.
	c := sms.NewConsole(e.phone)
	if _, err := c.SendSMS(context.Background(), sms.Outbound{To: officePhone, Body: "OVERDUE: Jane Doe\nACK 1234", ValidityPeriod: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	m := e.phone.Messages()[0]
	if m.Kind != "sms" || m.To != officePhone || m.Body != "OVERDUE: Jane Doe\nACK 1234" || m.SID != "CONSOLE-1" || m.Head != "validity=10m0s" {
		t.Errorf("parsed console entry = %+v", m)
	}
	_, page = b.get("/phone")
	contains(t, "phone page", page, "Vigil → School office +441632960001", "ACK 1234")
}

// Users: an admin adds office staff of their school, never a trust-admin.
func TestUserAdmin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addUser("bm", console.RoleAdmin, "bishop-lonsdale")
	b := e.browser()
	b.login("bm")
	res, body := b.post("/admin/users", url.Values{"name": {"New Person"}, "role": {"trust-admin"}, "password": {password}, "password2": {password}})
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("admin adding a trust-admin: %s", res.Status)
	}
	contains(t, "refusal", body, "no stronger than your own")
	res, _ = b.post("/admin/users", url.Values{"name": {"New Person"}, "role": {"office"}, "school": {"bishop-lonsdale"}, "password": {password}, "password2": {password}})
	contains(t, "after adding", b.follow(res), "New Person can now sign in as office")
	n := e.browser()
	n.login("New Person")
	res, _ = b.post("/admin/users/New Person/delete", url.Values{})
	contains(t, "after removing", b.follow(res), "removed")
	if res, _ := n.get("/"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("a removed user's session still works: %s", res.Status)
	}
}
