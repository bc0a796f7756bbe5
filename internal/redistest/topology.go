package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// This file starts the two replicated topologies Vigil supports besides a single
// server: a Redis Cluster of masters, and a primary with a replica watched by
// Sentinels. Both need real binaries (miniredis has neither): without
// redis-server (or, for Cluster, redis-cli) on PATH the test is skipped, or
// failed when CI is set, as Start does.

// topologyTimeout bounds how long a topology may take to settle (slots agreed,
// replica in sync, sentinels aware of each other).
const topologyTimeout = 30 * time.Second

// settlePoll is how often a topology's state is polled while it settles. Redis
// announces none of these states (cluster_state, the replicas a sentinel knows)
// on any channel a client can wait on, so polling is the only way.
const settlePoll = 50 * time.Millisecond

// needBinaries skips (or, with CI set, fails) the test when a binary is missing.
func needBinaries(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("redistest: %s not installed; CI requires it: %v", n, err)
			}
			t.Skipf("redistest: %s not on PATH; this topology needs the real binary", n)
		}
	}
}

// settle polls cond until it holds or topologyTimeout passes, then fails the test
// with what cond last said.
func settle(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(topologyTimeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: %s not reached after %s; last state: %s", what, topologyTimeout, state)
		}
		time.Sleep(settlePoll)
	}
}

// Cluster is a Redis Cluster of masters without replicas, each node a Server.
type Cluster struct {
	t      testing.TB
	Nodes  []*Server
	client *redis.ClusterClient
}

// StartCluster runs masters cluster-enabled redis-servers, joins them with
// `redis-cli --cluster create` (slots split evenly) and returns once every node
// reports cluster_state:ok. WithTLS makes the cluster bus speak TLS too. Each node's cluster bus gets its own free port
// (cluster-port) rather than port+10000, which may be out of range or taken.
func StartCluster(t testing.TB, masters int, opts ...Option) *Cluster {
	t.Helper()
	needBinaries(t, "redis-server", "redis-cli")
	if masters < 3 {
		t.Fatalf("redistest: a cluster needs at least 3 masters, not %d", masters)
	}
	var o options
	for _, f := range opts {
		f(&o)
	}
	c := &Cluster{t: t}
	for range masters {
		bus, err := freePort()
		if err != nil {
			t.Fatalf("redistest: pick a cluster bus port: %v", err)
		}
		args := []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000",
			"--cluster-port", strconv.Itoa(bus),
		}
		if o.tls != nil {
			// The cluster bus speaks TLS too, and the nodes announce their TLS
			// port (the only one) to clients.
			args = append(args, "--tls-cluster", "yes", "--tls-replication", "yes")
		}
		nodeOpts := append([]Option{WithArgs(args...)}, opts...)
		c.Nodes = append(c.Nodes, Start(t, nodeOpts...))
	}
	args := []string{"--cluster", "create"}
	if o.password != "" {
		args = append([]string{"--no-auth-warning", "-a", o.password}, args...)
	}
	if o.tls != nil {
		args = append([]string{"--tls", "--cacert", o.tls.CA}, args...)
	}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), topologyTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, n := range c.Nodes {
		settle(t, "cluster_state:ok on "+n.Addr(), func() (bool, string) {
			info, err := n.Client().ClusterInfo(ctx).Result()
			if err != nil {
				return false, err.Error()
			}
			return strings.Contains(info, "cluster_state:ok"), info
		})
	}
	c.client = redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), Password: o.password, TLSConfig: c.Nodes[0].clientTLS()})
	t.Cleanup(func() {
		if err := c.client.Close(); err != nil {
			t.Logf("redistest: close cluster client: %v", err)
		}
	})
	// A client's first view of the slots comes from one node: make sure it
	// sees every master before the test relies on it.
	settle(t, "a client that sees every master", func() (bool, string) {
		slots, err := c.client.ClusterSlots(ctx).Result()
		if err != nil {
			return false, err.Error()
		}
		return len(slots) >= masters, fmt.Sprintf("%d slot ranges", len(slots))
	})
	return c
}

// Addrs are the nodes' host:port, for cluster_addrs.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// Client is a cluster client on every node; closed at cleanup.
func (c *Cluster) Client() *redis.ClusterClient { return c.client }

// NodeOf is the address of the master serving key's slot (CLUSTER KEYSLOT, then
// the slot map).
func (c *Cluster) NodeOf(ctx context.Context, key string) (string, error) {
	slot, err := c.client.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return "", fmt.Errorf("CLUSTER KEYSLOT %s: %w", key, err)
	}
	ranges, err := c.client.ClusterSlots(ctx).Result()
	if err != nil {
		return "", fmt.Errorf("CLUSTER SLOTS: %w", err)
	}
	for _, r := range ranges {
		if int64(r.Start) <= slot && slot <= int64(r.End) && len(r.Nodes) > 0 {
			return r.Nodes[0].Addr, nil
		}
	}
	return "", fmt.Errorf("slot %d of %s is served by no node", slot, key)
}

// Sentinel is a primary, one replica and three sentinels watching them under
// the master name MasterName, with a quorum of two and a one-second
// down-after: a killed primary is replaced within a few seconds.
type Sentinel struct {
	t          testing.TB
	MasterName string
	Primary    *Server // the primary at start; after a failover, Replica is
	Replica    *Server
	Sentinels  []*Server
}

