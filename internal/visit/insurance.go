package visit

import (
	"fmt"
	"strings"
	"time"
)

// InsuranceWarning is what an officer whose vehicle insurance has expired is told
// when they open a visit; "" when it has not expired, or when no vehicle or date is
// on record (missing details go to the managers, not to the officer on the
// doorstep). today is now in the school's zone: cover lasts through its expiry date.
func (o *Officer) InsuranceWarning(today time.Time) string {
	if o == nil || o.Vehicle == nil || o.Vehicle.InsuranceExpires == "" {
		return ""
	}
	exp, err := time.Parse(time.DateOnly, strings.TrimSpace(o.Vehicle.InsuranceExpires))
	if err != nil {
		return ""
	}
	day := time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, time.UTC)
	if !exp.Before(day) {
		return ""
	}
	return GSM(fmt.Sprintf("Your vehicle insurance expired %s: do not drive until it is renewed.", exp.Format("2 Jan 2006")))
}

// VisitOpenedWarning is the reply to VISIT with a warning in it, still one segment:
// the warning goes before the commands, and the destination is shortened to fit.
func (w Writer) VisitOpenedWarning(v *Visit, warning string) string {
	return fit("Visit to ", v.Destination, fmt.Sprintf(" logged, due back %s. %s Reply IN when safe.", w.at(v.DueAt), shortWarning(warning)))
}

// shortWarning keeps a warning short enough to leave room in one segment.
func shortWarning(s string) string {
	if s, ok := strings.CutPrefix(s, "Your vehicle insurance expired "); ok {
		date, _, _ := strings.Cut(s, ":")
		return "WARNING: vehicle insurance expired " + date + ", do not drive."
	}
	return s
}
