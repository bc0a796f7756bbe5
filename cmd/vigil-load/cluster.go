package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vigil-safety/vigil/internal/app"
	"github.com/vigil-safety/vigil/internal/config"
)

// Credentials of the fake Twilio (any well-formed values do).
const (
	accountSID   = "AC00000000000000000000000000000001"
	authToken    = "load-test-auth-token-0000000001"
	twilioNumber = "+441632960999"
	publicURL    = "https://vigil.load"
	keyPrefix    = "vigil:"
)

// world is what every scenario runs on: a redis-server, a fake Twilio and the
// configuration the replicas read.
type world struct {
	redis  *redisServer
	twilio *fakeTwilio
	cfg    *config.Config
	dir    string
	log    *slog.Logger
	errors *atomic.Int64 // error-level log lines of the replicas
	// forgetDir unregisters the removal of dir on interrupt.
	forgetDir func()
}

// directory says what the configuration provisions.
type directory struct {
	schools  int // schools s0000..., each with one contact per list
	officers int // officers o00000... (phones in the directory), round-robin over schools
	// maxSends is twilio.max_sends_per_second.
	maxSends int
	grace    time.Duration
}

func schoolID(i int) string  { return fmt.Sprintf("s%04d", i) }
func officerID(i int) string { return fmt.Sprintf("o%05d", i) }

// Phone numbers: UK mobile numbers, one block per role so none is on two lists.
func officePhone(i int) string  { return fmt.Sprintf("+447700%06d", 100000+i) }
func managerPhone(i int) string { return fmt.Sprintf("+447700%06d", 200000+i) }
func policePhone(i int) string  { return fmt.Sprintf("+447700%06d", 300000+i) }
func headPhone(i int) string    { return fmt.Sprintf("+447700%06d", 400000+i) }
func officerPhone(i int) string { return fmt.Sprintf("+447700%06d", 500000+i) }

func newWorld(d directory, aof string, verbose bool) (*world, error) {
	w := &world{errors: &atomic.Int64{}}
	level := slog.LevelError
	if verbose {
		level = slog.LevelWarn
	}
	w.log = slog.New(countingHandler{slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}), w.errors})
	var err error
	if w.redis, err = startRedis(aof); err != nil {
		return nil, err
	}
	if w.twilio, err = startTwilio(); err != nil {
		w.close()
		return nil, err
	}
	if w.dir, err = os.MkdirTemp("", "vigil-load-"); err != nil {
		w.close()
		return nil, err
	}
	dir := w.dir
	w.forgetDir = atInterrupt(func() { os.RemoveAll(dir) })
	path := filepath.Join(w.dir, "vigil.yaml")
	if err := os.WriteFile(path, []byte(configYAML(w.redis.url(), w.twilio.url, d)), 0o600); err != nil {
		w.close()
		return nil, err
	}
	if w.cfg, err = config.Load(path, nil); err != nil {
		w.close()
		return nil, fmt.Errorf("config: %w", err)
	}
	return w, nil
}

func (w *world) close() {
	if w.twilio != nil {
		w.twilio.close()
	}
	if w.redis != nil {
		w.redis.stop()
	}
	if w.dir != "" {
		w.forgetDir()
		os.RemoveAll(w.dir)
	}
}

// configYAML is a full configuration for d against the given Redis and fake Twilio.
func configYAML(redisURL, twilioURL string, d directory) string {
	var b strings.Builder
	fmt.Fprintf(&b, `listen: "127.0.0.1:0"
public_url: %q
timezone: "Europe/London"
redis: { url: %q, key_prefix: %q }
twilio:
  account_sid: %q
  auth_token: %q
  from: %q
  api_url: %q
  max_sends_per_second: %d
  validity_period: 10m
visits: { default_duration: 60m, max_duration: 8h, reminder_before: 10m, grace: %s }
escalation:
  levels:
    - { name: office,   after: 0s,  repeat_every: 5m }
    - { name: managers, after: 10m, repeat_every: 5m }
    - { name: police,   after: 20m, repeat_every: 10m }
  panic_levels: [office, managers, police]
  ack_hold: 15m
duties: { expiry_check: "", monthly_report: "" }
api:
  tokens:
    - { name: load, role: admin, token: "load-admin-token-000000000001" }
directory:
  schools:
`, publicURL, redisURL, keyPrefix, accountSID, authToken, twilioNumber, twilioURL, max(d.maxSends, 1), d.grace)
	for i := range max(d.schools, 1) {
		fmt.Fprintf(&b, `    - id: %s
      name: "School %d"
      contacts:
        office:      [{ name: "Office %d", phone: %q }]
        managers:    [{ name: "Manager %d", phone: %q }]
        police:      [{ name: "Police %d", phone: %q }]
        headteacher: [{ name: "Head %d", phone: %q }]
`, schoolID(i), i, i, officePhone(i), i, managerPhone(i), i, policePhone(i), i, headPhone(i))
	}
	b.WriteString("  officers:\n")
	for i := range d.officers {
		fmt.Fprintf(&b, "    - { id: %s, name: \"Officer %d\", phone: %q, school: %s }\n",
			officerID(i), i, officerPhone(i), schoolID(i%max(d.schools, 1)))
	}
	return b.String()
}

// replica is one Vigil daemon running in this process.
type replica struct {
	*app.App
	base   string
	cancel context.CancelFunc
	done   chan error
}

// startReplicas runs n daemons in this process on the world's Redis and Twilio. They
// share the process (and its 2 cores) with the load generator and the fake Twilio,
// as separate daemons on one small machine would share its cores.
func (w *world) startReplicas(n int) ([]*replica, error) {
	var out []*replica
	for range n {
		// The fake Twilio sends no delivery receipts, so every alert message's
		// receipt check would fall due a minute on; in production a receipt ends it
		// first. A day keeps the check's listing (one ZADD in the send's record)
		// in the figures without asking Twilio about every message mid-run.
		a, err := app.New(context.Background(), w.cfg, app.Options{Log: w.log, Console: io.Discard, Version: "load",
			ReceiptCheckAfter: 24 * time.Hour})
		if err != nil {
			stopReplicas(out)
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		r := &replica{App: a, base: "http://" + a.Addr(), cancel: cancel, done: make(chan error, 1)}
		go func() { r.done <- a.Run(ctx) }()
		out = append(out, r)
	}
	// Wait until every scheduler has made its first pass.
	deadline := time.Now().Add(10 * time.Second)
	for _, r := range out {
		for r.Ready(context.Background()) != nil {
			if time.Now().After(deadline) {
				stopReplicas(out)
				return nil, fmt.Errorf("replica not ready after 10 s: %v", r.Ready(context.Background()))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return out, nil
}

func stopReplicas(rs []*replica) {
	for _, r := range rs {
		r.cancel()
	}
	for _, r := range rs {
		if err := <-r.done; err != nil {
			fmt.Fprintf(os.Stderr, "replica stopped with %v\n", err)
		}
	}
}

// countingHandler counts error-level records, so a run can say how many errors the
// daemons logged.
type countingHandler struct {
	slog.Handler
	n *atomic.Int64
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.n.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

func (h countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return countingHandler{h.Handler.WithAttrs(as), h.n}
}

func (h countingHandler) WithGroup(name string) slog.Handler {
	return countingHandler{h.Handler.WithGroup(name), h.n}
}
