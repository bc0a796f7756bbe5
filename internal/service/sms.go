package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// InboundSMS is one SMS as Twilio hands it over.
type InboundSMS struct {
	From string // E.164
	Body string
	SID  string // Twilio MessageSid
}

// Results of an inbound SMS, the `result` label of vigil_inbound_sms_total.
const (
	resultOK       = "ok"
	resultRefused  = "refused"
	resultDup      = "duplicate"
	resultUnknown  = "unknown_sender"
	resultNotUnder = "not_understood"
	// resultNotConfirmed: Vigil could not confirm it recorded the SMS (its store stayed
	// unreachable) and told the sender so.
	resultNotConfirmed = "not_confirmed"
)

// HandleSMS handles one inbound SMS and returns the reply text ("" for none). A
// repeated MessageSid gets the reply it got the first time and changes nothing.
func (s *Service) HandleSMS(ctx context.Context, in InboundSMS) (string, error) {
	now := s.now()
	cmd := visit.Parse(in.Body)
	roles, err := s.st.PhoneRoles(ctx, in.From)
	if err != nil {
		return "", fmt.Errorf("look up sender: %w", err)
	}
	var officer, contact *store.PhoneRole
	var contactSchools []string
	for i, r := range roles {
		switch r.Kind {
		case "officer":
			officer = &roles[i]
		case "contact":
			if contact == nil {
				contact = &roles[i]
			}
			if !slices.Contains(contactSchools, r.School) {
				contactSchools = append(contactSchools, r.School)
			}
		}
	}
	isContactVerb := cmd.Verb == visit.VerbAck || cmd.Verb == visit.VerbResolve
	var reply, result string
	switch {
	case officer == nil && contact == nil:
		reply, result, err = s.unknownSender(ctx, in, now)
	case contact != nil && (officer == nil || isContactVerb):
		reply, result, err = s.contactSMS(ctx, in, cmd, roles, contactSchools, now)
	default:
		reply, result, err = s.officerSMS(ctx, in, cmd, officer, now)
	}
	if s.metrics != nil && err == nil {
		s.metrics.InboundSMS.WithLabelValues(string(cmd.Verb), result).Inc()
	}
	return reply, err
}

func (s *Service) unknownSender(ctx context.Context, in InboundSMS, now time.Time) (string, string, error) {
	s.log.Info("SMS from an unknown number", "from", maskPhone(in.From))
	ok, err := s.st.UnknownReplyAllowed(ctx, in.From, now)
	if err != nil || !ok {
		return "", resultUnknown, err
	}
	return "This number is not registered with Vigil. Ask your school office to add it.", resultUnknown, nil
}

func (s *Service) officerSMS(ctx context.Context, in InboundSMS, cmd visit.Command, role *store.PhoneRole, now time.Time) (string, string, error) {
	sc, loc, err := s.schoolState(ctx, role.School)
	if err != nil {
		return "", "", err
	}
	o, err := s.officer(ctx, role.Officer, role.School)
	if err != nil {
		return "", "", err
	}
	var reply, result string
	first, dup, err := s.transactInbound(ctx, role.School, in.SID, func(sn *store.Snapshot) (store.Change, error) {
		if k, ok := s.ahead.get(o.ID); ok {
			if err := sn.ReadAhead(ctx, o.ID, k.visits, k.alerts); err != nil {
				return store.Change{}, err
			}
		}
		st, ost, err := s.loadOfficer(ctx, sn, sc, loc, o)
		if err != nil {
			return store.Change{}, err
		}
		st.LastText = in.Body
		r, derr := visit.OfficerCommand(st, visit.Input{Cmd: cmd, Source: visit.SourceSMS, By: in.From, Text: in.Body, IDs: s.newIDs(now)}, now, s.policy)
		result = resultOK
		if cmd.Verb == visit.VerbUnknown {
			result = resultNotUnder
		}
		reply = r.Reply
		var refusal *visit.Error
		if errors.As(derr, &refusal) {
			reply, result = refusal.Msg, resultRefused
		} else if derr != nil {
			return store.Change{}, derr
		}
		// The officer's state always records the last text, which alerts quote.
		ost.LastText = in.Body
		if isOptIn(in.Body) {
			ost.OptedOut = false // START: Twilio delivers SMS to the phone again
			if cmd.Verb == visit.VerbUnknown {
				// Not a command of Vigil's: say what the word did, then the commands.
				reply = "Vigil texts will reach this phone again. " + visit.Writer{}.Help()
				result = resultOK
			}
		}
		ch, err := s.change(ctx, sn, r, now, map[string]visit.OfficerState{o.ID: ost})
		if err != nil {
			return store.Change{}, err
		}
		ch.InboundSID, ch.InboundReply = in.SID, reply
		return ch, nil
	})
	if dup {
		return first, resultDup, nil
	}
	return reply, result, err
}

