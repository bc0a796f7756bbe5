package console

import (
	"encoding/csv"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// History: closed visits and alerts with their audit trail, filtered by officer,
// school and date, and exported as CSV for the attendance record.

// historyLimit bounds the rows read per school and kind.
const historyLimit = 1000

type historyFilter struct {
	Officer, School, From, To string
	from, to                  time.Time // [from, to)
}

type historyVisit struct {
	ID, School, SchoolName, Officer, OfficerName string
	Companions                                   []string
	Destination, Kind, PupilRef, Outcome         string
	Date, Started, Due, Closed                   string
	AlertID                                      string
	Alert                                        *visit.Alert
}

type historyAlert struct {
	ID, School, SchoolName, Officer, OfficerName, Code string
	Reason, State, Date, Raised, AckedBy, Resolved     string
	Resolution, Destination                            string
}

type historyData struct {
	Filter   historyFilter
	Query    string
	Visits   []historyVisit
	Alerts   []historyAlert
	Officers []visit.Officer
	Schools  []visit.School
	Error    string
}

func (h *Handler) readFilter(r *http.Request) (historyFilter, error) {
	q := r.URL.Query()
	f := historyFilter{Officer: q.Get("officer"), School: q.Get("school"), From: q.Get("from"), To: q.Get("to")}
	now := h.o.Now().In(h.o.Location)
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, h.o.Location)
	if f.From == "" {
		f.From = today.AddDate(0, 0, -30).Format(time.DateOnly)
	}
	if f.To == "" {
		f.To = today.Format(time.DateOnly)
	}
	from, err1 := time.ParseInLocation(time.DateOnly, f.From, h.o.Location)
	to, err2 := time.ParseInLocation(time.DateOnly, f.To, h.o.Location)
	if err1 != nil || err2 != nil {
		return f, invalid("dates are written YYYY-MM-DD")
	}
	f.from, f.to = from, to.AddDate(0, 0, 1)
	return f, nil
}

func (h *Handler) loadHistory(r *http.Request, u *store.User) (*historyData, *directory, error) {
	ctx := r.Context()
	dir, err := h.loadDirectory(ctx, u)
	if err != nil {
		return nil, nil, err
	}
	d := &historyData{Officers: dir.sortedOfficers(), Schools: dir.schoolList()}
	f, ferr := h.readFilter(r)
	d.Filter = f
	if ferr != nil {
		d.Error = ferr.Error()
		return d, dir, nil
	}
	d.Query = url.Values{"officer": {f.Officer}, "school": {f.School}, "from": {f.From}, "to": {f.To}}.Encode()
	alerts := map[string]*visit.Alert{}
	for _, sc := range dir.order {
		if f.School != "" && sc != f.School {
			continue
		}
		loc := dir.loc(sc, h.o.Location)
		as, err := h.o.Store.HistoryAlerts(ctx, sc, f.from, f.to, historyLimit)
		if err != nil {
			return nil, nil, err
		}
		for _, a := range as {
			alerts[a.ID] = a
			if f.Officer != "" && a.Officer != f.Officer {
				continue
			}
			d.Alerts = append(d.Alerts, historyAlert{
				ID: a.ID, School: sc, SchoolName: dir.schoolName(sc), Officer: a.Officer, OfficerName: dir.officerName(a.Officer),
				Code: a.Code, Reason: strings.ToUpper(a.Reason), State: a.State, Date: a.RaisedAt.In(loc).Format("Mon 2 Jan"),
				Raised: hhmm(a.RaisedAt, loc), AckedBy: a.AckedBy, Resolved: hhmm(a.ResolvedAt, loc),
				Resolution: a.Resolution, Destination: a.Destination,
			})
		}
		vs, err := h.o.Store.HistoryVisits(ctx, sc, f.from, f.to, historyLimit)
		if err != nil {
			return nil, nil, err
		}
		for _, v := range vs {
			if f.Officer != "" && v.Officer != f.Officer && !contains(v.Companions, f.Officer) {
				continue
			}
			hv := historyVisit{
				ID: v.ID, School: sc, SchoolName: dir.schoolName(sc), Officer: v.Officer, OfficerName: dir.officerName(v.Officer),
				Destination: v.Destination, Kind: v.Kind, PupilRef: v.PupilRef, Outcome: v.Outcome,
				Date: v.StartedAt.In(loc).Format("Mon 2 Jan"), Started: hhmm(v.StartedAt, loc), Due: hhmm(v.DueAt, loc),
				Closed: hhmm(v.ClosedAt, loc), AlertID: v.AlertID,
			}
			for _, c := range v.Companions {
				hv.Companions = append(hv.Companions, dir.officerName(c))
			}
			d.Visits = append(d.Visits, hv)
		}
	}
	// An alert raised before the window may belong to a visit closed in it.
	for i := range d.Visits {
		if id := d.Visits[i].AlertID; id != "" {
			a := alerts[id]
			if a == nil {
				a, _ = h.o.Store.HistoryAlert(ctx, d.Visits[i].School, id)
			}
			d.Visits[i].Alert = a
		}
	}
	sort.SliceStable(d.Visits, func(i, j int) bool { return d.Visits[i].ID > d.Visits[j].ID })
	sort.SliceStable(d.Alerts, func(i, j int) bool { return d.Alerts[i].ID > d.Alerts[j].ID })
	return d, dir, nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func (h *Handler) history(w http.ResponseWriter, r *http.Request, u *store.User) {
	d, _, err := h.loadHistory(r, u)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "history", u, "History", d)
}

