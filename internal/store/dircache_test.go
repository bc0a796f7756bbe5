package store

import (
	"log/slog"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/visit"
)

// cacheReplica opens a store on srv as a replica would (Open), with a directory cache
// whose every invalidation the test hears of, and waits until the cache is in use.
func cacheReplica(t *testing.T, srv *redistest.Server) *Store {
	t.Helper()
	c := newDirCache()
	c.events = make(chan struct{}, 1)
	s, err := open(t.Context(), Options{URL: srv.URL()}, slog.New(slog.DiscardHandler), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	awaitDir(t, s, "the subscription is up", func(c *dirCache) bool { return c.live })
	return s
}

// awaitDir waits, on the cache's own signals, until cond holds of s's cache.
func awaitDir(t *testing.T, s *Store, what string, cond func(c *dirCache) bool) {
	t.Helper()
	deadline := time.After(15 * time.Second) // a hang, not a timing bound
	for {
		s.dir.mu.RLock()
		ok := cond(s.dir)
		s.dir.mu.RUnlock()
		if ok {
			return
		}
		select {
		case <-s.dir.events:
		case <-deadline:
			t.Fatalf("directory cache: still waiting for %s", what)
		}
	}
}

// gen is the cache's generation now.
func gen(s *Store) uint64 {
	s.dir.mu.RLock()
	defer s.dir.mu.RUnlock()
	return s.dir.gen
}

// awaitHeard waits until s's cache has been invalidated since generation g (a
// replica heard another's write) and is in use again.
func awaitHeard(t *testing.T, s *Store, g uint64) {
	t.Helper()
	awaitDir(t, s, "the write to be heard", func(c *dirCache) bool { return c.gen > g && c.live })
}

// writeThrough writes the directory through another store on srv and waits until b
// has heard of it, so that no announcement is still on its way to b.
func writeThrough(t *testing.T, srv *redistest.Server, b *Store, write func(a *Store) error) {
	t.Helper()
	g := gen(b)
	if err := write(NewWithClient(srv.Client(), "vigil:", slog.New(slog.DiscardHandler))); err != nil {
		t.Fatal(err)
	}
	awaitHeard(t, b, g)
}

// cached reports whether s's cache holds an entry for k.
func cached(s *Store, k dirKey) bool {
	_, ok := s.dir.get(k)
	return ok
}

func school(id, name, officePhone string) visit.School {
	return visit.School{ID: id, Name: name, Contacts: map[string][]visit.Contact{"office": {{Name: "Office", Phone: officePhone}}}}
}

// A directory write through one replica is seen by another that had the old values
// cached, once the announcement reaches it: a school's name and lists, an officer's
// phone, a deleted officer, a new school.
func TestDirCacheSeesAnotherReplicasWrites(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a, b := cacheReplica(t, srv), cacheReplica(t, srv)
	ctx := t.Context()
	g := gen(b)
	if err := a.SyncDirectory(ctx, []visit.School{school("s1", "One", "+441632960001")},
		[]visit.Officer{{ID: "jdoe", Name: "Jane Doe", Phone: "+447700900101", School: "s1"}}); err != nil {
		t.Fatal(err)
	}
	awaitHeard(t, b, g)
	read := func() (*visit.School, *visit.Officer, []PhoneRole, []string) {
		t.Helper()
		sc, err := b.School(ctx, "s1")
		if err != nil {
			t.Fatal(err)
		}
		o, err := b.Officer(ctx, "jdoe")
		if err != nil {
			o = nil
		}
		roles, err := b.PhoneRoles(ctx, "+447700900101")
		if err != nil {
			t.Fatal(err)
		}
		ids, err := b.SchoolIDs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return sc, o, roles, ids
	}
	read()
	for _, k := range []dirKey{{dirSchool, "s1"}, {dirOfficer, "jdoe"}, {dirPhone, "+447700900101"}, {kind: dirSchoolIDs}} {
		if !cached(b, k) {
			t.Fatalf("%v not cached after a read", k)
		}
	}

	// The school's name and office list change.
	g = gen(b)
	if err := a.PutSchool(ctx, school("s1", "Two", "+441632960002")); err != nil {
		t.Fatal(err)
	}
	if err := a.ReindexPhones(ctx); err != nil {
		t.Fatal(err)
	}
	awaitHeard(t, b, g)
	sc, _, _, _ := read()
	if sc.Name != "Two" || sc.Contacts["office"][0].Phone != "+441632960002" {
		t.Errorf("after PutSchool b reads %+v", sc)
	}
	if roles, _ := b.PhoneRoles(ctx, "+441632960002"); len(roles) != 1 || roles[0].List != "office" {
		t.Errorf("the new office phone: %+v", roles)
	}

	// The officer's phone changes: the old number is no longer hers.
	g = gen(b)
	if err := a.PutOfficer(ctx, visit.Officer{ID: "jdoe", Name: "Jane Doe", Phone: "+447700900109", School: "s1"}); err != nil {
		t.Fatal(err)
	}
	awaitHeard(t, b, g)
	_, o, roles, _ := read()
	if o == nil || o.Phone != "+447700900109" || len(roles) != 0 {
		t.Errorf("after PutOfficer b reads %+v, old phone's roles %+v", o, roles)
	}

	// The officer is deleted.
	g = gen(b)
	if err := a.DeleteOfficer(ctx, "jdoe"); err != nil {
		t.Fatal(err)
	}
	awaitHeard(t, b, g)
	if _, err := b.Officer(ctx, "jdoe"); err == nil {
		t.Error("b still finds the deleted officer")
	}
	if roles, _ := b.PhoneRoles(ctx, "+447700900109"); len(roles) != 0 {
		t.Errorf("the deleted officer's phone still has roles %+v", roles)
	}

	// A new school appears in the list of schools.
	g = gen(b)
	if err := a.SyncDirectory(ctx, []visit.School{school("s1", "Two", "+441632960002"), school("s2", "Three", "+441632960003")}, nil); err != nil {
		t.Fatal(err)
	}
	awaitHeard(t, b, g)
	if _, _, _, ids := read(); len(ids) != 2 || ids[1] != "s2" {
		t.Errorf("school IDs after a new school: %v", ids)
	}
}

// "Not found" is never cached: a number or officer added through another replica
// works at once, whether or not that replica's announcement has arrived yet.
func TestDirCacheDoesNotCacheNotFound(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a, b := cacheReplica(t, srv), cacheReplica(t, srv)
	ctx := t.Context()
	if err := a.PutSchool(ctx, school("s1", "One", "+441632960001")); err != nil {
		t.Fatal(err)
	}
	if roles, err := b.PhoneRoles(ctx, "+447700900101"); err != nil || roles != nil {
		t.Fatalf("unknown number: %v %v", roles, err)
	}
	if _, err := b.Officer(ctx, "jdoe"); err == nil {
		t.Fatal("unknown officer found")
	}
	if err := a.PutOfficer(ctx, visit.Officer{ID: "jdoe", Name: "Jane Doe", Phone: "+447700900101", School: "s1"}); err != nil {
		t.Fatal(err)
	}
	roles, err := b.PhoneRoles(ctx, "+447700900101")
	if err != nil || len(roles) != 1 || roles[0].Officer != "jdoe" {
		t.Errorf("a number just added: %+v %v", roles, err)
	}
	if o, err := b.Officer(ctx, "jdoe"); err != nil || o.Name != "Jane Doe" {
		t.Errorf("an officer just added: %+v %v", o, err)
	}
}

// When the subscription is lost, the cache is cleared and only used again once it is
// back, so a change announced while it was down is never hidden by an old entry.
func TestDirCacheClearedWhenSubscriptionReconnects(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	if srv.Embedded() {
		t.Skip("needs redis-server (CLIENT KILL)")
	}
	b := cacheReplica(t, srv)
	ctx := t.Context()
	raw := srv.Client()
	writeThrough(t, srv, b, func(a *Store) error { return a.PutSchool(ctx, school("s1", "One", "+441632960001")) })
	if sc, err := b.School(ctx, "s1"); err != nil || sc.Name != "One" {
		t.Fatalf("%+v %v", sc, err)
	}
	// A change whose announcement is lost (written behind the store's back): the
	// cached entry hides it...
	if err := raw.HSet(ctx, "vigil:dir:schools", "s1", `{"id":"s1","name":"Two"}`).Err(); err != nil {
		t.Fatal(err)
	}
	if sc, _ := b.School(ctx, "s1"); sc.Name != "One" {
		t.Fatalf("the entry was not cached: read %q", sc.Name)
	}
	// ...until the subscription drops and is made again.
	g := gen(b)
	if err := raw.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	awaitDir(t, b, "the subscription to drop and come back", func(c *dirCache) bool { return c.gen >= g+2 && c.live })
	if sc, _ := b.School(ctx, "s1"); sc.Name != "Two" {
		t.Errorf("after the subscription came back b reads %q, want Two", sc.Name)
	}
}

// A read from Redis that an invalidation overtook is not kept; nothing is kept or
// used while the subscription is down; an entry is used for at least half of
// dirMaxAge and never longer.
func TestDirCacheKeepsOnlyCurrentReads(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	c := newDirCache()
	c.now = func() time.Time { return now }
	k := dirKey{dirSchool, "s1"}
	for _, tc := range []struct {
		name string
		live bool
		mid  func() // between the read's start and its result
		want bool
	}{
		{"plain read", true, func() {}, true},                                        // kept
		{"subscription down", false, func() {}, false},                               // nothing is kept without pub/sub
		{"announcement during the read", true, func() { c.invalidate(true) }, false}, // another replica wrote
		{"own write during the read", true, c.changed, false},                        // this replica wrote
		{"subscription lost during the read", true, func() { c.invalidate(false) }, false},
	} {
		c.invalidate(tc.live)
		r := c.begin()
		tc.mid()
		c.put(r, k, "value")
		if _, ok := c.get(k); ok != tc.want {
			t.Errorf("%s: cached %v, want %v", tc.name, ok, tc.want)
		}
	}
	for range 20 { // the age at which an entry is read again varies, by design
		c.invalidate(true)
		start := now
		c.put(c.begin(), k, "value")
		now = start.Add(dirMaxAge / 2)
		if _, ok := c.get(k); !ok {
			t.Error("an entry half dirMaxAge old is not used")
		}
		now = start.Add(dirMaxAge + time.Millisecond)
		if _, ok := c.get(k); ok {
			t.Error("an entry older than dirMaxAge is still used")
		}
	}
}

// A caller gets its own copy: changing it changes nothing cached.
func TestDirCacheReturnsCopies(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := cacheReplica(t, srv)
	ctx := t.Context()
	writeThrough(t, srv, s, func(a *Store) error {
		return a.SyncDirectory(ctx, []visit.School{school("s1", "One", "+441632960001")},
			[]visit.Officer{{ID: "jdoe", Name: "Jane Doe", Phone: "+447700900101", School: "s1", Vehicle: &visit.Vehicle{Registration: "AB12 CDE"}}})
	})
	for range 2 { // the first read fills the cache, the second comes from it
		sc, _ := s.School(ctx, "s1")
		sc.Name = "changed"
		sc.Contacts["office"][0].Phone = "changed"
		sc.Contacts["police"] = nil
		o, _ := s.Officer(ctx, "jdoe")
		o.Vehicle.Registration = "changed"
		roles, _ := s.PhoneRoles(ctx, "+447700900101")
		roles[0].School = "changed"
		ids, _ := s.SchoolIDs(ctx)
		ids[0] = "changed"
	}
	sc, _ := s.School(ctx, "s1")
	o, _ := s.Officer(ctx, "jdoe")
	roles, _ := s.PhoneRoles(ctx, "+447700900101")
	ids, _ := s.SchoolIDs(ctx)
	if sc.Name != "One" || sc.Contacts["office"][0].Phone != "+441632960001" || len(sc.Contacts) != 1 ||
		o.Vehicle.Registration != "AB12 CDE" || roles[0].School != "s1" || ids[0] != "s1" {
		t.Errorf("a caller's change reached the cache: %+v %+v %+v %v", sc, o.Vehicle, roles, ids)
	}
	if !cached(s, dirKey{dirSchool, "s1"}) {
		t.Error("nothing was cached")
	}
}

// A replica sees its own directory writes at once, without waiting for its
// announcement to come back (here it never does: the cache has no subscription).
func TestDirCacheSeesOwnWritesAtOnce(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := NewWithClient(srv.Client(), "vigil:", slog.New(slog.DiscardHandler))
	s.dir = newDirCache()
	s.dir.invalidate(true) // in use, as if subscribed
	ctx := t.Context()
	for i, write := range []func() error{
		func() error { return s.PutSchool(ctx, school("s1", "One", "+441632960001")) },
		func() error { return s.PutSchool(ctx, school("s1", "Two", "+441632960002")) },
		func() error { return s.ReindexPhones(ctx) },
		func() error {
			return s.SyncDirectory(ctx, []visit.School{school("s1", "Three", "+441632960003")}, nil)
		},
	} {
		if err := write(); err != nil {
			t.Fatal(err)
		}
		sc, err := s.School(ctx, "s1")
		if err != nil {
			t.Fatal(err)
		}
		roles, err := s.PhoneRoles(ctx, sc.Contacts["office"][0].Phone)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"One", "Two", "Two", "Three"}[i]; sc.Name != want {
			t.Errorf("write %d: read %q, want %q", i, sc.Name, want)
		}
		if i > 1 && len(roles) != 1 {
			t.Errorf("write %d: the office phone has roles %+v", i, roles)
		}
	}
	if !cached(s, dirKey{dirSchool, "s1"}) {
		t.Error("nothing was cached")
	}
}
