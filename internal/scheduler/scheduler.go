// Package scheduler fires Vigil's durable timers: it sleeps until the earliest timer
// of any school falls due (woken early when a commit adds an earlier one), claims the
// due timers with a lease, and hands each to the service.
//
// One loop owns the claiming; a fixed pool of workers handles the timers. The loop
// knows when each school's earliest timer falls due (one pipelined round trip reads
// them all) and sleeps until the earliest of those, exactly: a timer due at
// 10:00:00.000 is claimed at once when the clock reads it, never before. It claims
// from every due school in one round trip, ahead of the workers (up to MaxPending
// timers), so a storm of timers falling due together is claimed — spread over the
// replicas that woke for it — in a few round trips, not one batch per handled batch.
// A claimed timer that still waits for a worker has its lease renewed before it runs
// out, so claiming ahead never lets another replica take a timer this one is about
// to handle; a replica that dies stops renewing, and its timers return to the others
// when the lease ends. On shutdown the timers not yet started are handed back.
package scheduler

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-safety/vigil/internal/store"
)

// Store is what the scheduler needs of the store.
type Store interface {
	SchoolIDs(ctx context.Context) ([]string, error)
	// NextTimers is when each school's earliest timer falls due (zero: none).
	NextTimers(ctx context.Context, schools []string) ([]time.Time, error)
	// ClaimDueTimers claims up to max due timers of each school, and says when each
	// school's earliest timer falls due after the claim.
	ClaimDueTimers(ctx context.Context, schools []string, now time.Time, lease time.Duration, max int) ([][]store.Due, []time.Time, error)
	// RenewTimers extends the leases of held timers and returns those still held.
	RenewTimers(ctx context.Context, held []store.Due, now time.Time, lease time.Duration) ([]store.Due, error)
	// ReleaseTimers hands held timers back to be claimed again at once.
	ReleaseTimers(ctx context.Context, held []store.Due) error
	// CheckWrite fails when Redis refuses writes.
	CheckWrite(ctx context.Context) error
}

// Handler does the work of one claimed timer. It reports whether the timer stood for
// work that was due (false for a stale timer) and how late that work was done.
type Handler func(ctx context.Context, due store.Due) (late time.Duration, fired bool, err error)

// Options configure a Scheduler.
type Options struct {
	Store   Store
	Handle  Handler
	Now     func() time.Time
	Log     *slog.Logger
	Metrics *Metrics
	// Lease is how long a claimed timer is held before another replica may take it.
	// Timers waiting for a worker are renewed when half of it has passed.
	Lease time.Duration
	// Poll is the longest the scheduler goes without reading every school's
	// earliest timer: a backstop for lost wake-ups, and the tick that proves it is
	// alive.
	Poll time.Duration
	// Workers handle timers in parallel.
	Workers int
	// MaxPending bounds the timers claimed and not yet started (default 16384).
	MaxPending int
}

// Scheduler is the timer loop.
type Scheduler struct {
	o        Options
	wake     chan struct{}
	lastTick atomic.Int64 // Unix ms of the last completed look at every school
	// lastErr is why the latest pass failed, nil once one succeeds (LastError).
	lastErr atomic.Pointer[string]
}

// Metrics are the scheduler's metrics (SPEC §7).
type Metrics struct {
	Lateness prometheus.Histogram
	LastTick prometheus.Gauge
	Errors   prometheus.Counter
	// RedisUp is 1 when the last pass reached Redis, 0 when it did not.
	RedisUp prometheus.Gauge
}

// NewMetrics registers the scheduler's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vigil_timer_lateness_seconds",
			Help:    "How late each timer fired after its due time.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		LastTick: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_scheduler_last_tick_timestamp_seconds",
			Help: "When the scheduler last completed a pass over the timers (Unix seconds).",
		}),
		Errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_scheduler_errors_total", Help: "Timer passes or timers that failed.",
		}),
	}
	m.RedisUp = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_redis_up", Help: "1 when the scheduler's last pass reached Redis, 0 when it did not.",
	})
	reg.MustRegister(m.Lateness, m.LastTick, m.Errors, m.RedisUp)
	return m
}

// New builds a Scheduler.
func New(o Options) *Scheduler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 16384
	}
	o.Log = o.Log.With("component", "scheduler")
	return &Scheduler{o: o, wake: make(chan struct{}, 1)}
}

