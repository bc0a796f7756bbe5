package console

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/vigil-safety/vigil/internal/config"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// DirectoryStore is what directory edits need of the store.
type DirectoryStore interface {
	School(ctx context.Context, id string) (*visit.School, error)
	Schools(ctx context.Context) ([]visit.School, error)
	Officer(ctx context.Context, id string) (*visit.Officer, error)
	Officers(ctx context.Context) ([]visit.Officer, error)
	PutSchool(ctx context.Context, sc visit.School) error
	PutOfficer(ctx context.Context, o visit.Officer) error
	DeleteOfficer(ctx context.Context, id string) error
	ReindexPhones(ctx context.Context) error
	OfficerBusy(ctx context.Context, school, officer string) (string, error)
	AppendAudit(ctx context.Context, school string, e visit.Event) error
	QueueMessage(ctx context.Context, m visit.Message, now time.Time) error
}

var _ DirectoryStore = (*store.Store)(nil)

// Directory edits schools and officers for the console and the directory API: it
// validates as the configuration does (phones to E.164), refuses to change what the
// configuration file provisions, and audits every change in the school's stream.
// Errors meant for the person are *visit.Error (Invalid, Conflict, NotFound); a
// problem with a field starts with the field's path in the API's JSON, as the client
// sent it ("phone: ...", "vehicle.insurance_expires: ...",
// "contacts.office[0].phone: ..."), and the console's form fields have those names.
type Directory struct {
	st     DirectoryStore
	region string
	levels []string
	now    func() time.Time
}

// NewDirectory builds a Directory; region reads national phone numbers, and levels
// are the escalation levels' list names (escalation.levels), of which a school must
// have a contact on at least one.
func NewDirectory(st DirectoryStore, region string, levels []string, now func() time.Time) *Directory {
	if now == nil {
		now = time.Now
	}
	if region == "" {
		region = "GB"
	}
	return &Directory{st: st, region: region, levels: levels, now: now}
}

var (
	idPattern     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	duressPattern = regexp.MustCompile(`^[0-9]{3,8}$`)
	listPattern   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
)

// Problems common to officers and schools, named by their JSON field.
const (
	badID        = "id: must be lower-case letters, digits and dashes (at most 63), not starting with a dash"
	nameRequired = "name: is required"
)

func invalid(msg string) error  { return &visit.Error{Kind: visit.Invalid, Msg: msg} }
func conflict(msg string) error { return &visit.Error{Kind: visit.Conflict, Msg: msg} }
func notFound(msg string) error { return &visit.Error{Kind: visit.NotFound, Msg: msg} }

func problems(ps []string) error {
	if len(ps) == 0 {
		return nil
	}
	return invalid(strings.Join(ps, "; "))
}

// Officers lists every officer, by ID.
func (d *Directory) Officers(ctx context.Context) ([]visit.Officer, error) { return d.st.Officers(ctx) }

// Schools lists every school, by ID.
func (d *Directory) Schools(ctx context.Context) ([]visit.School, error) { return d.st.Schools(ctx) }

// Officer loads one officer (NotFound when there is none).
func (d *Directory) Officer(ctx context.Context, id string) (*visit.Officer, error) {
	o, err := d.st.Officer(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("officer " + id + " not found")
	}
	return o, err
}

// School loads one school (NotFound when there is none).
func (d *Directory) School(ctx context.Context, id string) (*visit.School, error) {
	sc, err := d.st.School(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("school " + id + " not found")
	}
	return sc, err
}

