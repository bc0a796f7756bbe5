package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-safety/vigil/internal/visit"
)

// claimScript claims due members of a sorted set of instants (a school's timers).
//
// KEYS[1]: the sorted set (score = when the member is due, Unix ms).
// ARGV[1]: now (Unix ms); ARGV[2]: lease (ms); ARGV[3]: the most to claim.
// Each member due by now, earliest first, is re-scored to now+lease: no other
// replica claims it until the lease runs out, and a replica that dies holding it
// hands it back by simply not finishing. Returns [member, due, ...]. The
// members are re-scored 500 to a ZADD (one call per member made a storm's
// claim several times slower).
var claimScript = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
local lease = ARGV[1] + ARGV[2]
local args = {}
for i = 1, #due, 2 do
  args[#args+1] = lease
  args[#args+1] = due[i]
  if #args >= 1000 then
    redis.call('ZADD', KEYS[1], unpack(args))
    args = {}
  end
end
if #args > 0 then redis.call('ZADD', KEYS[1], unpack(args)) end
return due
`)

// messageScript records what happened to a claimed message, if the claim still holds
// (and ends or moves a claimed receipt check: moveCheck).
//
// KEYS[1]: the outbox queue (or the receipt-check set); KEYS[2]: the message hash.
// ARGV[1]: member; ARGV[2]: the lease score this replica holds; ARGV[3]: the new
// score, or "" to take the member off the queue; ARGV[4]: how much to add to
// attempts; ARGV[5...]: field, value pairs to set on the hash.
// Returns 1, or -1 when the lease was lost (another replica has the message).
var messageScript = redis.NewScript(`
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not s) or tonumber(s) ~= tonumber(ARGV[2]) then return -1 end
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
if tonumber(ARGV[4]) ~= 0 then redis.call('HINCRBY', KEYS[2], 'attempts', ARGV[4]) end
if #ARGV > 4 then redis.call('HSET', KEYS[2], unpack(ARGV, 5)) end
return 1
`)

// Due is a claimed timer and when it fell due.
type Due struct {
	Claim
	At time.Time
	// read is set when the claim also read the visit or alert the timer names
	// (ClaimDueTimers); target is its raw value then, nil when it did not exist.
	read   bool
	target *string
}

// ClaimTimers claims up to max timers of a school that are due by now.
func (s *Store) ClaimTimers(ctx context.Context, school string, now time.Time, lease time.Duration, max int) ([]Due, error) {
	got, err := s.claim(ctx, s.k.timers(school), school, now, lease, max)
	if err != nil {
		return nil, fmt.Errorf("claim timers of %s: %w", school, err)
	}
	return got, nil
}

func (s *Store) claim(ctx context.Context, key, school string, now time.Time, lease time.Duration, max int) ([]Due, error) {
	res, err := claimScript.Run(ctx, s.rdb, []string{key}, now.UnixMilli(), lease.Milliseconds(), max).StringSlice()
	if err != nil {
		return nil, err
	}
	return claimed(school, res, now.UnixMilli()+lease.Milliseconds()), nil
}

// claimed reads claimScript's answer [member, due, ...] for school, each claimed
// until leaseAt (Unix ms).
func claimed(school string, res []string, leaseAt int64) []Due {
	out := make([]Due, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		ms, _ := strconv.ParseFloat(res[i+1], 64)
		out = append(out, Due{Claim: Claim{School: school, Member: res[i], Lease: leaseAt}, At: time.UnixMilli(int64(ms))})
	}
	return out
}

// NextTimer is when the school's earliest timer falls due (false when none).
func (s *Store) NextTimer(ctx context.Context, school string) (time.Time, bool, error) {
	return s.earliest(ctx, s.k.timers(school))
}

func (s *Store) earliest(ctx context.Context, key string) (time.Time, bool, error) {
	z, err := s.rdb.ZRangeWithScores(ctx, key, 0, 0).Result()
	if err != nil || len(z) == 0 {
		return time.Time{}, false, err
	}
	return time.UnixMilli(int64(z[0].Score)), true, nil
}

// TimerTarget splits a timer member into its kind ('v' visit, 'a' alert) and ID.
func TimerTarget(member string) (kind byte, id string, ok bool) {
	if len(member) < 3 || member[1] != ':' {
		return 0, "", false
	}
	return member[0], member[2:], true
}

// VisitTimer and AlertTimer name the timer of a visit or an alert.
func VisitTimer(id string) string { return visitTimer(id) }

// AlertTimer names the timer of an alert.
func AlertTimer(id string) string { return alertTimer(id) }

// Priorities of the outbox queues, highest first.
var priorities = []int{visit.PriorityPanic, visit.PriorityAlert, visit.PriorityNormal}

// Outgoing is a claimed outbox message.
type Outgoing struct {
	Claim
	Msg      visit.Message
	Attempts int    // sends begun before this one
	State    string // queued, sending (a send began and was never recorded), retry
	SID      string
	// AttemptAt is when the last send began (RecordAttempt's now); zero if none did.
	AttemptAt time.Time
}

// ClaimMessages claims up to max messages of a school that are ready by now, the
// highest priority first: a panic never waits behind a queue of reminders. (The
// dispatcher claims across schools with LookOutbox and ClaimQuotas; this is the
// same claim for one school.)
func (s *Store) ClaimMessages(ctx context.Context, school string, now time.Time, lease time.Duration, max int) ([]Outgoing, error) {
	var out []Outgoing
	for _, prio := range priorities {
		if len(out) >= max {
			break
		}
		got, err := s.ClaimQuotas(ctx, []Quota{{School: school, Priority: prio, Max: max - len(out)}}, now, lease)
		out = append(out, got...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// OutboxDepth counts queued messages across every school.
func (s *Store) OutboxDepth(ctx context.Context, schools []string) (int64, error) {
	var n int64
	for _, sc := range schools {
		for _, prio := range priorities {
			c, err := s.rdb.ZCard(ctx, s.k.outbox(sc, prio)).Result()
			if err != nil {
				return 0, err
			}
			n += c
		}
	}
	return n, nil
}

func (s *Store) updateMessage(ctx context.Context, o Outgoing, score string, attempts int, fields ...any) error {
	args := append([]any{o.Member, o.Lease, score, attempts}, fields...)
	n, err := messageScript.Run(ctx, s.rdb, []string{s.k.outbox(o.School, o.Msg.Priority), s.k.message(o.School, o.Member)}, args...).Int()
	if err != nil {
		return fmt.Errorf("record message %s: %w", o.Member, err)
	}
	if n < 0 {
		return ErrFenced
	}
	return nil
}

// RecordAttempt notes, before sending, that a send is under way: a replica that
// finds a message in state "sending" knows an earlier send may have gone out.
func (s *Store) RecordAttempt(ctx context.Context, o Outgoing, now time.Time) error {
	return s.updateMessage(ctx, o, strconv.FormatInt(o.Lease, 10), 1, "state", "sending", "attempt_at", now.UnixMilli())
}

// StartSend notes, just before sending, that a send is under way (as RecordAttempt)
// and renews the claim to now+lease, so the send has a whole lease to finish in
// however long the message waited for its turn. It returns the message with its
// new lease; ErrFenced when the claim was already lost.
func (s *Store) StartSend(ctx context.Context, o Outgoing, now time.Time, lease time.Duration) (Outgoing, error) {
	renewed := now.Add(lease).UnixMilli()
	if err := s.updateMessage(ctx, o, strconv.FormatInt(renewed, 10), 1, "state", "sending", "attempt_at", now.UnixMilli()); err != nil {
		return o, err
	}
	o.Lease = renewed
	return o, nil
}

// AbandonSend takes back a send that StartSend began and that was not made (the
// claim was too close to its end to risk it): the message goes back on its
// queue, ready at now, with the state, attempt count and attempt time it had
// before (prev), so no one takes a send that never happened for one that may
// have gone out. ErrFenced when the claim was already lost.
func (s *Store) AbandonSend(ctx context.Context, o Outgoing, prev Outgoing, now time.Time) error {
	var at int64 // msField reads 0 as "no attempt"
	if !prev.AttemptAt.IsZero() {
		at = prev.AttemptAt.UnixMilli()
	}
	return s.updateMessage(ctx, o, strconv.FormatInt(now.UnixMilli(), 10), -1, "state", prev.State, "attempt_at", at)
}

// EarlyReceipt is a delivery receipt that reached Vigil before the send it is
// about was recorded (KeepPendingReceipt), handed over when it is.
type EarlyReceipt struct {
	Status string
	Code   int
}

// RecordSent notes that Twilio accepted the message, indexes its SID for delivery
// receipts, lists an alert's receipt check (checks.go), and takes any receipt for
// that SID that came first (early, nil when none: see KeepPendingReceipt).
//
// On a single Redis (or Sentinel) all three go in one round trip, in that order,
// so a receipt kept after the take finds the SID indexed. On a Cluster, where the
// keys live on different nodes, the receipt is taken once the rest is done. The
// SID is indexed even when the claim was lost (the message did go out under that
// SID, and its receipts belong to it).
func (s *Store) RecordSent(ctx context.Context, o Outgoing, sid string, now time.Time) (early *EarlyReceipt, err error) {
	_, cluster := s.rdb.(*redis.ClusterClient)
	var rec *redis.Cmd
	var index *redis.StatusCmd
	var take *redis.StringCmd
	var check *redis.IntCmd
	// Each command's own error is read below (a missing receipt is redis.Nil).
	_, _ = s.pipelineScripts(ctx, []*redis.Script{messageScript}, func(p redis.Pipeliner) {
		if take != nil && take.Err() == nil {
			// Sent again after NOSCRIPT: the first try took the receipt.
			early = parseReceipt(take.Val())
		}
		rec = messageScript.EvalSha(ctx, p, []string{s.k.outbox(o.School, o.Msg.Priority), s.k.message(o.School, o.Member)},
			o.Member, o.Lease, "", 0, "state", "sent", "sid", sid, "sent_at", now.UnixMilli())
		if sid != "" {
			index = p.Set(ctx, s.k.twilioSID(sid), o.School+"\x00"+o.Member, 14*24*time.Hour)
			if at := s.receiptCheckAt(o, now); !at.IsZero() {
				// NX: a repeated record does not put a check further off.
				check = p.ZAddNX(ctx, s.k.receiptChecks(o.School), redis.Z{Score: float64(at.UnixMilli()), Member: o.Member})
			}
			if !cluster {
				take = p.GetDel(ctx, s.k.pendingReceipt(sid))
			}
		}
	})
	// A receipt taken is handed back whatever else failed: it is gone from Redis.
	indexed := index != nil && index.Err() == nil
	var takeErr error
	switch {
	case sid == "":
	case take != nil && take.Err() == nil:
		early = parseReceipt(take.Val())
	case take != nil && errors.Is(take.Err(), redis.Nil):
		// None now (or the one a first try took, in early already).
	case early == nil && indexed:
		// A Cluster, a receipt kept by an older build (a hash), or a take
		// that failed: take it now that the SID is indexed.
		early, takeErr = s.TakePendingReceipt(ctx, sid)
	}
	if index != nil && index.Err() != nil {
		return early, fmt.Errorf("index sid %s: %w", sid, index.Err())
	}
	if check != nil && check.Err() != nil {
		return early, fmt.Errorf("list receipt check of %s: %w", o.Member, check.Err())
	}
	if rec.Err() != nil {
		return early, fmt.Errorf("record message %s: %w", o.Member, rec.Err())
	}
	if takeErr != nil {
		return early, fmt.Errorf("take early receipt of %s: %w", sid, takeErr)
	}
	if n, _ := rec.Int(); n < 0 {
		return early, ErrFenced
	}
	return early, nil
}

// RecordRetry puts the message back on its queue for another try at at.
func (s *Store) RecordRetry(ctx context.Context, o Outgoing, at time.Time, reason string) error {
	return s.updateMessage(ctx, o, strconv.FormatInt(at.UnixMilli(), 10), 0, "state", "retry", "last_error", reason)
}

// RecordFailed takes the message off its queue for good.
func (s *Store) RecordFailed(ctx context.Context, o Outgoing, reason string) error {
	return s.updateMessage(ctx, o, "", 0, "state", "failed", "last_error", reason)
}

// MessageBySID finds the message Twilio knows by sid.
func (s *Store) MessageBySID(ctx context.Context, sid string) (school string, msg *visit.Message, state string, err error) {
	ref, err := s.rdb.Get(ctx, s.k.twilioSID(sid)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil, "", ErrNotFound
	}
	if err != nil {
		return "", nil, "", err
	}
	school, id, ok := strings.Cut(ref, "\x00")
	if !ok {
		return "", nil, "", ErrNotFound
	}
	h, err := s.rdb.HGetAll(ctx, s.k.message(school, id)).Result()
	if err != nil {
		return "", nil, "", err
	}
	m, ok := messageRecord(h)
	if !ok {
		return "", nil, "", ErrNotFound
	}
	return school, &m.Msg, m.Delivery, nil
}

// HandleFor is how long a receipt's handling is held by the try that began it
// (RecordDelivery): another receipt of the same status leaves it alone meanwhile,
// and takes it over once it lapses (the try died).
const HandleFor = 30 * time.Second

// deliveryScript records a receipt's status on its message (RecordDelivery).
//
// KEYS[1]: the message hash; KEYS[2]: the school's receipt checks.
// ARGV[1]: status; ARGV[2]: error code; ARGV[3]: "1" when the status asks for
// nothing more (settled); ARGV[4]: "1" when it is final (visit.FinalStatus);
// ARGV[5]: the message's ID (its check's member); ARGV[6]: who handles it;
// ARGV[7]: now (Unix ms); ARGV[8]: until when the handling is held (Unix ms).
// The field "handling" holds "who until". Returns {isNew, pending}.
//
// A message that is gone (retention) is not made again. A status that is not
// final never replaces a final one (Twilio's callbacks can come out of order: a
// late "sent" must not hide an "undelivered" still to handle). A hold that ends
// further ahead than a hold made now would (its writer's clock was ahead, or this
// one stepped back) counts as lapsed: at worst a failure is handled twice, never
// left.
var deliveryScript = redis.NewScript(`
local final = {` + luaSet(visit.FinalStatuses()) + `}
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0} end
local v = redis.call('HMGET', KEYS[1], 'delivery', 'handled', 'handling')
if v[1] == ARGV[1] then
  if (not v[2]) or v[2] == ARGV[1] then return {0, 0} end
  if v[3] then
    local by, untl = string.match(v[3], '^(.*) (%d+)$')
    local u = tonumber(untl)
    if by and by ~= ARGV[6] and u > tonumber(ARGV[7]) and u <= tonumber(ARGV[8]) then return {0, 0} end
  end
  redis.call('HSET', KEYS[1], 'handling', ARGV[6] .. ' ' .. ARGV[8])
  return {0, 1}
