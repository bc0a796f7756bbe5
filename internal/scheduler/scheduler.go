// Package scheduler fires Vigil's durable timers: it sleeps until the earliest timer
// of any school falls due (woken early when a commit adds an earlier one), claims the
// due timers with a lease, and hands each to the service.
package scheduler

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/vigil-safety/vigil/internal/store"
)

// Store is what the scheduler needs of the store.
type Store interface {
	SchoolIDs(ctx context.Context) ([]string, error)
	ClaimTimers(ctx context.Context, school string, now time.Time, lease time.Duration, max int) ([]store.Due, error)
	NextTimer(ctx context.Context, school string) (time.Time, bool, error)
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
	Lease time.Duration
	// Poll is the longest the scheduler sleeps: a backstop for lost wake-ups, and
	// the tick that proves it is alive.
	Poll time.Duration
	// Workers handle timers in parallel.
	Workers int
}

// Scheduler is the timer loop.
type Scheduler struct {
	o        Options
	wake     chan struct{}
	lastTick atomic.Int64 // Unix ms of the last completed pass
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
	o.Log = o.Log.With("component", "scheduler")
	return &Scheduler{o: o, wake: make(chan struct{}, 1)}
}

// Wake makes the scheduler look at the timers now (a commit added one).
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

// batch is how many timers one claim takes from one school.
const batch = 256

// Run fires timers until ctx ends. It returns nil on shutdown: in-flight timers are
// finished (they are short), and unclaimed ones wait in Redis for the next replica.
func (s *Scheduler) Run(ctx context.Context) error {
	for {
		next, err := s.pass(ctx)
		if ctx.Err() != nil {
			return nil
		}
		now := s.o.Now()
		if err != nil {
			s.o.Log.Error("timer pass failed", "err", err)
			if s.o.Metrics != nil {
				s.o.Metrics.Errors.Inc()
				s.o.Metrics.RedisUp.Set(0)
			}
		} else {
			s.lastTick.Store(now.UnixMilli())
			if s.o.Metrics != nil {
				s.o.Metrics.LastTick.Set(float64(now.UnixMilli()) / 1000)
				s.o.Metrics.RedisUp.Set(1)
			}
		}
		wait := s.o.Poll
		if !next.IsZero() {
			// Never early: a timer due at 10:00:00.000 fires at or after it.
			wait = min(wait, max(next.Sub(now)+time.Millisecond, 0))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// pass claims and handles every due timer, and returns when the next one falls due.
func (s *Scheduler) pass(ctx context.Context) (time.Time, error) {
	schools, err := s.o.Store.SchoolIDs(ctx)
	if err != nil {
		return time.Time{}, err
	}
	var next time.Time
	for _, sc := range schools {
		for {
			due, err := s.o.Store.ClaimTimers(ctx, sc, s.o.Now(), s.o.Lease, batch)
			if err != nil {
				return time.Time{}, err
			}
			s.handle(ctx, due)
			if len(due) < batch || ctx.Err() != nil {
				break
			}
		}
		at, ok, err := s.o.Store.NextTimer(ctx, sc)
		if err != nil {
			return time.Time{}, err
		}
		if ok && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	return next, nil
}

func (s *Scheduler) handle(ctx context.Context, due []store.Due) {
	var g errgroup.Group
	g.SetLimit(s.o.Workers)
	var mu sync.Mutex
	for _, d := range due {
		g.Go(func() error {
			// A timer is finished even while shutting down: it is short, and
			// leaving it half-done would only delay it by a lease.
			late, fired, err := s.o.Handle(context.WithoutCancel(ctx), d)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.o.Log.Error("timer failed; it will be retried when its lease ends", "timer", d.Member, "school", d.School, "err", err)
				if s.o.Metrics != nil {
					s.o.Metrics.Errors.Inc()
				}
				return nil
			}
			if fired && s.o.Metrics != nil {
				s.o.Metrics.Lateness.Observe(late.Seconds())
			}
			return nil
		})
	}
	_ = g.Wait()
}
