package service

import (
	"context"
	"fmt"
	"strings"

	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// Failed call statuses: the call did not reach a person (SPEC §8: re-routed).
var failedCall = map[string]bool{"busy": true, "no-answer": true, "failed": true, "canceled": true}

// HandleDeliveryFailure re-routes a message that failed for good, whether Twilio
// refused it (from the dispatcher) or its receipt said so: an alert SMS or an ALL
// CLEAR SMS becomes a call to the same contact, a failed alert call moves on to
// the next level once its whole level is unreachable, and an SMS an officer's phone refused because they
// opted out is reported to the school office (a refused reminder goes again, as
// a call).
func (s *Service) HandleDeliveryFailure(ctx context.Context, school string, m visit.Message, code int, reason string) error {
	return s.handleDeliveryFailure(ctx, school, m, code, reason, true)
}

// handleDeliveryFailure is HandleDeliveryFailure; count is false when the failure
// was counted by an earlier try whose handling did not finish (HandleReceipt).
func (s *Service) handleDeliveryFailure(ctx context.Context, school string, m visit.Message, code int, reason string, count bool) error {
	if s.metrics != nil && count {
		s.metrics.DeliveryFailures.WithLabelValues(m.Channel, m.Kind, fmt.Sprint(code)).Inc()
	}
	if m.Channel == visit.ChannelSMS && code == visit.CodeOptedOut {
		if err := s.officerOptedOut(ctx, school, m); err != nil {
			return err
		}
	} else if m.Channel == visit.ChannelSMS && m.Kind == visit.KindReminder {
		// A reminder the phone could not take by SMS (a landline, carrier
		// filtering, unreachable) may reach the officer by voice.
		return s.reminderByCall(ctx, school, m, reason)
	}
	if (m.Kind != visit.KindAlert && m.Kind != visit.KindAllClear) || m.AlertID == "" {
		return nil
	}
	sc, loc, err := s.schoolState(ctx, school)
	if err != nil {
		return err
	}
	now := s.now()
	return s.transact(ctx, school, func(sn *store.Snapshot) (store.Change, error) {
		a, err := sn.Alert(ctx, m.AlertID)
		// A resolved alert is still read: its ALL CLEAR may be what failed.
		if err != nil || a == nil {
			return store.Change{}, err
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
		r := visit.DeliveryFailed(st, m, reason, now, s.policy)
		return s.change(ctx, sn, r, now, nil)
	})
}

// officerOptedOut records that an officer's phone refuses SMS and tells the office,
// once (until the officer texts START again). The message m the phone refused is
// re-sent as a call when it is a reminder: the opt-out comes to light through it,
// and it must not be the one message the officer misses.
func (s *Service) officerOptedOut(ctx context.Context, school string, m visit.Message) error {
	roles, err := s.st.PhoneRoles(ctx, m.To)
	if err != nil {
		return err
	}
	var officerID string
	for _, r := range roles {
		if r.Kind == "officer" && r.School == school {
			officerID = r.Officer
		}
	}
	if officerID == "" {
		return nil // a contact opted out: their alerts are re-routed by call
	}
	sc, loc, err := s.schoolState(ctx, school)
	if err != nil {
		return err
	}
	o, err := s.officer(ctx, officerID, school)
	if err != nil {
		return err
	}
	now := s.now()
	return s.transact(ctx, school, func(sn *store.Snapshot) (store.Change, error) {
		ost, err := sn.OfficerState(ctx, o.ID)
		if err != nil {
			return store.Change{}, err
		}
		var r visit.Result
		var states map[string]visit.OfficerState
		if !ost.OptedOut {
			ost.OptedOut = true
			s.log.Warn("officer's phone opted out of SMS; reaching them by call", "officer", o.ID)
			r = visit.OfficerOptedOut(visit.State{School: sc, Loc: loc, Officer: o}, now, s.policy)
			states = map[string]visit.OfficerState{o.ID: ost}
		}
		if m.Kind == visit.KindReminder && m.VisitID != "" {
			// Refused before the opt-out was known, or queued just before it was
			// recorded: either way it goes again, as a call.
			v, err := sn.Visit(ctx, m.VisitID)
			if err != nil {
				return store.Change{}, err
			}
			rr := visit.ReminderRefused(visit.State{School: sc, Loc: loc, Officer: o, Visit: v}, m, "opted out", now, s.policy)
			r.Messages = append(r.Messages, rr.Messages...)
			r.Audit = append(r.Audit, rr.Audit...)
		}
		if states == nil && len(r.Messages) == 0 {
			return store.Change{}, nil
		}
		return s.change(ctx, sn, r, now, states)
	})
}

// reminderByCall re-sends as a call a reminder SMS that failed for good for a
// reason other than an opt-out (visit.ReminderRefused: once, and not for a visit
// closed or moved since).
func (s *Service) reminderByCall(ctx context.Context, school string, m visit.Message, reason string) error {
	if m.VisitID == "" {
		return nil
	}
	sc, loc, err := s.schoolState(ctx, school)
	if err != nil {
		return err
	}
	now := s.now()
	return s.transact(ctx, school, func(sn *store.Snapshot) (store.Change, error) {
		v, err := sn.Visit(ctx, m.VisitID)
		if err != nil || v == nil {
			return store.Change{}, err
		}
		o, err := s.officer(ctx, v.Officer, school)
		if err != nil {
			return store.Change{}, err
		}
		r := visit.ReminderRefused(visit.State{School: sc, Loc: loc, Officer: o, Visit: v}, m, reason, now, s.policy)
		if len(r.Messages) == 0 {
			return store.Change{}, nil
		}
		s.log.Warn("reminder SMS failed for good; calling instead", "visit", v.ID, "to", m.To, "reason", reason)
		return s.change(ctx, sn, r, now, nil)
	})
}

// optInWords are Twilio's opt-in keywords: after one, the phone takes SMS again.
var optInWords = map[string]bool{"START": true, "YES": true, "UNSTOP": true}

func isOptIn(body string) bool {
	return optInWords[strings.ToUpper(strings.Trim(strings.TrimSpace(body), ".!"))]
}

// VoiceAck handles a keypress on an alert call: 1 takes charge of the alert as the
// contact called. It returns what the call says back.
func (s *Service) VoiceAck(ctx context.Context, school, alertID, phone, digits string) (string, error) {
	if digits != "1" {
		return "Only the 1 key takes charge. Nothing changed. Goodbye.", nil
	}
	sc, loc, err := s.schoolState(ctx, school)
	if err != nil {
		return "", err
	}
	var contact *visit.Contact
	for _, list := range sc.Contacts {
		for _, c := range list {
			if c.Phone == phone {
				contact = &visit.Contact{Name: c.Name, Phone: c.Phone}
			}
		}
	}
	if contact == nil {
		return "This phone is not a contact of the school. Nothing changed. Goodbye.", nil
	}
	now := s.now()
	var said string
	err = s.transact(ctx, school, func(sn *store.Snapshot) (store.Change, error) {
		a, err := sn.Alert(ctx, alertID)
		if err != nil {
			return store.Change{}, err
		}
		if a == nil || !a.Open() {
			said = "That alert is already resolved. Nothing changed. Goodbye."
			return store.Change{}, nil
		}
		st := visit.State{School: sc, Loc: loc, Alerts: []*visit.Alert{a}, Contact: contact}
		if st.Visit, err = sn.Visit(ctx, a.VisitID); err != nil {
			return store.Change{}, err
		}
		if st.Officers, err = s.officers(ctx, school, st.Visit, st.Alerts); err != nil {
			return store.Change{}, err
		}
		in := visit.Input{Cmd: visit.Command{Verb: visit.VerbAck, Code: a.Code}, Source: visit.SourceSMS, By: phone + " (voice)"}
		r, derr := visit.ContactCommand(st, in, now, s.policy)
		if ve, ok := derr.(*visit.Error); ok {
			said = ve.Msg + " Goodbye."
			return store.Change{}, nil
		} else if derr != nil {
			return store.Change{}, derr
		}
		// The briefing the SMS reply would carry goes by SMS instead.
		r.Messages = append(r.Messages, visit.Message{
			ID: fmt.Sprintf("%s:brief:%d:%s", a.ID, now.UnixMilli(), phone), School: school, Kind: visit.KindNotice,
			Channel: visit.ChannelSMS, To: phone, Name: contact.Name, Body: r.Reply, AlertID: a.ID, Priority: visit.PriorityAlert,
		})
		said = "You have taken charge of the alert. The details follow by text message. Goodbye."
		return s.change(ctx, sn, r, now, nil)
	})
	return said, err
}
