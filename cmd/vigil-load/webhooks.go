package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-safety/vigil/internal/sms"
)

// runWebhooks drives one daemon with signed inbound-SMS webhooks, a VISIT/IN mix
// (each officer alternates VISIT 45 and IN): open loop at a fixed rate, latency
// counted from when each request was due to be sent (so a slow daemon cannot hide
// its queueing), or closed loop with -closed for the most it takes.
func runWebhooks(args []string) error {
	c := newCommand("webhooks")
	rate := c.Int("rate", 5000, "requests per second (open loop)")
	duration := c.Duration("duration", 30*time.Second, "how long to send (after the warm-up)")
	warmup := c.Duration("warmup", 5*time.Second, "not counted; in open loop the rate rises from a tenth to -rate over it (connections open, caches fill)")
	closed := c.Bool("closed", false, "closed loop: -concurrency senders, each waits for its answer")
	concurrency := c.Int("concurrency", 32, "senders in closed loop")
	officers := c.Int("officers", 2000, "officers in the directory (each alternates VISIT and IN)")
	schools := c.Int("schools", 20, "schools the officers are spread over")
	aof := c.aof()
	verbose := c.Bool("v", false, "log the daemon's warnings")
	daemon := c.String("daemon", "", "run this vigil binary (make build: bin/vigil) as the daemon, in a process of its own, instead of in this one")
	latencies := c.String("latencies", "", "write each counted request's start (µs after the warm-up) and latency (µs) to this file, one per line (the last run's): where the stalls are")
	defer c.parse(args)()
	mode := fmt.Sprintf("open loop at %d/s", *rate)
	if *closed {
		mode = fmt.Sprintf("closed loop, %d senders", *concurrency)
	}
	fmt.Printf("webhooks: %s for %s (+%s warm-up), %d officers in %d schools, 1 daemon, %d runs\n",
		mode, *duration, *warmup, *officers, *schools, *c.runs)
	return c.repeat(func() (map[string]float64, error) {
		return webhooksOnce(*rate, *duration, *warmup, *closed, *concurrency, *officers, *schools, *aof, *verbose, *latencies, *daemon)
	}, "sent", "achieved req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "errors", "refused",
		"base ping p50 ms", "p99 / ping p50")
}

type outcome struct {
	counted bool // after the warm-up
	done    bool
	ok      bool
	latency time.Duration
	// end is when the answer came, after countFrom. Not a time.Time, so an outcome
	// holds no pointer and the garbage collector of the process the daemon runs in
	// need not scan the run's 150,000 of them (7 MB). No change in the figures
	// beyond the runs' spread was seen (2 pairs of runs).
	end time.Duration
}

