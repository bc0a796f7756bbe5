package jobs

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-safety/vigil/internal/visit"
)

// ExpiryWindow is how far ahead the vehicle check warns of insurance running out.
const ExpiryWindow = 30 * 24 * time.Hour

// dateLayout is how vehicle records write dates; messageDate how messages do.
const (
	dateLayout  = "2006-01-02"
	messageDate = "2 Jan 2006"
)

// VehicleProblem says what is wrong with an officer's vehicle record on the civil
// date of today (in today's location), or "" when nothing is: no vehicle, details
// missing, insurance unreadable, expired, or expiring within ExpiryWindow.
func VehicleProblem(o visit.Officer, today time.Time) string {
	v := o.Vehicle
	if v == nil || *v == (visit.Vehicle{}) {
		return "no vehicle details"
	}
	var missing []string
	for _, f := range []struct{ name, val string }{
		{"make", v.Make}, {"model", v.Model}, {"colour", v.Colour},
		{"registration", v.Registration}, {"insurance expiry", v.InsuranceExpires},
	} {
		if strings.TrimSpace(f.val) == "" {
			missing = append(missing, f.name)
		}
	}
	var problems []string
	if len(missing) > 0 {
		problems = append(problems, "missing "+strings.Join(missing, ", "))
	}
	if v.InsuranceExpires != "" {
		days, ok := daysUntil(v.InsuranceExpires, today)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("insurance expiry %q unreadable", v.InsuranceExpires))
		case days < 0:
			problems = append(problems, "insurance EXPIRED "+formatDate(v.InsuranceExpires))
		case days == 0:
			problems = append(problems, "insurance expires TODAY")
		case days <= int(ExpiryWindow/(24*time.Hour)):
			problems = append(problems, fmt.Sprintf("insurance expires %s (%d days)", formatDate(v.InsuranceExpires), days))
		}
	}
	return strings.Join(problems, "; ")
}

// InsuranceWarning is the line an officer whose vehicle insurance has expired gets
// in the reply to VISIT; "" when it has not expired (or no vehicle or date is on
// record: missing details go to the managers, not to the officer on the doorstep).
// today is now in the school's zone: the insurance is valid through its expiry date.
func InsuranceWarning(o visit.Officer, today time.Time) string {
	return o.InsuranceWarning(today)
}

// daysUntil counts civil days from today's date (in its location) to date.
func daysUntil(date string, today time.Time) (int, bool) {
	d, err := time.Parse(dateLayout, strings.TrimSpace(date))
	if err != nil {
		return 0, false
	}
	t := time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, time.UTC)
	return int(d.Sub(t).Hours() / 24), true
}

func formatDate(date string) string {
	d, err := time.Parse(dateLayout, strings.TrimSpace(date))
	if err != nil {
		return date
	}
	return d.Format(messageDate)
}

// ExpiryText is the vehicle check SMS to a school's managers, one line per officer
// with a problem (as VehicleProblem words it); "" when there is none. It is GSM-7
// and may span several segments.
func ExpiryText(sc visit.School, officers []visit.Officer, today time.Time) string {
	var lines []string
	for _, o := range officers {
		if o.School != sc.ID {
			continue
		}
		if p := VehicleProblem(o, today); p != "" {
			lines = append(lines, fmt.Sprintf("%s: %s.", o.Name, p))
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return visit.GSM(fmt.Sprintf("Vigil vehicle check - %s, %s:\n%s\nPolice are given these details in an alert: please update them.",
		schoolName(sc), today.Format(messageDate), strings.Join(lines, "\n")))
}

// expiryCheck sends the day's vehicle check to the school's managers. The message
// ID names the school, the local date and the phone: a second run that day queues
// nothing.
func (r *Runner) expiryCheck(ctx context.Context, sc visit.School, slot time.Time) error {
	officers, err := r.o.Store.Officers(ctx)
	if err != nil {
		return err
	}
	today := slot.In(r.location(sc))
	body := ExpiryText(sc, officers, today)
	if body == "" {
		return nil
	}
	msgs := managers(sc, fmt.Sprintf("duty:expiry:%s:%s", sc.ID, today.Format(dateLayout)), body)
	if len(msgs) == 0 {
		r.log.Warn("vehicle check found problems but the school has no managers list", "school", sc.ID)
		return nil
	}
	return r.o.Store.QueueMessages(ctx, sc.ID, msgs, r.o.Now())
}
