package visit

import (
	"strings"
	"testing"
)

// An officer whose insurance has expired is warned in the VISIT reply, in one
// segment; one whose cover runs through today is not.
func TestVisitReplyWarnsOfExpiredInsurance(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, expires string
		warn          bool
	}{
		{"expired", "2026-03-01", true},           // months ago
		{"expires today", "2026-06-15", false},    // cover lasts through the expiry date
		{"expired yesterday", "2026-06-14", true}, // the day after
		{"no date", "", false},                    // missing details go to managers
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.officers["jdoe"].Vehicle.InsuranceExpires = tt.expires
			r := w.mustSMS(janePhone, "VISIT 45 "+strings.Repeat("Long Road ", 20))
			if got := strings.Contains(r.Reply, "WARNING: vehicle insurance expired"); got != tt.warn {
				t.Errorf("reply %q: warning %v, want %v", r.Reply, got, tt.warn)
			}
			if Septets(r.Reply) > 160 || GSM(r.Reply) != r.Reply {
				t.Errorf("reply is %d septets or not GSM-7: %q", Septets(r.Reply), r.Reply)
			}
		})
	}
}
