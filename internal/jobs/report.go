package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// Report is one school's safety statistics for one calendar month, in the spirit of
// BS 8484's monthly tables.
type Report struct {
	School string `json:"school"`
	Month  string `json:"month"` // YYYY-MM, in the school's zone
	// From and To bound the month: [From, To), in the school's zone.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Visits closed in the month, and by outcome (safe, cancelled, duress).
	Visits   int            `json:"visits"`
	Outcomes map[string]int `json:"outcomes"`
	// Alerts raised in the month, by reason as they ended (an overdue alert the
	// officer turned into a panic counts as a panic).
	Alerts  int `json:"alerts"`
	Overdue int `json:"overdue"`
	Panic   int `json:"panic"`
	Duress  int `json:"duress"`
	// FalseAlarms are overdue alerts the officer ended by checking in or extending
	// late: nobody had to go and look.
	FalseAlarms int `json:"false_alarms"`
	// Acked alerts were taken charge of; NotAcked ended (or are still open) without.
	Acked    int `json:"acked"`
	NotAcked int `json:"not_acked"`
	// MedianAck and WorstAck are raise-to-ACK times of the acked alerts (JSON:
	// median_ack_seconds, worst_ack_seconds).
	MedianAck time.Duration `json:"-"`
	WorstAck  time.Duration `json:"-"`
	// NotificationsFailed counts messages whose last send was in the month and that
	// never reached their recipient (see store.MessageRecord.Failed).
	NotificationsFailed int `json:"notifications_failed"`
}

// MarshalJSON writes the ACK times in seconds.
func (r Report) MarshalJSON() ([]byte, error) {
	type plain Report
	return json.Marshal(struct {
		plain
		MedianAckSeconds float64 `json:"median_ack_seconds"`
		WorstAckSeconds  float64 `json:"worst_ack_seconds"`
	}{plain(r), r.MedianAck.Seconds(), r.WorstAck.Seconds()})
}

// falseAlarm reports whether an alert was ended by the officer's own late answer.
func falseAlarm(a *visit.Alert) bool {
	return a.Reason == visit.ReasonOverdue && a.State == visit.AlertResolved &&
		(strings.HasPrefix(a.Resolution, "officer checked in") || strings.HasPrefix(a.Resolution, "officer extended"))
}

// MonthlyReport computes a school's report for the calendar month that contains
// month, whose location must be the school's zone.
//
// Visits are those of the school's closed-visit index closed in the month, plus
// those retention has since deleted (it counts them, by month and outcome, before
// deleting: the visits of a month's first days are past retention.visit_days by the
// time the report runs). Alerts are those of the alert index raised in the month;
// they are kept retention.alert_days, so a report for an older month has none.
// Failed notifications come from the message hashes (state failed, or a receipt of
// failed or undelivered), placed in the month of their last send, plus the failed
// ones retention has deleted; the audit stream does not record sends.
func MonthlyReport(ctx context.Context, st *store.Store, school string, month time.Time) (Report, error) {
	loc := month.Location()
	from := time.Date(month.Year(), month.Month(), 1, 0, 0, 0, 0, loc)
	to := from.AddDate(0, 1, 0)
	r := Report{School: school, Month: from.Format("2006-01"), From: from, To: to, Outcomes: map[string]int{}}

	tally, err := st.MonthTally(ctx, school, r.Month)
	if err != nil {
		return Report{}, err
	}
	visits, err := st.ClosedVisits(ctx, school, from, to)
	if err != nil {
		return Report{}, err
	}
	r.Visits = len(visits) + tally.Visits
	for _, v := range visits {
		r.Outcomes[v.Outcome]++
	}
	for o, n := range tally.Outcomes {
		r.Outcomes[o] += n
	}

	alerts, err := st.RaisedAlerts(ctx, school, from, to)
	if err != nil {
		return Report{}, err
	}
	var acks []time.Duration
	for _, a := range alerts {
		r.Alerts++
		switch a.Reason {
		case visit.ReasonOverdue:
			r.Overdue++
		case visit.ReasonPanic:
			r.Panic++
		case visit.ReasonDuress:
			r.Duress++
		}
		if falseAlarm(a) {
			r.FalseAlarms++
		}
		if a.AckedAt.IsZero() {
			r.NotAcked++
			continue
		}
		acks = append(acks, max(a.AckedAt.Sub(a.RaisedAt), 0))
	}
	r.Acked = len(acks)
	r.MedianAck, r.WorstAck = median(acks), slices.Max(append(acks, 0))

	r.NotificationsFailed = tally.NotificationsFailed
	err = st.ScanMessages(ctx, school, func(m store.MessageRecord) error {
		at := m.LastTry
		if at.IsZero() {
			at = m.SentAt
		}
		if m.Failed() && !at.Before(from) && at.Before(to) {
			r.NotificationsFailed++
		}
		return nil
	})
	if err != nil {
		return Report{}, fmt.Errorf("count failed notifications of %s: %w", school, err)
	}
	return r, nil
}

