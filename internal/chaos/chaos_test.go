//go:build chaos

package chaos_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/sms"
	"github.com/vigil-safety/vigil/internal/sms/smstest"
	"github.com/vigil-safety/vigil/internal/store"
)

// variant is one size of the chaos run.
type variant struct {
	schools, officers int           // officers per school; each opens one visit
	minDur, maxDur    time.Duration // how far ahead the first and last waves fall due
	kills             int           // kill -9 of a random replica, restarted at once
	pauses            int           // SIGSTOP of a random replica for pauseFor
	redisRestarts     int           // kill -9 of redis-server, restarted on its AOF
}

var variants = map[string]variant{
	"short": {schools: 25, officers: 40, minDur: 20 * time.Second, maxDur: 60 * time.Second, kills: 3, pauses: 1, redisRestarts: 1},
	"long":  {schools: 60, officers: 50, minDur: 30 * time.Second, maxDur: 3 * time.Minute, kills: 12, pauses: 2, redisRestarts: 1},
}

const (
	replicas = 3
	// reminderBefore and grace are the config's visits.reminder_before and
	// visits.grace: every visit (20 s or longer) gets one reminder, then one alert.
	reminderBefore = 10 * time.Second
	grace          = 10 * time.Second
	// pauseFor outlasts both leases (timers 3 s, messages 4 s) by far.
	pauseFor = 10 * time.Second
	// margin is how long after the last alert fell due the test waits for it.
	margin = 30 * time.Second
	// readyWithin bounds a replica's start (Redis may be restarting meanwhile).
	readyWithin = 30 * time.Second

	accountSID   = "AC00000000000000000000000000000c4a"
	twilioNumber = "+441632960999"
	publicURL    = "https://vigil.chaos.test"
	adminToken   = "chaos-admin-token-000000000001"
	// pokeNumber receives the one message the test sends itself to wake WaitSent
	// at its deadline; it is nobody's phone.
	pokeNumber = "+447700900000"
)

func TestChaos(t *testing.T) {
	mode := os.Getenv("VIGIL_CHAOS")
	v, ok := variants[mode]
	if !ok {
		t.Fatalf("chaos test: set VIGIL_CHAOS=short or VIGIL_CHAOS=long (make chaos-short, make chaos)")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("VIGIL_CHAOS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("VIGIL_CHAOS_SEED=%q: %v", s, err)
		}
		seed = n
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	began := time.Now()
	t.Logf("chaos %s: seed %d (VIGIL_CHAOS_SEED=%d repeats the choices)", mode, seed, seed)

	bin := buildVigil(t)
	// appendfsync always: the test kills redis-server with SIGKILL and requires
	// that no acknowledged write is lost (see README, "Replicas, topologies and
	// durability", for what everysec would risk).
	rs := redistest.Start(t, redistest.WithAOF())
	if rs.Embedded() {
		t.Fatal("the chaos test needs a real redis-server")
	}
	tw := smstest.NewServer(t, accountSID)
	dir := newDirectory(v)
	cfg := writeConfig(t, rs.URL(), tw.URL(), dir)
	// The replicas' logs are kept when the test fails, and named in its output.
	logDir, err := os.MkdirTemp("", "vigil-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(logDir)
		}
	})
	var reps []*replica
	for i := range replicas {
		r := newReplica(t, i, bin, cfg, logDir)
		r.start(t)
		reps = append(reps, r)
	}
	for _, r := range reps {
		r.waitReady(t, readyWithin)
	}
	defer func() {
		if t.Failed() {
			for _, r := range reps {
				t.Logf("replica %d log (%s), last errors:\n%s", r.id, r.logPath, r.tail(40))
			}
		}
	}()

	// Open one visit per officer, half by signed SMS and half by the API, spread
	// over the replicas.
	opened, waves := openVisits(t, reps, tw, dir, v)
	t0 := time.Now()
	end := waves[len(waves)-1].Add(grace + time.Second)
	t.Logf("opened %d visits in %s, due in %d waves; the last alert falls due at +%s",
		len(opened), t0.Sub(began).Round(time.Millisecond), len(waves), end.Sub(t0).Round(time.Second))

	// The chaos, aimed at the instants when a wave's reminders or alerts fall due.
	var busy []time.Time
	for _, w := range waves {
		busy = append(busy, w.Add(-reminderBefore), w.Add(grace))
	}
	slices.SortFunc(busy, time.Time.Compare)
	ev := runChaos(t, rng, v, reps, rs, busy, t0)

	// Every replica is up again. Wait until every expected alert and reminder has
	// gone out at least once, or the deadline: WaitSent wakes on each send, and
	// the test pokes the fake once at the deadline so that a missing message ends
	// the wait with a report rather than a timeout.
	expect := expected(t, reps[0], dir)
	deadline := end.Add(margin)
	poke := time.AfterFunc(time.Until(deadline), func() { pokeTwilio(tw) })
	defer poke.Stop()
	tw.WaitSent(time.Until(deadline)+time.Minute, func(ms []smstest.Message) bool {
		return time.Now().After(deadline) || complete(expect, ms, dir)
	})
	// Nothing more is on its way once the outbox is empty; then the replicas stop
	// (SIGTERM), after which the fake's record is final.
	settle(t, rs, dir)
	for _, r := range reps {
		r.terminate(t)
	}
	rep := analyse(expect, tw.Sent(), dir, ev)
	rep.print(t, mode, seed, len(opened), ev, time.Since(began))
	// What the replicas logged about the first duplicated messages, to tell
	// their story.
	dups := slices.Concat(rep.alerts.dupIDs, rep.reminders.dupIDs)
	for _, id := range dups[:min(5, len(dups))] {
		for _, r := range reps {
			if lines := r.grep(id, 15); lines != "" {
				t.Logf("replica %d on %s:\n%s", r.id, id, lines)
			}
		}
	}
	rep.check(t)
	// A binary built with VIGIL_CHAOS_RACE=1 reports data races on stderr.
	for _, r := range reps {
		if races := r.grep("WARNING: DATA RACE", 1); races != "" {
			t.Errorf("replica %d hit a data race; see %s", r.id, r.logPath)
		}
	}
}

