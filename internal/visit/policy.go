package visit

import "time"

// Policy is the timing of visits and the escalation ladder (config visits.* and
// escalation.*).
type Policy struct {
	DefaultDuration time.Duration
	MaxDuration     time.Duration
	ReminderBefore  time.Duration
	Grace           time.Duration
	Levels          []Level
	PanicLevels     []string
	AckHold         time.Duration
	// ValidityPeriod is set on every alert SMS (twilio.validity_period).
	ValidityPeriod time.Duration
}

// Level is one rung of the ladder: the contact list it notifies, how long after the
// alert was raised, and how often the alert is sent again until someone ACKs.
type Level struct {
	Name        string
	After       time.Duration
	RepeatEvery time.Duration
}

// reminderAt is when the officer is reminded; zero when the visit is too short for a
// reminder to be useful (it would fall before the visit began).
func (p Policy) reminderAt(v *Visit) time.Time {
	at := v.DueAt.Add(-p.ReminderBefore)
	if p.ReminderBefore <= 0 || !at.After(v.StartedAt) {
		return time.Time{}
	}
	return at
}

// overdueAt is when an unanswered visit raises its alert.
func (p Policy) overdueAt(v *Visit) time.Time { return v.DueAt.Add(p.Grace) }

// extendable reports whether EXTEND can still move v's due time later at now: not
// once the due time, or now, has reached started_at + max_duration.
func (p Policy) extendable(v *Visit, now time.Time) bool {
	limit := v.StartedAt.Add(p.MaxDuration)
	return v.DueAt.Before(limit) && now.Before(limit)
}

// levelReachedBy is the highest level whose After has passed at now (0 at least).
func (p Policy) levelReachedBy(a *Alert, now time.Time) int {
	lvl := 0
	for i, l := range p.Levels {
		if !a.RaisedAt.Add(l.After).After(now) {
			lvl = i
		}
	}
	return lvl
}

// repeatEvery is how often an alert at level lvl is sent again.
func (p Policy) repeatEvery(a *Alert) time.Duration {
	if a.Reason != ReasonOverdue {
		return p.panicRepeat()
	}
	if a.Level < len(p.Levels) {
		return p.Levels[a.Level].RepeatEvery
	}
	return 0
}

// panicRepeat is the shortest repeat_every among the ladder levels named in
// panic_levels (the first level's when none is named), so a panic is never repeated
// less often than an overdue alert at the same lists.
func (p Policy) panicRepeat() time.Duration {
	var d time.Duration
	for _, l := range p.Levels {
		for _, n := range p.PanicLevels {
			if l.Name == n && l.RepeatEvery > 0 && (d == 0 || l.RepeatEvery < d) {
				d = l.RepeatEvery
			}
		}
	}
	if d == 0 && len(p.Levels) > 0 {
		d = p.Levels[0].RepeatEvery
	}
	return d
}

// VisitWake is when the visit's timer must next fire; zero when it needs none.
func (p Policy) VisitWake(v *Visit) time.Time {
	if v == nil || v.State != StateActive {
		return time.Time{}
	}
	if v.RemindedAt.IsZero() {
		if at := p.reminderAt(v); !at.IsZero() {
			return at
		}
	}
	return p.overdueAt(v)
}

// AlertWake is when the alert's timer must next fire; zero when it needs none.
func (p Policy) AlertWake(a *Alert) time.Time {
	if a == nil || !a.Open() {
		return time.Time{}
	}
	if a.Reason == ReasonOverdue && !a.HoldUntil.IsZero() {
		// Acknowledged: nothing until the hold ends.
		return a.HoldUntil
	}
	var next time.Time
	if a.Reason == ReasonOverdue && a.Level+1 < len(p.Levels) {
		next = a.RaisedAt.Add(p.Levels[a.Level+1].After)
	}
	if a.repeating() {
		if r := p.repeatEvery(a); r > 0 {
			if at := a.LastSentAt.Add(r); next.IsZero() || at.Before(next) {
				next = at
			}
		}
	}
	return next
}

// repeating reports whether the alert is still sent again each repeat_every: until
// an ACK for an overdue alert (and again once the ACK's hold has ended without the
// officer being found); always for panic and duress, which an ACK never stops.
func (a *Alert) repeating() bool {
	if a.Reason != ReasonOverdue {
		return true
	}
	return a.State == AlertOpen || (a.State == AlertAcked && a.HoldUntil.IsZero())
}
