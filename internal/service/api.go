package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// ErrNotFound is returned when a visit, alert or officer the API names does not exist.
var ErrNotFound = &visit.Error{Kind: visit.NotFound, Msg: "not found"}

func notFound(what string) error { return &visit.Error{Kind: visit.NotFound, Msg: what + " not found"} }

// ambiguous refuses an ID that two schools' records have (store.ErrAmbiguous): acting
// on the wrong school's visit or alert would be worse than not acting.
func ambiguous(what, id string) error {
	return &visit.Error{Kind: visit.Conflict, Msg: what + " " + id + " is in more than one school: refused rather than guess which"}
}

// OpenVisitRequest is a visit opened through the API on an officer's behalf.
type OpenVisitRequest struct {
	Officer     string
	Destination string
	Duration    time.Duration
	DueAt       time.Time
	Kind        string
	PupilRef    string
	Companions  []string
}

// OpenVisit opens a visit for an officer. by is the API token's name.
func (s *Service) OpenVisit(ctx context.Context, by string, req OpenVisitRequest) (*visit.Visit, error) {
	o, err := s.st.Officer(ctx, req.Officer)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &visit.Error{Kind: visit.Invalid, Msg: "unknown officer " + req.Officer}
	}
	if err != nil {
		return nil, err
	}
	for _, c := range req.Companions {
		co, err := s.st.Officer(ctx, c)
		if errors.Is(err, store.ErrNotFound) || (err == nil && co.School != o.School) {
			return nil, &visit.Error{Kind: visit.Invalid, Msg: "unknown companion " + c + " (companions are officers of the same school)"}
		}
		if err != nil {
			return nil, err
		}
		if c == o.ID {
			return nil, &visit.Error{Kind: visit.Invalid, Msg: "an officer cannot be their own companion"}
		}
	}
	now := s.now()
	sc, loc, err := s.schoolState(ctx, o.School)
	if err != nil {
		return nil, err
	}
	var opened *visit.Visit
	err = s.transact(ctx, o.School, func(sn *store.Snapshot) (store.Change, error) {
		st, ost, err := s.loadOfficer(ctx, sn, sc, loc, o)
		if err != nil {
			return store.Change{}, err
		}
		if st.Visit.Open() {
			return store.Change{}, &visit.Error{Kind: visit.Conflict, Msg: fmt.Sprintf("officer %s already has open visit %s to %s, due %s",
				o.ID, st.Visit.ID, st.Visit.Destination, st.Visit.DueAt.In(loc).Format(time.RFC3339))}
		}
		for _, c := range req.Companions {
			cst, err := sn.OfficerState(ctx, c)
			if err != nil {
				return store.Change{}, err
			}
			if cst.OpenVisit != "" {
				return store.Change{}, &visit.Error{Kind: visit.Conflict, Msg: "companion " + c + " already has an open visit (" + cst.OpenVisit + ")"}
			}
		}
		in := visit.Input{
			Cmd:    visit.Command{Verb: visit.VerbVisit, Duration: req.Duration, Destination: req.Destination},
			Source: visit.SourceAPI, By: by, IDs: s.newIDs(now),
			DueAt: req.DueAt, Kind: req.Kind, PupilRef: req.PupilRef, Companions: req.Companions,
		}
		r, err := visit.OfficerCommand(st, in, now, s.policy)
		if err != nil {
			return store.Change{}, err
		}
		for _, v := range r.Visits {
			if v.Open() {
				opened = v
			}
		}
		// The officer's last text belongs to an earlier visit: an alert about this
		// one must not quote it (a stale "IN" reads as if they had checked in).
		ost.LastText = ""
		return s.change(ctx, sn, r, now, map[string]visit.OfficerState{o.ID: ost})
	})
	return opened, err
}

// VisitCommand runs an officer's command (check-in, extend, abort) on a given visit
// through the API.
func (s *Service) VisitCommand(ctx context.Context, by, visitID string, cmd visit.Command) (*visit.Visit, error) {
	school, err := s.findVisit(ctx, visitID)
	if err != nil {
		return nil, err
	}
	sc, loc, err := s.schoolState(ctx, school)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var out *visit.Visit
	err = s.transact(ctx, school, func(sn *store.Snapshot) (store.Change, error) {
		v, err := sn.Visit(ctx, visitID)
		if err != nil {
			return store.Change{}, err
		}
		if v == nil {
			return store.Change{}, notFound("visit")
		}
		if !v.Open() {
			return store.Change{}, &visit.Error{Kind: visit.Conflict, Msg: "visit " + visitID + " is already closed (" + v.Outcome + ")"}
		}
		o, err := s.officer(ctx, v.Officer, school)
		if err != nil {
			return store.Change{}, err
		}
		st, ost, err := s.loadOfficer(ctx, sn, sc, loc, o)
		if err != nil {
			return store.Change{}, err
		}
		st.Visit = v
		r, err := visit.OfficerCommand(st, visit.Input{Cmd: cmd, Source: visit.SourceAPI, By: by, IDs: s.newIDs(now)}, now, s.policy)
		if err != nil {
			return store.Change{}, err
		}
		out = v
		for _, x := range r.Visits {
			if x.ID == visitID {
				out = x
			}
		}
		return s.change(ctx, sn, r, now, map[string]visit.OfficerState{o.ID: ost})
	})
	return out, err
}

