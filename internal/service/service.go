// Package service is Vigil's one orchestration layer. Every event — an inbound SMS,
// an API call, a timer falling due — takes the same path: load the state it touches
// from the store, decide with the pure visit package, and commit state, timers,
// messages and audit events in one atomic store operation.
package service

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// Service handles every event.
type Service struct {
	st      *store.Store
	policy  visit.Policy
	loc     *time.Location // the config's timezone, for schools that name none
	now     func() time.Time
	log     *slog.Logger
	metrics *Metrics
	// wake nudges this replica's scheduler after a commit that added a timer
	// sooner than any other (other replicas hear of it through Redis pub/sub).
	wake func()
	// local reports whether this replica's dispatcher would send messages
	// queued now at once; then a commit queues them claimed for it for
	// claimFor, wakes no other replica's dispatcher, and hands them over
	// through queued.
	queued   func([]store.Outgoing)
	local    func() bool
	claimFor time.Duration
	// zones holds the schools' time zones by name, once loaded (*time.Location).
	zones sync.Map
	// ahead guesses what an officer's next SMS reads (readahead.go).
	ahead readAhead
	// newID makes a visit's or alert's ID (store.NewID).
	newID func(time.Time) string
}

// Options are what a Service needs.
type Options struct {
	Store    *store.Store
	Policy   visit.Policy
	Location *time.Location
	Now      func() time.Time
	Log      *slog.Logger
	Metrics  *Metrics
	Wake     func()
	// Queued, Local and ClaimFor connect the service to this replica's
	// dispatcher (optional: without them every commit that queues messages
	// wakes every replica's dispatcher through Redis). When Local says the
	// dispatcher has room, messages are committed already claimed for it for
	// ClaimFor (its lease) and handed to it through Queued.
	Queued   func([]store.Outgoing)
	Local    func() bool
	ClaimFor time.Duration
	// NewID makes the IDs of new visits and alerts; store.NewID when nil (tests
	// replace it to make IDs collide).
	NewID func(time.Time) string
}

// New builds a Service.
func New(o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Wake == nil {
		o.Wake = func() {}
	}
	if o.Queued == nil || o.ClaimFor <= 0 {
		o.Queued = func([]store.Outgoing) {}
		o.Local = func() bool { return false }
	}
	if o.Local == nil {
		o.Local = func() bool { return false }
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.NewID == nil {
		o.NewID = store.NewID
	}
	clock := o.Now
	// Redis keeps instants to the millisecond: every instant an event decides
	// from is one, so what an answer shows (a visit's started_at in the 201 of
	// POST /api/v1/visits) is what a later read shows.
	now := func() time.Time { return clock().Truncate(time.Millisecond) }
	return &Service{st: o.Store, policy: o.Policy, loc: o.Location, now: now,
		log: o.Log.With("component", "service"), metrics: o.Metrics, wake: o.Wake, queued: o.Queued, local: o.Local,
		claimFor: o.ClaimFor, newID: o.NewID}
}

// Policy is the policy the service decides with.
func (s *Service) Policy() visit.Policy { return s.policy }

// maxAttempts bounds how often an event is decided again after a conflict. Conflicts
// need two events about the same officer within a few milliseconds, so this is
// generous.
const maxAttempts = 8

// errBusy is returned when an event kept conflicting: the caller should retry.
var errBusy = errors.New("the state kept changing while this was decided; try again")

// transact loads, decides and commits in one school until the commit holds.
func (s *Service) transact(ctx context.Context, school string, fn func(sn *store.Snapshot) (store.Change, error)) error {
	_, _, err := s.transactInbound(ctx, school, "", fn)
	return err
}

// transactInbound is transact for an inbound SMS whose Twilio MessageSid is sid
// (fn's change records it). A MessageSid handled before is not looked for first:
// the commit refuses a change whose MessageSid is already recorded (as a conflict),
// so a repeat has no second effect, and only when a commit conflicts or the event
// fails is the reply given the first time read. It is then returned with dup set.
// A new message, nearly every one, costs no read for de-duplication.
func (s *Service) transactInbound(ctx context.Context, school, sid string, fn func(sn *store.Snapshot) (store.Change, error)) (reply string, dup bool, err error) {
	return s.transactFrom(ctx, nil, school, sid, fn)
}

// transactFrom is transactInbound whose first attempt reads through first (nil: a
// new snapshot, as every later attempt's is).
func (s *Service) transactFrom(ctx context.Context, first *store.Snapshot, school, sid string, fn func(sn *store.Snapshot) (store.Change, error)) (reply string, dup bool, err error) {
	for range maxAttempts {
		sn := first
		if sn == nil {
			sn = s.st.Begin(school)
		}
		first = nil
		ch, err := fn(sn)
		if err == nil {
			if len(ch.Result.Messages) > 0 && s.local() {
				ch.ClaimFor = s.claimFor
			}
			err = sn.Commit(ctx, ch)
			if err != nil && ch.ClaimFor > 0 && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrFenced) {
				// The commit may have gone through with its answer lost, and it
				// woke no other replica: hand the messages to this one's
				// dispatcher all the same (one whose commit did not go through
				// names a claim that is not held, and is dropped).
				s.queued(ch.Claimed(school))
			}
		}
		if err != nil && sid != "" {
			if r, ok, rerr := s.st.InboundReply(ctx, school, sid); rerr == nil && ok {
				return r, true, nil
			}
		}
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err == nil {
			// Whoever changed an officer's state (an SMS, a timer, the API), the
			// officer's next SMS reads what it names in one round trip.
			for id, st := range ch.OfficerStates {
				s.ahead.remember(id, st)
			}
			s.observe(ch)
			if sn.Announced() {
				// Other replicas hear of it through pub/sub; this one at once.
				s.wake()
			}
			s.queued(ch.Claimed(school))
		}
		return "", false, err
	}
	return "", false, errBusy
}

