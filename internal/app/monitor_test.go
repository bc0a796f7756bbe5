package app_test

import (
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// withHeartbeat starts a daemon whose heartbeat URL (pinged every 50 ms) is a
// server of the test's, and waits for the first ping: the daemon is ready. It
// returns the pings and a channel that gets a value each time the daemon withholds
// a heartbeat (it logs that it is not ready).
func withHeartbeat(t *testing.T) (*env, *daemon, chan struct{}, chan struct{}) {
	t.Helper()
	withheld := make(chan struct{}, 1000)
	pings := make(chan struct{}, 1000)
	beat := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { pings <- struct{}{} }))
	t.Cleanup(beat.Close)
	e := newEnvWith(t, func(cfg string) string {
		return strings.Replace(cfg, "public_url:", "monitoring: { heartbeat_url: \""+beat.URL+"\" }\npublic_url:", 1)
	})
	d := e.startDaemonWith(func(o *daemonOptions) {
		o.heartbeatEvery = 50 * time.Millisecond
		o.onLog = func(line string) {
			if strings.Contains(line, "heartbeat withheld") {
				select {
				case withheld <- struct{}{}:
				default:
				}
			}
		}
	})
	select {
	case <-pings:
	case <-time.After(10 * time.Second):
		t.Fatal("no heartbeat while healthy")
	}
	return e, d, pings, withheld
}

// Vigil watches itself: while it is healthy the heartbeat URL is pinged and
// /readyz answers 200; when Redis goes away /readyz fails within 10 s and the pings
// stop, so an outside dead-man's switch can tell the office monitoring is down.
func TestHeartbeatAndReadiness(t *testing.T) {
	t.Parallel()
	e, d, pings, withheld := withHeartbeat(t)
	if code := e.get(d, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d while healthy", code)
	}

	e.redis.Kill()
	failedAt := time.Now()
	for e.get(d, "/readyz") == http.StatusOK {
		if time.Since(failedAt) > 10*time.Second {
			t.Fatal("/readyz still 200 10 s after Redis died")
		}
		time.Sleep(20 * time.Millisecond)
	}
	expectNoHeartbeat(t, pings, withheld, "while Redis was unreachable")
}

// expectNoHeartbeat waits until the daemon withholds a heartbeat (every ping it
// decided on before is then in pings: the loop checks and pings one at a time),
// and then for ten intervals in which no ping may come.
func expectNoHeartbeat(t *testing.T, pings, withheld chan struct{}, while string) {
	t.Helper()
	for len(withheld) > 0 {
		<-withheld
	}
	select {
	case <-withheld:
	case <-time.After(10 * time.Second):
		t.Fatal("the heartbeat was not withheld " + while)
	}
	for len(pings) > 0 {
		<-pings
	}
	select {
	case <-pings:
		t.Error("heartbeat pinged " + while)
	case <-time.After(500 * time.Millisecond): // ten heartbeat intervals
	}
}

// A Redis that answers but refuses writes (here NOREPLICAS: min-replicas-to-write
// with no replica; OOM under noeviction and MISCONF after a failed save are the
// same) can fire no timer: /readyz fails once the scheduler's last good pass is 8 s
// old and the heartbeat stops, though every read and PING still succeeds; both
// come back when writes do. (Before, reads alone kept the scheduler ticking.)
func TestReadinessFailsWhileRedisRefusesWrites(t *testing.T) {
	t.Parallel()
	e, d, pings, withheld := withHeartbeat(t)
	setMinReplicas := func(n string) {
		t.Helper()
		if err := e.redis.Client().ConfigSet(t.Context(), "min-replicas-to-write", n).Err(); err != nil {
			t.Fatal(err)
		}
	}
	setMinReplicas("1")
	// The scheduler finds out (vigil_redis_up falls to 0); then its last good pass
	// grows old on the daemon's clock.
	deadline := time.Now().Add(10 * time.Second)
	for metricLine(t, d, "vigil_redis_up") != "vigil_redis_up 0" {
		if time.Now().After(deadline) {
			t.Fatal("the scheduler did not notice in 10 s that Redis refuses writes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.advance(9*time.Second, d)
	res, err := http.Get(d.base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "stalled") || !strings.Contains(string(b), "NOREPLICAS") {
		t.Errorf("/readyz while Redis refuses writes = %d %q, want 503 saying the scheduler stalled on NOREPLICAS", res.StatusCode, b)
	}
	expectNoHeartbeat(t, pings, withheld, "while Redis refused writes")

	setMinReplicas("0")
	deadline = time.Now().Add(10 * time.Second)
	for e.get(d, "/readyz") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/readyz did not recover within 10 s of writes coming back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-pings:
	case <-time.After(10 * time.Second):
		t.Error("no heartbeat after writes came back")
	}
}

// vigil_clock_skew_seconds compares this machine's clock with Redis': both run on
// this machine, so it is near zero, whatever the fake clock the daemon's
// decisions run on says (that clock is months away from the machine's).
func TestClockSkewMetric(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.startDaemon()
	line := metricLine(t, d, "vigil_clock_skew_seconds")
	v, err := strconv.ParseFloat(strings.TrimPrefix(line, "vigil_clock_skew_seconds "), 64)
	if err != nil || math.IsNaN(v) || math.Abs(v) > 0.1 {
		t.Fatalf("metric line %q: want a skew near 0 s", line)
	}
}
