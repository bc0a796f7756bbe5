package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-safety/vigil/internal/visit"
)

// commitScript applies one event's changes atomically, after checking that nothing
// the event read has changed (optimistic concurrency) and, for a timer, that this
// replica still holds the timer's claim (fencing).
//
// KEYS: every key the change touches (all in one school's hash slot).
// ARGV: a list of operations, each an opcode and its arguments, every check before
// any write (tx.argv writes them in that order); k is a key's index in KEYS:
//
//	wt k          remember the timer set's earliest instant, for pub
//	f k m score   the timer member m must still have this (lease) score
//	e k value     the key must hold value;  n k: the key must not exist
//	he k f value  the hash field must hold value;  hn k f: it must not exist
//	set k value ttl_ms  SET (ttl 0 = none);  hset k f value;  del k
//	sadd k m, srem k m, zadd k m score, zrem k m
//	msg hash_k outbox_k id json score   queue a message unless its hash exists
//	xadd k value maxlen   append to a stream (field "e")
//	pub channel text   announce new timers, only if the earliest instant of the
//	                   timer set named by wt is now sooner than before (other timer
//	                   changes mean nothing to a scheduler that already sleeps
//	                   until an earlier or the same instant)
//	pubm channel text  announce queued messages to the dispatchers
//
// A flat list rather than a JSON document: decoding JSON in the script (the values
// escaped inside it) was about 40 % of the commit's time in Redis.
//
// Returns 1 when committed, 2 when committed and a timer announced, 0 on a
// conflict, -1 when the claim was lost.
var commitScript = redis.NewScript(`
local a, n, i = ARGV, #ARGV, 1
local wt, before = nil, nil
local announced = 1
local function key(j) return KEYS[tonumber(a[j])] end
local function earliest(k)
  local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
  return tonumber(first[2])
end
while i <= n do
  local op = a[i]
  if op == 'e' then
    if redis.call('GET', key(i+1)) ~= a[i+2] then return 0 end
    i = i + 3
  elseif op == 'n' then
    if redis.call('GET', key(i+1)) then return 0 end
    i = i + 2
  elseif op == 'set' then
    if tonumber(a[i+3]) > 0 then
      redis.call('SET', key(i+1), a[i+2], 'PX', a[i+3])
    else
      redis.call('SET', key(i+1), a[i+2])
    end
    i = i + 4
  elseif op == 'zadd' then
    redis.call('ZADD', key(i+1), a[i+3], a[i+2])
    i = i + 4
  elseif op == 'xadd' then
    redis.call('XADD', key(i+1), 'MAXLEN', '~', a[i+3], '*', 'e', a[i+2])
    i = i + 4
  elseif op == 'he' then
    if redis.call('HGET', key(i+1), a[i+2]) ~= a[i+3] then return 0 end
    i = i + 4
  elseif op == 'hn' then
    if redis.call('HGET', key(i+1), a[i+2]) then return 0 end
    i = i + 3
  elseif op == 'hset' then
    redis.call('HSET', key(i+1), a[i+2], a[i+3])
    i = i + 4
  elseif op == 'f' then
    local s = redis.call('ZSCORE', key(i+1), a[i+2])
    if (not s) or tonumber(s) ~= tonumber(a[i+3]) then return -1 end
    i = i + 4
  elseif op == 'wt' then
    wt = key(i+1)
    before = earliest(wt)
    i = i + 2
  elseif op == 'zrem' then
    redis.call('ZREM', key(i+1), a[i+2])
    i = i + 3
  elseif op == 'sadd' then
    redis.call('SADD', key(i+1), a[i+2])
    i = i + 3
  elseif op == 'srem' then
    redis.call('SREM', key(i+1), a[i+2])
    i = i + 3
  elseif op == 'del' then
    redis.call('DEL', key(i+1))
    i = i + 2
  elseif op == 'msg' then
    if redis.call('EXISTS', key(i+1)) == 0 then
      redis.call('HSET', key(i+1), 'json', a[i+4], 'state', 'queued', 'attempts', 0)
      redis.call('ZADD', key(i+2), a[i+5], a[i+3])
    end
    i = i + 6
  elseif op == 'pub' then
    local wake = true
    if wt then
      local after = earliest(wt)
      wake = after ~= nil and (before == nil or after < before)
    end
    if wake then
      redis.call('PUBLISH', a[i+1], a[i+2])
      announced = 2
    end
    i = i + 3
  elseif op == 'pubm' then
    redis.call('PUBLISH', a[i+1], a[i+2])
    i = i + 3
  else
    return redis.error_reply('commit: unknown operation ' .. tostring(op))
  end
end
return announced
`)