// ---- the binary and its replicas ----

func buildVigil(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "vigil")
	args := []string{"build", "-o", out}
	if os.Getenv("VIGIL_CHAOS_RACE") == "1" {
		args = append(args, "-race")
	}
	args = append(args, "github.com/vigil-safety/vigil/cmd/vigil")
	goBin := os.Getenv("GO")
	if goBin == "" {
		goBin = "go"
	}
	if b, err := exec.Command(goBin, args...).CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out
}

// replica is one `vigil serve` process, restarted on the same port after a kill.
type replica struct {
	id      int
	addr    string
	bin     string
	cfg     string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	paused bool
}

func newReplica(t *testing.T, id int, bin, cfg, logDir string) *replica {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r := &replica{id: id, addr: addr, bin: bin, cfg: cfg, logPath: filepath.Join(logDir, fmt.Sprintf("replica-%d.log", id))}
	// Whatever the test leaves running is killed by PID at the end.
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.cmd != nil {
			_ = r.cmd.Process.Signal(syscall.SIGCONT)
			_ = r.cmd.Process.Kill()
			<-r.exited
			r.cmd = nil
		}
	})
	return r
}

func (r *replica) base() string { return "http://" + r.addr }

// start runs the binary with its own listen address (VIGIL_LISTEN), appending to
// its log.
func (r *replica) start(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(r.bin, "serve", "--config", r.cfg)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VIGIL_") { // VIGIL_CHAOS is not a config key
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "VIGIL_LISTEN="+r.addr)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start replica %d: %v", r.id, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(exited)
	}()
	r.mu.Lock()
	r.cmd, r.exited, r.paused = cmd, exited, false
	r.mu.Unlock()
}