// loadOfficer reads everything an officer's command may touch.
func (s *Service) loadOfficer(ctx context.Context, sn *store.Snapshot, sc *visit.School, loc *time.Location, o *visit.Officer) (visit.State, visit.OfficerState, error) {
	ost, err := sn.OfficerState(ctx, o.ID)
	if err != nil {
		return visit.State{}, ost, err
	}
	v, err := sn.Visit(ctx, ost.OpenVisit)
	if err != nil {
		return visit.State{}, ost, err
	}
	ids := ost.Alerts
	if v != nil && v.AlertID != "" && !slices.Contains(ids, v.AlertID) {
		// A companion's state does not list the alert of the visit they share.
		ids = append(slices.Clone(ids), v.AlertID)
	}
	alerts, err := sn.Alerts(ctx, ids)
	if err != nil {
		return visit.State{}, ost, err
	}
	st := visit.State{School: sc, Loc: loc, Officer: o, Visit: v, Alerts: alerts, LastText: ost.LastText, OptedOut: ost.OptedOut}
	if v == nil && ost.LastVisit != "" {
		if st.LastVisit, err = sn.Visit(ctx, ost.LastVisit); err != nil {
			return visit.State{}, ost, err
		}
	}
	if st.Officers, err = s.officers(ctx, sc.ID, v, alerts); err != nil {
		return visit.State{}, ost, err
	}
	return st, ost, nil
}