// auditMaxLen bounds each school's audit stream (the retention job trims by age).
const auditMaxLen = 1_000_000

// Snapshot is the state one event read from one school, with the raw values it saw,
// so Commit can check that none of them changed.
type Snapshot struct {
	s      *Store
	school string
	seen   map[string]*string // key -> raw value read (nil = absent)
	// states holds the officer states read from the school's hash: officer -> raw
	// field value (nil = absent). Their legacy keys are in seen.
	states map[string]*string
	// announced is set by a commit that published a wake-up.
	announced bool
	// checks are keys read that Commit checks are unchanged even when the change
	// does not write them (BeginClaimed: the claimed timer's visit or alert).
	checks []string
}

// Begin starts reading the state of one school.
func (s *Store) Begin(school string) *Snapshot {
	return &Snapshot{s: s, school: school, seen: map[string]*string{}, states: map[string]*string{}}
}

// BeginClaimed is Begin for the worker of a claimed timer. It starts holding the
// visit or alert the timer names, as the claim read it, so reading it costs no round
// trip. The claim may have been a while ago (a storm's timers wait for workers), so
// Commit checks that value is unchanged whether or not the change writes it: a
// decision made on a stale read (even just when to look at the timer again) is
// refused as a conflict and made again on a fresh read. A Due not claimed by
// ClaimDueTimers begins an ordinary snapshot that checks the same key all the same.
func (s *Store) BeginClaimed(d Due) *Snapshot {
	sn := s.Begin(d.School)
	kind, id, ok := TimerTarget(d.Member)
	var key string
	switch {
	case !ok:
		return sn
	case kind == 'v':
		key = s.k.visit(d.School, id)
	case kind == 'a':
		key = s.k.alert(d.School, id)
	default:
		return sn
	}
	if d.read {
		sn.seen[key] = d.target
	}
	sn.checks = append(sn.checks, key)
	return sn
}

// School is the school this snapshot reads.
func (sn *Snapshot) School() string { return sn.school }

// get reads a key and remembers the raw value for Commit's check; ok is false when
// the key does not exist.
func (sn *Snapshot) get(ctx context.Context, key string) (raw []byte, ok bool, err error) {
	if r, read := sn.seen[key]; read { // read before, or by ReadAhead: the same value
		return rawOf(r)
	}
	s, err := sn.s.rdb.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		sn.seen[key] = nil
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	sn.seen[key] = &s
	return []byte(s), true, nil
}

// Visit reads one visit; nil when it does not exist.
func (sn *Snapshot) Visit(ctx context.Context, id string) (*visit.Visit, error) {
	if id == "" {
		return nil, nil
	}
	raw, ok, err := sn.get(ctx, sn.s.k.visit(sn.school, id))
	if err != nil || !ok {
		return nil, wrap(err, "load visit "+id)
	}
	return decodeVisit(sn.school, id, raw)
}

// Alert reads one alert; nil when it does not exist.
func (sn *Snapshot) Alert(ctx context.Context, id string) (*visit.Alert, error) {
	if id == "" {
		return nil, nil
	}
	raw, ok, err := sn.get(ctx, sn.s.k.alert(sn.school, id))
	if err != nil || !ok {
		return nil, wrap(err, "load alert "+id)
	}
	return decodeAlert(sn.school, id, raw)
}

// Alerts reads the alerts named, skipping any that no longer exist.
func (sn *Snapshot) Alerts(ctx context.Context, ids []string) ([]*visit.Alert, error) {
	var out []*visit.Alert
	for _, id := range ids {
		a, err := sn.Alert(ctx, id)
		if err != nil {
			return nil, err
		}
		if a != nil {
			out = append(out, a)
		}
	}
	return out, nil
}

// OpenAlerts reads every open alert of the school, oldest first.
func (sn *Snapshot) OpenAlerts(ctx context.Context) ([]*visit.Alert, error) {
	ids, err := sn.s.rdb.SMembers(ctx, sn.s.k.openAlerts(sn.school)).Result()
	if err != nil {
		return nil, fmt.Errorf("list open alerts: %w", err)
	}
	out, err := sn.Alerts(ctx, ids)
	sort.Slice(out, func(i, j int) bool { return out[i].RaisedAt.Before(out[j].RaisedAt) })
	return out, err
}

