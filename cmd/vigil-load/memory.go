package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// runMemory measures what one open visit costs: in Redis (INFO memory used_memory
// before and after seeding N visits as VISIT by SMS writes them), and in the daemon
// (live heap after GC with N open visits against none: Redis holds the truth, so
// this should be about zero).
//
// A VISIT by SMS leaves three things of different lifetimes: the open visit's state
// (visit, officer state, timer, open-visit set), kept while the visit is open; the
// inbound-SMS dedup key, kept for the dedup window whatever the visit does; and an
// audit entry, kept by retention. After the total, the dedup keys and then the audit
// streams are deleted, each measured by what used_memory gives back, so the three are
// reported apart: the state per open visit, the cost per inbound SMS and per audit
// event.
func runMemory(args []string) error {
	c := newCommand("memory")
	visits := c.Int("visits", 100_000, "open visits to seed")
	schools := c.Int("schools", 50, "schools the visits are spread over")
	workers := c.seedWorkers()
	verbose := c.Bool("v", false, "log the daemon's warnings, and print a sample of each key")
	defer c.parse(args)()
	fmt.Printf("memory: %d open visits in %d schools, 1 daemon, %d runs\n", *visits, *schools, *c.runs)
	return c.repeat(func() (map[string]float64, error) {
		return memoryOnce(*visits, *schools, *workers, *verbose)
	}, memoryFigures...)
}

// memoryFigures are the rows of the summary, in order.
var memoryFigures = []string{
	"redis B per VISIT by SMS", "  state B/open visit", "    visit", "    officer state", "    timer zset",
	"    open set", "    rest", "  SMS dedup B/inbound SMS", "    dedup key (sample)", "  audit B/event",
	"daemon heap B/visit", "daemon heap MiB (0 visits)",
}