// contactSMS handles a message from a contact: ACK or RESOLVE an alert of one of the
// schools the contact is on.
func (s *Service) contactSMS(ctx context.Context, in InboundSMS, cmd visit.Command, roles []store.PhoneRole, schools []string, now time.Time) (string, string, error) {
	if cmd.Verb != visit.VerbAck && cmd.Verb != visit.VerbResolve {
		w := visit.Writer{}
		return w.ContactHelp(), resultNotUnder, nil
	}
	// Pick the school: the one whose open alert has the code, or the only one with
	// open alerts; otherwise the first (whose decision then explains the choice).
	// Without a code, open alerts in several schools are as ambiguous as several
	// in one: the reply lists them with their codes and nothing changes.
	school := schools[0]
	if len(schools) > 1 {
		var withAlerts, open []string
		for _, sc := range schools {
			alerts, err := s.st.ListAlerts(ctx, []string{sc}, true, 0)
			if err != nil {
				return "", "", err
			}
			alerts = slices.DeleteFunc(alerts, func(a *visit.Alert) bool {
				return !a.Open() || (cmd.Code != "" && a.Code != cmd.Code)
			})
			if len(alerts) == 0 {
				continue
			}
			withAlerts = append(withAlerts, sc)
			if cmd.Code == "" {
				officers, err := s.officers(ctx, sc, nil, alerts)
				if err != nil {
					return "", "", err
				}
				open = append(open, visit.AlertChoices(strings.ToUpper(string(cmd.Verb)), alerts, func(a *visit.Alert) string {
					if o := officers[a.Officer]; o != nil {
						return o.Name
					}
					return a.Officer
				}))
			}
		}
		if len(withAlerts) > 1 && cmd.Code == "" {
			// Unless this is Twilio repeating a text that was handled at one
			// school (its answer lost): the repeat goes there, as the first did,
			// and is answered as it was.
			pinned := ""
			if in.SID != "" {
				var err error
				if pinned, err = s.st.PinnedInboundSchool(ctx, in.SID); err != nil {
					return "", "", err
				}
			}
			if !slices.Contains(schools, pinned) {
				return visit.GSM(fmt.Sprintf("Several alerts are open: %s. Nothing changed.", strings.Join(open, ", "))), resultRefused, nil
			}
		}
		if len(withAlerts) > 0 {
			school = withAlerts[0]
		}
		if in.SID != "" {
			// A repeat (Twilio retrying) goes to the school the first chose,
			// whatever is open now, and is answered there as the first time.
			pinned, err := s.st.PinInboundSchool(ctx, in.SID, school)
			if err != nil {
				return "", "", err
			}
			if slices.Contains(schools, pinned) {
				school = pinned
			}
		}
	}
	// The contact is named as the school whose alert it is has them on its lists
	// (one phone may be "office manager" at one school and "manager" at another).
	contact := &visit.Contact{Phone: in.From}
	for _, r := range roles {
		if r.Kind == "contact" && r.School == school {
			contact.Name = r.Name
			break
		}
	}
	sc, loc, err := s.schoolState(ctx, school)
	if err != nil {
		return "", "", err
	}
	var reply, result string
	first, dup, err := s.transactInbound(ctx, school, in.SID, func(sn *store.Snapshot) (store.Change, error) {
		alerts, err := sn.OpenAlerts(ctx)
		if err != nil {
			return store.Change{}, err
		}
		st := visit.State{School: sc, Loc: loc, Alerts: alerts, Contact: contact}
		// When the alert meant is clear, load its visit too (RESOLVE closes it).
		if a := meant(alerts, cmd.Code); a != nil && a.VisitID != "" {
			if st.Visit, err = sn.Visit(ctx, a.VisitID); err != nil {
				return store.Change{}, err
			}
		}
		if st.Officers, err = s.officers(ctx, school, st.Visit, alerts); err != nil {
			return store.Change{}, err
		}
		r, derr := visit.ContactCommand(st, visit.Input{Cmd: cmd, Source: visit.SourceSMS, By: in.From, Text: in.Body}, now, s.policy)
		reply, result = r.Reply, resultOK
		var refusal *visit.Error
		if errors.As(derr, &refusal) {
			reply, result = refusal.Msg, resultRefused
		} else if derr != nil {
			return store.Change{}, derr
		}
		ch, err := s.change(ctx, sn, r, now, nil)
		if err != nil {
			return store.Change{}, err
		}
		ch.InboundSID, ch.InboundReply = in.SID, reply
		return ch, nil
	})
	if dup {
		return first, resultDup, nil
	}
	return reply, result, err
}

// meant is the open alert a code names, or the only open alert.
func meant(alerts []*visit.Alert, code string) *visit.Alert {
	var open []*visit.Alert
	for _, a := range alerts {
		if a.Open() && (code == "" || a.Code == code) {
			open = append(open, a)
		}
	}
	if len(open) == 1 {
		return open[0]
	}
	return nil
}

// CountReply counts an SMS reply sent back in the webhook's answer.
func (s *Service) CountReply() {
	if s.metrics != nil {
		s.metrics.Notifications.WithLabelValues(visit.ChannelSMS, visit.KindReply, "sent").Inc()
	}
}

// NotConfirmed counts an inbound SMS Vigil could not confirm it recorded (its store
// stayed unreachable for as long as the webhook could wait) and returns the reply that
// tells the sender so: an officer must never believe a PANIC or a VISIT was taken when
// it may not have been. (It may have been: a last attempt can commit and lose its
// answer.) The same words answer every command, so a duress check-in reads like any
// other.
func (s *Service) NotConfirmed(in InboundSMS) string {
	if s.metrics != nil {
		s.metrics.InboundSMS.WithLabelValues(string(visit.Parse(in.Body).Verb), resultNotConfirmed).Inc()
	}
	return NotConfirmedReply
}

// NotConfirmedReply is the answer to an SMS Vigil could not confirm it recorded (one
// GSM-7 segment).
const NotConfirmedReply = "NOT CONFIRMED: Vigil cannot reach its records, so this text may be lost. " +
	"If you are in danger, call 999 now. Otherwise phone your school office."

