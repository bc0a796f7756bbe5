// Package jobs runs Vigil's scheduled duties with robfig/cron: the daily vehicle
// check (expiry_check), the monthly safety report (monthly_report) and retention.
//
// Each distinct school time zone gets its own cron (cron.WithLocation), so "0 8 * * *"
// means 08:00 where the school is, summer and winter; a run handles every school of
// its zone. Every job is wrapped in cron.Recover, and every run first takes a Redis
// lock named after the duty, the zone and the scheduled instant (the slot): when
// several replicas share a Redis, exactly one runs each slot.
//
// No deadline of a visit depends on cron: reminders and escalations are durable
// timers (internal/scheduler). A duty that misses its slot (no replica running, or
// the replica holding the lock died mid-run) waits for the next one; every duty is
// idempotent, so a slot run twice sends nothing twice.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// Duty names: the keys of the duties config section, and the job argument of RunSlot.
const (
	ExpiryCheck       = "expiry_check"
	MonthlyReportDuty = "monthly_report"
	RetentionDuty     = "retention"
)

// DefaultRetentionSpec is when retention runs, in each school's zone: at night, and
// away from 01:00-02:00, which the UK clock changes skip or repeat.
const DefaultRetentionSpec = "30 3 * * *"

// Options are what a Runner needs.
type Options struct {
	Store *store.Store
	Log   *slog.Logger
	// Now is the clock; it stamps the messages a duty queues. Cron itself runs on
	// the real clock: tests call RunSlot.
	Now func() time.Time
	// Location is the zone of schools that name none (the config's timezone).
	Location *time.Location
	// ExpiryCheck, MonthlyReport and Retention are cron specs (5 fields); an empty
	// one turns the duty off. Retention defaults to DefaultRetentionSpec.
	ExpiryCheck   string
	MonthlyReport string
	Retention     string
	// VisitDays and AlertDays are the retention policy (retention.visit_days and
	// retention.alert_days); zero turns retention off.
	VisitDays int
	AlertDays int
	// LockTTL is how long a slot's lock lives (default 24 h): far longer than any
	// run, so a replica whose cron fires late never runs a slot another one ran.
	LockTTL time.Duration
	// Refresh is how often Run looks for schools in a zone it has no cron for yet
	// (default 5 min).
	Refresh time.Duration
}

// Runner runs the duties.
type Runner struct {
	o      Options
	log    *slog.Logger
	duties map[string]duty
	specs  map[string]string
}

// duty is one run of a duty for one school; slot is the scheduled instant, in the
// school's zone.
type duty func(ctx context.Context, sc visit.School, slot time.Time) error

// New builds a Runner; Run starts it.
func New(o Options) *Runner {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Retention == "" {
		o.Retention = DefaultRetentionSpec
	}
	if o.LockTTL <= 0 {
		o.LockTTL = 24 * time.Hour
	}
	if o.Refresh <= 0 {
		o.Refresh = 5 * time.Minute
	}
	r := &Runner{o: o, log: o.Log.With("component", "jobs")}
	r.duties = map[string]duty{
		ExpiryCheck:       r.expiryCheck,
		MonthlyReportDuty: r.monthlyReport,
		RetentionDuty:     r.retention,
	}
	r.specs = map[string]string{ExpiryCheck: o.ExpiryCheck, MonthlyReportDuty: o.MonthlyReport}
	if o.VisitDays > 0 && o.AlertDays > 0 {
		r.specs[RetentionDuty] = o.Retention
	}
	return r
}

// Schedule parses a 5-field cron spec into the schedule cron runs in loc. It is what
// Run uses, exported so the schedule's arithmetic (clock changes) can be tested.
func Schedule(spec string, loc *time.Location) (cron.Schedule, error) {
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, err
	}
	if ss, ok := s.(*cron.SpecSchedule); ok {
		ss.Location = loc
	}
	return s, nil
}

