package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-safety/vigil/internal/app"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// seedVisit is one visit to create: who, where, and when its timer must fire.
type seedVisit struct {
	school  string
	officer string
	ref     int       // written into the destination ("ref-0000042") to match alerts to visits
	fire    time.Time // when the visit's timer falls due (ms precision)
	// due visits start 5 minutes before they are due (too short for a reminder), so
	// their only timer is the overdue one at due_at + grace = fire; far ones are 7 h
	// visits started now, whose reminder is hours away.
	due bool
}

// refDestination and refOf put a visit's index into its destination, which every
// alert quotes.
func refDestination(ref int) string { return fmt.Sprintf("Load ref-%07d", ref) }

func refOf(body string) (int, bool) {
	i := strings.Index(body, "ref-")
	if i < 0 || len(body) < i+11 {
		return 0, false
	}
	n, err := strconv.Atoi(body[i+4 : i+11])
	return n, err == nil
}

// seeder writes open visits straight into Redis through the store's Commit: the same
// Lua script, keys and shape (visit with its "opened" event, officer state, timer,
// open-visit set, audit entry, inbound-SMS dedup key) as a VISIT by SMS writes. The
// officers need not be in the directory (the service names a missing officer by ID).
type seeder struct {
	rdb     *redis.Client
	st      *store.Store
	policy  visit.Policy
	loc     *time.Location
	schools map[string]*visit.School
	seq     atomic.Int64
}

func newSeeder(w *world, conns int) (*seeder, error) {
	loc, err := time.LoadLocation(w.cfg.Timezone)
	if err != nil {
		return nil, err
	}
	opt, err := redis.ParseURL(w.redis.url())
	if err != nil {
		return nil, err
	}
	opt.PoolSize = conns
	rdb := redis.NewClient(opt)
	sd := &seeder{rdb: rdb, st: store.NewWithClient(rdb, keyPrefix, slog.New(slog.NewTextHandler(io.Discard, nil))),
		policy: app.Policy(w.cfg), loc: loc, schools: map[string]*visit.School{}}
	for _, sc := range w.cfg.Schools() {
		sd.schools[sc.ID] = &sc
	}
	return sd, nil
}

func (sd *seeder) close() { sd.rdb.Close() }

// one commits one visit. A new visit whose ID another visit of the school has (the
// commit refuses it as a conflict) is decided again with a new one, as the service does.
func (sd *seeder) one(ctx context.Context, sv seedVisit) error {
	var err error
	for range 8 {
		if err = sd.try(ctx, sv); !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return err
}

func (sd *seeder) try(ctx context.Context, sv seedVisit) error {
	sc := sd.schools[sv.school]
	if sc == nil {
		return fmt.Errorf("school %s is not in the directory", sv.school)
	}
	var now, dueAt time.Time
	if sv.due {
		dueAt = sv.fire.Add(-sd.policy.Grace)
		now = dueAt.Add(-5 * time.Minute)
	} else {
		now = time.Now().Truncate(time.Millisecond)
		dueAt = sv.fire
	}
	text := "VISIT 5 " + refDestination(sv.ref)
	o := &visit.Officer{ID: sv.officer, Name: sv.officer, School: sv.school}
	ids := visit.IDs{
		Visit: store.NewID(now), // as the service makes them
		Alert: store.NewID(now),
		Code:  "0000",
	}
	st := visit.State{School: sc, Loc: sd.loc, Officer: o, LastText: text}
	r, err := visit.OfficerCommand(st, visit.Input{
		Cmd:    visit.Command{Verb: visit.VerbVisit, Duration: dueAt.Sub(now), Destination: refDestination(sv.ref)},
		Source: visit.SourceSMS, By: "+447700000000", Text: text, IDs: ids, DueAt: dueAt,
	}, now, sd.policy)
	if err != nil {
		return fmt.Errorf("decide visit %d: %w", sv.ref, err)
	}
	ch := store.Change{Result: r, Now: now, Timers: map[string]time.Time{},
		OfficerStates: map[string]visit.OfficerState{o.ID: visit.OfficerState{LastText: text}.Apply(o.ID, r)},
		InboundSID:    fmt.Sprintf("SMload%030d", sd.seq.Add(1)), InboundReply: r.Reply}
	for _, v := range r.Visits {
		ch.Timers[store.VisitTimer(v.ID)] = sd.policy.VisitWake(v)
		if got := sd.policy.VisitWake(v); !got.Equal(sv.fire) && sv.due {
			return fmt.Errorf("visit %d would fire at %s, not %s", sv.ref, got, sv.fire)
		}
	}
	if err := sd.st.Begin(sv.school).Commit(ctx, ch); err != nil {
		return fmt.Errorf("commit visit %d: %w", sv.ref, err)
	}
	return nil
}

// run commits n visits, gen(i) saying what the i-th is, with workers in parallel,
// printing progress every 10 s. It returns how long it took.
func (sd *seeder) run(ctx context.Context, what string, n, workers int, gen func(i int) seedVisit) (time.Duration, error) {
	start := time.Now()
	var next atomic.Int64
	var done atomic.Int64
	var firstErr error
	var once sync.Once
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				d := done.Load()
				fmt.Fprintf(os.Stderr, "  seeding %s: %d/%d (%.0f/s)\n", what, d, n, float64(d)/time.Since(start).Seconds())
			}
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := sd.one(ctx, gen(i)); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	close(stop)
	if firstErr == nil && done.Load() != int64(n) {
		firstErr = errors.New("seeding stopped early")
	}
	return time.Since(start), firstErr
}