// median of ds (the mean of the middle two for an even count); 0 for none.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Text is the report as an SMS to the managers (GSM-7, may span segments).
func (r Report) Text(schoolName string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Vigil monthly report - %s, %s.\n", schoolName, r.From.Format("January 2006"))
	fmt.Fprintf(&b, "Visits: %d", r.Visits)
	if r.Visits > 0 {
		fmt.Fprintf(&b, " (%s)", outcomes(r.Outcomes))
	}
	b.WriteString(".\n")
	if r.Alerts == 0 {
		b.WriteString("Alerts: none.")
	} else {
		fmt.Fprintf(&b, "Alerts: %d overdue (%d false %s), %d panic, %d duress.", r.Overdue, r.FalseAlarms, plural(r.FalseAlarms, "alarm", "alarms"), r.Panic, r.Duress)
		if r.Acked > 0 {
			fmt.Fprintf(&b, "\nTime to ACK: median %s, worst %s.", span(r.MedianAck), span(r.WorstAck))
		}
		if r.NotAcked > 0 {
			fmt.Fprintf(&b, " Not acknowledged: %d.", r.NotAcked)
		}
	}
	fmt.Fprintf(&b, "\nNotifications failed: %d.", r.NotificationsFailed)
	return visit.GSM(b.String())
}

// outcomes writes "40 safe, 1 cancelled, 1 duress", the usual outcomes first.
func outcomes(m map[string]int) string {
	order := []string{visit.OutcomeSafe, visit.OutcomeCancelled, visit.OutcomeDuress}
	var rest []string
	for o := range m {
		if !slices.Contains(order, o) {
			rest = append(rest, o)
		}
	}
	sort.Strings(rest)
	var parts []string
	for _, o := range append(order, rest...) {
		if n := m[o]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, o))
		}
	}
	return strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// span writes a duration as "45s", "4m05s" or "1h12m".
func span(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}

// monthlyReport sends the previous calendar month's report (in the school's zone)
// to the school's managers. The message ID names the school and the month.
func (r *Runner) monthlyReport(ctx context.Context, sc visit.School, slot time.Time) error {
	local := slot.In(r.location(sc))
	prev := time.Date(local.Year(), local.Month(), 1, 0, 0, 0, 0, local.Location()).AddDate(0, -1, 0)
	rep, err := MonthlyReport(ctx, r.o.Store, sc.ID, prev)
	if err != nil {
		return err
	}
	msgs := managers(sc, fmt.Sprintf("duty:report:%s:%s", sc.ID, rep.Month), rep.Text(schoolName(sc)))
	if len(msgs) == 0 {
		r.log.Warn("monthly report not sent: the school has no managers list", "school", sc.ID)
		return nil
	}
	return r.o.Store.QueueMessages(ctx, sc.ID, msgs, r.o.Now())
}

// MonthlyReport is the report of school for month ("YYYY-MM") in the school's zone,
// for the API. An unknown school or a malformed month is a *visit.Error (404, 400).
func (r *Runner) MonthlyReport(ctx context.Context, school, month string) (Report, error) {
	sc, err := r.o.Store.School(ctx, school)
	if errors.Is(err, store.ErrNotFound) {
		return Report{}, &visit.Error{Kind: visit.NotFound, Msg: "unknown school " + school}
	}
	if err != nil {
		return Report{}, err
	}
	m, err := time.ParseInLocation("2006-01", month, r.location(*sc))
	if err != nil {
		return Report{}, &visit.Error{Kind: visit.Invalid, Msg: fmt.Sprintf("month must be YYYY-MM, not %q", month)}
	}
	return MonthlyReport(ctx, r.o.Store, school, m)
}