// Receipt is a delivery status callback from Twilio.
type Receipt struct {
	SID       string
	Status    string // queued, sent, delivered, undelivered, failed, ...
	ErrorCode int
	// By names who handles it (NewHandler): the same for every try of one webhook
	// request, so a try takes over its own request's half-finished handling and
	// leaves another copy's alone (store.RecordDelivery). Empty: a new one.
	By string
}

// NewHandler returns a fresh name for the handler of a receipt (Receipt.By).
func NewHandler() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// HandleReceipt records a delivery receipt on the message it is about. Receipts for
// messages Vigil does not know (replies sent in TwiML) are ignored.
func (s *Service) HandleReceipt(ctx context.Context, r Receipt) error {
	school, msg, _, err := s.st.MessageBySID(ctx, r.SID)
	if errors.Is(err, store.ErrNotFound) {
		// Twilio may report before the dispatcher has recorded the send (or the
		// message was a TwiML reply, which Vigil does not track): keep it a while;
		// the dispatcher's record of the send takes it (store.RecordSent) and
		// hands it back here.
		if err := s.st.KeepPendingReceipt(ctx, r.SID, r.Status, r.ErrorCode); err != nil {
			return err
		}
		// The send may have been recorded between the look-up and keeping the
		// receipt, after the dispatcher looked for it: look once more. Whoever
		// takes the kept receipt first handles it.
		if _, _, _, err := s.st.MessageBySID(ctx, r.SID); err == nil {
			return s.replayReceipt(ctx, r.SID, r.By)
		}
		return nil
	}
	if err != nil {
		return err
	}
	by := r.By
	if by == "" {
		by = NewHandler()
	}
	return s.HandleMessageStatus(ctx, school, *msg, r.Status, r.ErrorCode, by)
}

// HandleMessageStatus is HandleReceipt for a message already found: the receipt
// checker, which knows the school and the message, uses it rather than the
// SID's index (which lives apart from them on a Cluster, and may be missing if
// its write failed).
func (s *Service) HandleMessageStatus(ctx context.Context, school string, m visit.Message, status string, code int, by string) error {
	failed := status == "undelivered" || status == "failed"
	if m.Channel == visit.ChannelCall {
		failed = failedCall[status]
	}
	// A status that asks for nothing more is recorded as handled at once.
	isNew, pending, err := s.st.RecordDelivery(ctx, school, m.ID, status, code, !failed, by, s.now())
	if err != nil {
		return err
	}
	if isNew && s.metrics != nil {
		switch {
		case status == "delivered" || (m.Channel == visit.ChannelCall && status == "completed"):
			s.metrics.Notifications.WithLabelValues(m.Channel, m.Kind, "delivered").Inc()
		case status == "undelivered" || status == "failed" || failedCall[status]:
			s.metrics.Notifications.WithLabelValues(m.Channel, m.Kind, "undelivered").Inc()
		}
	}
	if !pending {
		return nil
	}
	if isNew {
		s.log.Warn("message not delivered", "msg", m.ID, "kind", m.Kind, "channel", m.Channel, "to", maskPhone(m.To), "status", status, "error_code", code)
	}
	if err := s.handleDeliveryFailure(ctx, school, m, code, status, isNew); err != nil {
		// Not marked handled: the webhook's next try (the same handler) handles
		// the failure again, or anyone once the handling has lapsed (the
		// receipt check, when no try comes).
		return err
	}
	return s.st.DeliveryHandled(ctx, school, m.ID, status)
}

// ReplayReceipt handles a receipt that arrived before its send was recorded, once
// the dispatcher has recorded it under sid.
func (s *Service) ReplayReceipt(ctx context.Context, sid string) error {
	return s.replayReceipt(ctx, sid, "")
}

// replayReceipt is ReplayReceipt by a named handler: a webhook whose receipt
// found its send recorded after all replays it as itself, so that its own next
// try can take up a handling the replay began (Receipt.By).
func (s *Service) replayReceipt(ctx context.Context, sid, by string) error {
	r, err := s.st.TakePendingReceipt(ctx, sid)
	if err != nil || r == nil {
		return err
	}
	return s.HandleReceipt(ctx, Receipt{SID: sid, Status: r.Status, ErrorCode: r.Code, By: by})
}
