package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ReplicasInSync counts the replicas that hold what the primary acknowledged, give
// or take maxLag: those INFO replication lists as online with a last
// acknowledgement at most maxLag old. On Cluster it is the least over the masters.
//
// Replication is asynchronous: while this is 0, every write Vigil makes (a visit
// opened, an alert raised) exists on one machine only, and a failover or the loss
// of that machine loses it. It is the cheap flag of that window (README, "Replicas,
// topologies and durability"); the exact writes at risk are not knowable without a
// WAIT per commit.
func (s *Store) ReplicasInSync(ctx context.Context, maxLag time.Duration) (int64, error) {
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		least := int64(-1)
		var mu sync.Mutex // ForEachMaster asks the masters in parallel
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			n, err := replicasInSync(ctx, c, maxLag)
			mu.Lock()
			defer mu.Unlock()
			if err == nil && (least < 0 || n < least) {
				least = n
			}
			return err
		})
		return least, err
	}
	return replicasInSync(ctx, s.rdb, maxLag)
}

func replicasInSync(ctx context.Context, c redis.Cmdable, maxLag time.Duration) (int64, error) {
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return 0, fmt.Errorf("info replication: %w", err)
	}
	var n int64
	for line := range strings.SplitSeq(info, "\n") {
		// slave0:ip=10.0.0.2,port=6379,state=online,offset=1234,lag=0
		name, fields, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "slave") {
			continue
		}
		if _, err := strconv.Atoi(strings.TrimPrefix(name, "slave")); err != nil {
			continue
		}
		online, lag := false, int64(-1)
		for f := range strings.SplitSeq(fields, ",") {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "state":
				online = v == "online"
			case "lag":
				lag, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		if online && lag >= 0 && time.Duration(lag)*time.Second <= maxLag {
			n++
		}
	}
	return n, nil
}
