package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"
)

// runLateness measures how late overdue alerts reach Twilio: N open visits, of which
// at most -rate per second fall due during a window; every alert's lateness is the
// time its SMS request arrived at the fake Twilio minus its visit's due_at + grace.
func runLateness(args []string) error {
	c := newCommand("lateness")
	visits := c.Int("visits", 100_000, "open visits in Redis")
	replicas := c.Int("replicas", 3, "daemons sharing the Redis")
	rate := c.Int("rate", 1000, "visits falling due per second during the window")
	window := c.Duration("window", 30*time.Second, "how long visits keep falling due")
	schools := c.Int("schools", 20, "schools the visits are spread over")
	workers := c.seedWorkers()
	aof := c.aof()
	verbose := c.Bool("v", false, "log the daemons' warnings")
	daemon := c.String("daemon", "", "run the replicas as this vigil binary (make build: bin/vigil), each in a process of its own, instead of in this one")
	defer c.parse(args)()

	fmt.Printf("lateness: %d open visits, %d replicas, %d due/s for %s, %d schools, %d runs\n",
		*visits, *replicas, *rate, *window, *schools, *c.runs)
	return c.repeat(func() (map[string]float64, error) {
		return latenessOnce(*visits, *replicas, *rate, *window, *schools, *workers, *aof, *verbose, *daemon)
	}, "seed/s", "due", "received", "missing", "duplicates", "early",
		"p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms",
		"sched p50 ms", "sched p99 ms", "sched max ms", "send p50 ms", "send p99 ms", "send max ms",
		"CPU µs/alert (process)", "CPU µs/alert (redis)", "daemon errors",
		"base ping p50 ms", "base idle ping p50 ms", "base zadd+zrange p50 ms", "base go timer p50 ms", "p99 / ping p50")
}