end
if v[1] and final[v[1]] and ARGV[4] ~= '1' then return {0, 0} end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'delivery', ARGV[1], 'error_code', ARGV[2], 'handled', ARGV[1])
  redis.call('HDEL', KEYS[1], 'handling')
  if ARGV[4] == '1' then redis.call('ZREM', KEYS[2], ARGV[5]) end
  return {1, 0}
end
redis.call('HSET', KEYS[1], 'delivery', ARGV[1], 'error_code', ARGV[2], 'handled', '', 'handling', ARGV[6] .. ' ' .. ARGV[8])
return {1, 1}
`)

// luaSet writes words as the fields of a Lua table literal whose values are true
// (for a script that must know them: the script's text, and so its SHA, is fixed
// when the package loads).
func luaSet(words []string) string {
	var b strings.Builder
	for _, w := range words {
		fmt.Fprintf(&b, "[%q] = true, ", w)
	}
	return b.String()
}

// handledScript marks a status handled (DeliveryHandled), if it is still the
// message's status: clears the hold and, for a final status, ends the receipt
// check. KEYS as deliveryScript; ARGV[1]: status; ARGV[2]: "1" when final;
// ARGV[3]: the message's ID.
var handledScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'delivery') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'handled', ARGV[1])
redis.call('HDEL', KEYS[1], 'handling')
if ARGV[2] == '1' then redis.call('ZREM', KEYS[2], ARGV[3]) end
return 1
`)

