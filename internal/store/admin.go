package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-safety/vigil/internal/visit"
)

// This file holds what the office console and the directory API need beyond the
// service's operations: audit entries for directory changes, a single message queued
// by hand (a test SMS), the phone index rebuilt after a school's lists change, and
// the reads of the history pages.

// AppendAudit appends one event to a school's audit stream, as Commit does for the
// events of a decision (field "e", the event encoded for storage: codec.go).
func (s *Store) AppendAudit(ctx context.Context, school string, e visit.Event) error {
	raw, err := encodeAuditEvent(e)
	if err != nil {
		return err
	}
	err = s.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: s.k.audit(school), MaxLen: auditMaxLen, Approx: true, Values: []any{"e", string(raw)},
	}).Err()
	if err != nil {
		return fmt.Errorf("audit %s in %s: %w", e.Type, school, err)
	}
	return nil
}

// AuditEvents reads the newest n events of a school's audit stream, newest first.
func (s *Store) AuditEvents(ctx context.Context, school string, n int64) ([]visit.Event, error) {
	xs, err := s.rdb.XRevRangeN(ctx, s.k.audit(school), "+", "-", n).Result()
	if err != nil {
		return nil, fmt.Errorf("read audit of %s: %w", school, err)
	}
	out := make([]visit.Event, 0, len(xs))
	for _, x := range xs {
		raw, _ := x.Values["e"].(string)
		e, err := decodeAuditEvent([]byte(raw))
		if err != nil {
			continue // written by a newer version, or damaged: skip rather than fail the page
		}
		out = append(out, e)
	}
	return out, nil
}

// QueueMessage puts one message on its school's outbox unless a message with its ID
// was queued before, and wakes the dispatchers (QueueMessages, for one message).
func (s *Store) QueueMessage(ctx context.Context, m visit.Message, now time.Time) error {
	if m.School == "" || m.ID == "" {
		return errors.New("queue message: school and id are required")
	}
	return s.QueueMessages(ctx, m.School, []visit.Message{m}, now)
}

// ReindexPhones rebuilds the index of who each phone number belongs to from the
// whole directory (PutSchool leaves it alone; call this after it).
func (s *Store) ReindexPhones(ctx context.Context) error { return s.reindexPhones(ctx) }

// HistoryVisits lists a school's visits closed in [from, to), newest first, at most
// limit.
func (s *Store) HistoryVisits(ctx context.Context, school string, from, to time.Time, limit int64) ([]*visit.Visit, error) {
	ids, err := s.rdb.ZRevRangeByScore(ctx, s.k.closedVisits(school), historyRange(from, to, limit)).Result()
	if err != nil {
		return nil, fmt.Errorf("list closed visits of %s: %w", school, err)
	}
	return s.loadVisits(ctx, school, ids)
}

// HistoryAlerts lists a school's alerts raised in [from, to), newest first, at most
// limit.
func (s *Store) HistoryAlerts(ctx context.Context, school string, from, to time.Time, limit int64) ([]*visit.Alert, error) {
	ids, err := s.rdb.ZRevRangeByScore(ctx, s.k.alerts(school), historyRange(from, to, limit)).Result()
	if err != nil {
		return nil, fmt.Errorf("list alerts of %s: %w", school, err)
	}
	return s.loadAlerts(ctx, school, ids)
}

// HistoryAlert loads one alert of a school with its events; ErrNotFound if none.
func (s *Store) HistoryAlert(ctx context.Context, school, id string) (*visit.Alert, error) {
	as, err := s.loadAlerts(ctx, school, []string{id})
	if err != nil {
		return nil, fmt.Errorf("load alert %s: %w", id, err)
	}
	if len(as) == 0 {
		return nil, ErrNotFound
	}
	return as[0], nil
}

// historyRange is [from, to) in Unix ms, newest first, at most limit; a zero from or
// to leaves that end open.
func historyRange(from, to time.Time, limit int64) *redis.ZRangeBy {
	r := &redis.ZRangeBy{Min: "-inf", Max: "+inf", Count: limit}
	if !from.IsZero() {
		r.Min = strconv.FormatInt(from.UnixMilli(), 10)
	}
	if !to.IsZero() {
		r.Max = "(" + strconv.FormatInt(to.UnixMilli(), 10)
	}
	return r
}
