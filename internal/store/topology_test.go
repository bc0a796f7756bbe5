package store_test

// The store on a 3-master Redis Cluster and on Sentinel (issue 5), against real
// redis-server processes started by internal/redistest.

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fullChange is one school's commit touching every kind of key a real event can:
// visit, alert, code, officer state, timers, outbox, audit, inbound dedup.
func fullChange(school, n string) store.Change {
	v := openVisit("v" + n)
	v.School, v.AlertID = school, "a"+n
	a := &visit.Alert{ID: "a" + n, Code: "12" + n, School: school, Officer: "jdoe", Reason: visit.ReasonOverdue, State: visit.AlertOpen, RaisedAt: t0, VisitID: v.ID}
	m := msg("m"+n, visit.PriorityAlert)
	m.School = school
	return store.Change{
		Result:        visit.Result{Visits: []*visit.Visit{v}, Alerts: []*visit.Alert{a}, Messages: []visit.Message{m}, Audit: []visit.Event{{At: t0, Type: "raised", By: "vigil"}}},
		Timers:        map[string]time.Time{store.AlertTimer(a.ID): t0},
		OfficerStates: map[string]visit.OfficerState{"jdoe": {OpenVisit: v.ID, Alerts: []string{a.ID}}},
		InboundSID:    "SM" + n, InboundReply: "ok", Now: t0,
	}
}

// wakes counts Subscribe's callbacks on a channel.
func subscribe(t *testing.T, s *store.Store) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	woke := make(chan struct{}, 100)
	wake := func() { woke <- struct{}{} }
	go s.Subscribe(ctx, wake, wake)
	return woke
}

// awaitWake waits for one wake-up; a commit is retried (it announces again) until
// the subscription, which connects in the background, hears one.
func awaitWake(t *testing.T, woke <-chan struct{}, commit func() error) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		if err := commit(); err != nil {
			t.Fatalf("commit: %v", err)
		}
		select {
		case <-woke:
			return
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("no wake-up heard within 15 s of a commit that announces one")
		}
	}
}

