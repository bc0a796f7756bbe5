package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// SendLimiter spaces sends to Twilio so that all replicas together stay within
// twilio.max_sends_per_second: a GCRA token bucket kept in Redis
// (go-redis/redis_rate), so the limit is shared, not per replica.
type SendLimiter struct {
	s     *Store
	l     *redis_rate.Limiter
	key   string // as given to redis_rate, which puts "rate:" before it
	limit redis_rate.Limit
}

// NewSendLimiter limits sends to perSecond across every replica sharing s.
func (s *Store) NewSendLimiter(perSecond int) *SendLimiter {
	lim := redis_rate.PerSecond(perSecond)
	// A burst of one second's worth: a panic after a quiet spell goes at once.
	lim.Burst = perSecond
	return &SendLimiter{s: s, l: redis_rate.NewLimiter(s.rdb), key: s.k.prefix + "ratelimit:twilio", limit: lim}
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

// StartSend takes one turn under the limit and begins the send of o as
// Store.StartSend does, in one step: on a single Redis (or Sentinel) one script
// and one round trip, where Wait and StartSend took two. When the limit says
// wait it returns how long, and nothing has changed (no turn taken, the message
// as it was). ErrFenced when the claim was already lost (no turn taken either).
// On a Cluster the limit's key and the school's live on different nodes, so it
// takes the turn first and then begins the send.
func (l *SendLimiter) StartSend(ctx context.Context, o Outgoing, now time.Time, lease time.Duration) (Outgoing, time.Duration, error) {
	if _, cluster := l.s.rdb.(*redis.ClusterClient); cluster {
		res, err := l.l.Allow(ctx, l.key, l.limit)
		if err != nil {
			return o, 0, fmt.Errorf("rate limit: %w", err)
		}
		if res.Allowed == 0 {
			return o, max(res.RetryAfter, time.Millisecond), nil
		}
		o, err = l.s.StartSend(ctx, o, now, lease)
		return o, 0, err
	}
	renewed := now.Add(lease).UnixMilli()
	res, err := limitedStartScript.Run(ctx, l.s.rdb,
		[]string{l.s.k.outbox(o.School, o.Msg.Priority), l.s.k.message(o.School, o.Member), "rate:" + l.key},
		o.Member, o.Lease, renewed, now.UnixMilli(), l.limit.Burst, l.limit.Rate, l.limit.Period.Seconds()).Slice()
	if err != nil {
		return o, 0, fmt.Errorf("start send %s: %w", o.Member, err)
	}
	switch n, _ := res[0].(int64); n {
	case -1:
		return o, 0, ErrFenced
	case 0:
		s, _ := res[1].(string)
		secs, _ := strconv.ParseFloat(s, 64)
		return o, max(time.Duration(secs*float64(time.Second)), time.Millisecond), nil
	}
	o.Lease = renewed
	return o, 0, nil
}

// limitedStartScript is redis_rate's GCRA (the same key, value and arithmetic,
// so replicas that use Wait share the limit with those that use this) followed
// by messageScript's "sending" update, for SendLimiter.StartSend.
//
// KEYS[1]: the outbox queue; KEYS[2]: the message hash; KEYS[3]: the limit's key.
// ARGV[1]: member; ARGV[2]: the lease score held; ARGV[3]: the renewed lease;
// ARGV[4]: now (Unix ms, the attempt's time); ARGV[5..7]: burst, rate, period (s).
// Returns {1} when begun, {0, retry_after_seconds} when the limit says wait, {-1}
// when the claim was lost.
var limitedStartScript = redis.NewScript(`
redis.replicate_commands()
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not s) or tonumber(s) ~= tonumber(ARGV[2]) then return {-1} end
local emission_interval = ARGV[7] / ARGV[6]
local burst_offset = emission_interval * ARGV[5]
local t = redis.call('TIME')
local now = (t[1] - 1483228800) + (t[2] / 1000000)
local tat = redis.call('GET', KEYS[3])
if not tat then tat = now else tat = tonumber(tat) end
tat = math.max(tat, now)
local new_tat = tat + emission_interval
local diff = now - (new_tat - burst_offset)
if diff < 0 then return {0, tostring(-diff)} end
local reset_after = new_tat - now
if reset_after > 0 then
  redis.call('SET', KEYS[3], new_tat, 'EX', math.ceil(reset_after))
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HINCRBY', KEYS[2], 'attempts', 1)
redis.call('HSET', KEYS[2], 'state', 'sending', 'attempt_at', ARGV[4])
return {1}
`)

// ContactLimiter caps how many messages of one channel a phone gets in a window
// (in the spirit of GoAlert's per-contact throttles): a fixed window kept in
// Redis, shared by every replica. It counts messages, not attempts: each window
// is a set of the IDs of the messages given a place in it, so a message tried
// again keeps its one place, and a message Twilio did not accept gives its place
// back (Release).
type ContactLimiter struct {
	rdb    redis.UniversalClient
	prefix string
	window time.Duration
	max    map[string]int64 // per channel
}

// NewContactLimiter allows max[channel] messages per phone per window.
func (s *Store) NewContactLimiter(window time.Duration, max map[string]int64) *ContactLimiter {
	return &ContactLimiter{rdb: s.rdb, prefix: s.k.prefix + "contactsent:", window: window, max: max}
}

func (l *ContactLimiter) key(phone, channel string, start time.Time) string {
	return fmt.Sprintf("%s%s:%s:%d", l.prefix, channel, phone, start.Unix())
}

// Allow gives message id to phone by channel a place in the window of now, or
// reports that it keeps the one it has. When the phone has no place left it
// reports false and when the window ends (nothing is taken).
func (l *ContactLimiter) Allow(ctx context.Context, phone, channel, id string, now time.Time) (bool, time.Time, error) {
	limit, ok := l.max[channel]
	if !ok {
		return true, time.Time{}, nil
	}
	start := now.Truncate(l.window)
	n, err := contactPlaceScript.Run(ctx, l.rdb, []string{l.key(phone, channel, start)}, id, limit, int64((2*l.window)/time.Second)).Int()
	if err != nil {
		return false, time.Time{}, fmt.Errorf("contact limit: %w", err)
	}
	if n == 0 {
		return false, start.Add(l.window), nil
	}
	return true, time.Time{}, nil
}

// Release gives back the place of message id (Twilio did not accept it): in the
// window of now, or the one before (a send that began as the window turned).
func (l *ContactLimiter) Release(ctx context.Context, phone, channel, id string, now time.Time) error {
	if _, ok := l.max[channel]; !ok {
		return nil
	}
	start := now.Truncate(l.window)
	// Two keys, perhaps on two Cluster nodes: a plain pipeline, not a transaction.
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SRem(ctx, l.key(phone, channel, start), id)
		p.SRem(ctx, l.key(phone, channel, start.Add(-l.window)), id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("contact limit: %w", err)
	}
	return nil
}

// contactPlaceScript gives a message a place in a phone's window.
// KEYS[1]: the window's set; ARGV[1]: the message ID; ARGV[2]: the limit;
// ARGV[3]: the set's lifetime (s). Returns 1 when the message has a place (new or
// kept), 0 when the window is full.
var contactPlaceScript = redis.NewScript(`
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
`)