// PutOfficer creates or replaces an officer; by is who, for the audit trail. With
// keepDuress the officer keeps the duress code they had (the code is write-only:
// nobody reads it back to send it again). It returns the officer as saved and
// whether it was created.
func (d *Directory) PutOfficer(ctx context.Context, by string, o visit.Officer, keepDuress bool) (visit.Officer, bool, error) {
	var ps []string
	o.ID = strings.TrimSpace(o.ID)
	o.Name = strings.TrimSpace(o.Name)
	o.School = strings.TrimSpace(o.School)
	o.DuressCode = strings.TrimSpace(o.DuressCode)
	if !idPattern.MatchString(o.ID) {
		ps = append(ps, badID)
	}
	if o.Name == "" {
		ps = append(ps, nameRequired)
	}
	if phone, err := config.NormalizePhone(o.Phone, d.region); err != nil {
		ps = append(ps, "phone: "+err.Error())
	} else {
		o.Phone = phone
	}
	if o.School == "" {
		ps = append(ps, "school: is required")
	} else if _, err := d.st.School(ctx, o.School); errors.Is(err, store.ErrNotFound) {
		ps = append(ps, fmt.Sprintf("school: %q does not exist", o.School))
	} else if err != nil {
		return o, false, err
	}
	if !keepDuress && o.DuressCode != "" && !duressPattern.MatchString(o.DuressCode) {
		ps = append(ps, "duress_code: must be 3 to 8 digits") // never quote a duress code
	}
	if v := o.Vehicle; v != nil {
		v.Make, v.Model, v.Colour = strings.TrimSpace(v.Make), strings.TrimSpace(v.Model), strings.TrimSpace(v.Colour)
		v.Registration = strings.ToUpper(strings.TrimSpace(v.Registration))
		v.InsuranceExpires = strings.TrimSpace(v.InsuranceExpires)
		if v.InsuranceExpires != "" {
			if _, err := time.Parse(time.DateOnly, v.InsuranceExpires); err != nil {
				ps = append(ps, fmt.Sprintf("vehicle.insurance_expires: %q is not a date (YYYY-MM-DD)", v.InsuranceExpires))
			}
		}
		if *v == (visit.Vehicle{}) {
			o.Vehicle = nil
		}
	}
	if err := problems(ps); err != nil {
		return o, false, err
	}

	old, err := d.st.Officer(ctx, o.ID)
	created := errors.Is(err, store.ErrNotFound)
	if err != nil && !created {
		return o, false, err
	}
	if !created && old.Provisioned {
		return o, false, conflict("officer " + o.ID + " comes from the configuration file: change it there")
	}
	all, err := d.st.Officers(ctx)
	if err != nil {
		return o, false, err
	}
	for _, x := range all {
		if x.ID != o.ID && x.Phone == o.Phone {
			return o, false, conflict(fmt.Sprintf("phone: %s is already the phone of %s (%s)", o.Phone, x.Name, x.ID))
		}
	}
	if !created && old.School != o.School {
		if why, err := d.st.OfficerBusy(ctx, old.School, o.ID); err != nil {
			return o, false, err
		} else if why != "" {
			return o, false, conflict(old.Name + " is busy (" + why + "): close it before moving them to another school")
		}
	}
	duress := "no duress code"
	switch {
	case keepDuress && !created:
		o.DuressCode = old.DuressCode
		if o.DuressCode != "" {
			duress = "duress code kept"
		}
	case keepDuress:
		o.DuressCode = ""
	case o.DuressCode != "" && (created || old.DuressCode != o.DuressCode):
		duress = "duress code set"
	case o.DuressCode != "":
		duress = "duress code kept"
	case !created && old.DuressCode != "":
		duress = "duress code removed"
	}
	o.Provisioned = false
	if err := d.st.PutOfficer(ctx, o); err != nil {
		return o, false, err
	}
	typ := "officer_updated"
	if created {
		typ = "officer_created"
	}
	// Never write the duress code itself into the audit trail.
	detail := fmt.Sprintf("%s (%s), %s, school %s", o.Name, o.ID, o.Phone, o.School)
	if o.Vehicle != nil {
		detail += ", vehicle " + o.Vehicle.Describe()
		if o.Vehicle.InsuranceExpires != "" {
			detail += ", insured until " + o.Vehicle.InsuranceExpires
		}
	}
	detail += ", " + duress
	if !created && old.School != o.School {
		detail += ", moved from " + old.School
		d.audit(ctx, old.School, typ, by, detail)
	}
	if err := d.audit(ctx, o.School, typ, by, detail); err != nil {
		return o, created, err
	}
	return o, created, nil
}

// DeleteOfficer removes an officer who has no open visit.
func (d *Directory) DeleteOfficer(ctx context.Context, by, id string) error {
	o, err := d.Officer(ctx, id)
	if err != nil {
		return err
	}
	if o.Provisioned {
		return conflict("officer " + id + " comes from the configuration file: remove them there")
	}
	why, err := d.st.OfficerBusy(ctx, o.School, id)
	if err != nil {
		return err
	}
	if why != "" {
		return conflict(o.Name + " is busy (" + why + "): close it before removing them")
	}
	if err := d.st.DeleteOfficer(ctx, id); err != nil {
		return err
	}
	return d.audit(ctx, o.School, "officer_deleted", by, fmt.Sprintf("%s (%s), %s", o.Name, o.ID, o.Phone))
}

