package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// The business manager's pages: officers, schools and their contact lists, users,
// and the audit trail of directory changes.

type officerRow struct {
	visit.Officer
	SchoolName string
	VehicleStr string
	DuressSet  bool
}

type officersData struct {
	Officers    []officerRow
	MultiSchool bool
}

func (h *Handler) officers(w http.ResponseWriter, r *http.Request, u *store.User) {
	dir, err := h.loadDirectory(r.Context(), u)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	d := officersData{MultiSchool: len(dir.order) > 1}
	for _, o := range dir.sortedOfficers() {
		row := officerRow{Officer: o, SchoolName: dir.schoolName(o.School), DuressSet: o.DuressCode != ""}
		row.DuressCode = ""
		if o.Vehicle != nil {
			row.VehicleStr = o.Vehicle.Describe()
		}
		d.Officers = append(d.Officers, row)
	}
	h.render(w, r, http.StatusOK, "officers", u, "Officers", d)
}

type officerFormData struct {
	Officer   visit.Officer
	V         visit.Vehicle
	New       bool
	ReadOnly  bool
	DuressSet bool
	Schools   []visit.School
	Error     string
}

func (h *Handler) officerForm(w http.ResponseWriter, r *http.Request, u *store.User) {
	ctx := r.Context()
	dir, err := h.loadDirectory(ctx, u)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	d := officerFormData{New: true, Schools: dir.schoolList()}
	if u.School != "" {
		d.Officer.School = u.School
	}
	if id := r.PathValue("id"); id != "" {
		o, ok := dir.officers[id]
		if !ok {
			h.fail(w, r, http.StatusNotFound, "That officer was not found.")
			return
		}
		d.New, d.ReadOnly, d.DuressSet = false, o.Provisioned, o.DuressCode != ""
		o.DuressCode = ""
		d.Officer = o
		if o.Vehicle != nil {
			d.V = *o.Vehicle
		}
	}
	title := "New officer"
	if !d.New {
		title = d.Officer.Name
	}
	h.render(w, r, http.StatusOK, "officer", u, title, d)
}

var slugDrop = regexp.MustCompile(`[^a-z0-9]+`)

// slug makes an ID from a name: "Jane O'Doe" -> "jane-o-doe".
func slug(name string) string {
	s := strings.Trim(slugDrop.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-")
	}
	return s
}

func (h *Handler) saveOfficer(w http.ResponseWriter, r *http.Request, u *store.User) {
	if err := r.ParseForm(); err != nil {
		h.done(w, r, "/admin/officers", invalid("the form could not be read"), "")
		return
	}
	ctx := r.Context()
	f := r.PostForm
	dir, err := h.loadDirectory(ctx, u)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	isNew := f.Get("new") == "1"
	o := visit.Officer{
		ID: strings.TrimSpace(f.Get("id")), Name: f.Get("name"), Phone: f.Get("phone"), School: f.Get("school"),
		DuressCode: f.Get("duress_code"),
		Vehicle: &visit.Vehicle{Make: f.Get("make"), Model: f.Get("model"), Colour: f.Get("colour"),
			Registration: f.Get("registration"), InsuranceExpires: f.Get("insurance_expires")},
	}
	if isNew && o.ID == "" {
		o.ID = slug(o.Name)
	}
	keep := strings.TrimSpace(o.DuressCode) == "" && f.Get("remove_duress") != "1"
	d := officerFormData{Officer: o, V: *o.Vehicle, New: isNew, Schools: dir.schoolList()}
	d.Officer.DuressCode = ""
	fail := func(err error) {
		d.Error = h.userError(r, err)
		if old, ok := dir.officers[o.ID]; ok && !isNew {
			d.DuressSet = old.DuressCode != ""
		}
		h.render(w, r, http.StatusUnprocessableEntity, "officer", u, "Officer", d)
	}
	if !sees(u, o.School) {
		fail(invalid("choose one of your schools"))
		return
	}
	old, exists := dir.officers[o.ID]
	if isNew {
		if _, err := h.o.Directory.Officer(ctx, o.ID); err == nil {
			fail(conflict("an officer with the id " + o.ID + " already exists: choose another id"))
			return
		}
	} else if !exists {
		fail(notFound("that officer was not found"))
		return
	} else if !sees(u, old.School) {
		fail(notFound("that officer was not found"))
		return
	}
	saved, created, err := h.o.Directory.PutOfficer(ctx, u.Name, o, keep)
	if err != nil {
		fail(err)
		return
	}
	what := "saved"
	if created {
		what = "added"
	}
	h.done(w, r, "/admin/officers", nil, fmt.Sprintf("%s (%s) %s.", saved.Name, saved.Phone, what))
}

