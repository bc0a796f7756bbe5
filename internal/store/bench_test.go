package store_test

// Benchmarks of the store's hot paths against a real redis-server: the commit of a
// VISIT, and timer claims. Run with make bench (go test -bench . -benchmem); the
// figures and the method are in README "Performance".

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"

	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

func benchStore(b *testing.B) (*store.Store, *redis.Client) {
	b.Helper()
	srv := redistest.Start(b)
	return store.NewWithClient(srv.Client(), "vigil:", slog.New(slog.NewTextHandler(io.Discard, nil))), srv.Client()
}

var benchPolicy = visit.Policy{DefaultDuration: time.Hour, MaxDuration: 8 * time.Hour, ReminderBefore: 10 * time.Minute, Grace: 5 * time.Minute,
	Levels: []visit.Level{{Name: "office", RepeatEvery: 5 * time.Minute}}}

// visitChange is what a VISIT by SMS commits: the visit with its "opened" event, the
// officer's state, the visit's timer, the audit entry and the inbound dedup key.
func visitChange(b *testing.B, school *visit.School, officer string, i int, now time.Time) store.Change {
	b.Helper()
	o := &visit.Officer{ID: officer, Name: officer, School: school.ID}
	text := "VISIT 45 14 Elm Road"
	r, err := visit.OfficerCommand(visit.State{School: school, Loc: time.UTC, Officer: o, LastText: text}, visit.Input{
		Cmd: visit.Command{Verb: visit.VerbVisit, Duration: 45 * time.Minute, Destination: "14 Elm Road"}, Source: visit.SourceSMS,
		By: "+447700900101", Text: text, IDs: visit.IDs{Visit: ulid.Make().String(), Alert: ulid.Make().String(), Code: "1234"},
	}, now, benchPolicy)
	if err != nil {
		b.Fatal(err)
	}
	ch := store.Change{Result: r, Now: now, Timers: map[string]time.Time{},
		OfficerStates: map[string]visit.OfficerState{o.ID: visit.OfficerState{LastText: text}.Apply(o.ID, r)},
		InboundSID:    fmt.Sprintf("SM%032x", i), InboundReply: r.Reply}
	for _, v := range r.Visits {
		ch.Timers[store.VisitTimer(v.ID)] = benchPolicy.VisitWake(v)
	}
	return ch
}

// BenchmarkCommitVisit is the Lua commit of one VISIT (the change is built before
// the clock starts; reads are not included).
func BenchmarkCommitVisit(b *testing.B) {
	s, c := benchStore(b)
	ctx := context.Background()
	school := &visit.School{ID: "s1", Name: "School"}
	now := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	changes := make([]store.Change, b.N)
	for i := range changes {
		changes[i] = visitChange(b, school, fmt.Sprintf("o%07d", i), i, now)
	}
	b.ReportAllocs()
	before := scriptMicros(b, c)
	b.ResetTimer()
	for i := range b.N {
		if err := s.Begin("s1").Commit(ctx, changes[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(scriptMicros(b, c)-before)/float64(b.N), "redis-µs/op")
}

// scriptMicros is the time Redis has spent in scripts (EVALSHA, EVAL), from
// INFO commandstats: the server's own share of a commit, which the client's
// ns/op hides behind the round trip.
func scriptMicros(b *testing.B, c *redis.Client) int64 {
	b.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	for _, line := range strings.Split(info, "\r\n") {
		if !strings.HasPrefix(line, "cmdstat_evalsha:") && !strings.HasPrefix(line, "cmdstat_eval:") {
			continue
		}
		for _, kv := range strings.Split(line[strings.Index(line, ":")+1:], ",") {
			if v, ok := strings.CutPrefix(kv, "usec="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				total += n
			}
		}
	}
	return total
}

// addTimers fills a school's timer set: due timers at t, and future ones after.
func addTimers(b *testing.B, c *redis.Client, school string, due, future int, t time.Time) {
	b.Helper()
	ctx := context.Background()
	key := "vigil:{" + school + "}:timers"
	for start := 0; start < due+future; start += 10000 {
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := start; i < min(start+10000, due+future); i++ {
				at := t
				if i >= due {
					at = t.Add(time.Hour + time.Duration(i)*time.Millisecond)
				}
				p.ZAdd(ctx, key, redis.Z{Score: float64(at.UnixMilli()), Member: fmt.Sprintf("v:%s-%08d", school, i)})
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClaimTimers claims due timers from a school holding 100,000 timers, one
// at a time (a steady stream) and 256 at a time (a storm); ns/op is per claim.
func BenchmarkClaimTimers(b *testing.B) {
	for _, per := range []int{1, 256} {
		b.Run(fmt.Sprintf("batch=%d", per), func(b *testing.B) {
			s, c := benchStore(b)
			ctx := context.Background()
			t := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
			addTimers(b, c, "s1", b.N*per, 100_000, t)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				got, err := s.ClaimTimers(ctx, "s1", t, 3*time.Second, per)
				if err != nil || len(got) != per {
					b.Fatalf("claimed %d, %v", len(got), err)
				}
			}
		})
	}
}

// BenchmarkSchedulerLook compares what a scheduler pays to look at 20 schools:
// one round trip per school (ClaimTimers then NextTimer, as the scheduler did) with
// one round trip for all of them (ClaimDueTimers). Each school has one due timer
// per op among 5,000.
func BenchmarkSchedulerLook(b *testing.B) {
	schools := make([]string, 20)
	for i := range schools {
		schools[i] = fmt.Sprintf("s%02d", i)
	}
	setup := func(b *testing.B) (*store.Store, time.Time) {
		s, c := benchStore(b)
		t := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
		for _, sc := range schools {
			addTimers(b, c, sc, b.N, 5000, t)
		}
		return s, t
	}
	b.Run("per-school", func(b *testing.B) {
		s, t := setup(b)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			for _, sc := range schools {
				if got, err := s.ClaimTimers(ctx, sc, t, 3*time.Second, 1); err != nil || len(got) != 1 {
					b.Fatalf("claimed %d, %v", len(got), err)
				}
				if _, _, err := s.NextTimer(ctx, sc); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("pipelined", func(b *testing.B) {
		s, t := setup(b)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			got, _, err := s.ClaimDueTimers(ctx, schools, t, 3*time.Second, 1)
			if err != nil || len(got) != len(schools) || len(got[0]) != 1 {
				b.Fatalf("claimed %v, %v", got, err)
			}
		}
	})
}

// BenchmarkRenewTimers renews the leases of 256 held timers of one school.
func BenchmarkRenewTimers(b *testing.B) {
	s, c := benchStore(b)
	ctx := context.Background()
	t := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	addTimers(b, c, "s1", 256, 100_000, t)
	held, err := s.ClaimTimers(ctx, "s1", t, 3*time.Second, 256)
	if err != nil || len(held) != 256 {
		b.Fatalf("claimed %d, %v", len(held), err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		held, err = s.RenewTimers(ctx, held, t.Add(time.Duration(i+1)*time.Millisecond), 3*time.Second)
		if err != nil || len(held) != 256 {
			b.Fatalf("renewed %d, %v", len(held), err)
		}
	}
}
