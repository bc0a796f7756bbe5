package app_test

import (
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Vigil watches itself: while it is healthy the heartbeat URL is pinged and
// /readyz answers 200; when Redis goes away /readyz fails within 10 s and the pings
// stop, so an outside dead-man's switch can tell the office monitoring is down.
func TestHeartbeatAndReadiness(t *testing.T) {
	t.Parallel()
	pings := make(chan struct{}, 1000)
	beat := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { pings <- struct{}{} }))
	defer beat.Close()
	e := newEnvWith(t, func(cfg string) string {
		return strings.Replace(cfg, "public_url:", "monitoring: { heartbeat_url: \""+beat.URL+"\" }\npublic_url:", 1)
	})
	d := e.startDaemonWith(func(o *daemonOptions) { o.heartbeatEvery = 50 * time.Millisecond })

	select {
	case <-pings:
	case <-time.After(10 * time.Second):
		t.Fatal("no heartbeat while healthy")
	}
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
	// Drain pings already on their way, then expect silence for many intervals.
	for len(pings) > 0 {
		<-pings
	}
	select {
	case <-pings:
		t.Error("heartbeat pinged while Redis was unreachable")
	case <-time.After(500 * time.Millisecond): // ten heartbeat intervals
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
