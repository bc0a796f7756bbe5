package store

import (
	"testing"
	"time"
)

// A replica whose clock is 10 s ahead of Redis' (or behind it) is measured so,
// to within the round trip.
func TestClockSkew(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	for _, off := range []time.Duration{0, 10 * time.Second, -10 * time.Second} {
		skew, unc, err := s.ClockSkew(ctx, func() time.Time { return time.Now().Add(off) })
		if err != nil {
			t.Fatal(err)
		}
		// Redis' TIME and this process read the same machine clock: the skew is
		// the offset, give or take the round trip (and the clock's resolution).
		if d := (skew - off).Abs(); d > unc+50*time.Millisecond {
			t.Errorf("offset %v: skew %v ± %v", off, skew, unc)
		}
	}
}