// csvCell keeps a cell from being read as a formula by a spreadsheet.
func csvCell(s string) string {
	if s != "" && strings.ContainsAny(s[:1], "=+-@\t\r") {
		return "'" + s
	}
	return s
}

// historyCSV exports closed visits, one row each with its alert: for the attendance
// record. It names pupils only by pupil_ref.
func (h *Handler) historyCSV(w http.ResponseWriter, r *http.Request, u *store.User) {
	d, dir, err := h.loadHistory(r, u)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	if d.Error != "" {
		h.fail(w, r, http.StatusBadRequest, d.Error)
		return
	}
	ctx := r.Context()
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="vigil-visits-`+d.Filter.From+`-to-`+d.Filter.To+`.csv"`)
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"visit_id", "school", "officer_id", "officer", "companions", "kind", "pupil_ref", "destination",
		"started_at", "due_at", "closed_at", "outcome", "alert_id", "alert_reason", "alert_raised_at", "acked_by", "acked_at",
		"resolved_at", "resolution"})
	for _, hv := range d.Visits {
		v, err := h.o.Service.Visit(ctx, hv.ID)
		if err != nil {
			continue
		}
		var comps []string
		for _, c := range v.Companions {
			comps = append(comps, dir.officerName(c))
		}
		row := []string{v.ID, v.School, v.Officer, dir.officerName(v.Officer), strings.Join(comps, "; "), v.Kind, v.PupilRef,
			v.Destination, rfc(v.StartedAt), rfc(v.DueAt), rfc(v.ClosedAt), v.Outcome, v.AlertID, "", "", "", "", "", ""}
		if a := hv.Alert; a != nil {
			copy(row[13:], []string{a.Reason, rfc(a.RaisedAt), a.AckedBy, rfc(a.AckedAt), rfc(a.ResolvedAt), a.Resolution})
		}
		for i := range row {
			row[i] = csvCell(row[i])
		}
		_ = cw.Write(row)
	}
	cw.Flush()
}

func rfc(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

type eventRow struct {
	At, Type, By, Detail, What string
}

type detailData struct {
	Visit      *visit.Visit
	Alert      *visit.Alert
	School     string
	Officer    string
	Companions []string
	Started    string
	Due        string
	Closed     string
	Events     []eventRow
	Notified   []string
}

func (h *Handler) events(evs []visit.Event, what string, loc *time.Location) []eventRow {
	out := make([]eventRow, 0, len(evs))
	for _, e := range evs {
		out = append(out, eventRow{At: e.At.In(loc).Format("2 Jan 15:04:05"), Type: strings.ReplaceAll(e.Type, "_", " "), By: e.By, Detail: e.Detail, What: what})
	}
	return out
}

func (h *Handler) visitDetail(w http.ResponseWriter, r *http.Request, u *store.User) {
	ctx := r.Context()
	v, err := h.o.Service.Visit(ctx, r.PathValue("id"))
	var ve *visit.Error
	if errors.As(err, &ve) || (err == nil && !sees(u, v.School)) {
		h.fail(w, r, http.StatusNotFound, "That visit was not found.")
		return
	}
	if err != nil {
		h.internal(w, r, err)
		return
	}
	dir, err := h.loadDirectory(ctx, u)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	loc := dir.loc(v.School, h.o.Location)
	d := detailData{Visit: v, School: dir.schoolName(v.School), Officer: dir.officerName(v.Officer),
		Started: v.StartedAt.In(loc).Format("Mon 2 Jan 15:04"), Due: hhmm(v.DueAt, loc), Closed: hhmm(v.ClosedAt, loc)}
	for _, c := range v.Companions {
		d.Companions = append(d.Companions, dir.officerName(c))
	}
	d.Events = h.events(v.Events, "visit", loc)
	if v.AlertID != "" {
		if a, err := h.o.Store.HistoryAlert(ctx, v.School, v.AlertID); err == nil {
			d.Alert = a
			d.Notified = notifiedNames(a)
			d.Events = h.mergeEvents(v.Events, a, loc)
		}
	}
	h.render(w, r, http.StatusOK, "detail", u, "Visit to "+v.Destination, d)
}

// mergeEvents interleaves a visit's and its alert's events by time.
func (h *Handler) mergeEvents(vev []visit.Event, a *visit.Alert, loc *time.Location) []eventRow {
	type ev struct {
		e    visit.Event
		what string
	}
	var all []ev
	for _, e := range vev {
		all = append(all, ev{e, "visit"})
	}
	for _, e := range a.Events {
		all = append(all, ev{e, "alert " + a.Code})
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].e.At.Before(all[j].e.At) })
	out := make([]eventRow, 0, len(all))
	for _, x := range all {
		out = append(out, h.events([]visit.Event{x.e}, x.what, loc)...)
	}
	return out
}

func notifiedNames(a *visit.Alert) []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range a.Notified {
		s := n.Name + " " + n.Phone + " (" + n.List + ")"
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func (h *Handler) alertDetail(w http.ResponseWriter, r *http.Request, u *store.User) {
	ctx := r.Context()
	school := r.PathValue("school")
	if !sees(u, school) {
		h.fail(w, r, http.StatusNotFound, "That alert was not found.")
		return
	}
	a, err := h.o.Store.HistoryAlert(ctx, school, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		h.fail(w, r, http.StatusNotFound, "That alert was not found.")
		return
	}
	if err != nil {
		h.internal(w, r, err)
		return
	}
	if a.VisitID != "" {
		http.Redirect(w, r, "/history/visits/"+url.PathEscape(a.VisitID), http.StatusSeeOther)
		return
	}
	dir, err := h.loadDirectory(ctx, u)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	loc := dir.loc(school, h.o.Location)
	d := detailData{Alert: a, School: dir.schoolName(school), Officer: dir.officerName(a.Officer),
		Events: h.events(a.Events, "alert "+a.Code, loc), Notified: notifiedNames(a)}
	h.render(w, r, http.StatusOK, "detail", u, strings.ToUpper(a.Reason)+" alert "+a.Code, d)
}
