package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Replicas registers replica id as alive at now and returns every replica that
// registered within ttl, itself included (one round trip). The schedulers use it
// to share the schools out: each claims the timers of the schools it owns as they
// fall due, and the others' a little later (scheduler.Owner).
func (s *Store) Replicas(ctx context.Context, id string, now time.Time, ttl time.Duration) ([]string, error) {
	key := s.k.replicas()
	ms := now.UnixMilli()
	var live *redis.StringSliceCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, key, redis.Z{Score: float64(ms), Member: id})
		// Forget replicas long gone (they left without saying so).
		p.ZRemRangeByScore(ctx, key, "-inf", "("+strconv.FormatInt(ms-10*ttl.Milliseconds(), 10))
		live = p.ZRangeByScore(ctx, key, &redis.ZRangeBy{Min: strconv.FormatInt(ms-ttl.Milliseconds(), 10), Max: "+inf"})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("replicas: %w", err)
	}
	return live.Val(), nil
}

// LeaveReplicas removes replica id (on shutdown), so the others own its schools at
// once rather than when its registration runs out.
func (s *Store) LeaveReplicas(ctx context.Context, id string) error {
	return s.rdb.ZRem(ctx, s.k.replicas(), id).Err()
}
