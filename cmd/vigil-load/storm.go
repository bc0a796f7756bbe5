package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-safety/vigil/internal/sms"
)

// runStorm makes -timers visits fall overdue at the same millisecond T and measures:
// how long until every timer is claimed, until every first-level alert SMS is
// requested at Twilio, and how fast PANICs sent by signed webhook during the storm
// go out — and whether they overtake the overdue alerts queued before them.
func runStorm(args []string) error {
	c := newCommand("storm")
	timers := c.Int("timers", 10_000, "visits falling overdue at the same instant")
	replicas := c.Int("replicas", 3, "daemons sharing the Redis")
	schools := c.Int("schools", 20, "schools the visits are spread over (a school holds at most 9,000 open alerts: 4-digit ACK codes)")
	panics := c.Int("panics", 3, "PANIC webhooks sent during the storm")
	panicAt := c.Duration("panic-at", 20*time.Millisecond, "when the first PANIC is sent, after T")
	panicEvery := c.Duration("panic-every", 250*time.Millisecond, "between PANICs")
	maxSends := c.Int("max-sends", 0, "twilio.max_sends_per_second (0: 100000, i.e. no limit)")
	workers := c.seedWorkers()
	aof := c.aof()
	verbose := c.Bool("v", false, "log the daemons' warnings")
	defer c.parse(args)()
	limit := *maxSends
	if limit <= 0 {
		limit = 100_000
	}
	fmt.Printf("storm: %d timers due at one instant, %d replicas, %d schools, %d panics, max_sends_per_second=%d, %d runs\n",
		*timers, *replicas, *schools, *panics, limit, *c.runs)
	return c.repeat(func() (map[string]float64, error) {
		return stormOnce(*timers, *replicas, *schools, *panics, *panicAt, *panicEvery, limit, *workers, *aof, *verbose)
	}, "all claimed ms", "first SMS ms", "p50 SMS ms", "p99 SMS ms", "all SMS ms", "missing", "duplicates",
		"max SMS in 1 s", "panic webhook ms", "panic commit->SMS ms", "panic all sent ms", "panic worst ms",
		"overdue ahead of panic", "overdue behind panic", "queued after panic, sent before", "daemon errors", "base ping p50 ms")
}

type panicRun struct {
	officer     int
	start, done time.Time
	status      int
	first, last time.Time // first and last request of this panic at Twilio (SMS and calls)
	lastSMS     time.Time
	requests    int
}

