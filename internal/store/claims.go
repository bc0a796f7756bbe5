package store

// Timer claims for a scheduler that watches every school at once. ClaimTimers and
// NextTimer (queue.go) cost one round trip per school, so a scheduler pass over S
// schools cost 2S+1 round trips and a fleet of replicas woken by every commit spent
// its time on them. These do the same work for any number of schools in one
// pipelined round trip, and add what a scheduler needs to claim a storm of timers
// ahead of its workers: renewing the leases of claimed timers still waiting for a
// worker, and handing them back on shutdown.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// moveHeldScript re-scores claimed timers whose lease this replica still holds.
//
// KEYS[1]: a school's timer set.
// ARGV[1]: the wake channel, or "" to announce nothing; ARGV[2]: the school.
// ARGV[3...]: member, held lease score, new score — one triple per timer.
// A member whose score is no longer the lease held was taken by another replica
// (the lease ran out) or finished, and is left alone. With a channel, a move
// announces "<school> <earliest new score>" there, as a commit that adds an early
// timer does, so sleeping schedulers look again.
// Returns one 1 (moved) or 0 (not held) per triple.
var moveHeldScript = redis.NewScript(`
local out = {}
local earliest = nil
for i = 3, #ARGV, 3 do
  local s = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if s and tonumber(s) == tonumber(ARGV[i+1]) then
    redis.call('ZADD', KEYS[1], ARGV[i+2], ARGV[i])
    out[#out+1] = 1
    local n = tonumber(ARGV[i+2])
    if (not earliest) or n < earliest then earliest = n end
  else
    out[#out+1] = 0
  end
end
if ARGV[1] ~= '' and earliest then
  redis.call('PUBLISH', ARGV[1], ARGV[2] .. ' ' .. string.format('%d', earliest))
end
return out
`)

