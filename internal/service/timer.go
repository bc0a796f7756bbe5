package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// HandleTimer decides what a claimed timer asks for and commits it, fenced by the
// claim: a replica that lost its lease commits nothing. It reports whether the timer
// stood for work that was due (false for a stale timer) and how late it was done.
func (s *Service) HandleTimer(ctx context.Context, due store.Due) (time.Duration, bool, error) {
	kind, id, ok := store.TimerTarget(due.Member)
	if !ok {
		return 0, false, fmt.Errorf("malformed timer %q", due.Member)
	}
	now := s.now()
	sc, loc, err := s.schoolState(ctx, due.School)
	if err != nil {
		return 0, false, err
	}
	var lateness time.Duration
	fired := false
	// The first attempt reads the timer's visit or alert as its claim read it (a
	// conflict makes the next attempt read afresh).
	_, _, err = s.transactFrom(ctx, s.st.BeginClaimed(due), due.School, "", func(sn *store.Snapshot) (store.Change, error) {
		var (
			st    visit.State
			ost   visit.OfficerState
			wake  time.Time
			owner string
		)
		// The timer's visit or alert came with its claim (or is one round trip);
		// the officer (from the directory), their state and the alert or visit it
		// names are one round trip.
		var o *visit.Officer
		switch kind {
		case 'v':
			v, err := sn.Visit(ctx, id)
			if err != nil || v == nil {
				return s.dropTimer(due, now), err
			}
			owner = v.Officer
			wake = s.policy.VisitWake(v)
			var alertIDs []string
			if v.AlertID != "" {
				alertIDs = []string{v.AlertID}
			}
			if o, err = s.readOfficer(ctx, sn, owner, sc.ID, nil, alertIDs); err != nil {
				return store.Change{}, err
			}
			var alerts []*visit.Alert
			if v.AlertID != "" {
				a, err := sn.Alert(ctx, v.AlertID)
				if err != nil {
					return store.Change{}, err
				}
				if a != nil {
					alerts = append(alerts, a)
				}
			}
			st = visit.State{School: sc, Loc: loc, Visit: v, Alerts: alerts}
		case 'a':
			a, err := sn.Alert(ctx, id)
			if err != nil || a == nil {
				return s.dropTimer(due, now), err
			}
			owner = a.Officer
			wake = s.policy.AlertWake(a)
			var visitIDs []string
			if a.VisitID != "" {
				visitIDs = []string{a.VisitID}
			}
			if o, err = s.readOfficer(ctx, sn, owner, sc.ID, visitIDs, nil); err != nil {
				return store.Change{}, err
			}
			st = visit.State{School: sc, Loc: loc, Alerts: []*visit.Alert{a}}
			if a.VisitID != "" {
				if st.Visit, err = sn.Visit(ctx, a.VisitID); err != nil {
					return store.Change{}, err
				}
			}
		default:
			return s.dropTimer(due, now), nil
		}
		st.Officer = o
		var err error
		if ost, err = sn.OfficerState(ctx, o.ID); err != nil {
			return store.Change{}, err
		}
		st.LastText, st.OptedOut = ost.LastText, ost.OptedOut
		if st.Officers, err = s.officers(ctx, sc.ID, st.Visit, st.Alerts); err != nil {
			return store.Change{}, err
		}
		var r visit.Result
		fired = !wake.IsZero() && !wake.After(now)
		if fired {
			lateness = now.Sub(wake)
			if kind == 'v' {
				r = visit.VisitTimer(st, now, s.policy, s.newIDs(now))
			} else {
				r = visit.AlertTimer(st, now, s.policy)
			}
		}
		states := map[string]visit.OfficerState{}
		if len(r.Visits) > 0 || len(r.Alerts) > 0 {
			states[o.ID] = ost
		}
		ch, err := s.change(ctx, sn, r, now, states)
		if err != nil {
			return store.Change{}, err
		}
		// Whatever was decided, the claimed timer ends at the entity's next wake (a
		// stale timer is moved to it, or removed when there is none).
		if _, set := ch.Timers[due.Member]; !set {
			ch.Timers[due.Member] = wake
			if !wake.IsZero() && !wake.After(now) {
				// Due, yet the domain decided nothing: a bug. Look again in a second
				// rather than spin on it now or drop it (a dropped timer is a missed
				// alert).
				s.log.Error("timer fell due but nothing was decided", "timer", due.Member)
				ch.Timers[due.Member] = now.Add(time.Second)
			}
		}
		ch.Fence = &due.Claim
		return ch, nil
	})
	if errors.Is(err, store.ErrFenced) {
		// Another replica holds the timer now (this one paused past its lease).
		s.log.Warn("timer claim lost to another replica", "timer", due.Member)
		return 0, false, nil
	}
	return lateness, fired && err == nil, err
}

// dropTimer removes a timer whose visit or alert no longer exists.
func (s *Service) dropTimer(due store.Due, now time.Time) store.Change {
	return store.Change{Timers: map[string]time.Time{due.Member: {}}, Fence: &due.Claim, Now: now}
}
