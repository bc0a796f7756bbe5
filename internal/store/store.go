// Package store keeps all of Vigil's state in Redis: the directory, visits, alerts,
// officer states, durable timers, the outbox, inbound SMS de-duplication and the
// audit stream. Every change one event makes is written by one Lua script
// (Snapshot.Commit) that first checks nothing it read has changed.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/vigil-safety/vigil/internal/visit"
)

// Errors a commit can end with.
var (
	// ErrConflict means something the event read changed before it committed: load
	// and decide again.
	ErrConflict = errors.New("store: state changed since it was read")
	// ErrFenced means the timer or message claim was lost (its lease ran out and
	// another replica holds it): drop the work, the other replica does it.
	ErrFenced = errors.New("store: claim lost to another replica")
	// ErrNotFound means the entity does not exist.
	ErrNotFound = errors.New("store: not found")
)

// Options says which Redis to use.
type Options struct {
	URL            string
	SentinelMaster string
	SentinelAddrs  []string
	ClusterAddrs   []string
	KeyPrefix      string
}

// Store is Vigil's Redis adapter.
type Store struct {
	rdb  redis.UniversalClient
	k    keys
	mini *miniredis.Miniredis
	log  *slog.Logger
}

// Open connects to Redis as opts say. With no URL, sentinel or cluster it starts an
// embedded in-memory Redis (miniredis) and says loudly that nothing survives a
// restart.
func Open(ctx context.Context, opts Options, log *slog.Logger) (*Store, error) {
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = "vigil:"
	}
	s := &Store{k: keys{prefix: opts.KeyPrefix}, log: log.With("component", "store")}
	switch {
	case len(opts.ClusterAddrs) > 0:
		s.rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: opts.ClusterAddrs})
	case opts.SentinelMaster != "":
		s.rdb = redis.NewFailoverClient(&redis.FailoverOptions{MasterName: opts.SentinelMaster, SentinelAddrs: opts.SentinelAddrs})
	case opts.URL != "":
		o, err := redis.ParseURL(opts.URL)
		if err != nil {
			return nil, fmt.Errorf("redis.url: %w", err)
		}
		s.rdb = redis.NewClient(o)
	default:
		m := miniredis.NewMiniRedis()
		if err := m.Start(); err != nil {
			return nil, fmt.Errorf("start embedded store: %w", err)
		}
		s.mini = m
		s.rdb = redis.NewClient(&redis.Options{Addr: m.Addr()})
		s.log.Warn("NO REDIS CONFIGURED: using an embedded in-memory store. NOTHING SURVIVES A RESTART: open visits and alerts are lost when Vigil stops. Set redis.url for real use.")
	}
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		s.Close()
		return nil, fmt.Errorf("connect to redis: %w", err)
	}
	return s, nil
}

// NewWithClient wraps an existing client (tests, benchmarks).
func NewWithClient(rdb redis.UniversalClient, prefix string, log *slog.Logger) *Store {
	if prefix == "" {
		prefix = "vigil:"
	}
	return &Store{rdb: rdb, k: keys{prefix: prefix}, log: log.With("component", "store")}
}

// Close releases the connection (and stops the embedded store).
func (s *Store) Close() error {
	err := s.rdb.Close()
	if s.mini != nil {
		s.mini.Close()
	}
	return err
}

// Embedded reports whether the store is the in-memory one.
func (s *Store) Embedded() bool { return s.mini != nil }

// Ping checks Redis answers.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// Client is the underlying client (for subscriptions and tests).
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// WakeChannel is the pub/sub channel on which commits announce new timers and
// messages, so every replica's scheduler and dispatcher wake without polling.
func (s *Store) WakeChannel() string { return s.k.wake() }

// ---- directory ----

// PhoneRole is what a phone number is to Vigil: an officer, or a contact on a list.
type PhoneRole struct {
	Kind    string `json:"kind"` // "officer" or "contact"
	School  string `json:"school"`
	Officer string `json:"officer,omitempty"`
	Name    string `json:"name"`
	List    string `json:"list,omitempty"`
}

// SyncDirectory upserts the provisioned schools and officers, drops provisioned
// entries that left the file, and rebuilds the phone index from the whole directory.
func (s *Store) SyncDirectory(ctx context.Context, schools []visit.School, officers []visit.Officer) error {
	keepS := map[string]bool{}
	for _, sc := range schools {
		keepS[sc.ID] = true
		if err := s.PutSchool(ctx, sc); err != nil {
			return err
		}
	}
	keepO := map[string]bool{}
	for _, o := range officers {
		keepO[o.ID] = true
		if err := s.putOfficer(ctx, o); err != nil {
			return err
		}
	}
	all, err := s.Schools(ctx)
	if err != nil {
		return err
	}
	for _, sc := range all {
		if sc.Provisioned && !keepS[sc.ID] {
			s.rdb.HDel(ctx, s.k.schools(), sc.ID)
		}
	}
	offs, err := s.Officers(ctx)
	if err != nil {
		return err
	}
	for _, o := range offs {
		if o.Provisioned && !keepO[o.ID] {
			s.rdb.HDel(ctx, s.k.officers(), o.ID)
		}
	}
	return s.reindexPhones(ctx)
}

// PutSchool creates or replaces a school.
func (s *Store) PutSchool(ctx context.Context, sc visit.School) error {
	b, err := json.Marshal(sc)
	if err != nil {
		return err
	}
	if err := s.rdb.HSet(ctx, s.k.schools(), sc.ID, b).Err(); err != nil {
		return fmt.Errorf("save school %s: %w", sc.ID, err)
	}
	return nil
}