// StartSentinel runs the primary and its replica (opts apply to both: WithAOF,
// WithPassword, or WithArgs("--min-replicas-to-write", "1"); WithSentinelPassword
// to the sentinels; WithTLS to all, sentinels and replication included), waits until the replica holds
// a write made on the primary, then starts the sentinels and waits until each
// knows the replica and the two other sentinels, so a failover can happen.
func StartSentinel(t testing.TB, opts ...Option) *Sentinel {
	t.Helper()
	needBinaries(t, "redis-server")
	var o options
	for _, f := range opts {
		f(&o)
	}
	s := &Sentinel{t: t, MasterName: "mymaster"}
	var tlsArgs []string
	if o.tls != nil {
		// Replication and the sentinels' links to the servers speak TLS too.
		tlsArgs = []string{"--tls-replication", "yes"}
	}
	s.Primary = Start(t, append([]Option{WithArgs(tlsArgs...)}, opts...)...)
	host, port := "127.0.0.1", strconv.Itoa(s.Primary.port)
	s.Replica = Start(t, append([]Option{WithArgs(append([]string{"--replicaof", host, port}, tlsArgs...)...)}, opts...)...)

	// WAIT is the signal that the replica is attached and in sync: it returns
	// once one replica acknowledged everything written before it.
	ctx, cancel := context.WithTimeout(context.Background(), topologyTimeout)
	defer cancel()
	if err := s.Primary.Client().Set(ctx, "redistest:sync", "1", 0).Err(); err != nil {
		t.Fatalf("redistest: write on the primary: %v", err)
	}
	n, err := s.Primary.Client().Wait(ctx, 1, topologyTimeout).Result()
	if err != nil || n < 1 {
		t.Fatalf("redistest: replica %s not in sync with %s after %s: %d replicas, %v",
			s.Replica.Addr(), s.Primary.Addr(), topologyTimeout, n, err)
	}

	for i := range 3 {
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf("sentinel monitor %[1]s %[2]s %[3]s 2\n"+
			"sentinel down-after-milliseconds %[1]s 1000\n"+
			"sentinel failover-timeout %[1]s 10000\n"+
			"sentinel parallel-syncs %[1]s 1\n", s.MasterName, host, port)
		if o.password != "" {
			body += fmt.Sprintf("sentinel auth-pass %s %s\n", s.MasterName, o.password)
		}
		if o.sentinelPassword != "" {
			body += fmt.Sprintf("requirepass %[1]s\nsentinel sentinel-pass %[1]s\n", o.sentinelPassword)
		}
		if o.tls != nil {
			body += "tls-replication yes\n"
		}
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatalf("redistest: write sentinel %d config: %v", i, err)
		}
		sn := Start(t, func(so *options) {
			so.conf, so.sentinel, so.ready = conf, true, "+monitor master"
			so.password = o.sentinelPassword // the sentinel's client's
			so.tls = o.tls                   // served on its TLS port only
		})
		s.Sentinels = append(s.Sentinels, sn)
	}
	for _, sn := range s.Sentinels {
		settle(t, "sentinel "+sn.Addr()+" aware of the replica and the other sentinels", func() (bool, string) {
			reps, err := sn.Client().Do(ctx, "SENTINEL", "REPLICAS", s.MasterName).Slice()
			if err != nil {
				return false, err.Error()
			}
			peers, err := sn.Client().Do(ctx, "SENTINEL", "SENTINELS", s.MasterName).Slice()
			if err != nil {
				return false, err.Error()
			}
			return len(reps) >= 1 && len(peers) >= 2, fmt.Sprintf("%d replicas, %d other sentinels", len(reps), len(peers))
		})
	}
	return s
}

// Addrs are the sentinels' host:port, for redis.sentinel.addrs.
func (s *Sentinel) Addrs() []string {
	out := make([]string, len(s.Sentinels))
	for i, sn := range s.Sentinels {
		out[i] = sn.Addr()
	}
	return out
}

// MasterAddr asks the first sentinel which server is the primary now.
func (s *Sentinel) MasterAddr(ctx context.Context) (string, error) {
	hp, err := s.Sentinels[0].Client().Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.MasterName).StringSlice()
	if err != nil {
		return "", err
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("sentinel answered %q", hp)
	}
	return hp[0] + ":" + hp[1], nil
}

// KillPrimary kills the primary with SIGKILL, as a crash would, and returns a
// function that waits (up to timeout) for the sentinels to announce the new
// primary on +switch-master and returns its address. The announcement is
// subscribed to before the kill, so it cannot be missed.
func (s *Sentinel) KillPrimary() (waitFailover func(timeout time.Duration) string) {
	s.t.Helper()
	ctx := context.Background()
	sub := s.Sentinels[0].Client().Subscribe(ctx, "+switch-master")
	if _, err := sub.Receive(ctx); err != nil { // the subscription's confirmation
		sub.Close()
		s.t.Fatalf("redistest: subscribe to +switch-master: %v", err)
	}
	s.Primary.Kill()
	return func(timeout time.Duration) string {
		s.t.Helper()
		defer sub.Close()
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		select {
		case m := <-sub.Channel():
			// "<master name> <old ip> <old port> <new ip> <new port>"
			f := strings.Fields(m.Payload)
			if len(f) != 5 {
				s.t.Fatalf("redistest: unexpected +switch-master %q", m.Payload)
			}
			return f[3] + ":" + f[4]
		case <-timer.C:
			s.t.Fatalf("redistest: no failover within %s of killing %s", timeout, s.Primary.Addr())
			return ""
		}
	}
}