func webhooksOnce(rate int, duration, warmup time.Duration, closed bool, concurrency, officers, schools int, aof string, verbose bool, latencies, daemon string) (map[string]float64, error) {
	ctx := context.Background()
	w, err := newWorld(directory{schools: schools, officers: officers, maxSends: 100_000, grace: 5 * time.Minute}, aof, verbose)
	if err != nil {
		return nil, err
	}
	defer w.close()
	var target string
	var metrics interface {
		Gather() ([]*dto.MetricFamily, error)
	}
	if daemon != "" {
		x, err := w.startExternal(daemon)
		if err != nil {
			return nil, err
		}
		defer x.stop()
		target, metrics = x.base+"/twilio/sms", x
	} else {
		rs, err := w.startReplicas(1)
		if err != nil {
			return nil, err
		}
		defer stopReplicas(rs)
		target, metrics = rs[0].base+"/twilio/sms", rs[0].Registry()
	}
	sd, err := newSeeder(w, 4)
	if err != nil {
		return nil, err
	}
	base, err := measureBaseline(ctx, sd.rdb)
	sd.close()
	if err != nil {
		return nil, err
	}
	fmt.Println(base)

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: time.Minute}}
	// send makes the i-th request: officer i%officers, VISIT on its even turns and IN
	// on its odd ones.
	send := func(i int) bool {
		o := i % officers
		body := "VISIT 45 14 Elm Road"
		if (i/officers)%2 == 1 {
			body = "IN"
		}
		form := url.Values{"From": {officerPhone(o)}, "To": {twilioNumber}, "Body": {body},
			"MessageSid": {fmt.Sprintf("SM%032x", i)}, "AccountSid": {accountSID}}
		req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
		if err != nil {
			return false
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", sms.Sign(authToken, publicURL+"/twilio/sms", form))
		res, err := client.Do(req)
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res.StatusCode == http.StatusOK && strings.Contains(string(b), "<Message>")
	}

	var outs []outcome
	start := time.Now().Add(50 * time.Millisecond)
	countFrom := start.Add(warmup)
	stop := countFrom.Add(duration)
	if closed {
		var mu sync.Mutex
		var next atomic.Int64
		var wg sync.WaitGroup
		for range concurrency {
			wg.Go(func() {
				var local []outcome
				for time.Now().Before(stop) {
					i := int(next.Add(1) - 1)
					t := time.Now()
					ok := send(i)
					end := time.Now()
					local = append(local, outcome{counted: !t.Before(countFrom), done: true, ok: ok, latency: end.Sub(t), end: end.Sub(countFrom)})
				}
				mu.Lock()
				outs = append(outs, local...)
				mu.Unlock()
			})
		}
		wg.Wait()
	} else {
		dues := openLoopSchedule(rate, warmup, duration)
		total := len(dues)
		outs = make([]outcome, total)
		// At most this many requests in flight (each holds two sockets of this
		// process, client and server), each made by one of as many senders started
		// beforehand; a request due when every sender is busy counts as an error: the
		// daemon is not keeping up. (A goroutine per request, as before session 6,
		// cost this process about a third more CPU a request — new stacks grown and
		// scanned — on the cores the daemon uses; Twilio's senders are not here.)
		type job struct {
			i   int
			due time.Time
		}
		jobs := make(chan job)
		var wg sync.WaitGroup
		for range maxInFlight() {
			wg.Go(func() {
				for j := range jobs {
					ok := send(j.i)
					end := time.Now()
					outs[j.i] = outcome{counted: outs[j.i].counted, done: true, ok: ok, latency: end.Sub(j.due), end: end.Sub(countFrom)}
				}
			})
		}
		for i := range total {
			due := start.Add(dues[i])
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			outs[i].counted = !due.Before(countFrom)
			select {
			case jobs <- job{i, due}:
			default:
				outs[i].done = true
			}
		}
		close(jobs)
		wg.Wait()
	}

	if latencies != "" {
		var b strings.Builder
		for _, o := range outs {
			if o.counted && o.ok {
				fmt.Fprintf(&b, "%d %d\n", (o.end - o.latency).Microseconds(), o.latency.Microseconds())
			}
		}
		if err := os.WriteFile(latencies, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
	}
	var lat []time.Duration
	sent, errs := 0, 0
	var last time.Duration
	for _, o := range outs {
		if !o.counted {
			continue
		}
		sent++
		if !o.ok {
			errs++
			continue
		}
		lat = append(lat, o.latency)
		if o.end > last {
			last = o.end
		}
	}
	elapsed := last
	if !closed {
		elapsed = max(elapsed, duration)
	}
	d := summarise(lat)
	achieved := float64(len(lat)) / elapsed.Seconds()
	refused := counter(metrics, "vigil_inbound_sms_total", "result", "refused")
	fmt.Printf("sent %d, ok %d (%.0f/s), errors %d, refused by the daemon %d (whole run); latency %s\n",
		sent, len(lat), achieved, errs, int(refused), d)
	return map[string]float64{
		"sent": float64(sent), "achieved req/s": achieved,
		"p50 ms": msf(d.p50), "p90 ms": msf(d.p90), "p99 ms": msf(d.p99), "p99.9 ms": msf(d.p999), "max ms": msf(d.maxim),
		"errors": float64(errs), "refused": refused,
		"base ping p50 ms": msf(base.ping.p50), "p99 / ping p50": float64(d.p99) / float64(max(base.ping.p50, 1)),
	}, nil
}

// openLoopSchedule is when each open-loop request is due, from the start: over the
// warm-up the rate rises evenly from a tenth of rate to rate, then holds for
// duration. Started at the full rate, the first second's requests each opened a
// connection and met cold caches, the backlog took several seconds to drain, and
// the figures measured that start rather than the rate.
func openLoopSchedule(rate int, warmup, duration time.Duration) []time.Duration {
	end := warmup + duration
	var dues []time.Duration
	for t := time.Duration(0); t < end; {
		dues = append(dues, t)
		r := float64(rate)
		if t < warmup {
			r *= 0.1 + 0.9*float64(t)/float64(warmup)
		}
		t += time.Duration(float64(time.Second) / r)
	}
	return dues
}

// counter sums a counter's series whose label has the given value.
func counter(g interface {
	Gather() ([]*dto.MetricFamily, error)
}, name, label, value string) float64 {
	mfs, err := g.Gather()
	if err != nil {
		return -1
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// maxInFlight is how many open-loop requests may wait at once: 4,000 (0.8 s at
// 5,000/s), fewer if the open-file limit would not allow two sockets each.
func maxInFlight() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 400
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	}
	return int(min(4000, max(100, (int64(l.Cur)-1000)/2)))
}