func latenessOnce(n, replicas, rate int, window time.Duration, schools, workers int, aof string, verbose bool, daemon string) (map[string]float64, error) {
	ctx := context.Background()
	w, err := newWorld(directory{schools: schools, maxSends: 10 * rate, grace: 5 * time.Minute}, aof, verbose)
	if err != nil {
		return nil, err
	}
	defer w.close()
	sd, err := newSeeder(w, workers)
	if err != nil {
		return nil, err
	}
	defer sd.close()

	due := min(n, rate*int(window/time.Second))
	far := n - due
	school := func(i int) string { return schoolID(i % schools) }
	officer := func(i int) string { return fmt.Sprintf("x%07d", i) }

	// The visits that do not fall due: 7 h visits, due in 6-7 h.
	seedRate := 4000.0 // a conservative guess when there is nothing far to seed
	if far > 0 {
		base := time.Now()
		took, err := sd.run(ctx, "far visits", far, workers, func(i int) seedVisit {
			fire := base.Add(6*time.Hour + rand.N(time.Hour)).Truncate(time.Millisecond)
			return seedVisit{school: school(due + i), officer: officer(due + i), ref: due + i, fire: fire}
		})
		if err != nil {
			return nil, err
		}
		seedRate = float64(far) / took.Seconds()
		fmt.Printf("seeded %d far visits in %s (%.0f/s)\n", far, took.Round(time.Millisecond), seedRate)
	}

	var xs []*external
	if daemon != "" {
		if xs, err = w.startExternals(daemon, replicas); err != nil {
			return nil, err
		}
		defer stopExternals(xs)
	} else {
		rs, err := w.startReplicas(replicas)
		if err != nil {
			return nil, err
		}
		defer stopReplicas(rs)
	}
	base, err := measureBaseline(ctx, sd.rdb)
	if err != nil {
		return nil, err
	}
	fmt.Println(base)

	// The visits that fall due: exactly rate per second from t0, each at a random
	// millisecond of its second. t0 leaves time to seed them while the daemons run.
	lead := time.Duration(float64(due)/seedRate*1.5*float64(time.Second)) + 3*time.Second
	t0 := time.Now().Add(lead).Truncate(time.Second).Add(time.Second)
	fires := make([]time.Time, due)
	for i := range fires {
		fires[i] = t0.Add(time.Duration(i/rate)*time.Second + time.Duration(rand.N(1000))*time.Millisecond)
	}
	took, err := sd.run(ctx, "due visits", due, workers, func(i int) seedVisit {
		return seedVisit{school: school(i), officer: officer(i), ref: i, fire: fires[i], due: true}
	})
	if err != nil {
		return nil, err
	}
	if left := time.Until(t0); left < 200*time.Millisecond {
		return nil, fmt.Errorf("seeding the due visits took %s and ran into the window; lower -rate or -window", took)
	}
	fmt.Printf("seeded %d due visits in %s; the first falls due in %s\n", due, took.Round(time.Millisecond), time.Until(t0).Round(time.Millisecond))

	end := t0.Add(time.Duration((due+rate-1)/rate) * time.Second)
	time.Sleep(time.Until(t0))
	cpu0 := readCPU(w.redis.pid(), pids(xs)...)
	cmds0 := commandStats(ctx, sd.rdb)
	w.twilio.waitCount(due, time.Until(end)+30*time.Second)
	cpu := readCPU(w.redis.pid(), pids(xs)...).sub(cpu0)
	cmds := commandStats(ctx, sd.rdb).sub(cmds0)
	time.Sleep(500 * time.Millisecond) // let stragglers (duplicates) arrive

	reqs := w.twilio.requests()
	seen := make(map[int]int, due)
	lates := make([]time.Duration, 0, due)
	early := 0
	for _, r := range reqs {
		if r.Call || !strings.Contains(r.Body, "OVERDUE") {
			continue
		}
		ref, ok := refOf(r.Body)
		if !ok || ref >= due {
			continue
		}
		seen[ref]++
		if seen[ref] > 1 {
			continue
		}
		late := r.At.Sub(fires[ref])
		if late < 0 {
			early++
		}
		lates = append(lates, late)
	}
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	// Split each alert's lateness at the moment its timer was handled (the alert's
	// raised_at is the handler's now): due -> handled is the scheduler's part,
	// handled -> Twilio the dispatcher's.
	split, err := splitLateness(ctx, sd, schools, fires, reqs)
	if err != nil {
		return nil, err
	}
	d := summarise(lates)
	fmt.Printf("lateness due+grace -> Twilio request: %s early=%d missing=%d duplicates=%d\n", d, early, due-len(seen), dups)
	fmt.Printf("  due -> timer handled: %s\n  handled -> Twilio:    %s\n", split[0], split[1])
	fmt.Printf("  CPU from the first due to the last SMS: vigil-load process (and -daemon processes) %s, redis-server %s (%.0f + %.0f µs per alert)\n",
		cpu.self.Round(time.Millisecond), cpu.redis.Round(time.Millisecond),
		float64(cpu.self.Microseconds())/float64(due), float64(cpu.redis.Microseconds())/float64(due))
	fmt.Printf("  redis commands per alert (calls, µs inside Redis): %s\n", cmds.per(due, 8))
	errs := w.errors.Load()
	for _, x := range xs {
		errs += int64(x.errors())
	}
	if errs > 0 {
		fmt.Fprintf(os.Stderr, "the daemons logged %d errors\n", errs)
	}
	return map[string]float64{
		"seed/s": seedRate, "due": float64(due), "received": float64(len(seen)), "missing": float64(due - len(seen)),
		"duplicates": float64(dups), "early": float64(early),
		"p50 ms": msf(d.p50), "p90 ms": msf(d.p90), "p99 ms": msf(d.p99), "p99.9 ms": msf(d.p999), "max ms": msf(d.maxim),
		"daemon errors":          float64(errs),
		"CPU µs/alert (process)": float64(cpu.self.Microseconds()) / float64(due),
		"CPU µs/alert (redis)":   float64(cpu.redis.Microseconds()) / float64(due),
		"sched p50 ms":           msf(split[0].p50), "sched p99 ms": msf(split[0].p99), "sched max ms": msf(split[0].maxim),
		"send p50 ms": msf(split[1].p50), "send p99 ms": msf(split[1].p99), "send max ms": msf(split[1].maxim),
		"base ping p50 ms": msf(base.ping.p50), "base idle ping p50 ms": msf(base.coldPing.p50), "base zadd+zrange p50 ms": msf(base.zaddRange.p50), "base go timer p50 ms": msf(base.goTimer.p50),
		"p99 / ping p50": float64(d.p99) / float64(max(base.ping.p50, 1)),
	}, nil
}

// splitLateness reads every alert raised and splits the lateness of each due visit
// into due -> raised (timer claimed and handled) and raised -> Twilio request.
func splitLateness(ctx context.Context, sd *seeder, schools int, fires []time.Time, reqs []request) ([2]dist, error) {
	ids := make([]string, schools)
	for i := range ids {
		ids[i] = schoolID(i)
	}
	alerts, err := sd.st.ListAlerts(ctx, ids, true, 0)
	if err != nil {
		return [2]dist{}, err
	}
	raised := make(map[int]time.Time, len(alerts))
	for _, a := range alerts {
		if ref, ok := refOf(a.Destination); ok && ref < len(fires) {
			raised[ref] = a.RaisedAt
		}
	}
	var sched, send []time.Duration
	got := map[int]bool{}
	for _, r := range reqs {
		ref, ok := refOf(r.Body)
		if r.Call || !ok || ref >= len(fires) || got[ref] {
			continue
		}
		got[ref] = true
		if at, ok := raised[ref]; ok {
			sched = append(sched, at.Sub(fires[ref]))
			send = append(send, r.At.Sub(at))
		}
	}
	return [2]dist{summarise(sched), summarise(send)}, nil
}