// OfficerState reads what Vigil remembers of an officer: the officer's field of the
// school's officer-state hash, or the key of its own an earlier version left (which
// wins: a commit of this version deletes it when it writes the field, so a key
// still there was written by an earlier version since, or never replaced). Both are
// read in one round trip, and the commit checks both.
func (sn *Snapshot) OfficerState(ctx context.Context, officer string) (visit.OfficerState, error) {
	legacy := sn.s.k.officerState(sn.school, officer)
	if _, read := sn.states[officer]; !read {
		if err := sn.readStates(ctx, []string{officer}, nil, nil); err != nil {
			return visit.OfficerState{}, err
		}
	}
	raw := sn.seen[legacy]
	if raw == nil {
		raw = sn.states[officer]
	}
	if raw == nil {
		return visit.OfficerState{}, nil
	}
	st, err := decodeOfficerState([]byte(*raw))
	return st, wrap(err, "officer state "+officer)
}

// readStates reads, in one round trip, the officer states named (field and legacy
// key) and the other keys given, and keeps each in the snapshot unless it was read
// before (the snapshot keeps the first value it saw). extra, if not nil, adds
// commands of the caller's to the same round trip; their errors are the caller's
// to read.
func (sn *Snapshot) readStates(ctx context.Context, officers, keys []string, extra func(p redis.Pipeliner)) error {
	hash := sn.s.k.officerStates(sn.school)
	for _, o := range officers {
		keys = append(keys, sn.s.k.officerState(sn.school, o))
	}
	var fields *redis.SliceCmd
	var vals *redis.SliceCmd
	_, _ = sn.s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		fields = p.HMGet(ctx, hash, officers...)
		vals = p.MGet(ctx, keys...)
		if extra != nil {
			extra(p)
		}
		return nil
	})
	if err := errors.Join(fields.Err(), vals.Err()); err != nil {
		return fmt.Errorf("read officer states %v: %w", officers, err)
	}
	keep := func(m map[string]*string, k string, v any) {
		if _, read := m[k]; read {
			return
		}
		if s, ok := v.(string); ok {
			m[k] = &s
		} else {
			m[k] = nil
		}
	}
	for i, o := range officers {
		keep(sn.states, o, fields.Val()[i])
	}
	for i, k := range keys {
		keep(sn.seen, k, vals.Val()[i])
	}
	return nil
}