func memoryOnce(n, schools, workers int, verbose bool) (map[string]float64, error) {
	ctx := context.Background()
	w, err := newWorld(directory{schools: schools, maxSends: 100_000, grace: 5 * time.Minute}, "", verbose)
	if err != nil {
		return nil, err
	}
	defer w.close()
	rs, err := w.startReplicas(1)
	if err != nil {
		return nil, err
	}
	defer stopReplicas(rs)
	probe := redis.NewClient(&redis.Options{Addr: w.redis.addr})
	defer probe.Close()

	redis0, heap0, err := settledMemory(ctx, probe, 2*time.Second)
	if err != nil {
		return nil, err
	}

	sd, err := newSeeder(w, workers)
	if err != nil {
		return nil, err
	}
	base := time.Now()
	took, err := sd.run(ctx, "visits", n, workers, func(i int) seedVisit {
		fire := base.Add(6*time.Hour + rand.N(time.Hour)).Truncate(time.Millisecond)
		return seedVisit{school: schoolID(i % schools), officer: fmt.Sprintf("x%07d", i), ref: i, fire: fire}
	})
	sd.close()
	if err != nil {
		return nil, err
	}
	fmt.Printf("seeded %d visits in %s (%.0f/s)\n", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
	redis1, heap1, err := settledMemory(ctx, probe, 3*time.Second) // a few scheduler passes over the full sets
	if err != nil {
		return nil, err
	}

	per := func(b int64) float64 { return float64(b) / float64(n) }
	school := func(i int) string { return keyPrefix + "{" + schoolID(i) + "}:" }
	// Where the state goes: one sample of each per-visit key (MEMORY USAGE: value,
	// key and the key's entry), and the whole of each per-school structure.
	sample := func(kind string) int64 {
		keys, _, err := probe.Scan(ctx, 0, school(0)+kind+":*", 1000).Result()
		if err != nil || len(keys) == 0 {
			return 0
		}
		var sum int64
		for _, k := range keys {
			sum += probe.MemoryUsage(ctx, k).Val()
		}
		return sum / int64(len(keys))
	}
	whole := func(suffix string) int64 {
		var sum int64
		for i := range schools {
			sum += probe.MemoryUsage(ctx, school(i)+suffix, 0).Val()
		}
		return sum
	}
	if verbose {
		for _, kind := range []string{"visit", "sms"} {
			keys, _, _ := probe.Scan(ctx, 0, school(0)+kind+":*", 1000).Result()
			if len(keys) > 0 {
				fmt.Printf("  %s (%d B): %s\n", keys[0], probe.MemoryUsage(ctx, keys[0]).Val(), probe.Get(ctx, keys[0]).Val())
			}
		}
		if fs, _ := probe.HRandFieldWithValues(ctx, school(0)+"ostates", 1).Result(); len(fs) > 0 {
			fmt.Printf("  %sostates field %s: %s\n", school(0), fs[0].Key, fs[0].Value)
		}
		xs, _ := probe.XRevRangeN(ctx, school(0)+"audit", "+", "-", 1).Result()
		if len(xs) > 0 {
			fmt.Printf("  audit entry: %v\n", xs[0].Values)
		}
	}
	// Officer states are fields of a per-school hash; open visits are listed from
	// them (the open-visit set is only read for what earlier versions left).
	vj, dk := float64(sample("visit")), float64(sample("sms"))
	os, tz, op := per(whole("ostates")), per(whole("timers")), per(whole("visits:open"))

	// What the dedup keys and the audit entries cost: what deleting them gives back.
	// Redis keeps the keyspace's tables of slots (8 B a slot, 1-2 slots a key), so the
	// dedup keys' share of them, about 15-25 B, stays in the state's rest.
	for i := range schools {
		if err := deleteMatching(ctx, probe, school(i)+"sms:*"); err != nil {
			return nil, err
		}
	}
	redis2, err := usedMemory(ctx, probe)
	if err != nil {
		return nil, err
	}
	for i := range schools {
		if err := probe.Del(ctx, school(i)+"audit").Err(); err != nil {
			return nil, err
		}
	}
	redis3, err := usedMemory(ctx, probe)
	if err != nil {
		return nil, err
	}
	total, state, dedup, audit := per(redis1-redis0), per(redis3-redis0), per(redis1-redis2), per(redis2-redis3)
	rest := state - vj - os - tz - op
	fmt.Printf("redis: used_memory %d -> %d: %.0f B per VISIT by SMS = state %.0f B per open visit + SMS dedup %.0f B + audit %.0f B\n",
		redis0, redis1, total, state, dedup, audit)
	fmt.Printf("  state per open visit: visit %.0f, officer state %.0f, timer %.0f, open set %.0f, rest %.0f (keyspace slots)\n",
		vj, os, tz, op, rest)
	fmt.Printf("  per inbound SMS: dedup %.0f B (kept %s; the key alone %.0f); per audit event: %.0f B\n",
		dedup, dedupWindow, dk, audit)
	fmt.Printf("daemon: live heap %d -> %d B: %.2f B per open visit\n", heap0, heap1, per(int64(heap1)-int64(heap0)))
	return map[string]float64{
		"redis B per VISIT by SMS": total,
		"  state B/open visit":     state, "    visit": vj, "    officer state": os, "    timer zset": tz,
		"    open set": op, "    rest": rest,
		"  SMS dedup B/inbound SMS": dedup, "    dedup key (sample)": dk,
		"  audit B/event":            audit,
		"daemon heap B/visit":        per(int64(heap1) - int64(heap0)),
		"daemon heap MiB (0 visits)": float64(heap0) / (1 << 20),
	}, nil
}

// dedupWindow is how long Vigil keeps an inbound MessageSid (store's inboundTTL).
const dedupWindow = "6 h"

// deleteMatching deletes every key matching pattern.
func deleteMatching(ctx context.Context, c *redis.Client, pattern string) error {
	it := c.Scan(ctx, 0, pattern, 1000).Iterator()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := c.Del(ctx, batch...).Err()
		batch = batch[:0]
		return err
	}
	for it.Next(ctx) {
		if batch = append(batch, it.Val()); len(batch) == 500 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	return flush()
}

func usedMemory(ctx context.Context, c *redis.Client) (int64, error) {
	v, err := redisInfo(ctx, c, "memory", "used_memory")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(v, 10, 64)
}

// settledMemory waits d (for the daemon's scheduler passes to settle), then reads
// Redis's used_memory and this process's live heap.
func settledMemory(ctx context.Context, c *redis.Client, d time.Duration) (int64, uint64, error) {
	time.Sleep(d)
	used, err := usedMemory(ctx, c)
	if err != nil {
		return 0, 0, err
	}
	return used, liveHeap(), nil
}

// liveHeap is the heap in use after two full collections.
func liveHeap() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
