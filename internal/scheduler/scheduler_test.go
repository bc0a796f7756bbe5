package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/scheduler"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// world is a real Redis with a directory of schools, and a record of every timer
// handled.
type world struct {
	t  *testing.T
	st *store.Store

	mu    sync.Mutex
	fired map[string][]time.Time // member -> when it was handled (wall clock)
	lost  int                    // commits refused because the claim was lost
}

func newWorld(t *testing.T, schools ...string) *world {
	t.Helper()
	srv := redistest.Start(t)
	w := &world{t: t, st: store.NewWithClient(srv.Client(), "vigil:", quiet()), fired: map[string][]time.Time{}}
	for _, sc := range schools {
		if err := w.st.PutSchool(t.Context(), visit.School{ID: sc, Name: sc}); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// add commits timers of one school (member -> due).
func (w *world) add(school string, timers map[string]time.Time) {
	w.t.Helper()
	if err := w.st.Begin(school).Commit(w.t.Context(), store.Change{Timers: timers, Now: time.Now()}); err != nil {
		w.t.Fatal(err)
	}
}

// handle is a Handler that removes the timer under its claim, as the service's
// commit does, after an optional hold.
func (w *world) handle(hold func()) scheduler.Handler {
	return func(ctx context.Context, d store.Due) (time.Duration, bool, error) {
		at := time.Now()
		if hold != nil {
			hold()
		}
		err := w.st.Begin(d.School).Commit(ctx, store.Change{Timers: map[string]time.Time{d.Member: {}}, Fence: &d.Claim, Now: at})
		w.mu.Lock()
		defer w.mu.Unlock()
		if errors.Is(err, store.ErrFenced) {
			w.lost++
			return 0, false, nil
		}
		if err != nil {
			return 0, false, err
		}
		w.fired[d.Member] = append(w.fired[d.Member], at)
		return at.Sub(d.At), true, nil
	}
}

func (w *world) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.fired)
}

