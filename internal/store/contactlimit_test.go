package store

import (
	"testing"
	"time"
)

// The per-contact limit counts messages, not attempts: a message given a place
// keeps it however often it is tried, and one Twilio did not accept gives it back
// (in the window it was taken, or the one before when the window has turned).
func TestContactLimitCountsMessagesNotAttempts(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	l := s.NewContactLimiter(15*time.Minute, map[string]int64{"sms": 2})
	now := time.Date(2026, 6, 1, 9, 1, 0, 0, time.UTC)
	const phone = "+447700900201"
	allow := func(id string, at time.Time) bool {
		t.Helper()
		ok, until, err := l.Allow(ctx, phone, "sms", id, at)
		if err != nil {
			t.Fatal(err)
		}
		if !ok && !until.Equal(at.Truncate(15*time.Minute).Add(15*time.Minute)) {
			t.Errorf("refused %s until %s, want the end of the window", id, until)
		}
		return ok
	}
	for i, id := range []string{"a", "a", "a", "b"} {
		if !allow(id, now.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("%s (try %d) refused: a message tried again keeps its one place", id, i)
		}
	}
	if allow("c", now) {
		t.Fatal("a third message allowed under a limit of 2")
	}
	if err := l.Release(ctx, phone, "sms", "b", now); err != nil {
		t.Fatal(err)
	}
	if !allow("c", now) {
		t.Fatal("b's place was given back, yet c was refused")
	}
	// Given back as the next window begins: the place taken in the one before
	// is freed.
	if err := l.Release(ctx, phone, "sms", "c", now.Add(15*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if !allow("d", now) {
		t.Fatal("c's place, given back in the next window, was not freed")
	}
	// Calls have no limit configured here.
	if ok, _, err := l.Allow(ctx, phone, "call", "x", now); err != nil || !ok {
		t.Errorf("a call refused (%v) with no call limit set", err)
	}
}