func wrap(err error, what string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Claim is a timer or message this replica holds until Lease (Unix ms).
type Claim struct {
	School string
	Member string
	Lease  int64
}

// Change is everything one event decided, ready to be written.
type Change struct {
	Result visit.Result
	// Timers maps timer members ("v:<visit>", "a:<alert>") to when they must fire;
	// a zero time removes the timer.
	Timers map[string]time.Time
	// OfficerStates are the officers' states after the event.
	OfficerStates map[string]visit.OfficerState
	// Fence, for a timer event, is the claim that must still be held.
	Fence *Claim
	// InboundSID and InboundReply record a Twilio message as handled, with its reply.
	InboundSID   string
	InboundReply string
	// Now is when the event happened: messages queue in the order they were decided.
	Now time.Time
	// ClaimFor, when set, queues the messages already claimed by this replica
	// until Now+ClaimFor (Claimed lists them), for its dispatcher to send at
	// once, and wakes no other replica's dispatcher for them. If this replica
	// dies first, every replica finds them when the claims run out.
	ClaimFor time.Duration
}

// Claimed is the change's messages, committed in school, as ClaimFor claims
// them, for this replica's dispatcher: nil without ClaimFor.
func (ch Change) Claimed(school string) []Outgoing {
	if ch.ClaimFor <= 0 || len(ch.Result.Messages) == 0 {
		return nil
	}
	lease := ch.Now.Add(ch.ClaimFor).UnixMilli()
	out := make([]Outgoing, len(ch.Result.Messages))
	for i, m := range ch.Result.Messages {
		out[i] = Outgoing{Claim: Claim{School: school, Member: m.ID, Lease: lease}, Msg: m, State: "queued"}
	}
	return out
}

// tx is what the commit script does, by kind of operation; argv lists it for the
// script, every check before any write.
type tx struct {
	E    [][]any
	HE   [][]any
	F    []any
	Set  [][]any
	HSet [][]any
	Del  []int
	SAdd [][]any
	SRem [][]any
	ZAdd [][]any
	ZRem [][]any
	Msg  [][]any
	XAdd [][]any
	Pub  []string
	WT   []any
	PubM []string
}

// argv is the script's ARGV: the operations in the order the script must meet
// them (the remembered earliest timer, the fence and every check, then the
// writes, then the announcements).
func (t *tx) argv() []any {
	out := make([]any, 0, 64)
	if t.WT != nil {
		out = append(out, "wt", t.WT[0])
	}
	if t.F != nil {
		out = append(out, "f")
		out = append(out, t.F...)
	}
	for _, e := range t.E {
		if len(e) == 1 {
			out = append(out, "n", e[0])
		} else {
			out = append(out, "e", e[0], e[1])
		}
	}
	for _, e := range t.HE {
		if len(e) == 2 {
			out = append(out, "hn", e[0], e[1])
		} else {
			out = append(out, "he", e[0], e[1], e[2])
		}
	}
	ops := func(op string, xs [][]any) {
		for _, x := range xs {
			out = append(out, op)
			out = append(out, x...)
		}
	}
	ops("set", t.Set)
	ops("hset", t.HSet)
	for _, k := range t.Del {
		out = append(out, "del", k)
	}
	ops("sadd", t.SAdd)
	ops("srem", t.SRem)
	ops("zadd", t.ZAdd)
	ops("zrem", t.ZRem)
	ops("msg", t.Msg)
	ops("xadd", t.XAdd)
	if t.Pub != nil {
		out = append(out, "pub", t.Pub[0], t.Pub[1])
	}
	if t.PubM != nil {
		out = append(out, "pubm", t.PubM[0], t.PubM[1])
	}
	return out
}

type txBuilder struct {
	keys  []string
	index map[string]int
	tx    tx
}

func (b *txBuilder) k(key string) int {
	if i, ok := b.index[key]; ok {
		return i
	}
	b.keys = append(b.keys, key)
	b.index[key] = len(b.keys) // Lua is 1-based
	return len(b.keys)
}

// inboundTTL is how long a handled MessageSid is remembered, with its reply. Twilio
// sends a webhook again only on a failed connection, and only within the webhook's
// total time (at most 15 s, connection overrides included); nothing else sends a
// MessageSid twice. Six hours covers that many times over, and bounds the keys
// (one per inbound SMS) to six hours of traffic. README "Repeats from Twilio".
const inboundTTL = 6 * time.Hour

// Commit writes the change atomically. It returns ErrConflict when something read
// has changed (decide again) and ErrFenced when the timer claim was lost.
func (sn *Snapshot) Commit(ctx context.Context, ch Change) error {
	k := sn.s.k
	s := sn.school
	b := &txBuilder{index: map[string]int{}}
	// expect checks a written key against what was read; a key never read must not
	// exist yet (a new visit or alert).
	var expected map[string]bool // only kept for sn.checks
	if len(sn.checks) > 0 {
		expected = map[string]bool{}
	}
	expect := func(key string) {
		if expected != nil {
			expected[key] = true
		}
		if raw, ok := sn.seen[key]; ok && raw != nil {
			b.tx.E = append(b.tx.E, []any{b.k(key), *raw})
		} else {
			b.tx.E = append(b.tx.E, []any{b.k(key)})
		}
	}
	// set writes a value encoded for storage (codec.go).
	set := func(key string, raw []byte, err error) error {
		if err != nil {
			return fmt.Errorf("encode %s: %w", key, err)
		}
		expect(key)
		b.tx.Set = append(b.tx.Set, []any{b.k(key), string(raw), 0})
		return nil
	}
	if ch.Fence != nil {
		b.tx.F = []any{b.k(k.timers(s)), ch.Fence.Member, ch.Fence.Lease}
	}
	for _, v := range ch.Result.Visits {
		raw, err := encodeVisit(v)
		if err := set(k.visit(s, v.ID), raw, err); err != nil {
			return err
		}
		// Open visits are listed from the officer states that name them
		// (OpenVisits). The set of open visits earlier versions kept only loses
		// the visits that close, so it empties as theirs do.
		if !v.Open() {
			b.tx.SRem = append(b.tx.SRem, []any{b.k(k.openVisits(s)), v.ID})
			b.tx.ZAdd = append(b.tx.ZAdd, []any{b.k(k.closedVisits(s)), v.ID, v.ClosedAt.UnixMilli()})
		}
	}
	for _, a := range ch.Result.Alerts {
		_, known := sn.seen[k.alert(s, a.ID)]
		raw, err := encodeAlert(a)
		if err := set(k.alert(s, a.ID), raw, err); err != nil {
			return err
		}
		if !known && a.Code != "" {
			// A new alert claims its code; two alerts raised at once with the same
			// code conflict here and the loser decides again with another.
			b.tx.E = append(b.tx.E, []any{b.k(k.code(s, a.Code))})
		}
		if a.Open() {
			b.tx.SAdd = append(b.tx.SAdd, []any{b.k(k.openAlerts(s)), a.ID})
			b.tx.ZAdd = append(b.tx.ZAdd, []any{b.k(k.alerts(s)), a.ID, a.RaisedAt.UnixMilli()})
			if a.Code != "" {
				b.tx.Set = append(b.tx.Set, []any{b.k(k.code(s, a.Code)), a.ID, 0})
			}
		} else {
			b.tx.SRem = append(b.tx.SRem, []any{b.k(k.openAlerts(s)), a.ID})
			if a.Code != "" {
				b.tx.Del = append(b.tx.Del, b.k(k.code(s, a.Code)))
			}
		}
	}
	for _, key := range sn.checks {
		if _, read := sn.seen[key]; read && !expected[key] {
			expect(key)
		}
	}
	officers := make([]string, 0, len(ch.OfficerStates))
	for o := range ch.OfficerStates {
		officers = append(officers, o)
	}
	sort.Strings(officers)
	for _, o := range officers {
		raw, err := encodeOfficerState(ch.OfficerStates[o])
		if err != nil {
			return fmt.Errorf("encode officer state %s: %w", o, err)
		}
		// The field must hold what was read (or not exist, if never read), and
		// so must the legacy key, which is deleted: the field replaces it.
		hash, legacy := b.k(k.officerStates(s)), k.officerState(s, o)
		if r := sn.states[o]; r != nil {
			b.tx.HE = append(b.tx.HE, []any{hash, o, *r})
		} else {
			b.tx.HE = append(b.tx.HE, []any{hash, o})
		}
		expect(legacy)
		if sn.seen[legacy] != nil {
			b.tx.Del = append(b.tx.Del, b.k(legacy))
		}
		b.tx.HSet = append(b.tx.HSet, []any{hash, o, string(raw)})
	}
	members := make([]string, 0, len(ch.Timers))
	for m := range ch.Timers {
		members = append(members, m)
	}
	sort.Strings(members)
	var earliest int64
	for _, m := range members {
		at := ch.Timers[m]
		if at.IsZero() {
			b.tx.ZRem = append(b.tx.ZRem, []any{b.k(k.timers(s)), m})
			continue
		}
		ms := at.UnixMilli()
		b.tx.ZAdd = append(b.tx.ZAdd, []any{b.k(k.timers(s)), m, ms})
		if earliest == 0 || ms < earliest {
			earliest = ms
		}
	}
	if ch.Fence != nil {
		if _, rescheduled := ch.Timers[ch.Fence.Member]; !rescheduled {
			b.tx.ZRem = append(b.tx.ZRem, []any{b.k(k.timers(s)), ch.Fence.Member})
		}
	}
	for _, m := range ch.Result.Messages {
		raw, err := json.Marshal(m)
		if err != nil {
			return err
		}
		// Ready now, or claimed by this replica (its lease as the score).
		score := ch.Now.UnixMilli()
		if ch.ClaimFor > 0 {
			score = ch.Now.Add(ch.ClaimFor).UnixMilli()
		}
		b.tx.Msg = append(b.tx.Msg, []any{b.k(k.message(s, m.ID)), b.k(k.outbox(s, m.Priority)), m.ID, string(raw), score})
	}
	for _, e := range ch.Result.Audit {
		raw, err := encodeAuditEvent(e)
		if err != nil {
			return err
		}
		b.tx.XAdd = append(b.tx.XAdd, []any{b.k(k.audit(s)), string(raw), auditMaxLen})
	}
	if ch.InboundSID != "" {
		key := k.inbound(s, ch.InboundSID)
		b.tx.E = append(b.tx.E, []any{b.k(key)})
		b.tx.Set = append(b.tx.Set, []any{b.k(key), ch.InboundReply, inboundTTL.Milliseconds()})
	}
	if earliest > 0 {
		b.tx.Pub = []string{k.wake(), fmt.Sprintf("%s %d", s, earliest)}
		b.tx.WT = []any{b.k(k.timers(s))}
	}
	if len(ch.Result.Messages) > 0 && ch.ClaimFor <= 0 {
		b.tx.PubM = []string{k.wakeOutbox(), s}
	}
	if len(b.keys) == 0 {
		return nil
	}
	n, err := commitScript.Run(ctx, sn.s.rdb, b.keys, b.tx.argv()...).Int()
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	switch n {
	case 0:
		return ErrConflict
	case -1:
		return ErrFenced
	}
	sn.announced = n == 2
	return nil
}

// Announced reports whether the committed change woke the schedulers (it added
// a timer due before every other).
func (sn *Snapshot) Announced() bool { return sn.announced }
