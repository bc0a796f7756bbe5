package jobs

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/visit"
)

func vehicle(expires string) *visit.Vehicle {
	return &visit.Vehicle{Make: "Ford", Model: "Fiesta", Colour: "Blue", Registration: "AB12 CDE", InsuranceExpires: expires}
}

func TestVehicleProblem(t *testing.T) {
	t.Parallel()
	today := time.Date(2026, 3, 29, 8, 0, 0, 0, london(t))
	for _, tc := range []struct {
		name string
		v    *visit.Vehicle
		want string
	}{
		// insured for longer than the window
		{"fine", vehicle("2026-04-29"), ""},
		// the last day of the window
		{"in 30 days", vehicle("2026-04-28"), "insurance expires 28 Apr 2026 (30 days)"},
		// valid through its expiry date
		{"today", vehicle("2026-03-29"), "insurance expires TODAY"},
		// expired yesterday
		{"expired", vehicle("2026-03-28"), "insurance EXPIRED 28 Mar 2026"},
		// no vehicle on record at all
		{"no vehicle", nil, "no vehicle details"},
		// an empty vehicle is no vehicle
		{"empty vehicle", &visit.Vehicle{}, "no vehicle details"},
		// details missing, insurance fine
		{"missing", &visit.Vehicle{Make: "Ford", Registration: "AB12 CDE", InsuranceExpires: "2027-01-01"}, "missing model, colour"},
		// details missing and insurance expired: both said
		{"missing and expired", &visit.Vehicle{Make: "Ford", Model: "Ka", Colour: "Red", InsuranceExpires: "2025-12-31"},
			"missing registration; insurance EXPIRED 31 Dec 2025"},
		// no insurance date
		{"no insurance", &visit.Vehicle{Make: "Ford", Model: "Ka", Colour: "Red", Registration: "X1"}, "missing insurance expiry"},
		// a date that cannot be read
		{"unreadable", vehicle("March 2027"), `insurance expiry "March 2027" unreadable`},
	} {
		got := VehicleProblem(visit.Officer{ID: "x", Name: "X", Vehicle: tc.v}, today)
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestInsuranceWarning(t *testing.T) {
	t.Parallel()
	loc := london(t)
	// 00:30 BST on 1 Mar is still 28 Feb in UTC: the civil date is the school's.
	today := time.Date(2026, 3, 1, 0, 30, 0, 0, loc)
	for _, tc := range []struct {
		name string
		v    *visit.Vehicle
		want string
	}{
		// expired yesterday (local): warned
		{"expired", vehicle("2026-02-28"), "Your vehicle insurance expired 28 Feb 2026: do not drive until it is renewed."},
		// expires today: still valid, no warning
		{"today", vehicle("2026-03-01"), ""},
		// expiring soon is for the managers, not the officer
		{"soon", vehicle("2026-03-10"), ""},
		// no vehicle, no date, or an unreadable date: nothing to say to the officer
		{"no vehicle", nil, ""},
		{"no date", &visit.Vehicle{Make: "Ford"}, ""},
		{"unreadable", vehicle("soon"), ""},
	} {
		got := InsuranceWarning(visit.Officer{Vehicle: tc.v}, today)
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
		if len(got) > 160 {
			t.Errorf("%s: warning is %d characters", tc.name, len(got))
		}
	}
}

func TestExpiryCheckQueuesOneSMSPerManager(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.school()
	for _, o := range []visit.Officer{
		{ID: "jdoe", Name: "Jane Doe", Phone: "+447700900101", School: school, Vehicle: vehicle("2026-03-01")},
		{ID: "asmith", Name: "Ann Smith", Phone: "+447700900102", School: school, Vehicle: vehicle("2026-04-10")},
		{ID: "bjones", Name: "Ben Jones", Phone: "+447700900103", School: school, Vehicle: vehicle("2027-01-01")},
		{ID: "cwalk", Name: "Cara Walker", Phone: "+447700900104", School: school},
		{ID: "dpart", Name: "Dev Patel", Phone: "+447700900105", School: school, Vehicle: &visit.Vehicle{Make: "Kia", InsuranceExpires: "2027-01-01"}},
		// another school's officer is not this school's business
		{ID: "other", Name: "Olly Other", Phone: "+447700900106", School: "elsewhere"},
	} {
		e.officer(o)
	}
	slot := time.Date(2026, 3, 29, 8, 0, 0, 0, london(t)) // spring-forward day
	r := e.runner()
	if ran, err := r.RunSlot(e.ctx, ExpiryCheck, slot); err != nil || !ran {
		t.Fatalf("RunSlot: ran %v, err %v", ran, err)
	}
	got := e.outbox()
	if len(got) != 2 {
		t.Fatalf("queued %d messages, want one per distinct manager (2): %+v", len(got), got)
	}
	want := map[string]string{"+447700900201": "Head of School", "+447700900202": "Business Manager"}
	for _, m := range got {
		if want[m.To] != m.Name || m.ID != "duty:expiry:"+school+":2026-03-29:"+m.To ||
			m.Kind != visit.KindNotice || m.Priority != visit.PriorityNormal || m.Channel != visit.ChannelSMS || m.School != school {
			t.Errorf("message %+v", m)
		}
		if visit.GSM(m.Body) != m.Body {
			t.Errorf("body is not GSM-7: %q", m.Body)
		}
	}
	body := got[0].Body
	for _, name := range []string{"Jane Doe", "Ann Smith", "Cara Walker", "Dev Patel"} {
		if !strings.Contains(body, name) {
			t.Errorf("body does not name %s", name)
		}
	}
	for _, name := range []string{"Ben Jones", "Olly Other"} {
		if strings.Contains(body, name) {
			t.Errorf("body names %s", name)
		}
	}
	golden(t, "expiry.golden", body)

	// The same day again (another slot, as the autumn repeat): nothing new.
	if _, err := r.RunSlot(e.ctx, ExpiryCheck, slot.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := len(e.outbox()); n != 2 {
		t.Errorf("a second run the same day queued more: %d messages", n)
	}
}

// Two replicas on one Redis fire the same slot at once: one runs it.
func TestTwoReplicasRunASlotOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.school()
	e.officer(visit.Officer{ID: "jdoe", Name: "Jane Doe", Phone: "+447700900101", School: school, Vehicle: vehicle("2026-01-01")})
	a, b := e.runner(), e.runner()
	slot := time.Date(2026, 10, 25, 8, 0, 0, 0, london(t)) // fall-back day

	var wg sync.WaitGroup
	ran := make([]bool, 2)
	errs := make([]error, 2)
	for i, r := range []*Runner{a, b} {
		wg.Go(func() { ran[i], errs[i] = r.RunSlot(e.ctx, ExpiryCheck, slot) })
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if ran[0] == ran[1] {
		t.Fatalf("ran = %v, want exactly one replica to run the slot", ran)
	}
	if n := len(e.outbox()); n != 2 {
		t.Fatalf("%d messages queued, want 2 (one per manager)", n)
	}
	// The same slot later (a replica whose cron fired late) does not run again.
	if ran, err := b.RunSlot(e.ctx, ExpiryCheck, slot); ran || err != nil {
		t.Errorf("a taken slot ran again: %v %v", ran, err)
	}
	// The next day is a new slot.
	if ran, err := b.RunSlot(e.ctx, ExpiryCheck, slot.AddDate(0, 0, 1)); !ran || err != nil {
		t.Errorf("next day's slot: ran %v, err %v", ran, err)
	}
	if n := len(e.outbox()); n != 4 {
		t.Errorf("%d messages after the next day, want 4", n)
	}
}

// A slot runs only the schools of its zone.
func TestSlotRunsTheSchoolsOfItsZone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.school()
	e.officer(visit.Officer{ID: "jdoe", Name: "Jane Doe", Phone: "+447700900101", School: school})
	r := e.runner()
	lisbon, err := time.LoadLocation("Europe/Lisbon")
	if err != nil {
		t.Fatal(err)
	}
	// Same instant as 08:00 London, another zone: the London school is not in it.
	if ran, err := r.RunSlot(e.ctx, ExpiryCheck, time.Date(2026, 6, 1, 8, 0, 0, 0, lisbon)); !ran || err != nil {
		t.Fatalf("ran %v err %v", ran, err)
	}
	if n := len(e.outbox()); n != 0 {
		t.Fatalf("a Lisbon slot queued %d messages for a London school", n)
	}
	if ran, err := r.RunSlot(e.ctx, ExpiryCheck, time.Date(2026, 6, 1, 8, 0, 0, 0, london(t))); !ran || err != nil {
		t.Fatalf("ran %v err %v", ran, err)
	}
	if n := len(e.outbox()); n != 2 {
		t.Fatalf("a London slot queued %d messages, want 2", n)
	}
	if _, err := r.RunSlot(e.ctx, "no_such_duty", time.Now()); err == nil {
		t.Error("an unknown duty ran")
	}
}