// observe counts what a committed change did.
func (s *Service) observe(ch store.Change) {
	if s.metrics == nil {
		return
	}
	for _, a := range ch.Result.Raised {
		s.metrics.AlertsTotal.WithLabelValues(a.Reason).Inc()
	}
	for _, v := range ch.Result.Visits {
		if !v.Open() && !v.ClosedAt.IsZero() && v.ClosedAt.Equal(ch.Now) {
			s.metrics.VisitsTotal.WithLabelValues(v.Outcome).Inc()
		}
	}
	if ch.Result.AckedAfter > 0 {
		s.metrics.AckSeconds.Observe(ch.Result.AckedAfter.Seconds())
	}
}

// change turns a decision into what the store writes: the entities, the timers
// derived from their new state, and the officers' states — the states given, and
// those of every companion of a visit the decision changed, read through sn.
func (s *Service) change(ctx context.Context, sn *store.Snapshot, r visit.Result, now time.Time, states map[string]visit.OfficerState) (store.Change, error) {
	ch := store.Change{Result: r, Timers: map[string]time.Time{}, OfficerStates: map[string]visit.OfficerState{}, Now: now}
	if states == nil {
		states = map[string]visit.OfficerState{}
	}
	for _, v := range r.Visits {
		for _, id := range append([]string{v.Officer}, v.Companions...) {
			if _, ok := states[id]; ok {
				continue
			}
			st, err := sn.OfficerState(ctx, id)
			if err != nil {
				return ch, err
			}
			states[id] = st
		}
	}
	for _, v := range r.Visits {
		ch.Timers[store.VisitTimer(v.ID)] = s.policy.VisitWake(v)
	}
	for _, a := range r.Alerts {
		ch.Timers[store.AlertTimer(a.ID)] = s.policy.AlertWake(a)
	}
	for id, st := range states {
		ch.OfficerStates[id] = st.Apply(id, r)
	}
	return ch, nil
}

// newIDs makes fresh identifiers for whatever an event may create (store.NewID: short,
// and unique in the school because the commit refuses an ID whose record exists,
// after which the event is decided again with new ones). The visit and the alert get
// different IDs, though their records' keys and timers would not clash.
func (s *Service) newIDs(now time.Time) visit.IDs {
	ids := visit.IDs{Visit: s.newID(now), Alert: s.newID(now), Code: newCode()}
	for i := 0; ids.Alert == ids.Visit && i < 8; i++ {
		ids.Alert = s.newID(now)
	}
	return ids
}

// newCode is a four-digit ACK code. The commit refuses a code another open alert of
// the school holds, and the event is decided again with a new one. Every officer's
// command makes one, alert or not, so it is made without big.Int or fmt.
func newCode() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	// 2^32 is not a multiple of 9000: the lowest codes are a few millionths likelier.
	return strconv.Itoa(1000 + int(binary.BigEndian.Uint32(b[:])%9000))
}

// schoolState loads a school and its time zone. A school missing from the directory
// still gets its alerts decided (with no contacts) rather than dropped, and says so.
func (s *Service) schoolState(ctx context.Context, id string) (*visit.School, *time.Location, error) {
	sc, err := s.st.School(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		s.log.Error("school missing from the directory", "school", id)
		return &visit.School{ID: id, Name: id}, s.loc, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return sc, s.zone(sc.TimeZone), nil
}

// zone is the time zone named (the config's when empty or unknown). Zones are kept
// once loaded: time.LoadLocation reads the zone database every time.
func (s *Service) zone(name string) *time.Location {
	if name == "" {
		return s.loc
	}
	if l, ok := s.zones.Load(name); ok {
		return l.(*time.Location)
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return s.loc
	}
	s.zones.Store(name, l)
	return l
}

// officer loads an officer; one missing from the directory (deleted while a visit was
// open) is still named by ID so that their alert goes out.
func (s *Service) officer(ctx context.Context, id, school string) (*visit.Officer, error) {
	o, err := s.st.Officer(ctx, id)
	return orStandIn(o, err, id, school)
}

// readOfficer is officer, reading in the same round trip the officer's state and
// the visits and alerts named into the snapshot (store.Snapshot.ReadOfficer).
func (s *Service) readOfficer(ctx context.Context, sn *store.Snapshot, id, school string, visits, alerts []string) (*visit.Officer, error) {
	o, err := sn.ReadOfficer(ctx, id, visits, alerts)
	return orStandIn(o, err, id, school)
}

// orStandIn is a directory read's officer, or, when the directory has none, a
// stand-in named by ID.
func orStandIn(o *visit.Officer, err error, id, school string) (*visit.Officer, error) {
	if errors.Is(err, store.ErrNotFound) {
		return &visit.Officer{ID: id, Name: id, School: school}, nil
	}
	return o, err
}

// officers loads the officers named by a visit's companions and alerts.
func (s *Service) officers(ctx context.Context, school string, v *visit.Visit, alerts []*visit.Alert) (map[string]*visit.Officer, error) {
	out := map[string]*visit.Officer{}
	var ids []string
	if v != nil {
		ids = append(ids, v.Companions...)
	}
	for _, a := range alerts {
		ids = append(ids, a.Officer)
	}
	for _, id := range ids {
		if _, ok := out[id]; ok {
			continue
		}
		o, err := s.officer(ctx, id, school)
		if err != nil {
			return nil, err
		}
		out[id] = o
	}
	return out, nil
}

// maskPhone keeps the country code and last three digits, for logs.
func maskPhone(p string) string {
	if len(p) < 7 {
		return "***"
	}
	return p[:3] + strings.Repeat("*", len(p)-6) + p[len(p)-3:]
}
