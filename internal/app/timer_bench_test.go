package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/vigil-safety/vigil/internal/app"
	"github.com/vigil-safety/vigil/internal/config"
	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// BenchmarkHandleTimer measures service.HandleTimer on an overdue visit's claimed
// timer, against a real redis-server: load the school, visit, officer and officer
// state, decide (raise the alert, queue its SMS to the office list), and commit
// fenced by the claim. The daemon's loops are not running, so nothing is sent; the
// visits are committed and their timers claimed before the clock starts.
func BenchmarkHandleTimer(b *testing.B) {
	srv := redistest.Start(b)
	path := filepath.Join(b.TempDir(), "vigil.yaml")
	if err := os.WriteFile(path, []byte(testConfig(srv.URL(), "http://127.0.0.1:9")), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		b.Fatal(err)
	}
	clk := newClock(start)
	a, err := app.New(b.Context(), cfg, app.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { // Run with a cancelled context only closes down.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = a.Run(ctx)
	}()
	ctx := context.Background()
	st, policy := a.Store(), app.Policy(cfg)
	proto, err := st.School(ctx, "bishop-lonsdale")
	if err != nil {
		b.Fatal(err)
	}
	// Schools of 500 open alerts at most: a school's 4-digit ACK codes would
	// collide ever more often with thousands of alerts open, and the benchmark would
	// measure the retries.
	var schools []string
	for i := 0; i < b.N; i += 500 {
		sc := *proto
		sc.ID = fmt.Sprintf("bench-%04d", i/500)
		if err := st.PutSchool(ctx, sc); err != nil {
			b.Fatal(err)
		}
		schools = append(schools, sc.ID)
	}
	// b.N visits due at start+45m, by officers missing from the directory (the
	// service names them by ID), each its own.
	for i := range b.N {
		school := &visit.School{}
		*school = *proto
		school.ID = schools[i/500]
		o := &visit.Officer{ID: fmt.Sprintf("bench%07d", i), Name: "Bench", School: school.ID}
		r, err := visit.OfficerCommand(visit.State{School: school, Loc: time.UTC, Officer: o}, visit.Input{
			Cmd: visit.Command{Verb: visit.VerbVisit, Duration: 45 * time.Minute, Destination: "14 Elm Road"}, Source: visit.SourceAPI,
			By: "bench", IDs: visit.IDs{Visit: ulid.Make().String(), Alert: ulid.Make().String(), Code: "1234"},
		}, start, policy)
		if err != nil {
			b.Fatal(err)
		}
		v := r.Visits[0]
		v.RemindedAt = start // the reminder went: the next timer is the overdue check
		ch := store.Change{Result: r, Now: start, Timers: map[string]time.Time{store.VisitTimer(v.ID): policy.VisitWake(v)},
			OfficerStates: map[string]visit.OfficerState{o.ID: visit.OfficerState{}.Apply(o.ID, r)}}
		if err := st.Begin(school.ID).Commit(ctx, ch); err != nil {
			b.Fatal(err)
		}
	}
	clk.Advance(45*time.Minute + cfg.Visits.Grace)
	var due []store.Due
	for _, sc := range schools {
		for {
			got, err := st.ClaimTimers(ctx, sc, clk.Now(), time.Hour, 256)
			if err != nil {
				b.Fatal(err)
			}
			if len(got) == 0 {
				break
			}
			due = append(due, got...)
		}
	}
	if len(due) != b.N {
		b.Fatalf("claimed %d timers, want %d", len(due), b.N)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		_, fired, err := a.Service().HandleTimer(ctx, due[i])
		if err != nil || !fired {
			b.Fatalf("timer %s: fired %v, %v", due[i].Member, fired, err)
		}
	}
	b.StopTimer()
	n, err := st.OutboxDepth(ctx, schools)
	if err != nil || n < int64(b.N) {
		b.Fatalf("outbox holds %d messages after %d alerts: %v", n, b.N, err)
	}
}
