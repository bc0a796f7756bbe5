package console

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/vigil-safety/vigil/internal/service"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// The office board: open alerts first, then open visits, kept live by board.js
// polling /board/state every 2 s.

type alertRow struct {
	ID, Code, Reason, State     string
	School, SchoolName          string
	Officer, OfficerName, Phone string
	Destination, Vehicle        string
	Raised, Started, Due        string
	SinceMs                     int64 // what "minutes overdue" counts from
	SinceLabel                  string
	Since                       string
	Notified                    []string
	AckedBy, AckedAt            string
	Acked, Overdue, Urgent      bool
	// HoldOver: someone took charge of an overdue alert, the hold ended and it
	// escalates again; anyone may take charge again (the button is back).
	HoldOver bool
}

type visitRow struct {
	ID, School, SchoolName          string
	Officer, OfficerName            string
	Companions                      []string
	Destination, Kind, PupilRef     string
	Started, Due                    string
	DueMs                           int64
	Class, Countdown, State, Status string
}

type boardData struct {
	Alerts      []alertRow
	Visits      []visitRow
	CanAct      bool
	MultiSchool bool
	NowMs       int64
	ReminderMs  int64
	AlertIDs    []string
	Version     string
	// For the start-a-visit form.
	Officers        []visit.Officer
	DefaultDuration string
	Kinds           []string
}

// boardState is what /board/state answers: the live part of the board, rendered.
type boardState struct {
	Version string   `json:"version"`
	Now     int64    `json:"now"`
	Alerts  []string `json:"alerts"`
	HTML    string   `json:"html"`
}

func (h *Handler) loadBoard(r *http.Request, u *store.User) (*boardData, *directory, error) {
	ctx := r.Context()
	dir, err := h.loadDirectory(ctx, u)
	if err != nil {
		return nil, nil, err
	}
	alerts, err := h.o.Service.Alerts(ctx, "open")
	if err != nil {
		return nil, nil, err
	}
	visits, err := h.o.Service.Visits(ctx, "")
	if err != nil {
		return nil, nil, err
	}
	now := h.o.Now()
	d := &boardData{
		CanAct: can(u, RoleOffice), MultiSchool: len(dir.order) > 1, NowMs: now.UnixMilli(),
		ReminderMs: h.o.ReminderBefore.Milliseconds(), AlertIDs: []string{},
	}
	for _, a := range alerts {
		if !sees(u, a.School) || !a.Open() {
			continue
		}
		d.Alerts = append(d.Alerts, h.alertRow(a, dir, now))
		d.AlertIDs = append(d.AlertIDs, a.ID)
	}
	sort.SliceStable(d.Alerts, func(i, j int) bool {
		a, b := d.Alerts[i], d.Alerts[j]
		if a.Acked != b.Acked {
			return !a.Acked
		}
		if a.Urgent != b.Urgent {
			return a.Urgent
		}
		return a.SinceMs < b.SinceMs
	})
	for _, v := range visits {
		if !sees(u, v.School) || !v.Open() {
			continue
		}
		d.Visits = append(d.Visits, h.visitRow(v, dir, now))
	}
	return d, dir, nil
}

func (h *Handler) alertRow(a *visit.Alert, dir *directory, now time.Time) alertRow {
	loc := dir.loc(a.School, h.o.Location)
	o := dir.officers[a.Officer]
	row := alertRow{
		ID: a.ID, Code: a.Code, Reason: strings.ToUpper(a.Reason), State: a.State,
		School: a.School, SchoolName: dir.schoolName(a.School),
		Officer: a.Officer, OfficerName: dir.officerName(a.Officer), Phone: o.Phone,
		Destination: a.Destination, Raised: hhmm(a.RaisedAt, loc),
		Started: hhmm(a.StartedAt, loc), Due: hhmm(a.DueAt, loc),
		AckedBy: a.AckedBy, AckedAt: hhmm(a.AckedAt, loc), Acked: a.State == visit.AlertAcked,
		Urgent: a.Reason != visit.ReasonOverdue,
	}
	if row.Acked && a.Reason == visit.ReasonOverdue && a.HoldUntil.IsZero() {
		row.Acked, row.HoldOver = false, true
	}
	if o.Vehicle != nil {
		row.Vehicle = o.Vehicle.Describe()
	}
	if a.Reason == visit.ReasonOverdue && !a.DueAt.IsZero() {
		row.Overdue = true
		row.SinceMs, row.SinceLabel = a.DueAt.UnixMilli(), "overdue"
		row.Since = span(now.Sub(a.DueAt)) + " overdue"
	} else {
		row.SinceMs, row.SinceLabel = a.RaisedAt.UnixMilli(), "ago"
		row.Since = "raised " + span(now.Sub(a.RaisedAt)) + " ago"
	}
	seen := map[string]bool{}
	for _, n := range a.Notified {
		s := n.Name + " (" + n.List + ")"
		if !seen[s] {
			seen[s] = true
			row.Notified = append(row.Notified, s)
		}
	}
	return row
}

