package store

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// SendLimiter spaces sends to Twilio so that all replicas together stay within
// twilio.max_sends_per_second: a GCRA token bucket kept in Redis
// (go-redis/redis_rate), so the limit is shared, not per replica.
type SendLimiter struct {
	l     *redis_rate.Limiter
	key   string
	limit redis_rate.Limit
}

// NewSendLimiter limits sends to perSecond across every replica sharing s.
func (s *Store) NewSendLimiter(perSecond int) *SendLimiter {
	lim := redis_rate.PerSecond(perSecond)
	// A burst of one second's worth: a panic after a quiet spell goes at once.
	lim.Burst = perSecond
	return &SendLimiter{l: redis_rate.NewLimiter(s.rdb), key: s.k.prefix + "ratelimit:twilio", limit: lim}
}

// Wait blocks until one send may go, or ctx ends.
func (l *SendLimiter) Wait(ctx context.Context) error {
	for {
		res, err := l.l.Allow(ctx, l.key, l.limit)
		if err != nil {
			return fmt.Errorf("rate limit: %w", err)
		}
		if res.Allowed > 0 {
			return nil
		}
		t := time.NewTimer(res.RetryAfter)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// ContactLimiter caps how many messages of one channel a phone gets in a window
// (in the spirit of GoAlert's per-contact throttles): a fixed window counted in
// Redis, shared by every replica.
type ContactLimiter struct {
	rdb    redis.UniversalClient
	prefix string
	window time.Duration
	max    map[string]int64 // per channel
}

// NewContactLimiter allows max[channel] messages per phone per window.
func (s *Store) NewContactLimiter(window time.Duration, max map[string]int64) *ContactLimiter {
	return &ContactLimiter{rdb: s.rdb, prefix: s.k.prefix + "contactlimit:", window: window, max: max}
}

// Allow counts one message to phone by channel at now. When the phone is over its
// limit it reports false and when the window ends (the count is not taken).
func (l *ContactLimiter) Allow(ctx context.Context, phone, channel string, now time.Time) (bool, time.Time, error) {
	limit, ok := l.max[channel]
	if !ok {
		return true, time.Time{}, nil
	}
	start := now.Truncate(l.window)
	key := fmt.Sprintf("%s%s:%s:%d", l.prefix, channel, phone, start.Unix())
	var n *redis.IntCmd
	_, err := l.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		n = p.Incr(ctx, key)
		p.Expire(ctx, key, 2*l.window)
		return nil
	})
	if err != nil {
		return false, time.Time{}, fmt.Errorf("contact limit: %w", err)
	}
	if n.Val() > limit {
		l.rdb.Decr(ctx, key)
		return false, start.Add(l.window), nil
	}
	return true, time.Time{}, nil
}
