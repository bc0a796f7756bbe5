package redistest

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestClusterSpreadsSlotsOverEveryMaster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := StartCluster(t, 3)

	// Keys in different slots land on different masters, and the cluster
	// client reaches all of them.
	seen := map[string]bool{}
	for _, k := range []string{"{a}x", "{b}x", "{c}x", "{d}x", "{e}x", "{f}x", "{g}x"} {
		if err := c.Client().Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
		node, err := c.NodeOf(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		seen[node] = true
	}
	if len(seen) < 2 {
		t.Errorf("7 hash tags all on %v; want keys spread over the masters", seen)
	}
}

func TestSentinelFailsOverAKilledPrimary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := StartSentinel(t)
	if got, err := s.MasterAddr(ctx); err != nil || got != s.Primary.Addr() {
		t.Fatalf("master before failover = %q, %v; want %s", got, err, s.Primary.Addr())
	}
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.MasterName, SentinelAddrs: s.Addrs()})
	t.Cleanup(func() { c.Close() })
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET through sentinel: %v", err)
	}
	// Replicated before the crash, so the new primary must have it.
	if n, err := c.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 = %d, %v", n, err)
	}

	addr := s.KillPrimary()(30 * time.Second)
	if addr != s.Replica.Addr() {
		t.Errorf("new primary %s, want the replica %s", addr, s.Replica.Addr())
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Errorf("GET k after failover = %q, %v; want v", got, err)
	}
	if err := c.Set(ctx, "k2", "v2", 0).Err(); err != nil {
		t.Errorf("SET after failover: %v", err)
	}
}
