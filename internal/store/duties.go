package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-safety/vigil/internal/visit"
)

// This file holds what the scheduled duties (internal/jobs) need from Redis: a lock
// per schedule slot, queuing a duty's messages, the reads of the monthly report and
// the atomic deletions of retention.

// Keys of the duties (keys.go holds the rest, one function per key).

// dutyLock is held by the replica that runs one slot of one duty (global: a duty runs
// for every school of a time zone).
func (k keys) dutyLock(name string) string { return k.prefix + "lock:duty:" + name }

// tally counts, per school and calendar month (in the school's zone, "2006-01"), what
// retention deleted, so a monthly report still counts visits and failed notifications
// whose records are gone. It holds numbers only.
func (k keys) tally(s, month string) string { return k.school(s) + "tally:" + month }

// messagePattern matches every message hash of a school (for SCAN).
func (k keys) messagePattern(s string) string { return globEscape(k.message(s, "")) + "*" }

func globEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`).Replace(s)
}

// TryLock takes the lock name for ttl unless another caller holds it (SET NX PX). It
// is never released: it marks the slot as taken, and expires long after the slot.
func (s *Store) TryLock(ctx context.Context, name string, now time.Time, ttl time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, s.k.dutyLock(name), now.UnixMilli(), ttl).Result()
	if err != nil {
		return false, fmt.Errorf("take lock %s: %w", name, err)
	}
	return ok, nil
}

// QueueMessages puts messages of one school on the outbox, each unless its hash
// already exists: it commits them as a decision's messages are (Snapshot.Commit), so
// a message ID queued once is never queued again, and a duty run twice sends nothing
// twice.
func (s *Store) QueueMessages(ctx context.Context, school string, msgs []visit.Message, now time.Time) error {
	for _, m := range msgs {
		if m.School != school {
			return fmt.Errorf("queue message %s: it belongs to school %q, not %q", m.ID, m.School, school)
		}
	}
	if err := s.Begin(school).Commit(ctx, Change{Result: visit.Result{Messages: msgs}, Now: now}); err != nil {
		return fmt.Errorf("queue messages of %s: %w", school, err)
	}
	return nil
}

// ---- reads of the monthly report ----

// ClosedVisits lists the visits of a school closed in [from, to), by closing time.
func (s *Store) ClosedVisits(ctx context.Context, school string, from, to time.Time) ([]*visit.Visit, error) {
	ids, err := s.rdb.ZRangeByScore(ctx, s.k.closedVisits(school), msRange(from, to)).Result()
	if err != nil {
		return nil, fmt.Errorf("list visits of %s closed from %s: %w", school, from.Format(time.RFC3339), err)
	}
	return s.loadVisits(ctx, school, ids)
}

// RaisedAlerts lists the alerts of a school raised in [from, to), oldest first.
func (s *Store) RaisedAlerts(ctx context.Context, school string, from, to time.Time) ([]*visit.Alert, error) {
	ids, err := s.rdb.ZRangeByScore(ctx, s.k.alerts(school), msRange(from, to)).Result()
	if err != nil {
		return nil, fmt.Errorf("list alerts of %s raised from %s: %w", school, from.Format(time.RFC3339), err)
	}
	return s.loadAlerts(ctx, school, ids)
}

// msRange is [from, to) as a ZRANGEBYSCORE range of Unix milliseconds.
func msRange(from, to time.Time) *redis.ZRangeBy {
	return &redis.ZRangeBy{Min: strconv.FormatInt(from.UnixMilli(), 10), Max: "(" + strconv.FormatInt(to.UnixMilli(), 10)}
}

// MessageRecord is what the outbox remembers of one message after it was queued.
type MessageRecord struct {
	Msg     visit.Message
	State   string    // queued, sending, retry, sent, failed
	LastTry time.Time // when the last send began (zero if none did)
	SentAt  time.Time
	SID     string // Twilio's, once sent
	// Delivery is the last delivery receipt's status (delivered, undelivered,
	// failed, ...; "" when none came), with its ErrorCode; Handled says that
	// status's handling has finished (RecordDelivery).
	Delivery  string
	ErrorCode int
	Handled   bool
	// Skipped is a message dropped on purpose, not one that failed: a repeat
	// the per-contact limit skipped (SkippedByContactLimit) or the retry of an
	// alert resolved since (SkippedAlertResolved).
	Skipped bool
}

// messageRecord reads a message hash; false when it holds no readable message.
func messageRecord(h map[string]string) (MessageRecord, bool) {
	m := MessageRecord{State: h["state"], LastTry: msField(h["attempt_at"]), SentAt: msField(h["sent_at"]),
		SID: h["sid"], Delivery: h["delivery"], Skipped: h["state"] == "failed" && skipped(h["last_error"])}
	m.ErrorCode, _ = strconv.Atoi(h["error_code"])
	// A message recorded by an older version has no "handled" field: its status
	// counts as handled.
	handled, marked := h["handled"]
	m.Handled = !marked || handled == m.Delivery
	return m, json.Unmarshal([]byte(h["json"]), &m.Msg) == nil
}

// The reasons recorded for a message dropped on purpose: the message is done
// (state failed) but nothing failed, and reports and tallies do not count it.
const (
	// SkippedByContactLimit: a repeat over the per-contact limit.
	SkippedByContactLimit = "contact_limit"
	// SkippedAlertResolved: the retry of an alert message Twilio had refused,
	// dropped because the alert was resolved meanwhile.
	SkippedAlertResolved = "alert_resolved"
)

func skipped(reason string) bool {
	return reason == SkippedByContactLimit || reason == SkippedAlertResolved
}

// Failed reports whether the message never reached its recipient: Twilio refused it
// or the dispatcher gave up (state failed, not a repeat the limit skipped), or a
// receipt said failed or undelivered.
func (m MessageRecord) Failed() bool {
	return (m.State == "failed" && !m.Skipped) || m.Delivery == "failed" || m.Delivery == "undelivered"
}

// Final reports whether the dispatcher is done with the message (no longer queued).
func (m MessageRecord) Final() bool { return m.State == "sent" || m.State == "failed" }

// ScanMessages calls fn with every message hash of a school, in no order. It SCANs
// (every master, on a Cluster), so it is for daily duties, not for events.
func (s *Store) ScanMessages(ctx context.Context, school string, fn func(MessageRecord) error) error {
	prefix := s.k.message(school, "")
	return s.scan(ctx, s.k.messagePattern(school), func(key string) error {
		h, err := s.rdb.HGetAll(ctx, key).Result()
		if err != nil {
			return fmt.Errorf("load message %s: %w", strings.TrimPrefix(key, prefix), err)
		}
		if len(h) == 0 {
			return nil // deleted since the scan saw it
		}
		rec, ok := messageRecord(h)
		if !ok {
			rec.Msg.ID = strings.TrimPrefix(key, prefix)
		}
		return fn(rec)
	})
}

func msField(v string) time.Time {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// scan calls fn with every key matching pattern.
func (s *Store) scan(ctx context.Context, pattern string, fn func(string) error) error {
	each := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, pattern, 500).Iterator()
		for it.Next(ctx) {
			if err := fn(it.Val()); err != nil {
				return err
			}
		}
		return it.Err()
	}
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return each(ctx, c) })
	}
	return each(ctx, s.rdb)
}

// Tally is what retention counted for one school and month before deleting records.
type Tally struct {
	Visits              int            // visits closed in the month and since deleted
	Outcomes            map[string]int // those visits by outcome
	NotificationsFailed int            // failed messages whose hash was deleted
}

// MonthTally reads what retention counted for a school and month ("2006-01").
func (s *Store) MonthTally(ctx context.Context, school, month string) (Tally, error) {
	h, err := s.rdb.HGetAll(ctx, s.k.tally(school, month)).Result()
	if err != nil {
		return Tally{}, fmt.Errorf("load tally of %s for %s: %w", school, month, err)
	}
	t := Tally{Outcomes: map[string]int{}}
	for f, v := range h {
		n, _ := strconv.Atoi(v)
		switch {
		case f == "visits":
			t.Visits = n
		case f == "failed":
			t.NotificationsFailed = n
		case strings.HasPrefix(f, "outcome:"):
			t.Outcomes[strings.TrimPrefix(f, "outcome:")] = n
		}
	}
	return t, nil
}

// ---- retention ----

// VisitsClosedBefore lists the IDs of a school's visits closed before t, oldest
// first. Retention deletes most of them, so the list stays short after its first run.
func (s *Store) VisitsClosedBefore(ctx context.Context, school string, t time.Time) ([]string, error) {
	ids, err := s.rdb.ZRangeByScore(ctx, s.k.closedVisits(school), &redis.ZRangeBy{
		Min: "-inf", Max: "(" + strconv.FormatInt(t.UnixMilli(), 10),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("list visits of %s closed before %s: %w", school, t.Format(time.RFC3339), err)
	}
	return ids, nil
}

// AlertsRaisedBefore lists the IDs of a school's alerts raised before t, oldest first.
func (s *Store) AlertsRaisedBefore(ctx context.Context, school string, t time.Time) ([]string, error) {
	ids, err := s.rdb.ZRangeByScore(ctx, s.k.alerts(school), &redis.ZRangeBy{
		Min: "-inf", Max: "(" + strconv.FormatInt(t.UnixMilli(), 10),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("list alerts of %s raised before %s: %w", school, t.Format(time.RFC3339), err)
	}
	return ids, nil
}

// VisitByID reads one visit without a snapshot; nil when it does not exist.
func (s *Store) VisitByID(ctx context.Context, school, id string) (*visit.Visit, error) {
	vs, err := s.loadVisits(ctx, school, []string{id})
	if err != nil || len(vs) == 0 {
		return nil, wrap(err, "load visit "+id)
	}
	return vs[0], nil
}

// AlertByID reads one alert without a snapshot; nil when it does not exist.
func (s *Store) AlertByID(ctx context.Context, school, id string) (*visit.Alert, error) {
	as, err := s.loadAlerts(ctx, school, []string{id})
	if err != nil || len(as) == 0 {
		return nil, wrap(err, "load alert "+id)
	}
	return as[0], nil
}

// purgeVisitScript deletes a closed visit and counts it in its month's tally.
//
// KEYS[1]: the visit; KEYS[2]: the school's closed-visit zset; KEYS[3]: its timers;
// KEYS[4]: the tally of the month the visit closed in.
// ARGV[1]: the visit ID; ARGV[2]: the alert_id the caller saw ("" for none).
// Only a visit that is closed and still names that alert is deleted: retention
// decided on what it read, and anything else means the record is not what it saw.
// Returns 1 when deleted, 0 when it was already gone (its zset entry is dropped),
// -1 when it was left alone. It reads the visit in either storage format (codec.go):
// the tag ("~" or "^") and s, a and oc, or the old state, alert_id and outcome.
var purgeVisitScript = redis.NewScript(`
local raw = redis.call('GET', KEYS[1])
if not raw then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
local t = string.sub(raw, 1, 1)
if t == '~' or t == '^' then raw = string.sub(raw, 2) end
local v = cjson.decode(raw)
local state, alert, outcome = v.s or v.state, v.a or v.alert_id, v.oc or v.outcome
if type(alert) ~= 'string' then alert = '' end
if state ~= 'closed' or alert ~= ARGV[2] then return -1 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], 'v:' .. ARGV[1])
redis.call('HINCRBY', KEYS[4], 'visits', 1)
if type(outcome) ~= 'string' or outcome == '' then outcome = 'unknown' end
redis.call('HINCRBY', KEYS[4], 'outcome:' .. outcome, 1)
return 1
`)

// PurgeVisit deletes a closed visit (its record, its entry in the closed-visit index
// and any timer) if it still names alertID ("" for none), and counts it, by outcome,
// in the tally of month (the month it closed in, "2006-01"). It reports whether it
// deleted the visit.
func (s *Store) PurgeVisit(ctx context.Context, school, id, alertID, month string) (bool, error) {
	n, err := purgeVisitScript.Run(ctx, s.rdb,
		[]string{s.k.visit(school, id), s.k.closedVisits(school), s.k.timers(school), s.k.tally(school, month)},
		id, alertID).Int()
	if err != nil {
		return false, fmt.Errorf("purge visit %s: %w", id, err)
	}
	return n == 1, nil
}

// purgeAlertScript deletes a resolved alert.
//
// KEYS[1]: the alert; KEYS[2]: the school's alert zset; KEYS[3]: its open-alert set;
// KEYS[4]: its timers.
// ARGV[1]: the alert ID.
// Returns 1 when deleted, 0 when it was already gone (its zset entry is dropped), -1
// when it is not resolved (never purged). It reads the state in either storage
// format (codec.go: the tag, "~" or "^", and s, or the old state).
var purgeAlertScript = redis.NewScript(`
local raw = redis.call('GET', KEYS[1])
if not raw then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
local t = string.sub(raw, 1, 1)
if t == '~' or t == '^' then raw = string.sub(raw, 2) end
local a = cjson.decode(raw)
if (a.s or a.state) ~= 'resolved' then return -1 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], 'a:' .. ARGV[1])
return 1
`)

// PurgeAlert deletes a resolved alert (its record, index entries and any timer). It
// reports whether it deleted it; an unresolved alert is never deleted.
func (s *Store) PurgeAlert(ctx context.Context, school, id string) (bool, error) {
	n, err := purgeAlertScript.Run(ctx, s.rdb,
		[]string{s.k.alert(school, id), s.k.alerts(school), s.k.openAlerts(school), s.k.timers(school)}, id).Int()
	if err != nil {
		return false, fmt.Errorf("purge alert %s: %w", id, err)
	}
	return n == 1, nil
}

// purgeMessageScript deletes a message hash the dispatcher is done with, counting it
// in a tally when it failed.
//
// KEYS[1]: the message hash; KEYS[2]: the tally of the month of its last send.
// ARGV[1], ARGV[2]: the reasons of a message skipped on purpose (not counted).
// Returns 1 when deleted, 0 when gone, -1 when still queued or being sent.
var purgeMessageScript = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'state', 'delivery', 'last_error')
if not h[1] then return 0 end
if h[1] ~= 'sent' and h[1] ~= 'failed' then return -1 end
if (h[1] == 'failed' and h[3] ~= ARGV[1] and h[3] ~= ARGV[2]) or h[2] == 'failed' or h[2] == 'undelivered' then
  redis.call('HINCRBY', KEYS[2], 'failed', 1)
end
redis.call('DEL', KEYS[1])
return 1
`)