func (h *Handler) visitRow(v *visit.Visit, dir *directory, now time.Time) visitRow {
	loc := dir.loc(v.School, h.o.Location)
	row := visitRow{
		ID: v.ID, School: v.School, SchoolName: dir.schoolName(v.School),
		Officer: v.Officer, OfficerName: dir.officerName(v.Officer),
		Destination: v.Destination, Kind: v.Kind, PupilRef: v.PupilRef,
		Started: hhmm(v.StartedAt, loc), Due: hhmm(v.DueAt, loc), DueMs: v.DueAt.UnixMilli(), State: v.State,
	}
	for _, c := range v.Companions {
		row.Companions = append(row.Companions, dir.officerName(c))
	}
	left := v.DueAt.Sub(now)
	switch {
	case v.State == visit.StateOverdue:
		row.Class, row.Status, row.Countdown = "red", "Overdue", span(-left)+" overdue"
	case left <= 0:
		row.Class, row.Status, row.Countdown = "red", "Late", span(-left)+" late"
	case left <= h.o.ReminderBefore:
		row.Class, row.Status, row.Countdown = "amber", "Due soon", "due in "+spanUp(left)
	default:
		row.Status, row.Countdown = "Out", "due in "+spanUp(left)
	}
	return row
}

// hhmm writes a time as 24-hour HH:MM in loc ("" for zero).
func hhmm(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return ""
	}
	return t.In(loc).Format("15:04")
}

// span writes a duration for people: "45 s", "12 min", "1 h 05 min".
func span(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	}
	return fmt.Sprintf("%d h %02d min", int(d.Hours()), int(d.Minutes())%60)
}

// spanUp is span rounded up to the minute: what is left before a due time ("due in
// 45 min" until the 45th minute has begun).
func spanUp(d time.Duration) string {
	if d >= time.Minute && d%time.Minute != 0 {
		d = d.Truncate(time.Minute) + time.Minute
	}
	return span(d)
}

// renderLive renders the live part of the board and its version (a hash of it).
func (h *Handler) renderLive(d *boardData) (string, error) {
	html, err := h.fragment("board", "live", d)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(html))
	d.Version = hex.EncodeToString(sum[:8])
	return html, nil
}

func (h *Handler) board(w http.ResponseWriter, r *http.Request, u *store.User) {
	d, dir, err := h.loadBoard(r, u)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	if _, err := h.renderLive(d); err != nil {
		h.internal(w, r, err)
		return
	}
	d.Officers = dir.sortedOfficers()
	d.DefaultDuration = strings.TrimSuffix(strings.TrimSuffix(h.o.DefaultDuration.String(), "0s"), "0m")
	d.Kinds = []string{visit.KindSafeAndWell, visit.KindAbsenceCheck, visit.KindPlanned, visit.KindReactive}
	h.render(w, r, http.StatusOK, "board", u, "Board", d)
}

func (h *Handler) boardState(w http.ResponseWriter, r *http.Request, u *store.User) {
	d, _, err := h.loadBoard(r, u)
	if err != nil {
		h.log.Error("board state", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "could not read the board"})
		return
	}
	html, err := h.renderLive(d)
	if err != nil {
		h.log.Error("board state", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "could not render the board"})
		return
	}
	writeJSON(w, http.StatusOK, boardState{Version: d.Version, Now: d.NowMs, Alerts: d.AlertIDs, HTML: html})
}

// parseMinutes reads a duration typed in a form: "45" (minutes), "1h30", "90min".
func parseMinutes(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, true
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d, true
	}
	return visit.ParseDuration(s)
}