func (h *Handler) deleteOfficer(w http.ResponseWriter, r *http.Request, u *store.User) {
	ctx := r.Context()
	id := r.PathValue("id")
	dir, err := h.loadDirectory(ctx, u)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	o, ok := dir.officers[id]
	if !ok {
		h.done(w, r, "/admin/officers", notFound("that officer was not found"), "")
		return
	}
	err = h.o.Directory.DeleteOfficer(ctx, u.Name, id)
	h.done(w, r, "/admin/officers", err, o.Name+" removed.")
}

// ---- schools and contact lists ----

type schoolRow struct {
	visit.School
	Counts []string
}

func (h *Handler) schools(w http.ResponseWriter, r *http.Request, u *store.User) {
	dir, err := h.loadDirectory(r.Context(), u)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	var rows []schoolRow
	for _, sc := range dir.schoolList() {
		row := schoolRow{School: sc}
		for _, l := range h.lists(&sc) {
			row.Counts = append(row.Counts, fmt.Sprintf("%s %d", l, len(sc.Contacts[l])))
		}
		rows = append(rows, row)
	}
	h.render(w, r, http.StatusOK, "schools", u, "Schools", map[string]any{"Schools": rows, "CanAdd": can(u, RoleTrustAdmin)})
}

// lists are the contact lists a school page shows: the configured ones, then any
// other the school has.
func (h *Handler) lists(sc *visit.School) []string {
	out := append([]string{}, h.o.Lists...)
	var extra []string
	for l := range sc.Contacts {
		if !contains(out, l) {
			extra = append(extra, l)
		}
	}
	sort.Strings(extra)
	return append(out, extra...)
}

type contactList struct {
	Name     string
	Contacts []visit.Contact
	Text     string
}

type schoolFormData struct {
	School   visit.School
	New      bool
	ReadOnly bool
	Lists    []contactList
	Error    string
}

func (h *Handler) schoolFormData(sc visit.School, isNew bool) schoolFormData {
	d := schoolFormData{School: sc, New: isNew, ReadOnly: sc.Provisioned}
	for _, l := range h.lists(&sc) {
		cl := contactList{Name: l, Contacts: sc.Contacts[l]}
		var lines []string
		for _, c := range cl.Contacts {
			lines = append(lines, c.Name+", "+c.Phone)
		}
		cl.Text = strings.Join(lines, "\n")
		d.Lists = append(d.Lists, cl)
	}
	return d
}

func (h *Handler) schoolForm(w http.ResponseWriter, r *http.Request, u *store.User) {
	dir, err := h.loadDirectory(r.Context(), u)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	id := r.PathValue("id")
	if id == "" {
		h.render(w, r, http.StatusOK, "school", u, "New school", h.schoolFormData(visit.School{}, true))
		return
	}
	sc, ok := dir.schools[id]
	if !ok {
		h.fail(w, r, http.StatusNotFound, "That school was not found.")
		return
	}
	h.render(w, r, http.StatusOK, "school", u, sc.Name, h.schoolFormData(sc.School, false))
}

// parseContacts reads a list typed one contact a line: "Name, phone".
func parseContacts(text string) ([]visit.Contact, []string) {
	var out []visit.Contact
	var ps []string
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		j := strings.LastIndexAny(line, ",\t")
		if j < 0 {
			ps = append(ps, fmt.Sprintf("line %d: write the name, a comma, then the phone number", i+1))
			continue
		}
		out = append(out, visit.Contact{Name: strings.TrimSpace(line[:j]), Phone: strings.TrimSpace(line[j+1:])})
	}
	return out, ps
}

