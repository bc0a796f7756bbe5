package jobs

import (
	"context"
	"time"

	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// Retention is the policy: how many days closed visits that raised no alert, and
// resolved alerts (with their visits), are kept.
type Retention struct {
	VisitDays int
	AlertDays int
}

// Purged counts what one retention run deleted.
type Purged struct {
	Visits   int
	Alerts   int
	Messages int
	Audit    int64 // audit stream entries trimmed
}

// Retain applies the retention policy to one school at now; loc is the school's zone
// (the month a deleted visit or message is counted in).
//
// What it deletes, and why deleting rather than blanking:
//
//   - A closed visit that raised no alert, closed more than VisitDays ago, is deleted
//     whole: its record (destination, pupil reference, events), its entry in the
//     closed-visit index and any timer. Keeping a husk (officer, times, outcome)
//     would only serve the monthly report, so retention counts the visit in its
//     month's tally (visits, by outcome) in the same script that deletes it.
//   - A resolved alert, resolved more than AlertDays ago, is deleted with its visit
//     (when the visit is closed and names that alert). A closed visit whose alert is
//     gone is deleted once it is past VisitDays. Open visits and unresolved alerts
//     are never deleted.
//   - Message hashes the dispatcher is done with (sent or failed; never one still
//     queued) go with their alert, or with their visit when they have no alert;
//     messages about neither (duty reports, notices) after VisitDays. A failed one is
//     counted in the tally of the month of its last send first.
//   - An officer's remembered last visit and last text go with that visit.
//   - The audit stream is trimmed (XTRIM MINID) to VisitDays. Its entries cannot be
//     edited, and those about a purged visit carry the destination, so none may
//     outlive VisitDays. The audit trail of an alert is not lost: the alert record
//     and its visit's record each keep their own events (who, what, when), and those
//     records live AlertDays.
func Retain(ctx context.Context, st *store.Store, school string, loc *time.Location, now time.Time, p Retention) (Purged, error) {
	var out Purged
	day := 24 * time.Hour
	visitCut := now.Add(-time.Duration(p.VisitDays) * day)
	alertCut := now.Add(-time.Duration(p.AlertDays) * day)
	month := func(t time.Time) string { return t.In(loc).Format("2006-01") }

	purgeVisit := func(v *visit.Visit) error {
		ok, err := st.PurgeVisit(ctx, school, v.ID, v.AlertID, month(v.ClosedAt))
		if err != nil || !ok {
			return err
		}
		out.Visits++
		return st.ForgetLastVisit(ctx, school, v.Officer, v.ID)
	}

	// Alerts first, so their visits (closed before them) can go with them.
	ids, err := st.AlertsRaisedBefore(ctx, school, alertCut)
	if err != nil {
		return out, err
	}
	for _, id := range ids {
		a, err := st.AlertByID(ctx, school, id)
		if err != nil {
			return out, err
		}
		if a != nil && (a.State != visit.AlertResolved || !a.ResolvedAt.Before(alertCut)) {
			continue
		}
		ok, err := st.PurgeAlert(ctx, school, id)
		if err != nil {
			return out, err
		}
		if !ok {
			continue
		}
		out.Alerts++
		if a.VisitID == "" {
			continue
		}
		v, err := st.VisitByID(ctx, school, a.VisitID)
		if err != nil {
			return out, err
		}
		// A visit whose alert was superseded (overdue, then duress) names the later
		// alert, and goes with that one.
		if v != nil && !v.Open() && (v.AlertID == a.ID || v.AlertID == "") {
			if err := purgeVisit(v); err != nil {
				return out, err
			}
		}
	}

	ids, err = st.VisitsClosedBefore(ctx, school, visitCut)
	if err != nil {
		return out, err
	}
	for _, id := range ids {
		v, err := st.VisitByID(ctx, school, id)
		if err != nil {
			return out, err
		}
		if v == nil {
			// Only the index entry is left: PurgeVisit drops it.
			if _, err := st.PurgeVisit(ctx, school, id, "", month(now)); err != nil {
				return out, err
			}
			continue
		}
		if v.AlertID != "" {
			a, err := st.AlertByID(ctx, school, v.AlertID)
			if err != nil {
				return out, err
			}
			if a != nil {
				continue // kept with its alert
			}
		}
		if err := purgeVisit(v); err != nil {
			return out, err
		}
	}

	n, err := purgeMessages(ctx, st, school, visitCut, month)
	out.Messages = n
	if err != nil {
		return out, err
	}
	out.Audit, err = st.TrimAudit(ctx, school, visitCut)
	return out, err
}

// purgeMessages deletes the message hashes retention allows (see Retain).
func purgeMessages(ctx context.Context, st *store.Store, school string, visitCut time.Time, month func(time.Time) string) (int, error) {
	visits, alerts := map[string]bool{}, map[string]bool{}
	exists := func(cache map[string]bool, id string, load func() (bool, error)) (bool, error) {
		if ok, seen := cache[id]; seen {
			return ok, nil
		}
		ok, err := load()
		cache[id] = ok
		return ok, err
	}
	var doomed []store.MessageRecord
	err := st.ScanMessages(ctx, school, func(m store.MessageRecord) error {
		if !m.Final() {
			return nil
		}
		var keep bool
		var err error
		switch {
		case m.Msg.AlertID != "":
			keep, err = exists(alerts, m.Msg.AlertID, func() (bool, error) {
				a, err := st.AlertByID(ctx, school, m.Msg.AlertID)
				return a != nil, err
			})
		case m.Msg.VisitID != "":
			keep, err = exists(visits, m.Msg.VisitID, func() (bool, error) {
				v, err := st.VisitByID(ctx, school, m.Msg.VisitID)
				return v != nil, err
			})
		default:
			keep = !lastSend(m).Before(visitCut)
		}
		if err == nil && !keep {
			doomed = append(doomed, m)
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range doomed {
		at := lastSend(m)
		if at.IsZero() {
			at = visitCut
		}
		ok, err := st.PurgeMessage(ctx, school, m.Msg.ID, month(at))
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// lastSend is when a message was last tried (or sent); zero when never.
func lastSend(m store.MessageRecord) time.Time {
	if !m.LastTry.IsZero() {
		return m.LastTry
	}
	return m.SentAt
}

// retention runs Retain for one school at the slot.
func (r *Runner) retention(ctx context.Context, sc visit.School, slot time.Time) error {
	p, err := Retain(ctx, r.o.Store, sc.ID, r.location(sc), slot, Retention{VisitDays: r.o.VisitDays, AlertDays: r.o.AlertDays})
	if p != (Purged{}) {
		r.log.Info("retention purged", "school", sc.ID, "visits", p.Visits, "alerts", p.Alerts, "messages", p.Messages, "audit_entries", p.Audit)
	}
	return err
}
