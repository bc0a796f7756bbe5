// Package visit is Vigil's domain: schools, officers, contacts, visits and alerts,
// the SMS language, the escalation policy and Decide, the pure function that turns
// one event and the state it touches into new state, timers and messages.
//
// It imports only the standard library and never reads the clock: every function
// that needs the time takes it as an argument, so every rule of the product can be
// tested here in milliseconds.
package visit

import (
	"time"
)

// Contact-list names every school may have. Escalation levels name lists too, so a
// school may have more; these are the ones Vigil itself refers to.
const (
	ListOffice      = "office"
	ListManagers    = "managers"
	ListPolice      = "police"
	ListHeadteacher = "headteacher"
)

// School is a tenant: one school of a trust, with its contact lists.
type School struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	TimeZone string `json:"timezone,omitempty"` // IANA name; empty means the config's timezone
	// Contacts maps a list name (office, managers, police, headteacher, ...) to the
	// contacts on it, in the order they are tried.
	Contacts map[string][]Contact `json:"contacts"`
	// Provisioned is true for schools that come from the config file: the API may not
	// change them.
	Provisioned bool `json:"provisioned,omitempty"`
}

// Contact is a named phone number on one of a school's lists.
type Contact struct {
	Name  string `json:"name"`
	Phone string `json:"phone"` // E.164
}

// Vehicle is what an officer drives, so police can look for it.
type Vehicle struct {
	Make             string `json:"make,omitempty"`
	Model            string `json:"model,omitempty"`
	Colour           string `json:"colour,omitempty"`
	Registration     string `json:"registration,omitempty"`
	InsuranceExpires string `json:"insurance_expires,omitempty"` // YYYY-MM-DD
}

// Describe is the vehicle as an alert names it: "Blue Ford Fiesta AB12 CDE".
func (v *Vehicle) Describe() string {
	if v == nil {
		return ""
	}
	s := ""
	for _, p := range []string{v.Colour, v.Make, v.Model, v.Registration} {
		if p == "" {
			continue
		}
		if s != "" {
			s += " "
		}
		s += p
	}
	return s
}

// Officer is a lone worker with a mobile phone, in one school.
type Officer struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Phone      string   `json:"phone"` // E.164
	School     string   `json:"school"`
	DuressCode string   `json:"duress_code,omitempty"`
	Vehicle    *Vehicle `json:"vehicle,omitempty"`
	// Provisioned is true for officers that come from the config file.
	Provisioned bool `json:"provisioned,omitempty"`
}

// Visit states.
const (
	StateActive  = "active"
	StateOverdue = "overdue"
	StateClosed  = "closed"
)

// Visit outcomes, set when a visit closes.
const (
	OutcomeSafe      = "safe"
	OutcomeCancelled = "cancelled"
	OutcomeDuress    = "duress"
)

// Visit kinds.
const (
	KindSafeAndWell  = "safe_and_well"
	KindAbsenceCheck = "absence_check"
	KindPlanned      = "planned"
	KindReactive     = "reactive"
)

// ValidKind reports whether k is a visit kind Vigil knows (empty is allowed).
func ValidKind(k string) bool {
	switch k {
	case "", KindSafeAndWell, KindAbsenceCheck, KindPlanned, KindReactive:
		return true
	}
	return false
}

// Visit is a declared trip: who went where, and when they are due back.
type Visit struct {
	ID          string    `json:"id"`
	School      string    `json:"school"`
	Officer     string    `json:"officer"`
	Companions  []string  `json:"companions"`
	Destination string    `json:"destination"`
	Kind        string    `json:"kind,omitempty"`
	PupilRef    string    `json:"pupil_ref,omitempty"` // stored, never sent by SMS
	State       string    `json:"state"`
	Outcome     string    `json:"outcome,omitempty"`
	StartedAt   time.Time `json:"started_at"`
	DueAt       time.Time `json:"due_at"`
	ClosedAt    time.Time `json:"closed_at,omitzero"`
	AlertID     string    `json:"alert_id,omitempty"`
	// RemindedAt is when the reminder was queued; zero until then. It makes the
	// reminder happen once per due time: EXTEND clears it.
	RemindedAt time.Time `json:"reminded_at,omitzero"`
	Events     []Event   `json:"events,omitempty"`
}

// Open reports whether the visit is still being watched.
func (v *Visit) Open() bool { return v != nil && v.State != StateClosed }

// Event is one entry of an audit trail: who did what, when.
type Event struct {
	At     time.Time `json:"at"`
	Type   string    `json:"type"`
	By     string    `json:"by"`
	Detail string    `json:"detail,omitempty"`
	// Visit and Alert name what the event is about (for the audit stream).
	Visit string `json:"visit,omitempty"`
	Alert string `json:"alert,omitempty"`
}

// Alert reasons.
const (
	ReasonOverdue = "overdue"
	ReasonPanic   = "panic"
	ReasonDuress  = "duress"
)

// Alert states.
const (
	AlertOpen     = "open"
	AlertAcked    = "acked"
	AlertResolved = "resolved"
)

// Recipient is a contact an alert reached, and at which level.
type Recipient struct {
	Name  string `json:"name"`
	Phone string `json:"phone"`
	List  string `json:"list"`
	Level int    `json:"level"`
}

// Alert is raised when a visit is overdue, on PANIC or on a duress check-in.
type Alert struct {
	ID       string    `json:"id"`
	Code     string    `json:"code"`
	School   string    `json:"school"`
	Officer  string    `json:"officer"`
	VisitID  string    `json:"visit_id,omitempty"`
	Reason   string    `json:"reason"`
	State    string    `json:"state"`
	RaisedAt time.Time `json:"raised_at"`
	// Level is the highest escalation level reached (index into the policy's levels;
	// for panic and duress, every panic level is reached at once).
	Level    int         `json:"level"`
	Notified []Recipient `json:"notified"`
	AckedBy  string      `json:"acked_by,omitempty"`
	AckedAt  time.Time   `json:"acked_at,omitzero"`
	// HoldUntil is when an ACK's hold on further levels ends.
	HoldUntil time.Time `json:"hold_until,omitzero"`
	// LastSentAt is when the alert was last sent to every level reached (a round to
	// newly reached levels alone leaves it); repeats are due repeat_every after it.
	LastSentAt time.Time `json:"last_sent_at,omitzero"`
	// Unreachable are the phones whose alert calls failed (busy, no answer, failed).
	Unreachable []string `json:"unreachable,omitempty"`
	// NoSMS are the phones Twilio refused an alert SMS for good (a landline, an
	// invalid or opted-out number): later rounds call them instead of texting.
	NoSMS      []string  `json:"no_sms,omitempty"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	Resolution string    `json:"resolution,omitempty"`
	// Destination and the times of the visit, copied at raise time so the alert can be
	// written without the visit (PANIC without an open visit names the last known one).
	Destination string    `json:"destination,omitempty"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	DueAt       time.Time `json:"due_at,omitzero"`
	LastMessage string    `json:"last_message,omitempty"`
	Events      []Event   `json:"events,omitempty"`
}

// Open reports whether the alert still needs someone to act.
func (a *Alert) Open() bool { return a != nil && a.State != AlertResolved }
