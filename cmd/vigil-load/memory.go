package main

import (
	"context"
	"flag"
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
func runMemory(args []string) error {
	fs := flag.NewFlagSet("memory", flag.ExitOnError)
	visits := fs.Int("visits", 100_000, "open visits to seed")
	schools := fs.Int("schools", 50, "schools the visits are spread over")
	runs := fs.Int("runs", 3, "repeat the whole measurement (fresh Redis each time)")
	workers := fs.Int("seed-workers", 64, "concurrent commits while seeding")
	verbose := fs.Bool("v", false, "log the daemon's warnings")
	prof := profiled(fs)
	fs.Parse(args)
	defer prof()()
	fmt.Printf("memory: %d open visits in %d schools, 1 daemon, %d runs\n", *visits, *schools, *runs)
	var figs figures
	for run := range *runs {
		fmt.Printf("--- run %d\n", run+1)
		f, err := memoryOnce(*visits, *schools, *workers, *verbose)
		if err != nil {
			return err
		}
		figs.add(f, "redis B/visit", "  visit JSON", "  officer state", "  SMS dedup (48 h)", "  timer zset", "  open set",
			"  audit stream", "  rest", "redis B/visit w/o dedup+audit", "daemon heap B/visit", "daemon heap MiB (0 visits)")
	}
	fmt.Printf("\n%s", figs.String())
	return nil
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

	time.Sleep(2 * time.Second)
	redis0, err := usedMemory(ctx, probe)
	if err != nil {
		return nil, err
	}
	heap0 := liveHeap()

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
	time.Sleep(3 * time.Second) // a few scheduler passes over the full sets
	redis1, err := usedMemory(ctx, probe)
	if err != nil {
		return nil, err
	}
	heap1 := liveHeap()

	per := func(b int64) float64 { return float64(b) / float64(n) }
	// Where it goes: one sample of each per-visit key, and the whole of each
	// per-school structure.
	sample := func(kind string) int64 {
		keys, _, err := probe.Scan(ctx, 0, keyPrefix+"{"+schoolID(0)+"}:"+kind+":*", 1000).Result()
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
			sum += probe.MemoryUsage(ctx, keyPrefix+"{"+schoolID(i)+"}:"+suffix, 0).Val()
		}
		return sum
	}
	if verbose {
		for _, kind := range []string{"visit", "ostate", "sms"} {
			keys, _, _ := probe.Scan(ctx, 0, keyPrefix+"{"+schoolID(0)+"}:"+kind+":*", 1000).Result()
			if len(keys) > 0 {
				fmt.Printf("  %s (%d B): %s\n", keys[0], probe.MemoryUsage(ctx, keys[0]).Val(), probe.Get(ctx, keys[0]).Val())
			}
		}
		xs, _ := probe.XRevRangeN(ctx, keyPrefix+"{"+schoolID(0)+"}:audit", "+", "-", 1).Result()
		if len(xs) > 0 {
			fmt.Printf("  audit entry: %v\n", xs[0].Values)
		}
	}
	total := per(redis1 - redis0)
	vj, os, dd := float64(sample("visit")), float64(sample("ostate")), float64(sample("sms"))
	tz, op, au := per(whole("timers")), per(whole("visits:open")), per(whole("audit"))
	rest := total - vj - os - dd - tz - op - au
	fmt.Printf("redis: used_memory %d -> %d: %.0f B per open visit (visit JSON %.0f, officer state %.0f, SMS dedup %.0f, timer %.0f, open set %.0f, audit %.0f, rest %.0f)\n",
		redis0, redis1, total, vj, os, dd, tz, op, au, rest)
	fmt.Printf("daemon: live heap %d -> %d B: %.2f B per open visit\n", heap0, heap1, per(int64(heap1)-int64(heap0)))
	return map[string]float64{
		"redis B/visit": total, "  visit JSON": vj, "  officer state": os, "  SMS dedup (48 h)": dd,
		"  timer zset": tz, "  open set": op, "  audit stream": au, "  rest": rest,
		"redis B/visit w/o dedup+audit": total - dd - au,
		"daemon heap B/visit":           per(int64(heap1) - int64(heap0)),
		"daemon heap MiB (0 visits)":    float64(heap0) / (1 << 20),
	}, nil
}

func usedMemory(ctx context.Context, c *redis.Client) (int64, error) {
	v, err := redisInfo(ctx, c, "memory", "used_memory")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(v, 10, 64)
}

// liveHeap is the heap in use after two full collections.
func liveHeap() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
