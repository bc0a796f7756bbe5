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

// Receipt checks: an alert message sent under a Twilio SID is listed in its school's
// receipt-check set ({s}:rchecks, scored by when to look next) until a final status
// (visit.FinalStatus) of it has been handled. Twilio sends a status callback once and
// never again, so a receipt lost on the way (Vigil down, Redis unreachable for
// longer than a webhook waits, a network fault) would leave an undelivered alert SMS
// un-re-routed; the receipt checker (notify.ReceiptChecker) claims the entries that
// fall due and asks Twilio for the status instead.

// DefaultReceiptCheck is how long after an alert message is sent its receipt check
// first falls due: well past the time Twilio's callbacks normally take, so that in
// the usual case the final receipt has removed the check before it is due and
// Twilio is never asked.
const DefaultReceiptCheck = time.Minute

// CheckReceiptsAfter sets how long after an alert message is sent its receipt check
// falls due (DefaultReceiptCheck unless set; tests and the load command change it).
// Zero or less lists no checks.
func (s *Store) CheckReceiptsAfter(d time.Duration) { s.receiptCheck.Store(int64(d)) }

// receiptCheckAt is when the receipt check of o, sent at now, falls due; zero when
// o needs none. Alerts and ALL CLEARs are checked: an undelivered one of either is
// re-sent as a call.
func (s *Store) receiptCheckAt(o Outgoing, now time.Time) time.Time {
	d := time.Duration(s.receiptCheck.Load())
	if d <= 0 || (o.Msg.Kind != visit.KindAlert && o.Msg.Kind != visit.KindAllClear) {
		return time.Time{}
	}
	return now.Add(d)
}

// ClaimReceiptChecks claims up to max due receipt checks of each school, in one
// round trip; each is held until now+lease (then another replica may take it).
// With an error it still returns what the schools whose claims went through took.
func (s *Store) ClaimReceiptChecks(ctx context.Context, schools []string, now time.Time, lease time.Duration, max int) ([]Due, error) {
	if len(schools) == 0 {
		return nil, nil
	}
	res, err := s.pipelineScripts(ctx, []*redis.Script{claimScript}, func(p redis.Pipeliner) {
		for _, sc := range schools {
			claimScript.EvalSha(ctx, p, []string{s.k.receiptChecks(sc)}, now.UnixMilli(), lease.Milliseconds(), max)
		}
	})
	if len(res) != len(schools) {
		return nil, fmt.Errorf("claim receipt checks: %w", err)
	}
	leaseAt := now.UnixMilli() + lease.Milliseconds()
	var out []Due
	var failed error
	for i, sc := range schools {
		raw, err := res[i].(*redis.Cmd).StringSlice()
		if err != nil && !errors.Is(err, redis.Nil) {
			failed = fmt.Errorf("claim receipt checks of %s: %w", sc, err)
			continue
		}
		out = append(out, claimed(sc, raw, leaseAt)...)
	}
	return out, failed
}

// SentMessageFor reads the message a receipt check names; ErrNotFound when it is
// gone (retention) or was never recorded as sent.
func (s *Store) SentMessageFor(ctx context.Context, d Due) (MessageRecord, error) {
	h, err := s.rdb.HGetAll(ctx, s.k.message(d.School, d.Member)).Result()
	if err != nil {
		return MessageRecord{}, fmt.Errorf("load message %s: %w", d.Member, err)
	}
	m, ok := messageRecord(h)
	if !ok || m.SID == "" {
		return MessageRecord{}, ErrNotFound
	}
	return m, nil
}

// EndReceiptCheck takes a claimed receipt check off the set: the message's final
// status is handled, or it is no longer worth asking. ErrFenced when the claim was
// lost (another replica has the check).
func (s *Store) EndReceiptCheck(ctx context.Context, d Due) error {
	return s.moveCheck(ctx, d, "")
}

// DeferReceiptCheck puts a claimed receipt check back, due at at. ErrFenced when
// the claim was lost.
func (s *Store) DeferReceiptCheck(ctx context.Context, d Due, at time.Time) error {
	return s.moveCheck(ctx, d, strconv.FormatInt(at.UnixMilli(), 10))
}

// moveCheck ends a claimed check (next "") or re-scores it to next, if the claim
// still holds: messageScript's fencing, with nothing to change on the message.
func (s *Store) moveCheck(ctx context.Context, d Due, next string) error {
	keys := []string{s.k.receiptChecks(d.School), s.k.message(d.School, d.Member)}
	n, err := messageScript.Run(ctx, s.rdb, keys, d.Member, d.Lease, next, 0).Int()
	if err != nil {
		return fmt.Errorf("receipt check of %s: %w", d.Member, err)
	}
	if n < 0 {
		return ErrFenced
	}
	return nil
}

// ReceiptChecks lists a school's receipt checks and when each falls due (tests,
// and an engineer looking at a stuck one).
func (s *Store) ReceiptChecks(ctx context.Context, school string) (map[string]time.Time, error) {
	z, err := s.rdb.ZRangeWithScores(ctx, s.k.receiptChecks(school), 0, -1).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]time.Time, len(z))
	for _, m := range z {
		id, _ := m.Member.(string)
		out[id] = time.UnixMilli(int64(m.Score))
	}
	return out, nil
}