// PutOfficer creates or replaces an officer and refreshes the phone index.
func (s *Store) PutOfficer(ctx context.Context, o visit.Officer) error {
	if err := s.putOfficer(ctx, o); err != nil {
		return err
	}
	return s.reindexPhones(ctx)
}

func (s *Store) putOfficer(ctx context.Context, o visit.Officer) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	if err := s.rdb.HSet(ctx, s.k.officers(), o.ID, b).Err(); err != nil {
		return fmt.Errorf("save officer %s: %w", o.ID, err)
	}
	return nil
}

// DeleteOfficer removes an officer.
func (s *Store) DeleteOfficer(ctx context.Context, id string) error {
	if err := s.rdb.HDel(ctx, s.k.officers(), id).Err(); err != nil {
		return fmt.Errorf("delete officer %s: %w", id, err)
	}
	return s.reindexPhones(ctx)
}

// School loads one school.
func (s *Store) School(ctx context.Context, id string) (*visit.School, error) {
	var sc visit.School
	if err := s.hget(ctx, s.k.schools(), id, &sc); err != nil {
		return nil, fmt.Errorf("load school %s: %w", id, err)
	}
	return &sc, nil
}

// Officer loads one officer.
func (s *Store) Officer(ctx context.Context, id string) (*visit.Officer, error) {
	var o visit.Officer
	if err := s.hget(ctx, s.k.officers(), id, &o); err != nil {
		return nil, fmt.Errorf("load officer %s: %w", id, err)
	}
	return &o, nil
}

// Schools lists every school, by ID.
func (s *Store) Schools(ctx context.Context) ([]visit.School, error) {
	return hvals[visit.School](ctx, s.rdb, s.k.schools(), func(x visit.School) string { return x.ID })
}

// SchoolIDs lists the IDs of every school.
func (s *Store) SchoolIDs(ctx context.Context) ([]string, error) {
	ids, err := s.rdb.HKeys(ctx, s.k.schools()).Result()
	sort.Strings(ids)
	return ids, err
}

// Officers lists every officer, by ID.
func (s *Store) Officers(ctx context.Context) ([]visit.Officer, error) {
	return hvals[visit.Officer](ctx, s.rdb, s.k.officers(), func(x visit.Officer) string { return x.ID })
}

// PhoneRoles says who a phone number belongs to; empty for an unknown number.
func (s *Store) PhoneRoles(ctx context.Context, phone string) ([]PhoneRole, error) {
	var roles []PhoneRole
	err := s.hget(ctx, s.k.phones(), phone, &roles)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return roles, err
}

func (s *Store) reindexPhones(ctx context.Context) error {
	schools, err := s.Schools(ctx)
	if err != nil {
		return err
	}
	officers, err := s.Officers(ctx)
	if err != nil {
		return err
	}
	idx := map[string][]PhoneRole{}
	for _, o := range officers {
		idx[o.Phone] = append(idx[o.Phone], PhoneRole{Kind: "officer", School: o.School, Officer: o.ID, Name: o.Name})
	}
	for _, sc := range schools {
		lists := make([]string, 0, len(sc.Contacts))
		for l := range sc.Contacts {
			lists = append(lists, l)
		}
		sort.Strings(lists)
		for _, l := range lists {
			for _, c := range sc.Contacts[l] {
				idx[c.Phone] = append(idx[c.Phone], PhoneRole{Kind: "contact", School: sc.ID, Name: c.Name, List: l})
			}
		}
	}
	// Replace the index in one transaction so a lookup never sees it half-built.
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.k.phones())
		for ph, roles := range idx {
			b, _ := json.Marshal(roles)
			p.HSet(ctx, s.k.phones(), ph, b)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("index phones: %w", err)
	}
	return nil
}

func (s *Store) hget(ctx context.Context, key, field string, v any) error {
	b, err := s.rdb.HGet(ctx, key, field).Bytes()
	if errors.Is(err, redis.Nil) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func hvals[T any](ctx context.Context, rdb redis.UniversalClient, key string, id func(T) string) ([]T, error) {
	m, err := rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(m))
	for _, raw := range m {
		var x T
		if err := json.Unmarshal([]byte(raw), &x); err != nil {
			return nil, fmt.Errorf("decode %s: %w", key, err)
		}
		out = append(out, x)
	}
	sort.Slice(out, func(i, j int) bool { return id(out[i]) < id(out[j]) })
	return out, nil
}

// UnknownReplyAllowed reports whether an unknown number may get a reply now (at most
// one a day), and records that it got one.
func (s *Store) UnknownReplyAllowed(ctx context.Context, phone string, now time.Time) (bool, error) {
	return s.rdb.SetNX(ctx, s.k.unknownReply(phone), now.UnixMilli(), 24*time.Hour).Result()
}

// InboundReply returns the reply already given to a Twilio MessageSid, if any.
func (s *Store) InboundReply(ctx context.Context, school, sid string) (string, bool, error) {
	r, err := s.rdb.Get(ctx, s.k.inbound(school, sid)).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	return r, err == nil, err
}

// Subscribe calls fn each time a commit announces new timers or messages on the
// wake channel, until ctx ends. A lost subscription is re-made by go-redis; the
// callers' safety polls cover the gap.
func (s *Store) Subscribe(ctx context.Context, fn func()) {
	sub := s.rdb.Subscribe(ctx, s.k.wake())
	defer sub.Close()
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
			fn()
		}
	}
}