// Run schedules every duty in every school's zone and runs them until ctx ends; it
// then stops the crons and waits for the runs under way.
func (r *Runner) Run(ctx context.Context) error {
	names := make([]string, 0, len(r.specs))
	for name, spec := range r.specs {
		if spec == "" {
			continue
		}
		if _, err := Schedule(spec, time.UTC); err != nil {
			return fmt.Errorf("duties.%s: %q: %w", name, spec, err)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	if len(names) == 0 {
		r.log.Info("no duties scheduled")
		<-ctx.Done()
		return nil
	}
	crons := map[string]*cron.Cron{} // by zone name; only this goroutine touches it
	defer func() {
		for _, c := range crons {
			<-c.Stop().Done() // waits for the runs under way
		}
	}()
	addZones := func() {
		for _, loc := range r.zones(ctx) {
			if _, ok := crons[loc.String()]; ok {
				continue
			}
			c := r.cron(ctx, loc, names)
			crons[loc.String()] = c
			c.Start()
			r.log.Info("duties scheduled", "zone", loc.String(), "duties", names)
		}
	}
	addZones()
	t := time.NewTicker(r.o.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			addZones()
		}
	}
}

// cron builds the cron of one zone, with every duty named.
func (r *Runner) cron(ctx context.Context, loc *time.Location, names []string) *cron.Cron {
	lg := cronLogger{r.log.With("zone", loc.String())}
	c := cron.New(cron.WithLocation(loc), cron.WithLogger(lg), cron.WithChain(cron.Recover(lg)))
	for _, name := range names {
		sched, _ := Schedule(r.specs[name], loc) // checked by Run
		var id cron.EntryID
		// The job asks cron which slot it is running: Entry.Prev is the scheduled
		// instant (not when the goroutine happened to start), the same on every
		// replica, so it names the lock. id is set before Start, so before any run.
		id = c.Schedule(sched, cron.FuncJob(func() {
			slot := c.Entry(id).Prev.In(loc)
			if slot.IsZero() {
				slot = time.Now().In(loc).Truncate(time.Minute) // never seen; cron sets Prev before the job runs
			}
			if _, err := r.RunSlot(ctx, name, slot); err != nil {
				r.log.Error("duty failed", "duty", name, "zone", loc.String(), "slot", slot, "err", err)
			}
		}))
	}
	return c
}

// zones lists the default zone and every zone a school names.
func (r *Runner) zones(ctx context.Context) []*time.Location {
	out := []*time.Location{r.o.Location}
	schools, err := r.o.Store.Schools(ctx)
	if err != nil {
		r.log.Error("list schools for the duties' time zones", "err", err)
		return out
	}
	seen := map[string]bool{r.o.Location.String(): true}
	for _, sc := range schools {
		loc := r.location(sc)
		if !seen[loc.String()] {
			seen[loc.String()] = true
			out = append(out, loc)
		}
	}
	return out
}

// location is the zone of a school: its own, else the default. A zone that does not
// load (a typo entered through the API) falls back to the default, loudly.
func (r *Runner) location(sc visit.School) *time.Location {
	if sc.TimeZone == "" {
		return r.o.Location
	}
	loc, err := time.LoadLocation(sc.TimeZone)
	if err != nil {
		r.log.Error("school time zone does not load; using the default", "school", sc.ID, "timezone", sc.TimeZone, "err", err)
		return r.o.Location
	}
	return loc
}

// RunSlot runs one slot of a duty for every school of the slot's zone (the zone is
// slot.Location(): a school is in it when its own zone, or the default for a school
// that names none, has that name), unless another caller already took the slot. It
// reports whether this caller ran it. A school whose run fails does not stop the
// others; their errors are joined.
func (r *Runner) RunSlot(ctx context.Context, job string, slot time.Time) (bool, error) {
	run, ok := r.duties[job]
	if !ok {
		return false, fmt.Errorf("unknown duty %q", job)
	}
	zone := slot.Location().String()
	lock := fmt.Sprintf("%s:%s:%d", job, zone, slot.Unix())
	log := r.log.With("duty", job, "zone", zone, "slot", slot.Format(time.RFC3339))
	got, err := r.o.Store.TryLock(ctx, lock, r.o.Now(), r.o.LockTTL)
	if err != nil {
		return false, err
	}
	if !got {
		log.Debug("slot already taken by another replica")
		return false, nil
	}
	schools, err := r.o.Store.Schools(ctx)
	if err != nil {
		return true, fmt.Errorf("%s: list schools: %w", job, err)
	}
	start := time.Now()
	var errs []error
	n := 0
	for _, sc := range schools {
		if r.location(sc).String() != zone {
			continue
		}
		n++
		if err := run(ctx, sc, slot); err != nil {
			errs = append(errs, fmt.Errorf("%s for %s: %w", job, sc.ID, err))
		}
	}
	log.Info("duty ran", "schools", n, "failed", len(errs), "took", time.Since(start).Round(time.Millisecond))
	return true, errors.Join(errs...)
}

// managers addresses one message per phone on the school's managers list.
func managers(sc visit.School, idPrefix, body string) []visit.Message {
	var out []visit.Message
	seen := map[string]bool{}
	for _, c := range sc.Contacts[visit.ListManagers] {
		if c.Phone == "" || seen[c.Phone] {
			continue
		}
		seen[c.Phone] = true
		out = append(out, visit.Message{
			ID: idPrefix + ":" + c.Phone, School: sc.ID, Kind: visit.KindNotice, Channel: visit.ChannelSMS,
			To: c.Phone, Name: c.Name, Body: body, Priority: visit.PriorityNormal,
		})
	}
	return out
}

// schoolName is how messages name a school.
func schoolName(sc visit.School) string {
	if sc.Name != "" {
		return sc.Name
	}
	return sc.ID
}

// cronLogger hands cron's logging to slog: its chatter (schedule, wake, run) at
// debug, its errors (a recovered panic, with the stack) at error.
type cronLogger struct{ log *slog.Logger }

var _ cron.Logger = cronLogger{}

func (l cronLogger) Info(msg string, kv ...any) {
	l.log.Debug("cron "+msg, kv...)
}

func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron "+msg, append([]any{"err", err}, kv...)...)
}
