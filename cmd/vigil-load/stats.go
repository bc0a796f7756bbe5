package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// dist summarises a set of durations.
type dist struct {
	n                          int
	p50, p90, p99, p999, maxim time.Duration
	min                        time.Duration
}

// summarise sorts ds in place and returns its percentiles (nearest rank).
func summarise(ds []time.Duration) dist {
	if len(ds) == 0 {
		return dist{}
	}
	slices.Sort(ds)
	at := func(q float64) time.Duration {
		i := int(q*float64(len(ds))+0.999999) - 1
		return ds[min(max(i, 0), len(ds)-1)]
	}
	return dist{n: len(ds), min: ds[0], p50: at(.50), p90: at(.90), p99: at(.99), p999: at(.999), maxim: ds[len(ds)-1]}
}

func (d dist) String() string {
	return fmt.Sprintf("n=%d p50=%s p90=%s p99=%s p99.9=%s max=%s", d.n, ms(d.p50), ms(d.p90), ms(d.p99), ms(d.p999), ms(d.maxim))
}

// ms writes a duration in milliseconds with three decimals.
func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d)/1e6) }

// baseline is the machine's speed measured in the same run as a figure, so that
// figures from noisy machines can be compared as ratios.
type baseline struct {
	ping      dist // one PING round trip (go-redis, loopback)
	zaddRange dist // ZADD then ZRANGEBYSCORE ... LIMIT 0 1, two round trips: a bare timer claim
	goTimer   dist // how late a 1-3 ms Go timer fires
	// coldPing is a PING after 1-3 ms idle: both processes asleep, as between an
	// alert's round trips at low rates (ping is measured back to back, hot).
	coldPing dist
}

func measureBaseline(ctx context.Context, c *redis.Client) (baseline, error) {
	var b baseline
	const n = 2000
	ds := make([]time.Duration, 0, n)
	for range n {
		t := time.Now()
		if err := c.Ping(ctx).Err(); err != nil {
			return b, err
		}
		ds = append(ds, time.Since(t))
	}
	b.ping = summarise(ds)
	ds = ds[:0]
	for i := range n {
		t := time.Now()
		ms := t.UnixMilli()
		if err := c.ZAdd(ctx, "baseline:timers", redis.Z{Score: float64(ms), Member: i}).Err(); err != nil {
			return b, err
		}
		if err := c.ZRangeByScore(ctx, "baseline:timers", &redis.ZRangeBy{Min: "-inf", Max: fmt.Sprint(ms), Count: 1}).Err(); err != nil {
			return b, err
		}
		ds = append(ds, time.Since(t))
	}
	c.Del(ctx, "baseline:timers")
	b.zaddRange = summarise(ds)
	ds = ds[:0]
	cold := make([]time.Duration, 0, 500)
	for range 500 {
		d := time.Millisecond + rand.N(2*time.Millisecond)
		t := time.Now()
		<-time.After(d)
		ds = append(ds, time.Since(t)-d)
		t = time.Now()
		if err := c.Ping(ctx).Err(); err != nil {
			return b, err
		}
		cold = append(cold, time.Since(t))
	}
	b.goTimer = summarise(ds)
	b.coldPing = summarise(cold)
	return b, nil
}

func (b baseline) String() string {
	return fmt.Sprintf("load average %s; baseline: redis PING p50=%s p99=%s (after 1-3 ms idle p50=%s p99=%s) | ZADD+ZRANGEBYSCORE p50=%s p99=%s | Go timer late p50=%s p99=%s",
		loadavg(), ms(b.ping.p50), ms(b.ping.p99), ms(b.coldPing.p50), ms(b.coldPing.p99), ms(b.zaddRange.p50), ms(b.zaddRange.p99), ms(b.goTimer.p50), ms(b.goTimer.p99))
}

// median of float figures (for the summary over runs).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// figures collects named figures over several runs and prints each run and the
// medians.
type figures struct {
	names []string
	runs  []map[string]float64
}

func (f *figures) add(run map[string]float64, order ...string) {
	for _, n := range order {
		if !slices.Contains(f.names, n) {
			f.names = append(f.names, n)
		}
	}
	f.runs = append(f.runs, run)
}

func (f *figures) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-28s", "figure")
	for i := range f.runs {
		fmt.Fprintf(&b, " %12s", fmt.Sprintf("run %d", i+1))
	}
	fmt.Fprintf(&b, " %12s\n", "median")
	for _, n := range f.names {
		fmt.Fprintf(&b, "%-28s", n)
		var xs []float64
		for _, r := range f.runs {
			v, ok := r[n]
			if !ok {
				fmt.Fprintf(&b, " %12s", "-")
				continue
			}
			xs = append(xs, v)
			fmt.Fprintf(&b, " %12s", num(v))
		}
		fmt.Fprintf(&b, " %12s\n", num(median(xs)))
	}
	return b.String()
}

func num(v float64) string {
	switch {
	case v == float64(int64(v)) && (v >= 1000 || v <= -1000 || v == 0):
		return fmt.Sprintf("%d", int64(v))
	case v >= 100 || v <= -100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func msf(d time.Duration) float64 { return float64(d) / 1e6 }

// loadavg is the machine's 1, 5 and 15 minute load averages: other work on a shared
// machine shows here.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// cpuClock reads the CPU time used so far by this process (the daemons, the fake
// Twilio and the load generator), with that of the daemons run as processes of
// their own (-daemon), and by the redis-server.
type cpuClock struct{ self, redis time.Duration }

func readCPU(redisPID int, daemons ...int) cpuClock {
	var c cpuClock
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for _, pid := range daemons {
		c.self += procCPU(pid)
	}
	c.redis = procCPU(redisPID)
	return c
}

// procCPU is the CPU time process pid has used, from /proc/PID/stat: fields 14 and
// 15 are utime and stime in clock ticks (100/s).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) <= 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}

func (c cpuClock) sub(d cpuClock) cpuClock { return cpuClock{c.self - d.self, c.redis - d.redis} }