// RecordDelivery records a receipt's status on its message, in one step. isNew
// reports that the message did not have that status yet; pending, that the
// status is this caller's to handle now (DeliveryHandled once it is): it is new
// and not settled, or it was recorded before and its handling never finished
// (Redis went away between the two, or the replica died). settled says the status
// asks for nothing more (delivered, sent): it is recorded as handled at once, and
// a final one ends the message's receipt check.
//
// by names the handler: the same for every try of one webhook request. A status
// whose handling another handler began less than HandleFor ago is not pending
// for this one (two copies of one receipt at once handle it once); the same
// handler's next try, or anyone once HandleFor has passed, takes it over.
// Handling a failure again after a try that half finished is safe: the call it
// queues has a fixed ID, and a level is cascaded from once. A message recorded by
// an older version has no "handled" field, and its status counts as handled.
func (s *Store) RecordDelivery(ctx context.Context, school, id, status string, code int, settled bool, by string, now time.Time) (isNew, pending bool, err error) {
	flag := func(b bool) string {
		if b {
			return "1"
		}
		return "0"
	}
	res, err := deliveryScript.Run(ctx, s.rdb, []string{s.k.message(school, id), s.k.receiptChecks(school)},
		status, code, flag(settled), flag(visit.FinalStatus(status)), id, by, now.UnixMilli(), now.Add(HandleFor).UnixMilli()).Int64Slice()
	if err != nil {
		return false, false, fmt.Errorf("record delivery of %s: %w", id, err)
	}
	if len(res) != 2 {
		return false, false, fmt.Errorf("record delivery of %s: script answered %v", id, res)
	}
	return res[0] == 1, res[1] == 1, nil
}