func (h *Handler) startVisit(w http.ResponseWriter, r *http.Request, u *store.User) {
	if err := r.ParseForm(); err != nil {
		h.done(w, r, "/", invalid("the form could not be read"), "")
		return
	}
	f := r.PostForm
	ctx := r.Context()
	dir, err := h.loadDirectory(ctx, u)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	o, ok := dir.officers[f.Get("officer")]
	if !ok {
		h.done(w, r, "/", invalid("choose an officer"), "")
		return
	}
	var ps []string
	dest := strings.TrimSpace(f.Get("destination"))
	if dest == "" {
		ps = append(ps, "destination is required")
	}
	dur, ok := parseMinutes(f.Get("duration"))
	if !ok {
		ps = append(ps, "duration: write minutes (45) or hours and minutes (1h30)")
	}
	kind := f.Get("kind")
	if !visit.ValidKind(kind) {
		ps = append(ps, "unknown kind of visit")
	}
	var companions []string
	for _, c := range f["companions"] {
		if c == "" || c == o.ID {
			continue
		}
		if _, ok := dir.officers[c]; !ok {
			ps = append(ps, "unknown companion "+c)
		}
		companions = append(companions, c)
	}
	if err := problems(ps); err != nil {
		h.done(w, r, "/", err, "")
		return
	}
	v, err := h.o.Service.OpenVisit(ctx, u.Name, service.OpenVisitRequest{
		Officer: o.ID, Destination: dest, Duration: dur, Kind: kind,
		PupilRef: strings.TrimSpace(f.Get("pupil_ref")), Companions: companions,
	})
	if err != nil {
		h.done(w, r, "/", err, "")
		return
	}
	h.done(w, r, "/", nil, fmt.Sprintf("Visit started for %s to %s, due back at %s.", o.Name, v.Destination, hhmm(v.DueAt, dir.loc(v.School, h.o.Location))))
}

func (h *Handler) visitAction(w http.ResponseWriter, r *http.Request, u *store.User) {
	if err := r.ParseForm(); err != nil {
		h.done(w, r, "/", invalid("the form could not be read"), "")
		return
	}
	ctx := r.Context()
	id := r.PathValue("id")
	v, err := h.o.Service.Visit(ctx, id)
	if err != nil || !sees(u, v.School) {
		h.done(w, r, "/", notFound("that visit was not found"), "")
		return
	}
	var cmd visit.Command
	var what string
	switch {
	case strings.HasSuffix(r.URL.Path, "/checkin"):
		cmd, what = visit.Command{Verb: visit.VerbIn}, "checked in safe"
	case strings.HasSuffix(r.URL.Path, "/extend"):
		d, ok := parseMinutes(r.PostForm.Get("duration"))
		if !ok || d == 0 {
			h.done(w, r, "/", invalid("extend by how long? Write minutes (15) or 1h"), "")
			return
		}
		cmd, what = visit.Command{Verb: visit.VerbExtend, Duration: d}, "extended"
	case strings.HasSuffix(r.URL.Path, "/abort"):
		reason := strings.TrimSpace(r.PostForm.Get("reason"))
		if reason == "" {
			h.done(w, r, "/", invalid("say why the visit is called off"), "")
			return
		}
		cmd, what = visit.Command{Verb: visit.VerbAbort, Reason: reason}, "called off"
	}
	nv, err := h.o.Service.VisitCommand(ctx, u.Name, id, cmd)
	if err != nil {
		h.done(w, r, "/", err, "")
		return
	}
	dir, _ := h.loadDirectory(ctx, u)
	name := v.Officer
	if dir != nil {
		name = dir.officerName(v.Officer)
	}
	msg := fmt.Sprintf("%s's visit to %s: %s.", name, v.Destination, what)
	if cmd.Verb == visit.VerbExtend && dir != nil {
		msg = fmt.Sprintf("%s's visit to %s extended: now due at %s.", name, v.Destination, hhmm(nv.DueAt, dir.loc(v.School, h.o.Location)))
	}
	h.done(w, r, "/", nil, msg)
}

func (h *Handler) alertAction(w http.ResponseWriter, r *http.Request, u *store.User) {
	if err := r.ParseForm(); err != nil {
		h.done(w, r, "/", invalid("the form could not be read"), "")
		return
	}
	ctx := r.Context()
	id := r.PathValue("id")
	open, err := h.o.Service.Alerts(ctx, "open")
	if err != nil {
		h.internal(w, r, err)
		return
	}
	var a *visit.Alert
	for _, x := range open {
		if x.ID == id && sees(u, x.School) {
			a = x
		}
	}
	if a == nil {
		h.done(w, r, "/", notFound("that alert is no longer open"), "")
		return
	}
	if strings.HasSuffix(r.URL.Path, "/ack") {
		_, err := h.o.Service.AckAlert(ctx, u.Name, id)
		h.done(w, r, "/", err, "You have taken charge of the "+strings.ToUpper(a.Reason)+" alert "+a.Code+".")
		return
	}
	note := strings.TrimSpace(r.PostForm.Get("note"))
	if note == "" {
		h.done(w, r, "/", invalid("say how the alert was resolved (for example: spoke to the officer, safe)"), "")
		return
	}
	_, err = h.o.Service.ResolveAlert(ctx, u.Name, id, note)
	h.done(w, r, "/", err, "Alert "+a.Code+" resolved.")
}
