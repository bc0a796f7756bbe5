package store_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// roundTrips counts the commands and pipelines a client sends.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}

// ReadAhead reads an officer's state and the entities it names in one round trip;
// the snapshot then answers from what it read, commits check those values as if read
// one by one, and a wrong guess only means the entity is read when asked for.
func TestReadAhead(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	rt := &roundTrips{}
	s.Client().AddHook(rt)
	ost := map[string]visit.OfficerState{"jdoe": {OpenVisit: "v1"}}
	if err := s.Begin("s1").Commit(ctx, store.Change{Result: visit.Result{Visits: []*visit.Visit{openVisit("v1")}}, OfficerStates: ost, Now: t0}); err != nil {
		t.Fatal(err)
	}

	// The first pipeline on a client may dial a connection of its own: not counted.
	if err := s.Begin("s1").ReadAhead(ctx, "nobody", nil, nil); err != nil {
		t.Fatal(err)
	}
	sn := s.Begin("s1")
	before := rt.n.Load()
	if err := sn.ReadAhead(ctx, "jdoe", []string{"v1"}, []string{"a1"}); err != nil {
		t.Fatal(err)
	}
	st, err := sn.OfficerState(ctx, "jdoe")
	if err != nil || st.OpenVisit != "v1" {
		t.Fatalf("officer state: %+v %v", st, err)
	}
	v, err := sn.Visit(ctx, "v1")
	if err != nil || v == nil || v.Destination != "14 Elm Road" {
		t.Fatalf("visit: %+v %v", v, err)
	}
	if a, err := sn.Alert(ctx, "a1"); err != nil || a != nil {
		t.Fatalf("an alert that does not exist: %+v %v", a, err)
	}
	if n := rt.n.Load() - before; n != 1 {
		t.Errorf("%d round trips for the state, the visit and the alert, want 1", n)
	}

	// Another event changes the visit after it was read: the commit conflicts.
	other := s.Begin("s1")
	v2, _ := other.Visit(ctx, "v1")
	v2.Destination = "22 Oak Lane"
	if err := other.Commit(ctx, store.Change{Result: visit.Result{Visits: []*visit.Visit{v2}}, Now: t0}); err != nil {
		t.Fatal(err)
	}
	v.State = visit.StateClosed
	if err := sn.Commit(ctx, store.Change{Result: visit.Result{Visits: []*visit.Visit{v}}, Now: t0}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("commit over a visit changed since the read-ahead: %v, want ErrConflict", err)
	}

	// A wrong guess: the visit asked for is read then, and is the current one.
	sn = s.Begin("s1")
	if err := sn.ReadAhead(ctx, "jdoe", []string{"v0"}, nil); err != nil {
		t.Fatal(err)
	}
	before = rt.n.Load()
	if v, err := sn.Visit(ctx, "v1"); err != nil || v.Destination != "22 Oak Lane" {
		t.Fatalf("visit not read ahead: %+v %v", v, err)
	}
	if n := rt.n.Load() - before; n != 1 {
		t.Errorf("%d round trips for a visit not read ahead, want 1", n)
	}
}

// ReadOfficer reads the officer from the directory with their state and the
// alert named, in one round trip; an officer missing from the directory is
// ErrNotFound, and their state has been read all the same.
func TestReadOfficer(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	rt := &roundTrips{}
	s.Client().AddHook(rt)
	if err := s.PutOfficer(ctx, visit.Officer{ID: "jdoe", Name: "Jane Doe", School: "s1", Phone: "+447700900101"}); err != nil {
		t.Fatal(err)
	}
	ost := map[string]visit.OfficerState{"jdoe": {OpenVisit: "v1"}, "ghost": {OpenVisit: "v9"}}
	if err := s.Begin("s1").Commit(ctx, store.Change{Result: visit.Result{Visits: []*visit.Visit{openVisit("v1")}}, OfficerStates: ost, Now: t0}); err != nil {
		t.Fatal(err)
	}

	sn := s.Begin("s1")
	before := rt.n.Load()
	o, err := sn.ReadOfficer(ctx, "jdoe", []string{"v1"}, []string{"a1"})
	if err != nil || o.Name != "Jane Doe" {
		t.Fatalf("ReadOfficer = %+v, %v", o, err)
	}
	st, err := sn.OfficerState(ctx, "jdoe")
	if err != nil || st.OpenVisit != "v1" {
		t.Fatalf("officer state: %+v %v", st, err)
	}
	if v, err := sn.Visit(ctx, "v1"); err != nil || v == nil {
		t.Fatalf("visit: %+v %v", v, err)
	}
	if a, err := sn.Alert(ctx, "a1"); err != nil || a != nil {
		t.Fatalf("an alert that does not exist: %+v %v", a, err)
	}
	if n := rt.n.Load() - before; n != 1 {
		t.Errorf("%d round trips for the officer, the state, the visit and the alert, want 1", n)
	}

	sn = s.Begin("s1")
	before = rt.n.Load()
	if _, err := sn.ReadOfficer(ctx, "ghost", nil, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an officer not in the directory: %v, want ErrNotFound", err)
	}
	if st, err := sn.OfficerState(ctx, "ghost"); err != nil || st.OpenVisit != "v9" {
		t.Fatalf("their state: %+v %v", st, err)
	}
	if n := rt.n.Load() - before; n != 1 {
		t.Errorf("%d round trips, want 1", n)
	}
}
