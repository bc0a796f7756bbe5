package store

// Outbox claims for a dispatcher that serves every school at once, in two round
// trips for any number of schools: a look (how many messages are ready in each
// queue, and when the next one will be), then claims sized from it, each
// returning its messages whole. (Claiming school by school and priority by
// priority, then loading the claimed hashes, cost about 6 round trips per school
// a pass; at a thousand alerts a second that, not Twilio, was where an alert
// waited.)

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-safety/vigil/internal/visit"
)

// claimMessagesScript claims ready messages of one outbox queue and returns them
// with their hashes, so a claim costs one round trip however many it takes.
//
// KEYS[1]: the queue (a sorted set of message ids by when they are ready, ms).
// ARGV[1]: now (ms); ARGV[2]: lease (ms); ARGV[3]: the most to claim; ARGV[4]: the
// prefix of the school's message hashes (prefix..id; the same hash slot as the
// queue, so this is safe on a Cluster); ARGV[5...]: ids not to claim (the
// caller's own, held or being sent).
// Each other message ready by now, earliest first, is re-scored to now+lease (as
// claimScript does). Returns, per message: id, json, state, attempts, sid,
// attempt_at ("" for a field the hash lacks).
var claimMessagesScript = redis.NewScript(`
local skip = {}
for i = 5, #ARGV do skip[ARGV[i]] = true end
local want = tonumber(ARGV[3])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, want + #ARGV - 4)
local lease = tonumber(ARGV[1]) + tonumber(ARGV[2])
local out = {}
local n = 0
for _, id in ipairs(due) do
  if n >= want then break end
  if not skip[id] then
    n = n + 1
    redis.call('ZADD', KEYS[1], lease, id)
    local h = redis.call('HMGET', ARGV[4] .. id, 'json', 'state', 'attempts', 'sid', 'attempt_at')
    out[#out+1] = id
    for j = 1, 5 do out[#out+1] = h[j] or '' end
  end
end
return out
`)

// claimedFields is how many strings claimMessagesScript returns per message.
const claimedFields = 6

// OutboxLook is what one look at every school's outbox found.
type OutboxLook struct {
	// Ready[i][p] is how many messages of priority p school i has ready now.
	Ready [][]int64
	// Next is the earliest instant any queue's first message is ready (it may be
	// now, or a claim's lease running out); zero when every queue is empty.
	Next time.Time
}

// LookOutbox counts the ready messages in every queue of every school and finds
// when the next one will be ready, in one round trip. It claims nothing.
func (s *Store) LookOutbox(ctx context.Context, schools []string, now time.Time) (OutboxLook, error) {
	look := OutboxLook{Ready: make([][]int64, len(schools))}
	if len(schools) == 0 {
		return look, nil
	}
	nowMs := strconv.FormatInt(now.UnixMilli(), 10)
	res, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, sc := range schools {
			for _, prio := range priorities {
				key := s.k.outbox(sc, prio)
				p.ZCount(ctx, key, "-inf", nowMs)
				p.ZRangeWithScores(ctx, key, 0, 0)
			}
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return look, fmt.Errorf("look at the outbox: %w", err)
	}
	i := 0
	for si := range schools {
		look.Ready[si] = make([]int64, len(priorities))
		for pi := range priorities {
			look.Ready[si][pi] = res[i].(*redis.IntCmd).Val()
			if z := res[i+1].(*redis.ZSliceCmd).Val(); len(z) > 0 {
				at := time.UnixMilli(int64(z[0].Score))
				if look.Next.IsZero() || at.Before(look.Next) {
					look.Next = at
				}
			}
			i += 2
		}
	}
	return look, nil
}

// Quota asks for up to Max ready messages of one priority of one school,
// leaving alone those named in Skip.
type Quota struct {
	School   string
	Priority int
	Max      int
	Skip     []string
}

// ClaimQuotas claims what each quota asks for (or what is ready, if less), in one
// round trip, and returns the claimed messages in the quotas' order. Each queue's
// claim is atomic; a message another replica claimed first is simply not there.
func (s *Store) ClaimQuotas(ctx context.Context, quotas []Quota, now time.Time, lease time.Duration) ([]Outgoing, error) {
	if len(quotas) == 0 {
		return nil, nil
	}
	res, err := s.pipelineScripts(ctx, []*redis.Script{claimMessagesScript}, func(p redis.Pipeliner) {
		for _, q := range quotas {
			args := []any{now.UnixMilli(), lease.Milliseconds(), q.Max, s.k.message(q.School, "")}
			for _, id := range q.Skip {
				args = append(args, id)
			}
			claimMessagesScript.EvalSha(ctx, p, []string{s.k.outbox(q.School, q.Priority)}, args...)
		}
	})
	if len(res) != len(quotas) {
		return nil, fmt.Errorf("claim messages: %w", err)
	}
	// Each claim stands or fails alone: what one took is kept even when another
	// failed, so nothing claimed waits out its lease unsent.
	leaseAt := now.UnixMilli() + lease.Milliseconds()
	var out []Outgoing
	var failed error
	for i, q := range quotas {
		raw, err := res[i].(*redis.Cmd).StringSlice()
		if err != nil && err != redis.Nil {
			failed = fmt.Errorf("claim messages of %s: %w", q.School, err)
			continue
		}
		for j := 0; j+claimedFields <= len(raw); j += claimedFields {
			id, js, state, attempts, sid, attemptAt := raw[j], raw[j+1], raw[j+2], raw[j+3], raw[j+4], raw[j+5]
			var m visit.Message
			if err := json.Unmarshal([]byte(js), &m); err != nil {
				// A message that cannot be read can never be sent: take it off the
				// queue loudly rather than claim it forever.
				s.log.Error("unreadable outbox message dropped", "school", q.School, "id", id, "err", err)
				s.rdb.ZRem(ctx, s.k.outbox(q.School, q.Priority), id)
				continue
			}
			n, _ := strconv.Atoi(attempts)
			out = append(out, Outgoing{Claim: Claim{School: q.School, Member: id, Lease: leaseAt}, Msg: m,
				Attempts: n, State: state, SID: sid, AttemptAt: msField(attemptAt)})
		}
	}
	return out, failed
}

// ReleaseMessages hands claimed messages that were never sent back to their
// queues, ready now, and wakes the dispatchers, so another replica sends them at
// once rather than when the claims would have run out (a dispatcher shutting
// down). A message whose claim this replica no longer holds is left alone.
func (s *Store) ReleaseMessages(ctx context.Context, held []Outgoing, now time.Time) error {
	if len(held) == 0 {
		return nil
	}
	for _, o := range held {
		if err := s.updateMessage(ctx, o, strconv.FormatInt(now.UnixMilli(), 10), 0); err != nil && err != ErrFenced {
			return fmt.Errorf("hand back message %s: %w", o.Member, err)
		}
	}
	return s.rdb.Publish(ctx, s.k.wakeOutbox(), held[0].School).Err()
}
