package store

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-safety/vigil/internal/visit"
)

// Reads for the API and the metrics: they need no snapshot because they change nothing.

// OpenVisits lists the open visits of the schools given, earliest due first.
func (s *Store) OpenVisits(ctx context.Context, schools []string) ([]*visit.Visit, error) {
	var out []*visit.Visit
	for _, sc := range schools {
		ids, err := s.openVisitIDs(ctx, sc)
		if err != nil {
			return nil, err
		}
		vs, err := s.loadVisits(ctx, sc, ids)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			if v.Open() {
				out = append(out, v)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DueAt.Before(out[j].DueAt) })
	return out, nil
}

// openVisitIDs lists the IDs of a school's open visits: those its officer states
// name as open (a companion's names the visit too), and those left in the set of
// open visits earlier versions kept (whose officers' states may still be keys of
// their own, unread here). Every open visit is in one or the other: a visit opened
// by this version has its officer's state in the hash, and one opened by an earlier
// version is in the set until it closes. Each ID is listed once.
func (s *Store) openVisitIDs(ctx context.Context, school string) ([]string, error) {
	var states *redis.StringSliceCmd
	var legacy *redis.StringSliceCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		states = p.HVals(ctx, s.k.officerStates(school))
		legacy = p.SMembers(ctx, s.k.openVisits(school))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list open visits of %s: %w", school, err)
	}
	seen := map[string]bool{}
	var ids []string
	add := func(id string) {
		if id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for _, raw := range states.Val() {
		st, err := decodeOfficerState([]byte(raw))
		if err != nil {
			return nil, fmt.Errorf("list open visits of %s: %w", school, err)
		}
		add(st.OpenVisit)
	}
	for _, id := range legacy.Val() {
		add(id)
	}
	return ids, nil
}

// RecentVisits lists visits closed most recently (up to limit per school).
func (s *Store) RecentVisits(ctx context.Context, schools []string, limit int64) ([]*visit.Visit, error) {
	var out []*visit.Visit
	for _, sc := range schools {
		ids, err := s.rdb.ZRevRange(ctx, s.k.closedVisits(sc), 0, limit-1).Result()
		if err != nil {
			return nil, fmt.Errorf("list closed visits of %s: %w", sc, err)
		}
		vs, err := s.loadVisits(ctx, sc, ids)
		if err != nil {
			return nil, err
		}
		out = append(out, vs...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ClosedAt.After(out[j].ClosedAt) })
	return out, nil
}

// CountOpenVisits counts open visits across the schools given. It reads every
// officer state of each school (openVisitIDs): fine for the metrics' scrapes.
func (s *Store) CountOpenVisits(ctx context.Context, schools []string) (int64, error) {
	var n int64
	for _, sc := range schools {
		ids, err := s.openVisitIDs(ctx, sc)
		if err != nil {
			return 0, err
		}
		n += int64(len(ids))
	}
	return n, nil
}

// Alerts lists alerts of the schools given, newest first: only open (and acked)
// ones when open is true, else the most recent up to limit per school.
func (s *Store) ListAlerts(ctx context.Context, schools []string, open bool, limit int64) ([]*visit.Alert, error) {
	var out []*visit.Alert
	for _, sc := range schools {
		var ids []string
		var err error
		if open {
			ids, err = s.rdb.SMembers(ctx, s.k.openAlerts(sc)).Result()
		} else {
			ids, err = s.rdb.ZRevRange(ctx, s.k.alerts(sc), 0, limit-1).Result()
		}
		if err != nil {
			return nil, fmt.Errorf("list alerts of %s: %w", sc, err)
		}
		as, err := s.loadAlerts(ctx, sc, ids)
		if err != nil {
			return nil, err
		}
		out = append(out, as...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RaisedAt.After(out[j].RaisedAt) })
	return out, nil
}

// FindVisit finds which of the schools holds visit id: ErrNotFound when none does,
// ErrAmbiguous when more than one does (never a guess between them).
func (s *Store) FindVisit(ctx context.Context, schools []string, id string) (string, error) {
	return s.find(ctx, schools, func(sc string) string { return s.k.visit(sc, id) })
}

// FindAlert finds which of the schools holds alert id, as FindVisit.
func (s *Store) FindAlert(ctx context.Context, schools []string, id string) (string, error) {
	return s.find(ctx, schools, func(sc string) string { return s.k.alert(sc, id) })
}

func (s *Store) find(ctx context.Context, schools []string, key func(string) string) (string, error) {
	if len(schools) == 0 {
		return "", ErrNotFound
	}
	cmds := make([]*redis.IntCmd, len(schools))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sc := range schools {
			cmds[i] = p.Exists(ctx, key(sc))
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	found := ""
	for i, c := range cmds {
		if c.Val() > 0 {
			if found != "" {
				return "", ErrAmbiguous
			}
			found = schools[i]
		}
	}
	if found == "" {
		return "", ErrNotFound
	}
	return found, nil
}

// loadVisits reads the visits of one school named by ids, in that order, skipping any
// that no longer exist.
func (s *Store) loadVisits(ctx context.Context, school string, ids []string) ([]*visit.Visit, error) {
	return getAll(ctx, s.rdb, func(id string) string { return s.k.visit(school, id) }, ids,
		func(id string, raw []byte) (*visit.Visit, error) { return decodeVisit(school, id, raw) })
}

// loadAlerts reads the alerts of one school named by ids, as loadVisits.
func (s *Store) loadAlerts(ctx context.Context, school string, ids []string) ([]*visit.Alert, error) {
	return getAll(ctx, s.rdb, func(id string) string { return s.k.alert(school, id) }, ids,
		func(id string, raw []byte) (*visit.Alert, error) { return decodeAlert(school, id, raw) })
}

// getAll reads the keys of ids in one pipeline and decodes each value found.
func getAll[T any](ctx context.Context, rdb redis.UniversalClient, key func(string) string, ids []string,
	decode func(id string, raw []byte) (*T, error)) ([]*T, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.StringCmd, len(ids))
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, key(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]*T, 0, len(ids))
	for i, c := range cmds {
		raw, err := c.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, err
		}
		x, err := decode(ids[i], raw)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}
