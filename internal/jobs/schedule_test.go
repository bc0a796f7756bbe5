package jobs

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/vigil-safety/vigil/internal/visit"
)

// The UK clock changes of 2026 and 2027: clocks go forward at 01:00 GMT on the last
// Sunday of March (01:00-02:00 local does not exist) and back at 02:00 BST on the
// last Sunday of October (01:00-02:00 local happens twice).
var ukChanges = []struct {
	day     string
	forward bool
}{
	{"2026-03-29", true}, {"2026-10-25", false},
	{"2027-03-28", true}, {"2027-10-31", false},
}

// activations lists every instant sched fires in [from, to), as cron computes them:
// each Next from the previous activation.
func activations(t *testing.T, spec string, from, to time.Time) []time.Time {
	t.Helper()
	sched, err := Schedule(spec, from.Location())
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Time
	for at := sched.Next(from.Add(-time.Second)); !at.IsZero() && at.Before(to); at = sched.Next(at) {
		out = append(out, at)
	}
	return out
}

func TestDailyDutyRunsOnceEachLocalDayAcrossClockChanges(t *testing.T) {
	t.Parallel()
	loc := london(t)
	for _, tc := range []struct {
		spec      string
		hour, min int
		name      string
	}{
		// the default expiry check
		{"0 8 * * *", 8, 0, "expiry_check"},
		// retention, at night but clear of the hour the clocks skip or repeat
		{DefaultRetentionSpec, 3, 30, "retention"},
	} {
		for _, year := range []int{2026, 2027} {
			from := time.Date(year, time.January, 1, 0, 0, 0, 0, loc)
			to := from.AddDate(1, 0, 0)
			runs := activations(t, tc.spec, from, to)
			days := map[string]int{}
			for _, at := range runs {
				local := at.In(loc)
				if local.Hour() != tc.hour || local.Minute() != tc.min {
					t.Errorf("%s %d: ran at %s, want %02d:%02d local", tc.name, year, local.Format(time.RFC3339), tc.hour, tc.min)
				}
				days[local.Format("2006-01-02")]++
			}
			for d := from; d.Before(to); d = d.AddDate(0, 0, 1) {
				if n := days[d.Format("2006-01-02")]; n != 1 {
					t.Errorf("%s: ran %d times on %s, want once", tc.name, n, d.Format("2006-01-02"))
				}
			}
			if len(runs) != len(days) {
				t.Errorf("%s %d: %d runs on %d days", tc.name, year, len(runs), len(days))
			}
			// On each clock-change day the gap to the next run is 23 h (spring) or 25 h (autumn).
			for _, c := range ukChanges {
				if c.day[:4] != from.Format("2006") {
					continue
				}
				day, _ := time.ParseInLocation("2006-01-02", c.day, loc)
				prev := activations(t, tc.spec, day.AddDate(0, 0, -1), day.AddDate(0, 0, 1))
				want := 23 * time.Hour
				if !c.forward {
					want = 25 * time.Hour
				}
				if len(prev) != 2 || prev[1].Sub(prev[0]) != want {
					t.Errorf("%s around %s: runs %v, want two %s apart", tc.name, c.day, prev, want)
				}
			}
		}
	}
}

// A job set inside the hour the clocks skip or repeat runs as robfig/cron v3 decides:
// "30 1 * * *" does not run at all on the spring-forward day (01:30 does not exist,
// and cron does not move it to 02:30), and runs twice on the autumn day (01:30 BST,
// then 01:30 GMT an hour later). Vigil's duties stay clear of that hour by default,
// and each is idempotent per local date, so a second autumn run queues nothing.
func TestJobInTheSkippedOrRepeatedHour(t *testing.T) {
	t.Parallel()
	loc := london(t)
	for _, c := range ukChanges {
		day, _ := time.ParseInLocation("2006-01-02", c.day, loc)
		runs := activations(t, "30 1 * * *", day, day.AddDate(0, 0, 1))
		var got []string
		for _, at := range runs {
			got = append(got, at.UTC().Format("15:04Z"))
		}
		want := []string{"00:30Z", "01:30Z"} // 01:30 BST, then 01:30 GMT
		if c.forward {
			want = nil
		}
		if len(got) != len(want) || (len(want) == 2 && (got[0] != want[0] || got[1] != want[1])) {
			t.Errorf("30 1 * * * on %s: runs at %v, want %v", c.day, got, want)
		}
		// The days either side run once, at 01:30 local.
		for _, d := range []time.Time{day.AddDate(0, 0, -1), day.AddDate(0, 0, 1)} {
			runs := activations(t, "30 1 * * *", d, d.AddDate(0, 0, 1))
			if len(runs) != 1 || runs[0].In(loc).Format("15:04") != "01:30" {
				t.Errorf("30 1 * * * on %s: runs %v, want one at 01:30", d.Format("2006-01-02"), runs)
			}
		}
	}
}

func TestMonthlyDutyRunsOnceAMonth(t *testing.T) {
	t.Parallel()
	loc := london(t)
	from := time.Date(2026, time.January, 1, 0, 0, 0, 0, loc)
	runs := activations(t, "0 7 1 * *", from, from.AddDate(2, 0, 0))
	if len(runs) != 24 {
		t.Fatalf("%d runs in two years, want 24", len(runs))
	}
	for i, at := range runs {
		want := from.AddDate(0, i, 0).Add(7 * time.Hour)
		if !at.Equal(want) || at.In(loc).Hour() != 7 {
			t.Errorf("run %d at %s, want %s", i, at, want)
		}
	}
}

func TestRunStopsWhenContextEnds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.school()
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- e.runner().Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestRunRefusesABadSpec(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := New(Options{Store: e.st, ExpiryCheck: "every morning"})
	if err := r.Run(e.ctx); err == nil {
		t.Fatal("Run accepted a bad spec")
	}
}

// A job that panics is recovered, and the panic is logged through slog.
func TestRecoverLogsThroughSlog(t *testing.T) {
	t.Parallel()
	var buf strings.Builder
	lg := cronLogger{slog.New(slog.NewTextHandler(&buf, nil))}
	cron.NewChain(cron.Recover(lg)).Then(cron.FuncJob(func() { panic("boom") })).Run()
	if out := buf.String(); !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "boom") {
		t.Errorf("log %q", out)
	}
}

// Run really fires: a duty scheduled every second runs its slot through the lock and
// queues its message, which the store announces on the wake channel.
func TestRunFiresScheduledDuties(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.school()
	e.officer(visit.Officer{ID: "jdoe", Name: "Jane Doe", Phone: "+447700900101", School: school})
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	sub := e.rdb.Subscribe(ctx, e.st.OutboxChannel())
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the subscription is in place
		t.Fatal(err)
	}
	r := New(Options{Store: e.st, Location: london(t), ExpiryCheck: "@every 1s"})
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-sub.Channel():
	case <-time.After(10 * time.Second):
		t.Fatal("no duty ran within 10 s")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	msgs := e.outbox()
	if len(msgs) != 2 || !strings.HasPrefix(msgs[0].ID, "duty:expiry:"+school+":") {
		t.Errorf("queued %+v", msgs)
	}
}