func (h *Handler) saveSchool(w http.ResponseWriter, r *http.Request, u *store.User) {
	if err := r.ParseForm(); err != nil {
		h.done(w, r, "/admin/schools", invalid("the form could not be read"), "")
		return
	}
	ctx := r.Context()
	f := r.PostForm
	isNew := f.Get("new") == "1"
	sc := visit.School{ID: strings.TrimSpace(f.Get("id")), Name: f.Get("name"), TimeZone: f.Get("timezone"), Contacts: map[string][]visit.Contact{}}
	if isNew && sc.ID == "" {
		sc.ID = slug(sc.Name)
	}
	var ps []string
	for _, l := range f["list"] {
		cs, lps := parseContacts(f.Get("contacts_" + l))
		for _, p := range lps {
			ps = append(ps, l+" list, "+p)
		}
		if len(cs) > 0 {
			sc.Contacts[l] = cs
		}
	}
	fail := func(err error) {
		d := h.schoolFormData(sc, isNew)
		for i := range d.Lists {
			d.Lists[i].Text = f.Get("contacts_" + d.Lists[i].Name)
		}
		d.Error = h.userError(r, err)
		h.render(w, r, http.StatusUnprocessableEntity, "school", u, "School", d)
	}
	if err := problems(ps); err != nil {
		fail(err)
		return
	}
	if isNew && !can(u, RoleTrustAdmin) {
		fail(invalid("only a trust administrator adds schools"))
		return
	}
	if !isNew && !sees(u, sc.ID) {
		fail(notFound("that school was not found"))
		return
	}
	if isNew {
		if _, err := h.o.Directory.School(ctx, sc.ID); err == nil {
			fail(conflict("a school with the id " + sc.ID + " already exists"))
			return
		}
	}
	saved, _, err := h.o.Directory.PutSchool(ctx, u.Name, sc)
	if err != nil {
		fail(err)
		return
	}
	h.done(w, r, "/admin/schools/"+url.PathEscape(saved.ID), nil, saved.Name+" saved.")
}

func (h *Handler) testSMS(w http.ResponseWriter, r *http.Request, u *store.User) {
	id := r.PathValue("id")
	back := "/admin/schools/" + url.PathEscape(id)
	if err := r.ParseForm(); err != nil {
		h.done(w, r, back, invalid("the form could not be read"), "")
		return
	}
	if !sees(u, id) {
		h.done(w, r, "/admin/schools", notFound("that school was not found"), "")
		return
	}
	phone := r.PostForm.Get("phone")
	name, err := h.o.Directory.SendTest(r.Context(), u.Name, id, phone)
	h.done(w, r, back, err, "Test SMS queued for "+name+" ("+phone+"). Ask them whether it arrived.")
}

// ---- users ----

type usersData struct {
	Users   []store.User
	Roles   []string
	Schools []visit.School
	Error   string
	Form    store.User
}

func (h *Handler) usersData(r *http.Request, u *store.User) (*usersData, error) {
	ctx := r.Context()
	dir, err := h.loadDirectory(ctx, u)
	if err != nil {
		return nil, err
	}
	all, err := h.o.Store.Users(ctx)
	if err != nil {
		return nil, err
	}
	d := &usersData{Schools: dir.schoolList(), Form: store.User{Role: RoleOffice, School: u.School}}
	for _, x := range all {
		if u.Role == RoleTrustAdmin || (x.School == u.School && x.Role != RoleTrustAdmin) {
			x.Hash = ""
			d.Users = append(d.Users, x)
		}
	}
	for _, role := range Roles {
		if roleRank[role] <= roleRank[u.Role] {
			d.Roles = append(d.Roles, role)
		}
	}
	return d, nil
}

func (h *Handler) users(w http.ResponseWriter, r *http.Request, u *store.User) {
	d, err := h.usersData(r, u)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "users", u, "Users", d)
}