// On Cluster, every operation of the store works for schools on different masters:
// the commit script (all keys in one slot), claims and fencing, sends recorded,
// cross-school reads, and the wake-up published by a commit on any master reaches
// a subscriber connected to any node.
func TestClusterStore(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	ctx := t.Context()
	s, err := store.Open(ctx, store.Options{ClusterAddrs: c.Addrs()}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	schools := []string{"bishop-lonsdale", "st-werburghs", "ashbrook-junior"}
	nodes := map[string]bool{}
	for _, sc := range schools {
		n, err := c.NodeOf(ctx, "vigil:{"+sc+"}:timers")
		if err != nil {
			t.Fatal(err)
		}
		nodes[n] = true
	}
	if len(nodes) != 3 {
		t.Fatalf("the three schools use %d masters, want 3", len(nodes))
	}
	var dir []visit.School
	for _, sc := range schools {
		dir = append(dir, visit.School{ID: sc, Name: sc, Contacts: map[string][]visit.Contact{"office": {{Name: "Office", Phone: "+44163296000" + strconv.Itoa(len(dir))}}}})
	}
	if err := s.SyncDirectory(ctx, dir, []visit.Officer{{ID: "jdoe", Name: "Jane Doe", Phone: "+447700900101", School: schools[0]}}); err != nil {
		t.Fatalf("sync directory: %v", err)
	}

	woke := subscribe(t, s)
	for i, sc := range schools {
		n := strconv.Itoa(i)
		if err := s.Begin(sc).Commit(ctx, fullChange(sc, n)); err != nil {
			t.Fatalf("commit in %s: %v", sc, err)
		}
		// Every school's commit wakes the subscriber, whichever master it ran on.
		k := 0
		awaitWake(t, woke, func() error {
			k++
			return s.QueueMessage(ctx, visit.Message{ID: "w" + n + "-" + strconv.Itoa(k), School: sc, Kind: visit.KindAlert, Channel: visit.ChannelSMS, To: "+447700900201", Body: "x", Priority: visit.PriorityNormal}, t0)
		})

		due, err := s.ClaimTimers(ctx, sc, t0, 3*time.Second, 10)
		if err != nil || len(due) != 1 {
			t.Fatalf("claim timers of %s: %+v, %v", sc, due, err)
		}
		if err := s.Begin(sc).Commit(ctx, store.Change{Fence: &due[0].Claim, Now: t0}); err != nil {
			t.Fatalf("fenced commit in %s: %v", sc, err)
		}
		// The dispatcher's way: one look at every school, then claims whose script
		// reads the messages' hashes (keys in the queue's slot).
		look, err := s.LookOutbox(ctx, schools, t0)
		if err != nil || look.Ready[i][visit.PriorityNormal] == 0 {
			t.Fatalf("look at the outbox of %s: %+v, %v", sc, look, err)
		}
		var quotas []store.Quota
		for p, n := range look.Ready[i] {
			if n > 0 {
				quotas = append(quotas, store.Quota{School: sc, Priority: p, Max: int(n)})
			}
		}
		out, err := s.ClaimQuotas(ctx, quotas, t0, 4*time.Second)
		if err != nil || len(out) == 0 || out[0].Msg.Body == "" {
			t.Fatalf("claim messages of %s: %+v, %v", sc, out, err)
		}
		for j, o := range out {
			if err := s.RecordAttempt(ctx, o, t0); err != nil {
				t.Fatalf("record attempt in %s: %v", sc, err)
			}
			if _, err := s.RecordSent(ctx, o, "SM"+n+"x"+strconv.Itoa(j), t0); err != nil {
				t.Fatalf("record sent in %s: %v", sc, err)
			}
		}
		if got, _, _, err := s.MessageBySID(ctx, "SM"+n+"x0"); err != nil || got != sc {
			t.Fatalf("message by SID in %s: %q, %v", sc, got, err)
		}
	}
	open, err := s.OpenVisits(ctx, schools)
	if err != nil || len(open) != 3 {
		t.Fatalf("open visits across masters: %d, %v", len(open), err)
	}
	if sc, err := s.FindVisit(ctx, schools, "v2"); err != nil || sc != schools[2] {
		t.Fatalf("find visit v2: %q, %v", sc, err)
	}
	alerts, err := s.ListAlerts(ctx, schools, true, 0)
	if err != nil || len(alerts) != 3 {
		t.Fatalf("open alerts across masters: %d, %v", len(alerts), err)
	}
	if n, err := s.OutboxDepth(ctx, schools); err != nil || n != 0 {
		t.Fatalf("outbox depth %d, %v; want 0", n, err)
	}
	if n, err := s.ReplicasInSync(ctx, 10*time.Second); err != nil || n != 0 {
		t.Errorf("replicas in sync on a cluster without replicas = %d, %v; want 0", n, err)
	}
}

// On Sentinel, the subscription that wakes the schedulers follows the failover:
// a commit on the new primary still wakes a replica subscribed before the crash.
func TestSentinelWakeSurvivesFailover(t *testing.T) {
	t.Parallel()
	sn := redistest.StartSentinel(t)
	ctx := t.Context()
	s, err := store.Open(ctx, store.Options{SentinelMaster: sn.MasterName, SentinelAddrs: sn.Addrs()}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	// The flag of the replication window: one replica in sync before the crash,
	// none after it (the promoted replica has no replica of its own).
	if n, err := s.ReplicasInSync(ctx, 10*time.Second); err != nil || n != 1 {
		t.Fatalf("replicas in sync before the failover = %d, %v; want 1", n, err)
	}
	woke := subscribe(t, s)
	k := 0
	queue := func() error {
		k++
		return s.QueueMessage(ctx, visit.Message{ID: "w" + strconv.Itoa(k), School: "s1", Kind: visit.KindAlert, Channel: visit.ChannelSMS, To: "+447700900201", Body: "x", Priority: visit.PriorityNormal}, t0)
	}
	awaitWake(t, woke, queue)

	sn.KillPrimary()(30 * time.Second)
	// The first commits after the switch may still find the old address: retry
	// them as the scheduler's next pass would.
	awaitWake(t, woke, func() error {
		for {
			err := queue()
			if err == nil || ctx.Err() != nil {
				return err
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	if err := s.Begin("s1").Commit(ctx, fullChange("s1", "1")); err != nil {
		t.Fatalf("commit on the new primary: %v", err)
	}
	if n, err := s.ReplicasInSync(ctx, 10*time.Second); err != nil || n != 0 {
		t.Errorf("replicas in sync after the failover = %d, %v; want 0", n, err)
	}
}

// BenchmarkCommitReplicated is what WAIT 1 (wait until one replica has a commit)
// would add to each commit, on a primary with one replica on this host:
//
//	go test -run '^$' -bench CommitReplicated ./internal/store/
func BenchmarkCommitReplicated(b *testing.B) {
	primary := redistest.Start(b)
	if primary.Embedded() {
		b.Skip("needs redis-server")
	}
	host, port, _ := net.SplitHostPort(primary.Addr())
	replica := redistest.Start(b, redistest.WithArgs("--replicaof", host, port))
	ctx := context.Background()
	if err := primary.Client().Set(ctx, "sync", "1", 0).Err(); err != nil {
		b.Fatal(err)
	}
	if n, err := primary.Client().Wait(ctx, 1, 10*time.Second).Result(); err != nil || n != 1 {
		b.Fatalf("replica %s not in sync: %d %v", replica.Addr(), n, err)
	}
	// One connection, so that WAIT covers this client's own commit.
	rdb := redis.NewClient(&redis.Options{Addr: primary.Addr(), PoolSize: 1})
	b.Cleanup(func() { rdb.Close() })
	s := store.NewWithClient(rdb, "vigil:", quiet())
	i := 0 // unique inbound SIDs across every run of the sub-benchmarks
	for _, wait := range []bool{false, true} {
		name := "commit"
		if wait {
			name = "commit+WAIT_1"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				i++
				ch := store.Change{InboundSID: name + strconv.Itoa(i), InboundReply: "ok", Timers: map[string]time.Time{"v:" + strconv.Itoa(i): t0}, Now: t0}
				if err := s.Begin("s1").Commit(ctx, ch); err != nil {
					b.Fatal(err)
				}
				if wait {
					if n, err := rdb.Wait(ctx, 1, time.Second).Result(); err != nil || n != 1 {
						b.Fatalf("WAIT 1 = %d, %v", n, err)
					}
				}
			}
		})
	}
}