func stormOnce(timers, replicas, schools, panics int, panicAt, panicEvery time.Duration, maxSends, workers int, aof string, verbose bool) (map[string]float64, error) {
	ctx := context.Background()
	w, err := newWorld(directory{schools: schools, officers: panics, maxSends: maxSends, grace: 5 * time.Minute}, aof, verbose)
	if err != nil {
		return nil, err
	}
	defer w.close()
	sd, err := newSeeder(w, workers)
	if err != nil {
		return nil, err
	}
	defer sd.close()
	rs, err := w.startReplicas(replicas)
	if err != nil {
		return nil, err
	}
	defer stopReplicas(rs)
	base, err := measureBaseline(ctx, sd.rdb)
	if err != nil {
		return nil, err
	}
	fmt.Println(base)

	// Every visit falls overdue at t (ms); t leaves time to seed them while the
	// daemons run.
	t := time.Now().Add(time.Duration(timers/2000)*time.Second + 4*time.Second).Truncate(time.Second)
	took, err := sd.run(ctx, "storm visits", timers, workers, func(i int) seedVisit {
		return seedVisit{school: schoolID(i % schools), officer: fmt.Sprintf("x%07d", i), ref: i, fire: t, due: true}
	})
	if err != nil {
		return nil, err
	}
	if time.Until(t) < 300*time.Millisecond {
		return nil, fmt.Errorf("seeding took %s and ran into the storm", took)
	}
	fmt.Printf("seeded %d visits in %s; the storm starts in %s\n", timers, took.Round(time.Millisecond), time.Until(t).Round(time.Millisecond))

	// Watch the timer sets: a claimed timer is re-scored to now + lease, a handled
	// one removed, so the storm is all claimed when no score <= t is left.
	claimed := make(chan time.Time, 1)
	go watchClaims(sd.rdb, schools, t, claimed)

	// PANICs by signed webhook, at t + panicAt + k*panicEvery, to the replicas in turn.
	prs := make([]*panicRun, panics)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for k := range panics {
		prs[k] = &panicRun{officer: k}
		wg.Go(func() {
			time.Sleep(time.Until(t.Add(panicAt + time.Duration(k)*panicEvery)))
			pr := prs[k]
			pr.start = time.Now()
			pr.status = postSMS(client, rs[k%len(rs)].base, officerPhone(k), "PANIC", fmt.Sprintf("SMpanic%025d", k))
			pr.done = time.Now()
		})
	}
	timeout := 60*time.Second + time.Duration(float64(timers)/float64(maxSends)*1.5*float64(time.Second))
	// Every overdue visit reaches its school's office (1 SMS); every PANIC its three
	// lists (3 SMS, and calls).
	w.twilio.waitCount(timers+3*panics, time.Until(t)+timeout)
	wg.Wait()
	time.Sleep(time.Second) // calls and stragglers
	var allClaimed time.Time
	select {
	case allClaimed = <-claimed:
	default:
	}

	reqs := w.twilio.requests()
	seen := map[int]int{}
	firstAt := map[int]time.Time{}
	var overdue []time.Duration
	var overdueAt []time.Time
	for _, r := range reqs {
		if !r.Call && strings.HasPrefix(r.Body, "OVERDUE ALERT") {
			ref, ok := refOf(r.Body)
			if !ok {
				continue
			}
			seen[ref]++
			if seen[ref] == 1 {
				overdue = append(overdue, r.At.Sub(t))
				overdueAt = append(overdueAt, r.At)
				firstAt[ref] = r.At
			}
			continue
		}
		for _, pr := range prs {
			if strings.Contains(r.Body, "PANIC") && strings.Contains(r.Body, fmt.Sprintf("Officer %d ", pr.officer)) {
				pr.requests++
				if pr.first.IsZero() {
					pr.first = r.At
				}
				pr.last = r.At
				if !r.Call {
					pr.lastSMS = r.At
				}
			}
		}
	}
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	d := summarise(slices.Clone(overdue))
	// The most SMS requested in any one second: the send rate the limit allowed.
	slices.SortFunc(overdueAt, func(a, b time.Time) int { return a.Compare(b) })
	peak, j := 0, 0
	for i := range overdueAt {
		for overdueAt[i].Sub(overdueAt[j]) >= time.Second {
			j++
		}
		peak = max(peak, i-j+1)
	}
	fmt.Printf("overdue SMS after T: first=%s %s missing=%d duplicates=%d peak=%d/s\n", ms(d.min), d, timers-len(seen), dups, peak)
	if !allClaimed.IsZero() {
		fmt.Printf("all %d timers claimed %s after T\n", timers, ms(allClaimed.Sub(t)))
	} else {
		fmt.Printf("timers were not all claimed within the watch\n")
	}

	f := map[string]float64{
		"all claimed ms": -1, "first SMS ms": msf(d.min), "p50 SMS ms": msf(d.p50), "p99 SMS ms": msf(d.p99), "all SMS ms": msf(d.maxim),
		"missing": float64(timers - len(seen)), "duplicates": float64(dups), "max SMS in 1 s": float64(peak),
		"daemon errors": float64(w.errors.Load()), "base ping p50 ms": msf(base.ping.p50),
	}
	if !allClaimed.IsZero() {
		f["all claimed ms"] = msf(allClaimed.Sub(t))
	}
	// When each overdue alert was queued: its raised_at, the handler's now, just
	// before the commit that queued its SMS.
	queued, err := raisedAt(ctx, sd, schools)
	if err != nil {
		return nil, err
	}
	var webhook, toSMS, allSent []float64
	worst, ahead, behind, jumped := 0.0, 0, 0, 0
	for _, pr := range prs {
		if pr.status != http.StatusOK || pr.first.IsZero() {
			fmt.Printf("panic %d: webhook %d, %d requests at Twilio: NOT SENT\n", pr.officer, pr.status, pr.requests)
			worst = 1e9
			continue
		}
		// Overdue SMS that were still waiting when the PANIC arrived and reached
		// Twilio before all of its SMS did (claimed before it was queued), and
		// those the PANIC overtook.
		a, b := 0, 0
		for _, at := range overdueAt {
			switch {
			case at.After(pr.start) && at.Before(pr.lastSMS):
				a++
			case at.After(pr.lastSMS):
				b++
			}
		}
		// The proof: an overdue SMS queued after the PANIC was committed (its
		// webhook answered) that reached Twilio before the PANIC's first SMS
		// jumped the queue.
		j := 0
		for ref, at := range firstAt {
			if q, ok := queued[ref]; ok && q.After(pr.done) && at.Before(pr.first) {
				j++
			}
		}
		ahead, behind, jumped = max(ahead, a), max(behind, b), max(jumped, j)
		webhook = append(webhook, msf(pr.done.Sub(pr.start)))
		toSMS = append(toSMS, msf(pr.lastSMS.Sub(pr.done)))
		allSent = append(allSent, msf(pr.last.Sub(pr.start)))
		worst = max(worst, msf(pr.lastSMS.Sub(pr.start)))
		fmt.Printf("panic %d sent at T+%s: webhook %s, every SMS at Twilio %s after the webhook began (%s after it answered), "+
			"all %d requests %s; overdue SMS at Twilio while it waited %d, after it %d; queued after it and sent before it %d\n",
			pr.officer, ms(pr.start.Sub(t)), ms(pr.done.Sub(pr.start)), ms(pr.lastSMS.Sub(pr.start)), ms(pr.lastSMS.Sub(pr.done)),
			pr.requests, ms(pr.last.Sub(pr.start)), a, b, j)
	}
	f["panic webhook ms"] = median(webhook)
	f["panic commit->SMS ms"] = median(toSMS)
	f["panic all sent ms"] = median(allSent)
	f["panic worst ms"] = worst
	f["overdue ahead of panic"] = float64(ahead)
	f["overdue behind panic"] = float64(behind)
	f["queued after panic, sent before"] = float64(jumped)
	return f, nil
}

