package store

import (
	"errors"
	"testing"

	"github.com/vigil-safety/vigil/internal/visit"
)

// An officer's state is a field of the school's hash; a key of its own, left or
// written since by an earlier version, is read first, checked by the commit, and
// deleted when the field replaces it. A commit that read neither refuses if either
// has appeared.
func TestOfficerStateFieldAndLegacyKey(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	hash, legacy := s.k.officerStates("s1"), s.k.officerState("s1", "jdoe")
	state := func(sn *Snapshot) visit.OfficerState {
		t.Helper()
		st, err := sn.OfficerState(ctx, "jdoe")
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	write := func(sn *Snapshot, st visit.OfficerState) error {
		return sn.Commit(ctx, Change{OfficerStates: map[string]visit.OfficerState{"jdoe": st}, Now: t0})
	}

	if err := write(s.Begin("s1"), visit.OfficerState{OpenVisit: "v1"}); err != nil {
		t.Fatal(err)
	}
	if got := state(s.Begin("s1")); got.OpenVisit != "v1" {
		t.Fatalf("state %+v, want v1 open", got)
	}
	// An earlier version writes its key (it reads no field): the key wins.
	s.rdb.Set(ctx, legacy, `{"open_visit":"v2","last_visit":"v2"}`, 0)
	sn, rival, blind := s.Begin("s1"), s.Begin("s1"), s.Begin("s1")
	if got := state(sn); got.OpenVisit != "v2" {
		t.Fatalf("state %+v, want the earlier version's (v2 open)", got)
	}
	state(rival)
	if err := write(sn, visit.OfficerState{LastVisit: "v2"}); err != nil {
		t.Fatal(err)
	}
	if s.rdb.Exists(ctx, legacy).Val() != 0 {
		t.Errorf("the legacy key is left")
	}
	if got := state(s.Begin("s1")); got.OpenVisit != "" || got.LastVisit != "v2" {
		t.Errorf("state %+v after the commit", got)
	}
	if err := write(rival, visit.OfficerState{}); !errors.Is(err, ErrConflict) {
		t.Errorf("a rival that read the same: %v, want ErrConflict", err)
	}
	// A commit that never read the state refuses to write over one.
	if err := write(blind, visit.OfficerState{}); !errors.Is(err, ErrConflict) {
		t.Errorf("a blind write over the field: %v, want ErrConflict", err)
	}
	s.rdb.HDel(ctx, hash, "jdoe")
	s.rdb.Set(ctx, legacy, `~{"v":"v3"}`, 0)
	if err := write(s.Begin("s1"), visit.OfficerState{}); !errors.Is(err, ErrConflict) {
		t.Errorf("a blind write over the legacy key: %v, want ErrConflict", err)
	}
}
