package store

import (
	"context"
	"fmt"
	"time"
)

// ClockSkew measures how far now (this replica's clock) is from Redis' clock
// (TIME): positive when this replica is ahead. Redis' reading is taken to fall
// halfway through the round trip, so the measure is off by at most half of it,
// which is returned as uncertainty.
//
// Every instant Vigil stores comes from the replica's own clock (due times, and
// the ends of leases that other replicas compare with theirs), so replicas whose
// clocks disagree break what leases promise: a replica whose clock is ahead fires
// timers early and takes over others' claims before they end. Redis' clock is the
// one reference they all share.
func (s *Store) ClockSkew(ctx context.Context, now func() time.Time) (skew, uncertainty time.Duration, err error) {
	before := now()
	t, err := s.rdb.Time(ctx).Result()
	if err != nil {
		return 0, 0, fmt.Errorf("redis TIME: %w", err)
	}
	after := now()
	half := after.Sub(before) / 2
	return before.Add(half).Sub(t), half, nil
}