// claimReadScript is claimScript that also reads what each claimed timer names, so
// the worker that handles the timer needs no round trip to learn it (Due.target).
//
// KEYS[1]: a school's timer set. ARGV[1..3]: as claimScript's. ARGV[4], ARGV[5]: the
// key prefixes of the school's visits and alerts (the keys are in the set's hash
// slot); ARGV[6]: the most timers a claim may take and still read them. Returns
// [member, due, value, ...]: value is the visit of a "v:" timer or the alert of an
// "a:" timer, nil when it does not exist (or the member is neither), 0 when it was
// not read.
//
// The keys read are not passed in KEYS (they are known only once the members are):
// they share the timer set's hash slot, so the script stays on one node of a Cluster
// (TestClusterEndToEnd), and an ACL key pattern must allow the school's keys.
//
// A claim that takes more reads none: in a storm the claim is what every replica
// waits on, and reading in it made claiming 10,000 timers take 54-73 ms instead of
// 35-38 (reading only the first 16 of each claim, 43-50 ms). Its workers read what
// they need, as before.
var claimReadScript = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
local lease = ARGV[1] + ARGV[2]
local args, out = {}, {}
local read = #due / 2 <= tonumber(ARGV[6])
for i = 1, #due, 2 do
  local m = due[i]
  args[#args+1] = lease
  args[#args+1] = m
  if #args >= 1000 then
    redis.call('ZADD', KEYS[1], unpack(args))
    args = {}
  end
  local kind, value = string.sub(m, 1, 2), 0
  if read then
    value = false
    if kind == 'v:' then
      value = redis.call('GET', ARGV[4] .. string.sub(m, 3))
    elseif kind == 'a:' then
      value = redis.call('GET', ARGV[5] .. string.sub(m, 3))
    end
  end
  out[#out+1] = m
  out[#out+1] = due[i+1]
  out[#out+1] = value
end
if #args > 0 then redis.call('ZADD', KEYS[1], unpack(args)) end
return out
`)

// claimReads is the most timers one claim of a school may take and still read their
// visits or alerts (claimReadScript).
const claimReads = 16

// pipelineScripts runs cmds in one pipeline; when Redis has forgotten a script
// (a restart, SCRIPT FLUSH) it loads the scripts and runs the pipeline once more.
func (s *Store) pipelineScripts(ctx context.Context, scripts []*redis.Script, cmds func(p redis.Pipeliner)) ([]redis.Cmder, error) {
	res, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error { cmds(p); return nil })
	// Any command may be the one that met a server without the scripts (on a
	// Cluster, a master just promoted): the error returned is only the first.
	noScript := false
	for _, c := range res {
		noScript = noScript || (c.Err() != nil && strings.HasPrefix(c.Err().Error(), "NOSCRIPT"))
	}
	if err == nil || !noScript {
		return res, err
	}
	for _, sc := range scripts {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return nil, err
		}
	}
	return s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error { cmds(p); return nil })
}

// ClaimDueTimers claims up to max due timers of each school (as ClaimTimers does,
// atomically per school) in one round trip. When a school's claim takes at most
// claimReads timers, the same script reads the visit or alert each names
// (BeginClaimed hands that read to the worker). It returns the timers claimed, school
// by school, and when each school's earliest timer now falls due: the claim time
// when max were claimed (more may be due), else the earliest score left in the set
// (which may be a lease: a claim that runs out), zero for an empty set. With an
// error it still returns what the schools whose claims went through took.
func (s *Store) ClaimDueTimers(ctx context.Context, schools []string, now time.Time, lease time.Duration, max int) ([][]Due, []time.Time, error) {
	if len(schools) == 0 {
		return nil, nil, nil
	}
	res, err := s.pipelineScripts(ctx, []*redis.Script{claimReadScript}, func(p redis.Pipeliner) {
		for _, sc := range schools {
			key := s.k.timers(sc)
			claimReadScript.EvalSha(ctx, p, []string{key}, now.UnixMilli(), lease.Milliseconds(), max, s.k.visit(sc, ""), s.k.alert(sc, ""), claimReads)
			p.ZRangeWithScores(ctx, key, 0, 0)
		}
	})
	if len(res) != 2*len(schools) {
		return nil, nil, fmt.Errorf("claim timers: %w", err)
	}
	// Each school's claim stands or fails alone (on a Cluster, one master may be
	// down): what the others took is returned with the error, so it is handled
	// now rather than when its lease runs out. A failed school counts as due.
	leaseAt := now.UnixMilli() + lease.Milliseconds()
	due := make([][]Due, len(schools))
	next := make([]time.Time, len(schools))
	var failed error
	for i, sc := range schools {
		raw, err := res[2*i].(*redis.Cmd).Slice()
		if err != nil && err != redis.Nil {
			failed = fmt.Errorf("claim timers of %s: %w", sc, err)
			next[i] = now
			continue
		}
		for j := 0; j+2 < len(raw); j += 3 {
			member, _ := raw[j].(string)
			score, _ := raw[j+1].(string)
			ms, _ := strconv.ParseFloat(score, 64)
			d := Due{Claim: Claim{School: sc, Member: member, Lease: leaseAt}, At: time.UnixMilli(int64(ms))}
			switch v := raw[j+2].(type) {
			case string:
				d.read, d.target = true, &v
			case nil:
				d.read = true // read: it does not exist
			}
			due[i] = append(due[i], d)
		}
		switch z := res[2*i+1].(*redis.ZSliceCmd).Val(); {
		case len(due[i]) >= max:
			next[i] = now
		case len(z) > 0:
			next[i] = time.UnixMilli(int64(z[0].Score))
		}
	}
	return due, next, failed
}

// NextTimers is when each school's earliest timer falls due (zero when it has none),
// in one round trip.
func (s *Store) NextTimers(ctx context.Context, schools []string) ([]time.Time, error) {
	if len(schools) == 0 {
		return nil, nil
	}
	res, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, sc := range schools {
			p.ZRangeWithScores(ctx, s.k.timers(sc), 0, 0)
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return nil, fmt.Errorf("next timers: %w", err)
	}
	out := make([]time.Time, len(schools))
	for i := range schools {
		if z := res[i].(*redis.ZSliceCmd).Val(); len(z) > 0 {
			out[i] = time.UnixMilli(int64(z[0].Score))
		}
	}
	return out, nil
}

// RenewTimers extends to now+lease the claims of held timers (claimed, still
// waiting for a worker) and returns those it still held, with their new lease; the
// others were taken by another replica and must be dropped. One round trip.
func (s *Store) RenewTimers(ctx context.Context, held []Due, now time.Time, lease time.Duration) ([]Due, error) {
	until := now.UnixMilli() + lease.Milliseconds()
	moved, err := s.moveHeld(ctx, held, false, func(Due) int64 { return until })
	if err != nil {
		return nil, fmt.Errorf("renew timer claims: %w", err)
	}
	kept := make([]Due, 0, len(held))
	for i, d := range held {
		if moved[i] {
			d.Lease = until
			kept = append(kept, d)
		}
	}
	return kept, nil
}

// ReleaseTimers hands held timers back: each one this replica still holds gets its
// due time back as its score, and the schools' schedulers are woken to claim them
// at once rather than when the lease would have run out.
func (s *Store) ReleaseTimers(ctx context.Context, held []Due) error {
	if _, err := s.moveHeld(ctx, held, true, func(d Due) int64 { return d.At.UnixMilli() }); err != nil {
		return fmt.Errorf("hand back timer claims: %w", err)
	}
	return nil
}

// moveHeld re-scores held timers, school by school in one pipeline, and reports
// which ones were still held.
func (s *Store) moveHeld(ctx context.Context, held []Due, announce bool, score func(Due) int64) ([]bool, error) {
	if len(held) == 0 {
		return nil, nil
	}
	channel := ""
	if announce {
		channel = s.k.wake()
	}
	var order []string
	bySchool := map[string][]int{}
	for i, d := range held {
		if _, ok := bySchool[d.School]; !ok {
			order = append(order, d.School)
		}
		bySchool[d.School] = append(bySchool[d.School], i)
	}
	res, err := s.pipelineScripts(ctx, []*redis.Script{moveHeldScript}, func(p redis.Pipeliner) {
		for _, sc := range order {
			args := []any{channel, sc}
			for _, i := range bySchool[sc] {
				args = append(args, held[i].Member, held[i].Lease, score(held[i]))
			}
			moveHeldScript.EvalSha(ctx, p, []string{s.k.timers(sc)}, args...)
		}
	})
	if err != nil {
		return nil, err
	}
	out := make([]bool, len(held))
	for j, sc := range order {
		flags, err := res[j].(*redis.Cmd).Int64Slice()
		if err != nil {
			return nil, err
		}
		for k, i := range bySchool[sc] {
			out[i] = k < len(flags) && flags[k] == 1
		}
	}
	return out, nil
}
