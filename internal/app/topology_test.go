package app_test

// The daemon on the two replicated topologies (issue 5): a 3-master Redis Cluster,
// and a primary + replica watched by 3 Sentinels, each made of real redis-server
// processes by internal/redistest.

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/sms/smstest"
)

// A second school whose hash tag lands on another Cluster master than
// bishop-lonsdale's (the test checks it with CLUSTER KEYSLOT).
const (
	school2      = "st-werburghs"
	zedPhone     = "+447700900103"
	office3Phone = "+441632960002"
)

// redisPlaceholder stands for the redis: line testConfig writes, replaced by the
// topology's own.
const redisPlaceholder = "redis://topology.invalid:6379/0"

// newTopologyEnv is newEnv on a replicated Redis: redisYAML replaces the redis
// url (cluster_addrs, or sentinel), and a second school with one officer is added.
func newTopologyEnv(t *testing.T, redisYAML string) *env {
	t.Helper()
	e := &env{t: t, clock: newClock(start)}
	e.twilio = smstest.NewServer(t, accountSID, smstest.WithClock(e.clock.Now))
	y := testConfig(redisPlaceholder, e.twilio.URL())
	y = replaceOnce(t, y, fmt.Sprintf("url: %q", redisPlaceholder), redisYAML)
	y = replaceOnce(t, y, "  officers:\n", fmt.Sprintf(`    - id: %s
      name: "St Werburghs CE Primary School"
      contacts:
        office:      [{ name: "St Werburghs office", phone: %q }]
        managers:    [{ name: "Head of School", phone: %q }]
        police:      [{ name: "Safer Schools Officer", phone: %q }]
        headteacher: [{ name: "Head of School", phone: %q }]
  officers:
`, school2, office3Phone, headPhone, policePhone, headPhone))
	y += fmt.Sprintf(`    - id: zsmith
      name: "Zed Smith"
      phone: %q
      school: %s
`, zedPhone, school2)
	e.cfg = filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(e.cfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// waitReady polls /readyz until it answers 200 (readiness announces itself on
// no channel a test could wait on).
func waitReady(t *testing.T, d *daemon, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		res, err := http.Get(d.base + "/readyz")
		if err != nil {
			t.Fatalf("GET /readyz: %v", err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not 200 after %s: %d %s", within, res.StatusCode, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metricLine is the line of /metrics that starts with name.
func metricLine(t *testing.T, d *daemon, name string) string {
	t.Helper()
	res, err := http.Get(d.base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, name+" ") {
			return line
		}
	}
	return ""
}

func yamlList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// onlyOnce fails the test unless phone got exactly one message saying each of subs
// (in that order), and returns them.
func onlyOnce(t *testing.T, e *env, phone string, subs ...string) {
	t.Helper()
	got := e.sentTo(phone)
	if len(got) != len(subs) {
		t.Fatalf("%s got %d messages, want %d (%v): %q", phone, len(got), len(subs), subs, got)
	}
	for i, sub := range subs {
		contains(t, phone+" message "+fmt.Sprint(i+1), got[i], sub)
	}
}

// The walking skeleton's timeline on a 3-master Cluster, for two schools whose
// keys live on different masters: VISIT -> reminder -> OVERDUE to each school's
// office -> IN -> ALL CLEAR, every message once.
func TestClusterEndToEnd(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	ctx := t.Context()
	nodeA, err := c.NodeOf(ctx, "vigil:{bishop-lonsdale}:timers")
	if err != nil {
		t.Fatal(err)
	}
	nodeB, err := c.NodeOf(ctx, "vigil:{"+school2+"}:timers")
	if err != nil {
		t.Fatal(err)
	}
	if nodeA == nodeB {
		t.Fatalf("both schools' hash tags map to %s; pick another second school", nodeA)
	}

	e := newTopologyEnv(t, "cluster_addrs: "+yamlList(c.Addrs()))
	d := e.startDaemon()
	waitReady(t, d, 10*time.Second)
	contains(t, "Jane's VISIT reply", e.sms(d, janePhone, "VISIT 45 14 Elm Road"), "14 Elm Road", "10:45")
	contains(t, "Zed's VISIT reply", e.sms(d, zedPhone, "VISIT 45 3 Oak Lane"), "3 Oak Lane", "10:45")

	// Each school's state is on its own master.
	for school, node := range map[string]string{"bishop-lonsdale": nodeA, school2: nodeB} {
		for _, n := range c.Nodes {
			keys, err := n.Client().Keys(ctx, "vigil:{"+school+"}:*").Result()
			if err != nil {
				t.Fatal(err)
			}
			if (n.Addr() == node) != (len(keys) > 0) {
				t.Errorf("node %s holds %d keys of %s; the school's slot is on %s", n.Addr(), len(keys), school, node)
			}
		}
	}

	e.advance(35*time.Minute, d)
	e.waitFor(2)
	onlyOnce(t, e, janePhone, "14 Elm Road")
	onlyOnce(t, e, zedPhone, "3 Oak Lane")

	e.advance(15*time.Minute, d)
	e.waitFor(5) // two office contacts of Bishop Lonsdale, one of St Werburghs
	onlyOnce(t, e, officePhone, "OVERDUE")
	onlyOnce(t, e, office2Phone, "OVERDUE")
	onlyOnce(t, e, office3Phone, "OVERDUE")
	contains(t, "St Werburghs alert", e.sentTo(office3Phone)[0], "Zed Smith", zedPhone, "3 Oak Lane")

	contains(t, "Jane's IN reply", e.sms(d, janePhone, "IN"), "Checked in at 10:50")
	contains(t, "Zed's IN reply", e.sms(d, zedPhone, "IN"), "Checked in at 10:50")
	e.waitFor(8)
	onlyOnce(t, e, officePhone, "OVERDUE", "ALL CLEAR")
	onlyOnce(t, e, office2Phone, "OVERDUE", "ALL CLEAR")
	onlyOnce(t, e, office3Phone, "OVERDUE", "ALL CLEAR")
	if !e.waitSettled(d) {
		t.Errorf("work left after both visits closed")
	}
	if n := len(e.twilio.Sent()); n != 8 {
		t.Errorf("%d messages sent in all, want 8", n)
	}

	// No receipt came for the three OVERDUE alerts and their three ALL CLEARs: a
	// minute on, the checks (listed in each school's slot, on its own master) ask
	// Twilio, which says delivered.
	e.advance(time.Minute, d)
	const final = `vigil_receipt_checks_total{result="final"}`
	if !pollUntil(10*time.Second, func() bool { return metricLine(t, d, final) == final+" 6" }) {
		t.Errorf("metric: %q, want the receipts of the three alerts and three ALL CLEARs asked for", metricLine(t, d, final))
	}
}

// On Sentinel, the primary is killed (SIGKILL) with visits open and a reminder
// falling due while there is no primary: the sentinels promote the replica, the
// daemon follows, and every timer still fires once — the reminder that fell due
// during the failover, then the OVERDUE alerts, then ALL CLEAR.
func TestSentinelFailoverKeepsTimersFiring(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t)
	e := newTopologyEnv(t, fmt.Sprintf("sentinel: { master: %s, addrs: %s }", s.MasterName, yamlList(s.Addrs())))
	d := e.startDaemon()
	contains(t, "Jane's VISIT reply", e.sms(d, janePhone, "VISIT 45 14 Elm Road"), "10:45")
	contains(t, "Zed's VISIT reply", e.sms(d, zedPhone, "VISIT 60 3 Oak Lane"), "11:00")

	// Writes acknowledged by the primary but not yet replicated die with it
	// (README: "Replicas, topologies and durability"). This test is about timers
	// after a failover, so it first lets the replica catch up.
	waitReplicated(t, s)

	// The flag of the replication window, before and after (README).
	if got := metricLine(t, d, "vigil_redis_replicas_in_sync"); got != "vigil_redis_replicas_in_sync 1" {
		t.Errorf("before the failover: %q, want 1 replica in sync", got)
	}

	waitFailover := s.KillPrimary()
	e.advance(35*time.Minute, d) // Jane's reminder falls due with no primary
	newPrimary := waitFailover(30 * time.Second)
	t.Logf("failed over to %s", newPrimary)
	e.twilio.WaitSent(30*time.Second, smstest.AtLeast[smstest.Message](1))
	onlyOnce(t, e, janePhone, "14 Elm Road")
	waitReady(t, d, 15*time.Second)

	if got := metricLine(t, d, "vigil_redis_replicas_in_sync"); got != "vigil_redis_replicas_in_sync 0" {
		t.Errorf("after the failover: %q, want 0: the new primary has no replica", got)
	}

	e.advance(15*time.Minute, d) // 10:50: Jane overdue, Zed's reminder
	e.waitFor(4)
	onlyOnce(t, e, officePhone, "OVERDUE")
	onlyOnce(t, e, office2Phone, "OVERDUE")
	onlyOnce(t, e, zedPhone, "3 Oak Lane")

	contains(t, "Jane's IN reply", e.sms(d, janePhone, "IN"), "Checked in at 10:50")
	e.waitFor(6)
	onlyOnce(t, e, officePhone, "OVERDUE", "ALL CLEAR")
	onlyOnce(t, e, office2Phone, "OVERDUE", "ALL CLEAR")

	e.advance(15*time.Minute, d) // 11:05: Zed overdue
	e.waitFor(7)
	onlyOnce(t, e, office3Phone, "OVERDUE")
	if !e.waitSettled(d) {
		t.Errorf("work left after the failover")
	}
	if n := len(e.twilio.Sent()); n != 7 {
		t.Errorf("%d messages sent in all, want 7", n)
	}
}

// A PANIC texted just after the Sentinel primary dies is held and retried while the
// sentinels promote the replica (README: a failover within the 10 s an inbound SMS
// is retried for), then raised as usual: the officer gets the usual answer, not
// NOT CONFIRMED.
func TestPanicDuringSentinelFailoverIsRaised(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t)
	e := newTopologyEnv(t, fmt.Sprintf("sentinel: { master: %s, addrs: %s }", s.MasterName, yamlList(s.Addrs())))
	d := e.startDaemon()
	waitReplicated(t, s) // the directory written at start is on the replica

	waitFailover := s.KillPrimary()
	ans := e.postInBackground(d, "/twilio/sms", e.twilio.InboundSMS(janePhone, twilioNumber, "PANIC"))
	t.Logf("failed over to %s", waitFailover(30*time.Second))
	e.panicRaised(d, ans)
}

// waitReplicated waits until the replica has every write the primary acknowledged
// so far: WAIT after a write on this connection covers every earlier write of every
// connection.
func waitReplicated(t *testing.T, s *redistest.Sentinel) {
	t.Helper()
	ctx := t.Context()
	pc := s.Primary.Client()
	if err := pc.Set(ctx, "test:barrier", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := pc.Wait(ctx, 1, 10*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 = %d, %v", n, err)
	}
}