// watchClaims polls every timer set each millisecond from just before t and sends
// the moment none of them holds a timer due by t.
func watchClaims(c *redis.Client, schools int, t time.Time, out chan<- time.Time) {
	ctx := context.Background()
	time.Sleep(time.Until(t.Add(-2 * time.Millisecond)))
	deadline := t.Add(2 * time.Minute)
	upTo := fmt.Sprint(t.UnixMilli())
	for time.Now().Before(deadline) {
		cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range schools {
				p.ZCount(ctx, keyPrefix+"{"+schoolID(i)+"}:timers", "-inf", upTo)
			}
			return nil
		})
		if err == nil {
			left := int64(0)
			for _, cmd := range cmds {
				left += cmd.(*redis.IntCmd).Val()
			}
			if left == 0 && time.Now().After(t) {
				out <- time.Now()
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
}

// postSMS sends one inbound SMS to a daemon as Twilio would, signed, and returns the
// HTTP status (0 when the request failed).
func postSMS(c *http.Client, base, from, body, sid string) int {
	form := url.Values{"From": {from}, "To": {twilioNumber}, "Body": {body}, "MessageSid": {sid}, "AccountSid": {accountSID}}
	req, err := http.NewRequest(http.MethodPost, base+"/twilio/sms", strings.NewReader(form.Encode()))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", sms.Sign(authToken, publicURL+"/twilio/sms", form))
	res, err := c.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// raisedAt reads every open alert and returns when the alert of each seeded visit
// was raised, by the visit's ref.
func raisedAt(ctx context.Context, sd *seeder, schools int) (map[int]time.Time, error) {
	ids := make([]string, schools)
	for i := range ids {
		ids[i] = schoolID(i)
	}
	alerts, err := sd.st.ListAlerts(ctx, ids, true, 0)
	if err != nil {
		return nil, err
	}
	out := make(map[int]time.Time, len(alerts))
	for _, a := range alerts {
		if ref, ok := refOf(a.Destination); ok && a.Reason == "overdue" {
			out[ref] = a.RaisedAt
		}
	}
	return out, nil
}