// AckAlert takes charge of an alert through the API.
func (s *Service) AckAlert(ctx context.Context, by, alertID string) (*visit.Alert, error) {
	return s.alertCommand(ctx, alertID, func(st visit.State, now time.Time) (visit.Result, error) {
		return visit.AckAlert(st, by, now, s.policy)
	})
}

// ResolveAlert resolves an alert through the API with a note.
func (s *Service) ResolveAlert(ctx context.Context, by, alertID, note string) (*visit.Alert, error) {
	return s.alertCommand(ctx, alertID, func(st visit.State, now time.Time) (visit.Result, error) {
		return visit.ResolveAlert(st, by, note, now, s.policy)
	})
}

func (s *Service) alertCommand(ctx context.Context, alertID string, decide func(visit.State, time.Time) (visit.Result, error)) (*visit.Alert, error) {
	schools, err := s.st.SchoolIDs(ctx)
	if err != nil {
		return nil, err
	}
	school, err := s.st.FindAlert(ctx, schools, alertID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("alert")
	}
	if errors.Is(err, store.ErrAmbiguous) {
		return nil, ambiguous("alert", alertID)
	}
	if err != nil {
		return nil, err
	}
	sc, loc, err := s.schoolState(ctx, school)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var out *visit.Alert
	err = s.transact(ctx, school, func(sn *store.Snapshot) (store.Change, error) {
		a, err := sn.Alert(ctx, alertID)
		if err != nil {
			return store.Change{}, err
		}
		if a == nil {
			return store.Change{}, notFound("alert")
		}
		o, err := s.officer(ctx, a.Officer, school)
		if err != nil {
			return store.Change{}, err
		}
		st := visit.State{School: sc, Loc: loc, Officer: o, Alerts: []*visit.Alert{a}}
		if st.Visit, err = sn.Visit(ctx, a.VisitID); err != nil {
			return store.Change{}, err
		}
		if st.Officers, err = s.officers(ctx, school, st.Visit, st.Alerts); err != nil {
			return store.Change{}, err
		}
		ost, err := sn.OfficerState(ctx, o.ID)
		if err != nil {
			return store.Change{}, err
		}
		r, err := decide(st, now)
		if err != nil {
			return store.Change{}, err
		}
		out = a
		for _, x := range r.Alerts {
			if x.ID == alertID {
				out = x
			}
		}
		return s.change(ctx, sn, r, now, map[string]visit.OfficerState{o.ID: ost})
	})
	return out, err
}

func (s *Service) findVisit(ctx context.Context, id string) (string, error) {
	schools, err := s.st.SchoolIDs(ctx)
	if err != nil {
		return "", err
	}
	school, err := s.st.FindVisit(ctx, schools, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", notFound("visit")
	}
	if errors.Is(err, store.ErrAmbiguous) {
		return "", ambiguous("visit", id)
	}
	return school, err
}

// Visit reads one visit with its events.
func (s *Service) Visit(ctx context.Context, id string) (*visit.Visit, error) {
	school, err := s.findVisit(ctx, id)
	if err != nil {
		return nil, err
	}
	v, err := s.st.Begin(school).Visit(ctx, id)
	if err == nil && v == nil {
		return nil, notFound("visit")
	}
	return v, err
}

// Visits lists visits: open ones (state "" , "open", "active" or "overdue"), or
// recently closed ones (state "closed").
func (s *Service) Visits(ctx context.Context, state string) ([]*visit.Visit, error) {
	schools, err := s.st.SchoolIDs(ctx)
	if err != nil {
		return nil, err
	}
	switch state {
	case "", "open":
		return s.st.OpenVisits(ctx, schools)
	case visit.StateActive, visit.StateOverdue:
		all, err := s.st.OpenVisits(ctx, schools)
		var out []*visit.Visit
		for _, v := range all {
			if v.State == state {
				out = append(out, v)
			}
		}
		return out, err
	case visit.StateClosed:
		return s.st.RecentVisits(ctx, schools, 200)
	}
	return nil, &visit.Error{Kind: visit.Invalid, Msg: "state must be one of open, active, overdue, closed"}
}

// Alerts lists alerts: open ones (state "open": open and acked), or the most recent.
func (s *Service) Alerts(ctx context.Context, state string) ([]*visit.Alert, error) {
	schools, err := s.st.SchoolIDs(ctx)
	if err != nil {
		return nil, err
	}
	switch state {
	case "open":
		return s.st.ListAlerts(ctx, schools, true, 0)
	case "", visit.AlertAcked, visit.AlertResolved:
		all, err := s.st.ListAlerts(ctx, schools, false, 200)
		if state == "" || err != nil {
			return all, err
		}
		var out []*visit.Alert
		for _, a := range all {
			if a.State == state {
				out = append(out, a)
			}
		}
		return out, nil
	}
	return nil, &visit.Error{Kind: visit.Invalid, Msg: "state must be one of open, acked, resolved"}
}