// PurgeMessage deletes a sent or failed message hash (never one still queued), and
// counts it in the tally of month when it had failed. It reports whether it deleted it.
func (s *Store) PurgeMessage(ctx context.Context, school, id, month string) (bool, error) {
	n, err := purgeMessageScript.Run(ctx, s.rdb, []string{s.k.message(school, id), s.k.tally(school, month)}, SkippedByContactLimit, SkippedAlertResolved).Int()
	if err != nil {
		return false, fmt.Errorf("purge message %s: %w", id, err)
	}
	return n == 1, nil
}

// ForgetLastVisit clears an officer's last visit and last text when the last visit
// is visitID (being purged): neither may outlive the visit. It commits the state as
// any event does, so a concurrent change conflicts and it reads again.
func (s *Store) ForgetLastVisit(ctx context.Context, school, officer, visitID string) error {
	for range 3 {
		sn := s.Begin(school)
		st, err := sn.OfficerState(ctx, officer)
		if err != nil {
			return fmt.Errorf("load officer state %s: %w", officer, err)
		}
		if st.LastVisit != visitID {
			return nil
		}
		st.LastVisit, st.LastText = "", ""
		err = sn.Commit(ctx, Change{OfficerStates: map[string]visit.OfficerState{officer: st}})
		if !errors.Is(err, ErrConflict) {
			if err != nil {
				return fmt.Errorf("save officer state %s: %w", officer, err)
			}
			return nil
		}
	}
	return fmt.Errorf("officer state %s: %w", officer, ErrConflict)
}

// TrimAudit drops a school's audit stream entries older than t (XTRIM MINID): entry
// IDs are Redis' own millisecond clock, close to the callers' clocks.
func (s *Store) TrimAudit(ctx context.Context, school string, t time.Time) (int64, error) {
	n, err := s.rdb.XTrimMinID(ctx, s.k.audit(school), strconv.FormatInt(t.UnixMilli(), 10)).Result()
	if err != nil {
		return 0, fmt.Errorf("trim audit of %s: %w", school, err)
	}
	return n, nil
}