// DeliveryHandled records that the status RecordDelivery reported pending has been
// handled, so that a repeat of the receipt does nothing, and ends the message's
// receipt check once the status is final. It does nothing when the message's
// status is another by now (a final status that came since is handled on its
// own).
func (s *Store) DeliveryHandled(ctx context.Context, school, id, status string) error {
	final := "0"
	if visit.FinalStatus(status) {
		final = "1"
	}
	err := handledScript.Run(ctx, s.rdb, []string{s.k.message(school, id), s.k.receiptChecks(school)}, status, final, id).Err()
	if err != nil {
		return fmt.Errorf("mark delivery of %s handled: %w", id, err)
	}
	return nil
}

// pendingReceiptTTL is how long a receipt that arrived before its send was recorded
// waits for it.
const pendingReceiptTTL = time.Hour

// KeepPendingReceipt holds a delivery receipt whose message is not yet known by its
// SID: Twilio can report a status before the dispatcher has recorded the send.
// It is kept as "status NUL code", so that whoever takes it (RecordSent, or
// TakePendingReceipt) does so in one atomic GETDEL.
func (s *Store) KeepPendingReceipt(ctx context.Context, sid, status string, code int) error {
	return s.rdb.Set(ctx, s.k.pendingReceipt(sid), status+"\x00"+strconv.Itoa(code), pendingReceiptTTL).Err()
}

// TakePendingReceipt returns and forgets a receipt kept for sid (nil if none).
// Two takers never both get it.
func (s *Store) TakePendingReceipt(ctx context.Context, sid string) (*EarlyReceipt, error) {
	key := s.k.pendingReceipt(sid)
	v, err := s.rdb.GetDel(ctx, key).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, nil
	case err == nil:
		return parseReceipt(v), nil
	case !strings.HasPrefix(err.Error(), "WRONGTYPE"):
		return nil, err
	}
	// Kept by an older build, as a hash: read and delete it in one transaction.
	var h *redis.MapStringStringCmd
	var del *redis.IntCmd
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		h = p.HGetAll(ctx, key)
		del = p.Del(ctx, key)
		return nil
	})
	if err != nil || len(h.Val()) == 0 || del.Val() == 0 {
		return nil, err
	}
	code, _ := strconv.Atoi(h.Val()["code"])
	return &EarlyReceipt{Status: h.Val()["status"], Code: code}, nil
}

func parseReceipt(v string) *EarlyReceipt {
	status, code, _ := strings.Cut(v, "\x00")
	n, _ := strconv.Atoi(code)
	return &EarlyReceipt{Status: status, Code: n}
}