// Wake makes the scheduler look at every school's timers now (a commit added one
// earlier than the others, or a test moved the clock).
func (s *Scheduler) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// LastTick is when the scheduler last completed a pass (zero before the first).
func (s *Scheduler) LastTick() time.Time {
	ms := s.lastTick.Load()
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

const (
	// batch is the most one claim takes from one school.
	batch = 256
	// lookGap is the shortest time between two looks at every school caused by
	// wake-ups. Every commit that queues a message wakes every replica, and a look
	// costs a round trip over all schools; a look delayed this long only delays a
	// timer committed to fall due within it, and none is (the shortest is a reminder
	// or an overdue check, minutes after the event that sets it).
	lookGap = 5 * time.Millisecond
	// releaseTimeout bounds the hand-back of unstarted timers at shutdown.
	releaseTimeout = 2 * time.Second
)

// LastError is why the scheduler's latest pass failed ("write to Redis: ..."), or ""
// when it succeeded: what /readyz adds to a stall.
func (s *Scheduler) LastError() string {
	if p := s.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

// Run fires timers until ctx ends. It returns nil on shutdown: timers under way are
// finished (they are short), and timers claimed but not started are handed back.
func (s *Scheduler) Run(ctx context.Context) error {
	work := make(chan store.Due)
	var workers sync.WaitGroup
	for range s.o.Workers {
		workers.Go(func() {
			for d := range work {
				s.fire(ctx, d)
			}
		})
	}
	l := &loop{s: s, next: map[string]time.Time{}, dirty: true}
	l.run(ctx, work)
	close(work)
	if len(l.pending) > 0 {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		if err := s.o.Store.ReleaseTimers(rctx, l.pending); err != nil {
			s.o.Log.Warn("handing back claimed timers failed; they return when their lease ends", "timers", len(l.pending), "err", err)
		}
		cancel()
	}
	workers.Wait()
	return nil
}

// fire handles one timer.
func (s *Scheduler) fire(ctx context.Context, d store.Due) {
	// A timer is finished even while shutting down: it is short, and leaving it
	// half-done would only delay it by a lease.
	late, fired, err := s.o.Handle(context.WithoutCancel(ctx), d)
	if err != nil {
		s.o.Log.Error("timer failed; it will be retried when its lease ends", "timer", d.Member, "school", d.School, "err", err)
		if s.o.Metrics != nil {
			s.o.Metrics.Errors.Inc()
		}
		return
	}
	if fired && s.o.Metrics != nil {
		s.o.Metrics.Lateness.Observe(late.Seconds())
	}
}

// loop is the claiming side of Run; one goroutine owns all of it.
type loop struct {
	s       *Scheduler
	schools []string
	// next is when each school's earliest timer falls due, as last read: never
	// later than the truth (a commit that adds an earlier timer wakes the loop), so
	// sleeping until the earliest of them never misses one. Absent: no timers.
	next map[string]time.Time
	// pending are timers claimed and not yet taken by a worker, earliest due first.
	pending []store.Due
	// renewBy is the earliest lease among pending (Unix ms) as of the last claim or
	// renewal: a timer handed out since then can only make the truth later, so
	// renewing by it is never late (and needs no scan of a storm's pending).
	renewBy int64
	// dirty: a wake-up asks for a look at every school.
	dirty bool
	// lastLook is when every school was last read (wall clock: the gap and the poll
	// are real time whatever clock the timers use); retryAt holds claims back after
	// a failure.
	lastLook, retryAt time.Time
	// handed: a worker took a timer since the last tick.
	handed bool
	// writeChecked is when CheckWrite was last tried (at most once a Poll) and
	// writeErr what it said; claimFailed is set while timers are due and the last
	// claim of them failed. Either keeps the scheduler from ticking: it may not be
	// able to fire timers then, whatever its reads say. A failed write check holds
	// no claim back: on a Cluster it speaks for one master only, and the others'
	// timers must still fire.
	writeChecked time.Time
	writeErr     error
	claimFailed  bool
}

func (l *loop) run(ctx context.Context, work chan<- store.Due) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for ctx.Err() == nil {
		real := time.Now()
		if real.After(l.retryAt) && (real.Sub(l.lastLook) >= l.s.o.Poll || (l.dirty && real.Sub(l.lastLook) >= lookGap)) {
			l.look(ctx)
		}
		now := l.s.o.Now()
		if time.Now().After(l.retryAt) {
			l.claim(ctx, now)
			l.renew(ctx, now)
		}
		var out chan<- store.Due
		var first store.Due
		if len(l.pending) > 0 {
			out, first = work, l.pending[0]
		}
		t.Reset(l.wait(now, time.Now()))
		select {
		case <-ctx.Done():
			return
		case out <- first:
			l.pending = l.pending[1:]
			l.handed = true
		case <-l.s.wake:
			l.dirty = true
		case <-t.C:
		}
	}
}

// look reads every school and when its earliest timer falls due.
func (l *loop) look(ctx context.Context) {
	l.lastLook, l.dirty = time.Now(), false
	schools, err := l.s.o.Store.SchoolIDs(ctx)
	if err != nil {
		l.fail(ctx, "look at the timers", err)
		return
	}
	nexts, err := l.s.o.Store.NextTimers(ctx, schools)
	if err != nil {
		l.fail(ctx, "look at the timers", err)
		return
	}
	l.schools = schools
	clear(l.next)
	for i, sc := range schools {
		if !nexts[i].IsZero() {
			l.next[sc] = nexts[i]
		}
	}
	if time.Since(l.writeChecked) >= l.s.o.Poll {
		l.writeChecked = time.Now()
		if l.writeErr = l.s.o.Store.CheckWrite(ctx); l.writeErr != nil {
			l.report(ctx, "write to Redis", l.writeErr)
		}
	}
	// Alive: Redis answered and took a write, the last claim went through, and the
	// workers take what was claimed (a handler that hangs stops the ticks, and
	// /readyz says so).
	if l.writeErr == nil && !l.claimFailed && (len(l.pending) == 0 || l.handed) {
		l.handed = false
		now := l.s.o.Now()
		l.s.lastTick.Store(now.UnixMilli())
		l.s.lastErr.Store(nil)
		if m := l.s.o.Metrics; m != nil {
			m.LastTick.Set(float64(now.UnixMilli()) / 1000)
			m.RedisUp.Set(1)
		}
	}
}

// claim claims the due timers of every due school, in one round trip, as far as
// MaxPending allows.
func (l *loop) claim(ctx context.Context, now time.Time) {
	room := l.s.o.MaxPending - len(l.pending)
	if room <= 0 {
		return
	}
	var due []string
	for _, sc := range l.schools {
		if at, ok := l.next[sc]; ok && !at.After(now) {
			due = append(due, sc)
		}
	}
	if len(due) == 0 {
		l.claimFailed = false // nothing left to claim: another replica took it
		return
	}
	per := max(1, min(batch, room/len(due)))
	got, nexts, err := l.s.o.Store.ClaimDueTimers(ctx, due, now, l.s.o.Lease, per)
	l.claimFailed = err != nil
	if err != nil {
		l.fail(ctx, "claim timers", err)
		if got == nil {
			return
		}
		// Some schools' claims went through: those timers are handled now.
	}
	added := false
	for i, sc := range due {
		for _, d := range got[i] {
			if len(l.pending) == 0 || d.Lease < l.renewBy {
				l.renewBy = d.Lease
			}
			l.pending = append(l.pending, d)
		}
		added = added || len(got[i]) > 0
		if nexts[i].IsZero() {
			delete(l.next, sc)
		} else {
			l.next[sc] = nexts[i]
		}
	}
	if added {
		slices.SortStableFunc(l.pending, func(a, b store.Due) int { return a.At.Compare(b.At) })
	}
}

// renew extends the leases of pending timers once half of a lease has passed.
func (l *loop) renew(ctx context.Context, now time.Time) {
	if len(l.pending) == 0 || l.renewAt().After(now) {
		return
	}
	kept, err := l.s.o.Store.RenewTimers(ctx, l.pending, now, l.s.o.Lease)
	if err != nil {
		// The timers go back to whoever claims them when the leases end.
		l.fail(ctx, "renew timer claims", err)
		l.pending = nil
		return
	}
	if lost := len(l.pending) - len(kept); lost > 0 {
		l.s.o.Log.Warn("timer claims lost to another replica before a worker took them", "timers", lost)
	}
	l.pending = kept
	if len(kept) > 0 {
		l.renewBy = kept[0].Lease // all renewed to the same instant
	}
}

// renewAt is when the pending timers' leases must be renewed.
func (l *loop) renewAt() time.Time {
	return time.UnixMilli(l.renewBy).Add(-l.s.o.Lease / 2)
}

// wait is how long the loop may sleep: until the earliest school's timer falls due
// (exactly; a timer is never claimed before its time), a renewal, the next look, or
// the end of a back-off.
func (l *loop) wait(now, real time.Time) time.Duration {
	if real.Before(l.retryAt) {
		return l.retryAt.Sub(real)
	}
	w := l.s.o.Poll - real.Sub(l.lastLook)
	if l.dirty {
		w = min(w, lookGap-real.Sub(l.lastLook))
	}
	if len(l.pending) < l.s.o.MaxPending {
		for _, at := range l.next {
			w = min(w, at.Sub(now))
		}
	}
	if len(l.pending) > 0 {
		w = min(w, l.renewAt().Sub(now))
	}
	return max(w, 0)
}

// fail records a failed round trip and holds claims and looks back for a poll.
func (l *loop) fail(ctx context.Context, what string, err error) {
	l.report(ctx, what, err)
	l.retryAt = time.Now().Add(l.s.o.Poll)
	l.dirty = true
}

// report logs a failed step (not one cut short by shutdown) and keeps it for
// LastError and the metrics.
func (l *loop) report(ctx context.Context, what string, err error) {
	if ctx.Err() != nil {
		return
	}
	l.s.o.Log.Error("timer pass failed", "step", what, "err", err)
	why := what + ": " + err.Error()
	l.s.lastErr.Store(&why)
	if m := l.s.o.Metrics; m != nil {
		m.Errors.Inc()
		m.RedisUp.Set(0)
	}
}