// waitFired waits until n distinct timers were handled.
func (w *world) waitFired(n int, within time.Duration) {
	w.t.Helper()
	deadline := time.Now().Add(within)
	for w.count() < n {
		if time.Now().After(deadline) {
			w.t.Fatalf("%d timers handled after %s, want %d", w.count(), within, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// run starts a scheduler and returns the function that stops it and waits.
func (w *world) run(o scheduler.Options) (*scheduler.Scheduler, func()) {
	if o.Store == nil {
		o.Store = w.st
	}
	o.Log = quiet()
	if o.Poll == 0 {
		o.Poll = time.Second
	}
	s := scheduler.New(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				w.t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			w.t.Errorf("Run did not return within 10 s of cancel")
		}
	}
	w.t.Cleanup(stop)
	return s, stop
}

// Timers of several schools fire at their due time: never before it, and soon after
// (the scheduler sleeps until the earliest, it does not poll).
func TestFiresOnTimeNeverEarly(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "s1", "s2", "s3")
	s, stop := w.run(scheduler.Options{Handle: w.handle(nil), Lease: 5 * time.Second})
	base := time.Now().Truncate(time.Millisecond).Add(200 * time.Millisecond)
	due := map[string]time.Time{}
	for i, sc := range []string{"s1", "s2", "s3"} {
		timers := map[string]time.Time{}
		for j := range 4 {
			m := fmt.Sprintf("v:%s-%d", sc, j)
			timers[m] = base.Add(time.Duration(i*4+j) * 37 * time.Millisecond)
			due[m] = timers[m]
		}
		w.add(sc, timers)
	}
	s.Wake() // as the commit's announcement would
	w.waitFired(len(due), 10*time.Second)
	stop()
	// How late they fire is a figure for the benchmarks (cmd/vigil-load), not a
	// pass/fail bound on a shared machine: here, each fires once and never early.
	for m, at := range due {
		got := w.fired[m]
		if len(got) != 1 {
			t.Errorf("%s handled %d times, want once", m, len(got))
			continue
		}
		if got[0].Before(at) {
			t.Errorf("%s handled %s early", m, at.Sub(got[0]))
		}
	}
}

// A timer committed earlier than every other, while the scheduler sleeps until a
// later one, fires at its own time once the scheduler is woken.
func TestWakeForEarlierTimer(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "s1", "s2")
	w.add("s1", map[string]time.Time{"v:late": time.Now().Add(time.Hour)})
	s, _ := w.run(scheduler.Options{Handle: w.handle(nil), Lease: 5 * time.Second, Poll: time.Minute})
	for s.LastTick().IsZero() { // it has looked, and sleeps until the hour
		runtime.Gosched()
	}
	at := time.Now().Add(100 * time.Millisecond)
	w.add("s2", map[string]time.Time{"v:early": at})
	s.Wake()
	w.waitFired(1, 5*time.Second)
	if got := w.fired["v:early"]; len(got) != 1 || got[0].Before(at) {
		t.Errorf("early timer handled at %v, want once, not before %s", got, at)
	}
}

// A storm is claimed ahead of the workers; the claims of timers still waiting for a
// worker are renewed, so no other replica takes them though the lease is far
// shorter than the time the storm takes; each is handled once.
func TestStormClaimedAheadAndRenewed(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "s1", "s2")
	due := time.Now().Truncate(time.Millisecond)
	n := 0
	for _, sc := range []string{"s1", "s2"} {
		timers := map[string]time.Time{}
		for j := range 150 {
			timers[fmt.Sprintf("v:%s-%d", sc, j)] = due
			n++
		}
		w.add(sc, timers)
	}
	lease := 400 * time.Millisecond
	// One worker, 5 ms a timer: 1.5 s for the storm, almost four leases.
	w.run(scheduler.Options{Handle: w.handle(func() { time.Sleep(5 * time.Millisecond) }), Lease: lease, Workers: 1})
	// The scheduler claims every due timer before it hands the first to a worker.
	w.waitFired(1, 10*time.Second)
	left, _, _ := w.st.ClaimDueTimers(t.Context(), []string{"s1", "s2"}, time.Now(), lease, 1000)
	if len(left[0])+len(left[1]) != 0 {
		t.Fatalf("another replica could claim %d timers once the storm was being worked: the scheduler had not claimed them ahead", len(left[0])+len(left[1]))
	}
	// A rival replica keeps trying; it must get nothing while the storm is worked.
	stolen := 0
	for w.count() < n {
		got, _, err := w.st.ClaimDueTimers(t.Context(), []string{"s1", "s2"}, time.Now(), lease, 1000)
		if err != nil {
			t.Fatal(err)
		}
		stolen += len(got[0]) + len(got[1])
		if stolen > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.waitFired(n, 10*time.Second)
	if stolen > 0 || w.lost > 0 {
		t.Errorf("a rival claimed %d timers and %d commits were fenced: leases were not renewed", stolen, w.lost)
	}
}

// On shutdown, timers claimed and not started are handed back at their due time, so
// another replica claims them at once rather than after the lease.
func TestShutdownHandsBackUnstarted(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "s1")
	due := time.Now().Truncate(time.Millisecond)
	timers := map[string]time.Time{}
	for j := range 50 {
		timers[fmt.Sprintf("v:%d", j)] = due
	}
	w.add("s1", timers)
	release := make(chan struct{})
	started := make(chan struct{}, 50)
	_, stop := w.run(scheduler.Options{Handle: w.handle(func() { started <- struct{}{}; <-release }), Lease: time.Minute, Workers: 1})
	<-started
	go func() { time.Sleep(100 * time.Millisecond); close(release) }()
	stop() // returns once the one timer under way is finished
	if got := w.count(); got != 1 {
		t.Fatalf("%d timers handled, want the one under way", got)
	}
	got, err := w.st.ClaimTimers(t.Context(), "s1", time.Now(), time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 49 {
		t.Errorf("after shutdown another replica claims %d timers at once, want the 49 not started", len(got))
	}
}

// Replicas sharing one Redis handle every timer exactly once.
func TestReplicasHandleEachTimerOnce(t *testing.T) {
	t.Parallel()
	schools := []string{"s1", "s2", "s3", "s4"}
	w := newWorld(t, schools...)
	base := time.Now().Truncate(time.Millisecond).Add(300 * time.Millisecond)
	n := 0
	for i, sc := range schools {
		timers := map[string]time.Time{}
		for j := range 100 {
			timers[fmt.Sprintf("v:%s-%d", sc, j)] = base.Add(time.Duration((i+j)%7) * 20 * time.Millisecond)
			n++
		}
		w.add(sc, timers)
	}
	for range 3 {
		w.run(scheduler.Options{Handle: w.handle(nil), Lease: 2 * time.Second, Workers: 4})
	}
	w.waitFired(n, 10*time.Second)
	time.Sleep(100 * time.Millisecond)
	w.mu.Lock()
	defer w.mu.Unlock()
	for m, at := range w.fired {
		if len(at) != 1 {
			t.Errorf("%s handled %d times", m, len(at))
		}
	}
}

// The scheduler ticks while idle (the heartbeat and /readyz rely on it).
func TestTicksWhileIdle(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "s1")
	s, _ := w.run(scheduler.Options{Handle: w.handle(nil), Poll: 50 * time.Millisecond})
	// No event says "ticked": watch LastTick move, within a generous bound.
	deadline := time.Now().Add(10 * time.Second)
	var first time.Time
	for first = s.LastTick(); first.IsZero() && time.Now().Before(deadline); first = s.LastTick() {
		time.Sleep(5 * time.Millisecond)
	}
	for !s.LastTick().After(first) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if first.IsZero() || !s.LastTick().After(first) {
		t.Errorf("last tick %s then %s: not ticking while idle", first, s.LastTick())
	}
}

// refusesWrites is the store of a Redis whose write check fails, as one Cluster
// master that refuses writes while the others take them.
type refusesWrites struct{ *store.Store }

func (refusesWrites) CheckWrite(context.Context) error {
	return errors.New("NOREPLICAS Not enough good replicas to write.")
}

// A failed write check stops the ticks (/readyz says the scheduler cannot be
// trusted to fire timers) but holds no claim back: timers the claims can still
// take fire on time.
func TestFailedWriteCheckStopsTicksNotTimers(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "s1")
	s, _ := w.run(scheduler.Options{Store: refusesWrites{w.st}, Handle: w.handle(nil), Lease: 5 * time.Second, Poll: 50 * time.Millisecond})
	w.add("s1", map[string]time.Time{"v:a": time.Now().Add(100 * time.Millisecond), "v:b": time.Now().Add(300 * time.Millisecond)})
	s.Wake()
	w.waitFired(2, 10*time.Second)
	if !s.LastTick().IsZero() {
		t.Errorf("the scheduler ticked at %s though Redis refused its write check", s.LastTick())
	}
	if why := s.LastError(); !strings.Contains(why, "write to Redis: NOREPLICAS") {
		t.Errorf("LastError = %q, want the failed write check", why)
	}
}