func (h *Handler) saveUser(w http.ResponseWriter, r *http.Request, u *store.User) {
	if err := r.ParseForm(); err != nil {
		h.done(w, r, "/admin/users", invalid("the form could not be read"), "")
		return
	}
	ctx := r.Context()
	f := r.PostForm
	nu := store.User{Name: strings.TrimSpace(f.Get("name")), Role: f.Get("role"), School: f.Get("school"), CreatedAt: h.o.Now(), CreatedBy: u.Name}
	if nu.Role == RoleTrustAdmin {
		nu.School = ""
	}
	var ps []string
	if nu.Name == "" || len(nu.Name) > 64 || strings.ContainsAny(nu.Name, "\r\n\t") {
		ps = append(ps, "name is required (at most 64 characters)")
	}
	if !ValidRole(nu.Role) || roleRank[nu.Role] > roleRank[u.Role] {
		ps = append(ps, "choose a role no stronger than your own")
	}
	if nu.Role != RoleTrustAdmin && !sees(u, nu.School) {
		ps = append(ps, "choose one of your schools")
	}
	if nu.Role != RoleTrustAdmin && nu.School != "" {
		if _, err := h.o.Directory.School(ctx, nu.School); err != nil {
			ps = append(ps, "school "+nu.School+" does not exist")
		}
	}
	if f.Get("password") != f.Get("password2") {
		ps = append(ps, "the two passwords differ")
	}
	hash, err := HashPassword(f.Get("password"), h.o.BcryptCost)
	if err != nil {
		ps = append(ps, err.Error())
	}
	nu.Hash = hash
	err = problems(ps)
	if err == nil {
		err = h.o.Store.AddUser(ctx, nu)
		if errors.Is(err, store.ErrExists) {
			err = conflict("a user called " + nu.Name + " already exists")
		}
	}
	if err != nil {
		d, derr := h.usersData(r, u)
		if derr != nil {
			h.internal(w, r, derr)
			return
		}
		d.Error = h.userError(r, err)
		nu.Hash = ""
		d.Form = nu
		h.render(w, r, http.StatusUnprocessableEntity, "users", u, "Users", d)
		return
	}
	h.auditUser(r, u, nu, "user_created")
	h.done(w, r, "/admin/users", nil, nu.Name+" can now sign in as "+nu.Role+".")
}

func (h *Handler) deleteUser(w http.ResponseWriter, r *http.Request, u *store.User) {
	ctx := r.Context()
	name := r.PathValue("name")
	x, err := h.o.Store.User(ctx, name)
	if err != nil || !(u.Role == RoleTrustAdmin || (x.School == u.School && x.Role != RoleTrustAdmin)) {
		h.done(w, r, "/admin/users", notFound("that user was not found"), "")
		return
	}
	if strings.EqualFold(x.Name, u.Name) {
		h.done(w, r, "/admin/users", invalid("you cannot remove yourself"), "")
		return
	}
	if err := h.o.Store.DeleteUser(ctx, x.Name); err != nil {
		h.done(w, r, "/admin/users", err, "")
		return
	}
	h.auditUser(r, u, *x, "user_deleted")
	h.done(w, r, "/admin/users", nil, x.Name+" removed; their sessions have ended.")
}

// auditUser records a user change in the user's school's stream (a trust
// administrator's in every school's).
func (h *Handler) auditUser(r *http.Request, by *store.User, x store.User, typ string) {
	if h.o.Directory == nil {
		return
	}
	schools := []string{x.School}
	if x.School == "" {
		scs, _ := h.o.Store.Schools(r.Context())
		schools = schools[:0]
		for _, sc := range scs {
			schools = append(schools, sc.ID)
		}
	}
	for _, sc := range schools {
		if err := h.o.Directory.audit(r.Context(), sc, typ, by.Name, x.Name+" ("+x.Role+")"); err != nil {
			h.log.Error("audit user change", "err", err)
		}
	}
}

// ---- audit trail ----

type auditRow struct {
	At, School, Type, By, Detail, Visit, Alert string
	at                                         int64
}

func (h *Handler) audit(w http.ResponseWriter, r *http.Request, u *store.User) {
	ctx := r.Context()
	dir, err := h.loadDirectory(ctx, u)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	var rows []auditRow
	for _, sc := range dir.order {
		evs, err := h.o.Store.AuditEvents(ctx, sc, 200)
		if err != nil {
			h.internal(w, r, err)
			return
		}
		loc := dir.loc(sc, h.o.Location)
		for _, e := range evs {
			rows = append(rows, auditRow{At: e.At.In(loc).Format("2 Jan 15:04:05"), School: dir.schoolName(sc),
				Type: strings.ReplaceAll(e.Type, "_", " "), By: e.By, Detail: e.Detail, Visit: e.Visit, Alert: e.Alert, at: e.At.UnixMilli()})
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].at > rows[j].at })
	if len(rows) > 300 {
		rows = rows[:300]
	}
	h.render(w, r, http.StatusOK, "audit", u, "Audit trail", rows)
}