// PutSchool creates or replaces a school and its contact lists (each list in the
// order its contacts are tried).
func (d *Directory) PutSchool(ctx context.Context, by string, sc visit.School) (visit.School, bool, error) {
	var ps []string
	sc.ID = strings.TrimSpace(sc.ID)
	sc.Name = strings.TrimSpace(sc.Name)
	sc.TimeZone = strings.TrimSpace(sc.TimeZone)
	if !idPattern.MatchString(sc.ID) {
		ps = append(ps, badID)
	}
	if sc.Name == "" {
		ps = append(ps, nameRequired)
	}
	if sc.TimeZone != "" {
		if _, err := time.LoadLocation(sc.TimeZone); err != nil || sc.TimeZone == "Local" {
			ps = append(ps, fmt.Sprintf("timezone: %q is not a known IANA time zone", sc.TimeZone))
		}
	}
	contacts := map[string][]visit.Contact{}
	lists := make([]string, 0, len(sc.Contacts))
	for l := range sc.Contacts {
		lists = append(lists, l)
	}
	sort.Strings(lists)
	total := 0
	for _, l := range lists {
		if !listPattern.MatchString(l) {
			ps = append(ps, fmt.Sprintf("contacts: list name %q must be lower-case letters, digits, dashes or underscores", l))
			continue
		}
		for i, c := range sc.Contacts[l] {
			path := fmt.Sprintf("contacts.%s[%d]", l, i)
			c.Name = strings.TrimSpace(c.Name)
			if c.Name == "" {
				ps = append(ps, path+"."+nameRequired)
			}
			phone, err := config.NormalizePhone(c.Phone, d.region)
			if err != nil {
				ps = append(ps, fmt.Sprintf("%s.phone: %v", path, err))
			}
			c.Phone = phone
			contacts[l] = append(contacts[l], c)
			total++
		}
	}
	sc.Contacts = contacts
	if err := problems(ps); err != nil {
		return sc, false, err
	}
	old, err := d.st.School(ctx, sc.ID)
	created := errors.Is(err, store.ErrNotFound)
	if err != nil && !created {
		return sc, false, err
	}
	if !created && old.Provisioned {
		return sc, false, conflict("school " + sc.ID + " comes from the configuration file: change it there")
	}
	for _, l := range lists {
		if len(d.levels) > 0 && !slices.Contains(d.levels, l) && l != visit.ListHeadteacher {
			// As the configuration refuses it: nothing is ever sent to such a list,
			// so a misspelt one (manager for managers) leaves its level empty.
			return sc, false, problems([]string{fmt.Sprintf("contacts.%s: no escalation level (%s) and no notice (%s) uses this list: is it misspelt?",
				l, strings.Join(d.levels, ", "), visit.ListHeadteacher)})
		}
	}
	if len(d.levels) > 0 && !slices.ContainsFunc(d.levels, func(l string) bool { return len(contacts[l]) > 0 }) {
		// As the configuration refuses it (config.Validate): a school whose alerts
		// would reach nobody is a missed alert waiting for its first overdue visit.
		return sc, false, problems([]string{fmt.Sprintf("contacts: no contact on any escalation level's list (%s), so an alert would reach nobody",
			strings.Join(d.levels, ", "))})
	}
	sc.Provisioned = false
	if err := d.st.PutSchool(ctx, sc); err != nil {
		return sc, false, err
	}
	if err := d.st.ReindexPhones(ctx); err != nil {
		return sc, created, err
	}
	typ := "school_updated"
	if created {
		typ = "school_created"
	}
	var parts []string
	for _, l := range lists {
		if len(contacts[l]) == 0 {
			continue
		}
		var names []string
		for _, c := range contacts[l] {
			names = append(names, c.Name+" "+c.Phone)
		}
		parts = append(parts, l+": "+strings.Join(names, ", "))
	}
	detail := sc.Name
	if len(parts) > 0 {
		detail += "; " + strings.Join(parts, "; ")
	}
	return sc, created, d.audit(ctx, sc.ID, typ, by, detail)
}

// SendTest queues a test SMS to a phone that is on one of a school's lists or is
// one of its officers', proving the number works.
func (d *Directory) SendTest(ctx context.Context, by, school, phone string) (string, error) {
	sc, err := d.School(ctx, school)
	if err != nil {
		return "", err
	}
	name, where := "", ""
	for _, l := range sortedLists(sc) {
		for _, c := range sc.Contacts[l] {
			if c.Phone == phone && name == "" {
				name, where = c.Name, "is on the "+l+" list"
			}
		}
	}
	if name == "" {
		offs, err := d.st.Officers(ctx)
		if err != nil {
			return "", err
		}
		for _, o := range offs {
			if o.School == school && o.Phone == phone {
				name, where = o.Name, "is an officer's mobile"
			}
		}
	}
	if name == "" {
		return "", invalid(phone + " is not a number of " + sc.Name)
	}
	now := d.now()
	body := visit.GSM(fmt.Sprintf("Vigil test message for %s: this number %s of %s. No reply is needed.", name, where, sc.Name))
	m := visit.Message{
		ID: "test-" + ulid.MustNew(ulid.Timestamp(now), ulid.DefaultEntropy()).String(), School: school,
		Kind: visit.KindNotice, Channel: visit.ChannelSMS, To: phone, Name: name, Body: body, Priority: visit.PriorityNormal,
	}
	if err := d.st.QueueMessage(ctx, m, now); err != nil {
		return "", err
	}
	return name, d.audit(ctx, school, "test_sms", by, fmt.Sprintf("test SMS to %s %s", name, phone))
}

func sortedLists(sc *visit.School) []string {
	out := make([]string, 0, len(sc.Contacts))
	for l := range sc.Contacts {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}

func (d *Directory) audit(ctx context.Context, school, typ, by, detail string) error {
	return d.st.AppendAudit(ctx, school, visit.Event{At: d.now(), Type: typ, By: by, Detail: detail})
}