// waitReady polls /readyz (readiness is announced on no channel) until 200.
func (r *replica) waitReady(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	c := &http.Client{Timeout: time.Second}
	for {
		res, err := c.Get(r.base() + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %d not ready after %s (last: %v); log:\n%s", r.id, within, err, r.tail(40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process; it returns the instant of the
// signal.
func (r *replica) kill(t *testing.T) time.Time {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	at := time.Now()
	if err := r.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill replica %d: %v", r.id, err)
	}
	<-r.exited
	r.cmd = nil
	return at
}

func (r *replica) signal(t *testing.T, sig syscall.Signal) time.Time {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	at := time.Now()
	if err := r.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to replica %d: %v", sig, r.id, err)
	}
	r.paused = sig == syscall.SIGSTOP
	return at
}

// terminate stops the replica as an operator would (SIGTERM) and waits for it.
func (r *replica) terminate(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	if r.paused {
		_ = r.cmd.Process.Signal(syscall.SIGCONT)
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(20 * time.Second):
		t.Errorf("replica %d ignored SIGTERM for 20 s; killed", r.id)
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
	r.cmd = nil
}

// grep is the first n lines of the replica's log that mention s.
func (r *replica) grep(s string, n int) string {
	f, err := os.Open(r.logPath)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() && len(lines) < n {
		if l := sc.Text(); strings.Contains(l, s) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// tail is the replica log's last n warnings and errors.
func (r *replica) tail(n int) string {
	f, err := os.Open(r.logPath)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---- the directory and the configuration ----

type officer struct {
	id, name, phone, school string
}

type directory struct {
	schools  []string
	office   map[string]string // school -> its one office contact
	officers []officer
	byPhone  map[string]officer
	offices  map[string]bool
}

func newDirectory(v variant) *directory {
	d := &directory{office: map[string]string{}, byPhone: map[string]officer{}, offices: map[string]bool{}}
	for s := range v.schools {
		id := fmt.Sprintf("school-%02d", s)
		d.schools = append(d.schools, id)
		// Ofcom's drama range for landlines (01632 960xxx).
		ph := fmt.Sprintf("+441632960%03d", s)
		d.office[id] = ph
		d.offices[ph] = true
		for o := range v.officers {
			n := s*v.officers + o
			of := officer{id: fmt.Sprintf("o%05d", n), name: fmt.Sprintf("Officer %05d", n), phone: fmt.Sprintf("+4479110%05d", n), school: id}
			d.officers = append(d.officers, of)
			d.byPhone[of.phone] = of
		}
	}
	return d
}

// writeConfig writes the replicas' shared configuration: one level (office) whose
// repeat_every outlasts the run, so each alert goes out exactly once; no limits
// that would hold a message back (max_sends_per_second well above the load).
func writeConfig(t *testing.T, redisURL, twilioURL string, d *directory) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `listen: "127.0.0.1:0"
public_url: %q
timezone: "Europe/London"
redis: { url: %q, key_prefix: "vigil:" }
twilio:
  account_sid: %q
  auth_token: %q
  from: %q
  api_url: %q
  max_sends_per_second: %d
  validity_period: 10m
visits: { default_duration: 60m, max_duration: 8h, reminder_before: %s, grace: %s }
escalation:
  levels:
    - { name: office, after: 0s, repeat_every: 8h }
  panic_levels: [office]
  ack_hold: 15m
api:
  tokens:
    - { name: chaos, role: admin, token: %q }
directory:
  schools:
`, publicURL, redisURL, accountSID, smstest.DefaultAuthToken, twilioNumber, twilioURL, sendRate(t), reminderBefore, grace, adminToken)
	for _, s := range d.schools {
		fmt.Fprintf(&b, "    - { id: %s, name: %q, contacts: { office: [{ name: \"Office\", phone: %q }] } }\n", s, "School "+s, d.office[s])
	}
	b.WriteString("  officers:\n")
	for _, o := range d.officers {
		fmt.Fprintf(&b, "    - { id: %s, name: %q, phone: %q, school: %s }\n", o.id, o.name, o.phone, o.school)
	}
	p := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// sendRate is twilio.max_sends_per_second: by default far above the load, so that
// lateness measures the scheduler and the chaos, not the throttle;
// VIGIL_CHAOS_SENDS_PER_SECOND sets it to run the chaos under a tight throttle.
func sendRate(t *testing.T) int {
	s := os.Getenv("VIGIL_CHAOS_SENDS_PER_SECOND")
	if s == "" {
		return 2000
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("VIGIL_CHAOS_SENDS_PER_SECOND=%q: want a positive number", s)
	}
	return n
}

// ---- opening the visits ----

type opened struct {
	officer officer
	due     time.Time // the due instant aimed at (the SMS form may land up to 1 s later)
	via     string    // "sms" or "api"
}

// wave is the step between due instants: the visits fall due in waves of about a
// hundred at the same instant, so that the chaos, aimed at those instants, lands
// while replicas are busy with them.
const wave = 5 * time.Second

// minLead is the shortest time from opening a visit to its due instant: longer
// than reminder_before, so that every visit gets its reminder.
const minLead = 15 * time.Second

// openVisits opens one visit per officer, in a shuffled order, each through
// replica i%3: by signed SMS ("VISIT 47s ...", the seconds to the wave's instant
// rounded up) or by the API (due_at, the wave's exact instant). A request that
// fails is retried on the next replica: the same MessageSid (Twilio's retry), or
// the API's 409 for a visit a lost answer had opened. It returns the visits and
// the waves' instants.
func openVisits(t *testing.T, reps []*replica, tw *smstest.Server, d *directory, v variant) ([]opened, []time.Time) {
	t.Helper()
	n := len(d.officers)
	waves := int((v.maxDur-v.minDur)/wave) + 1
	// Headroom so that the opening (a few seconds) ends before the first wave's
	// reminders.
	base := time.Now().Add(v.minDur + 5*time.Second).Truncate(time.Second)
	var instants []time.Time
	for w := range waves {
		instants = append(instants, base.Add(time.Duration(w)*wave))
	}
	jobs := make(chan int)
	out := make([]opened, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for range 16 {
		wg.Go(func() {
			for i := range jobs {
				o := d.officers[i]
				// On a machine so slow that the opening runs into the first waves,
				// a visit still gets a reminder and an alert: at least minLead ahead.
				op := opened{officer: o, due: later(instants[i%waves], time.Now().Add(minLead))}
				dest := fmt.Sprintf("%d Chaos Road", i)
				var form url.Values
				if i%2 == 0 {
					op.via = "sms"
					secs := int((time.Until(op.due) + time.Second - 1) / time.Second)
					form = tw.InboundSMS(o.phone, twilioNumber, fmt.Sprintf("VISIT %ds %s", secs, dest))
				} else {
					op.via = "api"
				}
				var err error
				for try := range 5 {
					r := reps[(i+try)%len(reps)]
					if op.via == "sms" {
						err = postSMS(client, r, form, dest)
					} else {
						err = postVisit(client, r, o.id, dest, op.due, try > 0)
					}
					if err == nil {
						break
					}
				}
				if err != nil {
					errs <- fmt.Errorf("open visit of %s: %w", o.id, err)
				}
				out[i] = op
			}
		})
	}
	for _, i := range rand.Perm(n) {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	return out, instants
}

func postSMS(c *http.Client, r *replica, form url.Values, dest string) error {
	req, err := http.NewRequest(http.MethodPost, r.base()+"/twilio/sms", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(sms.SignatureHeader, sms.Sign(smstest.DefaultAuthToken, publicURL+"/twilio/sms", form))
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(dest)) {
		return fmt.Errorf("SMS webhook on replica %d: %s: %s", r.id, res.Status, b)
	}
	return nil
}

func postVisit(c *http.Client, r *replica, officer, dest string, due time.Time, retry bool) error {
	body, _ := json.Marshal(map[string]string{"officer": officer, "destination": dest, "due_at": due.Format(time.RFC3339)})
	req, err := http.NewRequest(http.MethodPost, r.base()+"/api/v1/visits", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode == http.StatusCreated || (retry && res.StatusCode == http.StatusConflict) {
		return nil
	}
	return fmt.Errorf("POST /api/v1/visits on replica %d: %s: %s", r.id, res.Status, b)
}

// ---- the chaos ----

// event is one thing the test did to a process, with when it began and ended.
type event struct {
	kind     string // "kill", "pause", "redis"
	replica  int    // -1 for redis
	from, to time.Time
}

// runChaos does the variant's kills, pauses and Redis restarts in a random order,
// each a few milliseconds after one of the busy instants (when a wave's reminders
// or alerts fall due), spread evenly over them, and returns when the last is over
// and every replica is ready.
func runChaos(t *testing.T, rng *rand.Rand, v variant, reps []*replica, rs *redistest.Server, busy []time.Time, t0 time.Time) []event {
	t.Helper()
	var kinds []string
	for range v.kills {
		kinds = append(kinds, "kill")
	}
	for range v.pauses {
		kinds = append(kinds, "pause")
	}
	for range v.redisRestarts {
		kinds = append(kinds, "redis")
	}
	rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	var out []event
	next := 0 // the first busy instant not yet used
	for i, kind := range kinds {
		// Evenly over the busy instants, never one already passed (a pause or a
		// restart may have run over).
		j := max(next, (2*i+1)*len(busy)/(2*len(kinds)))
		for j < len(busy) && time.Until(busy[j]) < 0 {
			j++
		}
		if j >= len(busy) {
			t.Logf("no busy instant left for the %s; skipped", kind)
			continue
		}
		next = j + 1
		at := busy[j].Add(time.Duration(rng.Int64N(int64(40 * time.Millisecond))))
		time.Sleep(time.Until(at)) // scheduling the next event, not waiting for one
		e := event{kind: kind, replica: -1}
		switch kind {
		case "kill":
			r := reps[rng.IntN(len(reps))]
			e.replica = r.id
			e.from = r.kill(t)
			r.start(t)
			r.waitReady(t, readyWithin)
			e.to = time.Now()
		case "pause":
			r := reps[rng.IntN(len(reps))]
			e.replica = r.id
			e.from = r.signal(t, syscall.SIGSTOP)
			time.Sleep(pauseFor) // the pause itself
			e.to = r.signal(t, syscall.SIGCONT)
		case "redis":
			e.from = time.Now()
			rs.Kill()
			rs.Restart()
			e.to = time.Now()
		}
		t.Logf("+%6.1fs %-5s %-12s for %s", e.from.Sub(t0).Seconds(), kind, who(e), e.to.Sub(e.from).Round(time.Millisecond))
		out = append(out, e)
	}
	for _, r := range reps {
		r.waitReady(t, readyWithin)
	}
	return out
}

func who(e event) string {
	if e.replica < 0 {
		return "redis-server"
	}
	return fmt.Sprintf("replica %d", e.replica)
}

// pokeTwilio sends the fake one message of the test's own, so that a WaitSent
// waiting on it looks at its deadline.
func pokeTwilio(tw *smstest.Server) {
	form := url.Values{"To": {pokeNumber}, "From": {twilioNumber}, "Body": {"deadline"}}
	req, err := http.NewRequest(http.MethodPost, tw.URL()+"/2010-04-01/Accounts/"+accountSID+"/Messages.json", strings.NewReader(form.Encode()))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(accountSID, smstest.DefaultAuthToken)
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
	}
}

// settle waits until no message is queued or being sent in any school (the state
// is only in Redis, so it is polled), bounded.
func settle(t *testing.T, rs *redistest.Server, d *directory) {
	t.Helper()
	s := store.NewWithClient(rs.Client(), "vigil:", slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := s.OutboxDepth(ctx, d.schools)
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("outbox still holds %d messages (%v) 30 s after the run", n, err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---- what was expected and what was sent ----

// expectation is one visit as the API shows it at the end: what must have gone
// out for it, and when.
type expectation struct {
	officer officer
	due     time.Time
	visit   string // IDs, to find a message in the replicas' logs
	alert   string
}

// expected lists the visits the daemon holds (all overdue and open by now).
func expected(t *testing.T, r *replica, d *directory) map[string]expectation {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, r.base()+"/api/v1/visits", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("list visits: %v", err)
	}
	defer res.Body.Close()
	var body struct {
		Visits []struct {
			ID      string    `json:"id"`
			Officer string    `json:"officer"`
			DueAt   time.Time `json:"due_at"`
			AlertID string    `json:"alert_id"`
		} `json:"visits"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatalf("list visits: %s: %v", res.Status, err)
	}
	byID := map[string]officer{}
	for _, o := range d.officers {
		byID[o.id] = o
	}
	out := map[string]expectation{}
	for _, v := range body.Visits {
		o, ok := byID[v.Officer]
		if !ok {
			t.Fatalf("a visit of unknown officer %q", v.Officer)
		}
		out[o.phone] = expectation{officer: o, due: v.DueAt, visit: v.ID, alert: v.AlertID}
	}
	if len(out) != len(d.officers) {
		t.Errorf("the daemon holds %d open visits; %d were opened", len(out), len(d.officers))
	}
	return out
}

var phoneInBody = regexp.MustCompile(`\+4479110\d{5}`)

// classify says what a sent message is: a reminder to an officer, or an alert
// about an officer to a school office (keyed by the officer's phone).
func classify(m smstest.Message, d *directory) (kind, officerPhone string) {
	if _, ok := d.byPhone[m.To]; ok {
		return "reminder", m.To
	}
	if d.offices[m.To] {
		return "alert", phoneInBody.FindString(m.Body)
	}
	if m.To == pokeNumber {
		return "poke", ""
	}
	return "other", ""
}

func complete(expect map[string]expectation, ms []smstest.Message, d *directory) bool {
	got := map[string]bool{}
	for _, m := range ms {
		k, ph := classify(m, d)
		got[k+ph] = true
	}
	for ph := range expect {
		if !got["reminder"+ph] || !got["alert"+ph] {
			return false
		}
	}
	return true
}

// ---- the report ----

// tally is the figures of one kind of message.
type tally struct {
	expected, sent, missing int
	dupKill, dupPause       int // a kill, a pause landed inside the Twilio call
	dupRedis                int // Redis went away between the send and its record
	dupLive                 int // two live replicas: explained by nothing
	early                   int
	unexpected              int
	late                    []time.Duration
	perKill                 map[int]int // event index -> duplicates it explains
	examples                []string
	dupIDs                  []string // visit or alert IDs of duplicated messages
}

type report struct {
	reminders, alerts *tally
}

func analyse(expect map[string]expectation, ms []smstest.Message, d *directory, ev []event) report {
	sends := map[string][]smstest.Message{}
	rep := report{reminders: &tally{perKill: map[int]int{}}, alerts: &tally{perKill: map[int]int{}}}
	for _, m := range ms {
		k, ph := classify(m, d)
		switch k {
		case "reminder", "alert":
			sends[k+ph] = append(sends[k+ph], m)
		case "other":
			rep.alerts.unexpected++
			rep.alerts.examples = append(rep.alerts.examples, "unexpected message to "+m.To+": "+m.Body)
		}
	}
	for _, kind := range []string{"reminder", "alert"} {
		tl := rep.reminders
		if kind == "alert" {
			tl = rep.alerts
		}
		for key, got := range sends {
			if !strings.HasPrefix(key, kind) {
				continue
			}
			ph := strings.TrimPrefix(key, kind)
			x, ok := expect[ph]
			if !ok || (kind == "alert" && got[0].To != d.office[x.officer.school]) {
				tl.unexpected += len(got)
				tl.examples = append(tl.examples, fmt.Sprintf("%s for %q sent to %s with no such visit", kind, ph, got[0].To))
			}
		}
		for ph, x := range expect {
			tl.expected++
			got := sends[kind+ph]
			tl.sent += len(got)
			if len(got) == 0 {
				tl.missing++
				tl.examples = append(tl.examples, fmt.Sprintf("missing %s for %s (due %s)", kind, ph, x.due.Format("15:04:05.000")))
				continue
			}
			slices.SortFunc(got, func(a, b smstest.Message) int { return a.At.Compare(b.At) })
			fire := x.due.Add(grace)
			if kind == "reminder" {
				fire = x.due.Add(-reminderBefore)
			}
			late := got[0].At.Sub(fire)
			if late < 0 {
				tl.early++
				tl.examples = append(tl.examples, fmt.Sprintf("%s for %s sent %s early", kind, ph, -late))
			}
			tl.late = append(tl.late, late)
			for i := 1; i < len(got); i++ {
				a, b := got[i-1].At, got[i].At
				switch j, kind := explain(ev, a, b); kind {
				case "kill":
					tl.dupKill++
					tl.perKill[j]++
				case "pause":
					tl.dupPause++
				case "redis":
					tl.dupRedis++
				default:
					tl.dupLive++
				}
				id := x.alert
				if kind == "reminder" {
					id = x.visit
				}
				tl.dupIDs = append(tl.dupIDs, id)
				tl.examples = append(tl.examples, fmt.Sprintf("duplicate %s for %s: %s then %s (%s)",
					kind, ph, a.Format("15:04:05.000"), b.Format("15:04:05.000"), orLive(explain(ev, a, b))))
			}
		}
	}
	return rep
}

// explain finds the event a duplicate pair of sends (a before b) straddles: a
// kill whose instant lies between them (the first send was inside the killed
// replica's Twilio call, and a live one sent again after the lease), a pause or a
// Redis outage overlapping [a, b].
func explain(ev []event, a, b time.Time) (int, string) {
	for _, kind := range []string{"kill", "pause", "redis"} {
		for i, e := range ev {
			if e.kind != kind {
				continue
			}
			if kind == "kill" && !e.from.Before(a) && !e.from.After(b) {
				return i, kind
			}
			if kind != "kill" && !a.After(e.to) && !b.Before(e.from) {
				return i, kind
			}
		}
	}
	return -1, ""
}

func orLive(_ int, kind string) string {
	if kind == "" {
		return "two live replicas"
	}
	return "straddles a " + kind
}

func percentile(xs []time.Duration, p float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func (rep report) print(t *testing.T, mode string, seed uint64, visits int, ev []event, took time.Duration) {
	var b strings.Builder
	counts := map[string]int{}
	for _, e := range ev {
		counts[e.kind]++
	}
	fmt.Fprintf(&b, "\n==== Vigil chaos report (%s, seed %d) ====\n", mode, seed)
	fmt.Fprintf(&b, "%d replicas, one redis-server (AOF, appendfsync always), one fake Twilio; %d visits\n", replicas, visits)
	fmt.Fprintf(&b, "chaos: %d replica kills (kill -9, restarted), %d pauses (SIGSTOP %s), %d redis-server kills (restarted on AOF)\n",
		counts["kill"], counts["pause"], pauseFor, counts["redis"])
	fmt.Fprintf(&b, "%-10s %8s %6s %8s %10s %10s %10s %10s %9s %9s %9s\n", "", "expected", "sent", "missing",
		"dup:live", "dup:kill", "dup:pause", "dup:redis", "late p50", "late p99", "late max")
	for _, x := range []struct {
		name string
		tl   *tally
	}{{"alerts", rep.alerts}, {"reminders", rep.reminders}} {
		tl := x.tl
		fmt.Fprintf(&b, "%-10s %8d %6d %8d %10d %10d %10d %10d %9s %9s %9s\n", x.name, tl.expected, tl.sent, tl.missing,
			tl.dupLive, tl.dupKill, tl.dupPause, tl.dupRedis,
			ms(percentile(tl.late, .5)), ms(percentile(tl.late, .99)), ms(percentile(tl.late, 1)))
	}
	fmt.Fprintf(&b, "lateness = Twilio request time - (due + grace) for alerts, - (due - reminder_before) for reminders\n")
	for _, x := range []*tally{rep.alerts, rep.reminders} {
		for _, ex := range x.examples[:min(len(x.examples), 20)] {
			fmt.Fprintf(&b, "  %s\n", ex)
		}
	}
	fmt.Fprintf(&b, "took %s\n", took.Round(time.Second))
	t.Log(b.String())
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

// check fails the test on what must never happen.
func (rep report) check(t *testing.T) {
	for name, tl := range map[string]*tally{"alerts": rep.alerts, "reminders": rep.reminders} {
		if tl.missing > 0 {
			t.Errorf("%s: %d missing", name, tl.missing)
		}
		if tl.dupLive > 0 {
			t.Errorf("%s: %d duplicates sent by two live replicas", name, tl.dupLive)
		}
		if tl.early > 0 {
			t.Errorf("%s: %d sent before they were due", name, tl.early)
		}
		if tl.unexpected > 0 {
			t.Errorf("%s: %d sent that no visit called for", name, tl.unexpected)
		}
		for i, n := range tl.perKill {
			if n > 1 {
				t.Errorf("%s: kill #%d explains %d duplicates; at most one send is inside the Twilio call at a kill", name, i, n)
			}
		}
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
